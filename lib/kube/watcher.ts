/**
 * A list-then-watch loop written as a small explicit state machine, in the style of kube-rs'
 * `watcher`:
 *
 * ```text
 *   Empty ──list (resourceVersion=0)──▶ InitListed(rv) ──open watch──▶ Watching(rv)
 *     ▲                                      ▲                            │
 *     │ 410 Gone / Expired / "too old"       │ stream end, inactivity,    │ ADDED/MODIFIED/DELETED
 *     └──────────────────────────────────────┤ other errors (after        │ BOOKMARK: rv ← event's rv
 *                                            │ backoff)                   ▼
 *                                            └──────────────────── Watching(rv')
 * ```
 *
 * Watches ask for bookmarks and a server-side `timeoutSeconds` (so the server ends every
 * stream within minutes), and an inactivity timer (no event, bookmarks included, for longer
 * than any stream may last) aborts a stream that went silent, so a half-open connection never
 * stalls the cache for good. Errors back off exponentially with jitter, capped; any event
 * resets the backoff.
 *
 * The transport, the clock, the sleep function and the random source are injected, so every
 * transition is tested without a server or real time.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import { Backoff, type BackoffOptions, sleep as realSleep } from "../base/backoff.ts";
import { KubeApiError } from "./client.ts";
import type { KubeStatus, ListResult, WatcherEvent, WatchEvent } from "./types.ts";

export type { ListResult, WatcherEvent, WatchEvent } from "./types.ts";

/** What a {@linkcode Watcher} needs from the API: one list call and one watch call. */
export interface ListWatchTransport<T> {
  /** Lists every object (at resourceVersion "0": served from the API server's cache). */
  list(signal: AbortSignal): Promise<ListResult<T>>;
  /** Watches from `resourceVersion`; the stream must end or throw when `signal` aborts. */
  watch(resourceVersion: string, signal: AbortSignal): AsyncIterable<WatchEvent<T>>;
}

/** The watcher's state; see the module documentation for the transitions. */
export type WatcherState<T> =
  | { kind: "Empty" }
  | { kind: "InitListed"; resourceVersion: string }
  | {
    kind: "Watching";
    resourceVersion: string;
    stream: AsyncIterator<WatchEvent<T>>;
    abort: AbortController;
    /** Events (bookmarks included) seen on this stream so far. */
    events: number;
    /** When the stream was opened (the `now` clock). */
    openedAt: number;
  };

/** Settings of a {@linkcode Watcher}. */
export interface WatcherOptions<T> {
  /** The object's `metadata.resourceVersion` (after the ingestion transform). */
  versionOf: (object: T) => string | undefined;
  /** Name for logs, e.g. `pods`. */
  name?: string;
  /**
   * Abort a watch that delivered nothing (not even a bookmark) for this long, in ms. The
   * default, {@linkcode DEFAULT_INACTIVITY_MS}, is longer than the longest server-side
   * `timeoutSeconds` the transport asks for: a quiet kube-apiserver may send no bookmark at
   * all, but it always ends the stream at its timeout, so only a dead connection stays silent
   * longer.
   */
  inactivityMs?: number;
  /** Retry pacing after errors. */
  backoff?: BackoffOptions;
  /**
   * A stream that ends without any event sooner than this (ms, default 1000) counts as a
   * failure and backs off, so a server that closes watches at once causes no hot loop. Longer
   * streams ending empty are normal (a quiet API server closes them at `timeoutSeconds`) and
   * are re-opened at once.
   */
  minStreamMs?: number;
  /** Monotonic clock in ms (default `performance.now`); injectable for tests. */
  now?: () => number;
  /** Sleeps `ms` or rejects when `signal` aborts; injectable for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Logger (debug lines on every transition, warnings on errors). */
  log?: Logger;
  /** Called on every error the loop recovers from (for metrics). */
  onError?: (err: unknown) => void;
}

/** True when a watch error means the resourceVersion is too old: the cache must be re-listed. */
export function isExpired(status: KubeStatus | undefined): boolean {
  if (!status) return false;
  return status.code === 410 || status.reason === "Expired" || status.reason === "Gone" ||
    /too old resource version/i.test(status.message ?? "");
}

const TIMEOUT = Symbol("inactivity timeout");

/**
 * Default inactivity limit: 11 minutes, one more than the longest watch the API server is
 * asked to hold (`timeoutSeconds` below 600, see `kubeListWatch`).
 */
export const DEFAULT_INACTIVITY_MS = 660_000;

/** An error in the watch loop, naming the resource and the state it happened in. */
export class WatchError extends Error {
  /** Wraps `cause`, which happened while in `state`. */
  constructor(name: string, state: string, cause: unknown) {
    super(`watch of ${name} failed in state ${state}`, { cause });
    this.name = "WatchError";
  }
}

/** The list-then-watch state machine; drive it with {@linkcode Watcher.run}. */
export class Watcher<T> {
  readonly #transport: ListWatchTransport<T>;
  readonly #versionOf: (object: T) => string | undefined;
  readonly #name: string;
  readonly #inactivityMs: number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #log: Logger | undefined;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #minStreamMs: number;
  readonly #now: () => number;
  /** The retry pacing; exposed for tests and metrics. */
  readonly backoff: Backoff;
  #state: WatcherState<T> = { kind: "Empty" };
  /** Delay to apply before the next step (set when a stream ended at once without any event). */
  #idleDelay = false;

  /** Creates a watcher in state `Empty`. */
  constructor(transport: ListWatchTransport<T>, options: WatcherOptions<T>) {
    this.#transport = transport;
    this.#versionOf = options.versionOf;
    this.#name = options.name ?? "objects";
    this.#inactivityMs = options.inactivityMs ?? DEFAULT_INACTIVITY_MS;
    this.#sleep = options.sleep ?? realSleep;
    this.#log = options.log;
    this.#onError = options.onError;
    this.#minStreamMs = options.minStreamMs ?? 1000;
    this.#now = options.now ?? (() => performance.now());
    this.backoff = new Backoff(options.backoff);
  }

  /** The current state's kind and resourceVersion (for tests and logs). */
  get state(): { kind: WatcherState<T>["kind"]; resourceVersion?: string } {
    const s = this.#state;
    return s.kind === "Empty" ? { kind: s.kind } : {
      kind: s.kind,
      resourceVersion: s.resourceVersion,
    };
  }

  /**
   * Performs one transition and returns the events it produced. Throws a
   * {@linkcode WatchError} after moving to the state to retry from; the caller backs off.
   */
  async step(signal: AbortSignal): Promise<WatcherEvent<T>[]> {
    const s = this.#state;
    switch (s.kind) {
      case "Empty": {
        let listed: ListResult<T>;
        try {
          listed = await this.#transport.list(signal);
        } catch (err) {
          throw new WatchError(this.#name, "Empty (list)", err);
        }
        this.#state = { kind: "InitListed", resourceVersion: listed.resourceVersion };
        this.backoff.reset();
        this.#log?.debug("Listed", {
          resource: this.#name,
          count: listed.items.length,
          resourceVersion: listed.resourceVersion,
        });
        return [{
          type: "restarted",
          objects: listed.items,
          resourceVersion: listed.resourceVersion,
        }];
      }
      case "InitListed": {
        const abort = new AbortController();
        const stream = this.#transport.watch(s.resourceVersion, abort.signal)[
          Symbol.asyncIterator
        ]();
        this.#state = {
          kind: "Watching",
          resourceVersion: s.resourceVersion,
          stream,
          abort,
          events: 0,
          openedAt: this.#now(),
        };
        this.#log?.debug("Watching", { resource: this.#name, resourceVersion: s.resourceVersion });
        return [];
      }
      case "Watching":
        return await this.#next(s, signal);
    }
  }

  async #next(
    s: Extract<WatcherState<T>, { kind: "Watching" }>,
    signal: AbortSignal,
  ): Promise<WatcherEvent<T>[]> {
    const onAbort = () => s.abort.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const timer = new AbortController();
    const timeout = new Promise<typeof TIMEOUT>((resolve) => {
      this.#sleep(this.#inactivityMs, timer.signal).then(() => resolve(TIMEOUT), () => {});
    });
    let result: IteratorResult<WatchEvent<T>> | typeof TIMEOUT;
    try {
      result = await Promise.race([s.stream.next(), timeout]);
    } catch (err) {
      s.abort.abort();
      if (signal.aborted) throw err;
      if (err instanceof KubeApiError && isExpired({ code: err.status, reason: err.reason })) {
        this.#relist(s.resourceVersion, err.message);
        return [];
      }
      this.#state = { kind: "InitListed", resourceVersion: s.resourceVersion };
      throw new WatchError(this.#name, `Watching(${s.resourceVersion})`, err);
    } finally {
      timer.abort();
      signal.removeEventListener("abort", onAbort);
    }
    if (result === TIMEOUT) {
      s.abort.abort(new DOMException("watch inactivity timeout", "TimeoutError"));
      s.stream.return?.().catch(() => {});
      this.#state = { kind: "InitListed", resourceVersion: s.resourceVersion };
      this.#log?.warn("Watch went quiet, reconnecting", {
        resource: this.#name,
        resourceVersion: s.resourceVersion,
        quietSeconds: this.#inactivityMs / 1000,
      });
      return [];
    }
    if (result.done) {
      s.abort.abort();
      this.#state = { kind: "InitListed", resourceVersion: s.resourceVersion };
      const quick = s.events === 0 && this.#now() - s.openedAt < this.#minStreamMs;
      this.#idleDelay = quick;
      if (!quick) this.backoff.reset();
      this.#log?.debug("Watch ended", {
        resource: this.#name,
        resourceVersion: s.resourceVersion,
        events: s.events,
      });
      return [];
    }
    const event = result.value;
    s.events++;
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        this.backoff.reset();
        s.resourceVersion = this.#versionOf(event.object) ?? s.resourceVersion;
        return [
          event.type === "DELETED"
            ? { type: "deleted", object: event.object }
            : { type: "applied", object: event.object },
        ];
      }
      case "BOOKMARK": {
        this.backoff.reset();
        const rv = event.object?.metadata?.resourceVersion;
        if (rv) s.resourceVersion = rv;
        return [];
      }
      case "ERROR": {
        s.abort.abort();
        s.stream.return?.().catch(() => {});
        if (isExpired(event.object)) {
          this.#relist(s.resourceVersion, event.object?.message ?? "expired");
          return [];
        }
        this.#state = { kind: "InitListed", resourceVersion: s.resourceVersion };
        const st = event.object ?? {};
        throw new WatchError(
          this.#name,
          `Watching(${s.resourceVersion})`,
          new Error(`ERROR event: ${st.code ?? "?"} ${st.reason ?? ""} ${st.message ?? ""}`.trim()),
        );
      }
    }
  }

  #relist(resourceVersion: string, why: string): void {
    this.#state = { kind: "Empty" };
    this.#log?.info("Resource version expired, re-listing", {
      resource: this.#name,
      resourceVersion,
      reason: why,
    });
  }

  /**
   * Runs the state machine until `signal` aborts, yielding its events. Never ends on its own
   * and never throws: errors are logged and retried after a capped, jittered backoff.
   */
  async *run(signal: AbortSignal): AsyncGenerator<WatcherEvent<T>, void, undefined> {
    try {
      while (!signal.aborted) {
        if (this.#idleDelay) {
          this.#idleDelay = false;
          try {
            await this.#sleep(this.backoff.next(), signal);
          } catch {
            return;
          }
        }
        let events: WatcherEvent<T>[];
        try {
          events = await this.step(signal);
        } catch (err) {
          if (signal.aborted) return;
          this.#onError?.(err);
          const delay = this.backoff.next();
          this.#log?.warn("Watch failed, retrying", {
            resource: this.#name,
            err,
            retryInMs: delay,
            failures: this.backoff.failures,
          });
          try {
            await this.#sleep(delay, signal);
          } catch {
            return;
          }
          continue;
        }
        for (const e of events) yield e;
      }
    } finally {
      const s = this.#state;
      if (s.kind === "Watching") {
        s.abort.abort();
        s.stream.return?.().catch(() => {});
        this.#state = { kind: "InitListed", resourceVersion: s.resourceVersion };
      }
    }
  }
}
