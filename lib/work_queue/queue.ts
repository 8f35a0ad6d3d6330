/**
 * A keyed work queue in the style of client-go's rate-limited workqueue, as the
 * controller's reconcile loop uses it. Keys are strings (`"namespace/name"`).
 *
 * - **De-duplication.** A key that already waits to run is not queued twice.
 * - **Per-key serialization.** A key is never run twice at once. Adding a key while it runs
 *   marks it dirty: it runs once more right after the current run ends.
 * - **Bounded concurrency** across keys (`concurrency` runs at most).
 * - **Unlimited retries.** A run that throws is handed to the `errorPolicy`
 *   (`lib/reconcile/error_policy.ts` in the controller; "back off" for everything by default).
 *   `backoff` retries it after a per-key capped exponential backoff with jitter
 *   (`baseDelayMs · 2^(failures-1)`, at most `maxDelayMs`); `terminal` does not retry it: only
 *   an {@linkcode WorkQueue.add} (the input changed) or a resync runs it again. The failure
 *   count resets on success and on a terminal error. A key is never dropped.
 * - **Delayed keys** keep one timer each; when several delays are asked for, the earliest wins.
 *
 * ### What a run returns
 *
 * A handler resolves to a {@linkcode ReconcileOutcome} (`lib/reconcile/outcome.ts`; nothing
 * means `done`), and the run's `result` (the label of `controller_runtime_reconcile_total`, as
 * controller-runtime names it) says which way it went:
 *
 * | the run                   | what the queue does                                       | `result`        |
 * | ------------------------- | --------------------------------------------------------- | --------------- |
 * | returns `done`            | forgets the key's failures                                | `success`       |
 * | returns `wait`            | forgets the key's failures; sets no timer                 | `success`       |
 * | returns `requeue`         | runs it again after its backoff, grown as for a failure   | `requeue`       |
 * | returns `requeueAfter`    | forgets the key's failures; runs it again `ms` later      | `requeue_after` |
 * | throws, policy `backoff`  | runs it again after its backoff; logs `Reconcile failed`  | `error`         |
 * | throws, policy `terminal` | forgets the key's failures; logs `Reconcile failed`       | `error`         |
 *
 * A `requeue` is a retry without an error (client-go's `AddRateLimited`): it counts in
 * `workqueue_retries_total`, an `add` cuts it short and a `resync` is folded into it, exactly
 * as for a failure.
 *
 * ### Which adds cut a backoff wait short
 *
 * Reconciles are level-driven: an event may be the very fix (a NAD created, an annotation
 * corrected, the pod deleted), or it may change nothing the pass reads (the echo of the
 * agent's own status write, a periodic resync). The caller says which, and the rule is:
 *
 * - {@linkcode WorkQueue.add} is for an event that **can change the outcome**. The key is due
 *   now, whatever its backoff and however many times its waits were cut short before: a
 *   pending retry is cancelled and the key runs as soon as a worker is free. An `add` while
 *   the key runs makes it run once more right after, whatever that run's outcome.
 * - {@linkcode WorkQueue.resync} is for a look that **changes nothing known**. A key that is
 *   idle runs now; a key that waits for a retry keeps waiting, and the resync is folded into
 *   that retry (which reads the world afresh, so nothing is lost). A resync while the key
 *   runs makes it run once more after a success, and is folded into the retry after a failure
 *   or a requeue.
 *
 * Neither resets the failure count: only a run that is not retried does. So a key that keeps
 * failing on unchanged input backs off (`baseDelayMs · 2^(failures-1)`, capped) however many resyncs
 * and status-write echoes arrive, and there is no hot loop unless the input itself keeps
 * changing, in which case every change is worth a look.
 *
 * ### Shutdown
 *
 * {@linkcode WorkQueue.shutdown} stops taking work, drops waiting and delayed keys (the next
 * start reconciles every pod again from the informer's list), clears every timer and waits
 * for the runs in flight until a deadline.
 *
 * @module
 */
import { type Clock, systemClock } from "../base/clock.ts";
import type { Logger } from "../base/log.ts";
import { DelayedRuns } from "./delayed_runs.ts";
import { InFlight } from "./in_flight.ts";
import { DONE, type ErrorAction, type ErrorPolicy, type ReconcileOutcome } from "./outcome.ts";
import type { QueueMetrics, RunResult } from "./queue_metrics.ts";
import { checkQueueOptions, type WorkQueueOptions } from "./queue_options.ts";

interface IdleWaiter {
  withinMs: number;
  resolve: () => void;
}

const BACKOFF: ErrorAction = { action: "backoff" };

/** The keyed work queue; see the module documentation for its semantics. */
export class WorkQueue {
  /** The queue's name, as given in the options. */
  readonly name: string;
  readonly #handler: (key: string) => Promise<ReconcileOutcome | void>;
  readonly #concurrency: number;
  readonly #clock: Clock;
  readonly #metrics: QueueMetrics | undefined;
  readonly #log: Logger | undefined;
  readonly #errorPolicy: ErrorPolicy;

  /** Keys in order of arrival, waiting for a worker. */
  #fifo: string[] = [];
  /** Keys that need a run: those in the FIFO, and running keys marked dirty. */
  readonly #waiting = new Set<string>();
  /** When each waiting key was queued (for the queue-duration metric). */
  readonly #queuedAt = new Map<string, number>();
  /** Running keys and when their run started. */
  readonly #running: InFlight;
  /** Retries (with each key's backoff) and runs asked for later. */
  readonly #delayed: DelayedRuns;
  /** Running keys that an {@linkcode add} made due again: they re-run even after a failure. */
  readonly #changedWhileRunning = new Set<string>();
  #started = false;
  #stopping = false;
  #pumpScheduled = false;
  #idleWaiters: IdleWaiter[] = [];

  /**
   * Creates a stopped queue that runs `handler` for each key once {@linkcode start} is
   * called. Throws a RangeError naming the option when one is out of range.
   */
  constructor(
    handler: (key: string) => Promise<ReconcileOutcome | void>,
    options: WorkQueueOptions,
  ) {
    this.name = options.name ?? "queue";
    const { concurrency, baseDelayMs, maxDelayMs, jitter } = checkQueueOptions(this.name, options);
    this.#handler = handler;
    this.#concurrency = concurrency;
    this.#clock = options.clock ?? systemClock;
    this.#running = new InFlight(this.#clock);
    this.#delayed = new DelayedRuns({
      clock: this.#clock,
      baseDelayMs,
      maxDelayMs,
      jitter,
      random: options.random ?? Math.random,
      due: (key) => this.#enqueue(key),
      rearmed: () => this.#checkIdle(),
    });
    this.#metrics = options.metrics;
    this.#log = options.log;
    this.#errorPolicy = options.errorPolicy ?? (() => BACKOFF);
    this.#metrics?.maxConcurrency(concurrency);
    this.#metrics?.observeInFlight(() => this.#running.probe());
  }

  /** Keys waiting in line for a worker (not counting runs in flight or delayed keys). */
  get length(): number {
    return this.#fifo.length;
  }

  /** Runs in flight. */
  get inFlight(): number {
    return this.#running.size;
  }

  /** Consecutive failures and requeues of `key` since its last success (0 when none). */
  failures(key: string): number {
    return this.#delayed.failures(key);
  }

  /** How long the oldest run in flight has been running, in ms (0 when none): for liveness. */
  longestRunningMs(): number {
    return this.#running.longestMs();
  }

  /** Starts handing keys to the handler. Calling it again does nothing. */
  start(): void {
    if (this.#stopping) {
      throw new Error(
        `work queue ${this.name}: start() called after shutdown(); create a new queue instead`,
      );
    }
    this.#started = true;
    this.#schedulePump();
  }

  /**
   * Queues `key` because something it reads changed: it runs as soon as a worker is free,
   * even if it waits for a retry (the retry is cancelled). A key already waiting is not
   * queued twice; a running key runs once more after its current run, whatever its result.
   * Ignored after {@linkcode shutdown}.
   */
  add(key: string): void {
    if (this.#stopping) return;
    if (this.#running.has(key)) this.#changedWhileRunning.add(key);
    this.#delayed.cancelRetry(key);
    this.#enqueue(key);
  }

  /**
   * Queues `key` for another look when nothing it reads is known to have changed (a
   * periodic resync, an update that touched no input). A key waiting for a retry keeps
   * waiting: the look is folded into that retry. Otherwise it is an {@linkcode add}, except
   * that a running key which then fails waits for its retry. Ignored after
   * {@linkcode shutdown}.
   */
  resync(key: string): void {
    if (this.#stopping) return;
    if (this.#delayed.hasRetry(key)) {
      this.#log?.debug("Folded resync into pending retry", { queue: this.name, key });
      return;
    }
    this.#enqueue(key);
  }

  /**
   * Queues `key` after `delayMs` (a delay <= 0 is an {@linkcode add}). If the key already
   * has a delayed run, the earlier of the two is kept. Ignored after {@linkcode shutdown}.
   */
  addAfter(key: string, delayMs: number): void {
    if (Number.isNaN(delayMs)) {
      throw new RangeError(`work queue ${this.name}: addAfter("${key}", NaN); pass a delay in ms`);
    }
    if (this.#stopping) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    if (delayMs === Infinity) return;
    this.#delayed.after(key, this.#clock.now() + delayMs);
  }

  /**
   * Resolves when nothing waits, nothing runs, and no delayed key is due within `withinMs`
   * of now (default 0: delayed keys due later are ignored; `Infinity` waits for every
   * delayed key as well). After {@linkcode shutdown} it resolves once the runs in flight end.
   */
  idle(withinMs = 0): Promise<void> {
    if (this.#isIdle(withinMs)) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push({ withinMs, resolve }));
  }

  /**
   * Stops taking work: later adds are ignored, waiting and delayed keys are dropped and
   * every timer is cleared. Resolves when the runs in flight have ended (`drained: true`) or
   * when `deadlineMs` has passed with runs still going (`drained: false`).
   */
  async shutdown(deadlineMs: number): Promise<{ drained: boolean }> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#delayed.clear();
      const dropped = this.#waiting.size;
      this.#fifo = [];
      this.#waiting.clear();
      this.#queuedAt.clear();
      this.#metrics?.depth(0);
      this.#log?.info("Stopping work queue", {
        queue: this.name,
        inFlight: this.#running.size,
        dropped,
      });
    }
    this.#checkIdle();
    const drained = await this.#running.drained(deadlineMs);
    if (!drained) {
      this.#log?.warn("Shutdown deadline passed with reconciles in flight", {
        queue: this.name,
        keys: this.#running.keys(),
        deadlineMs,
      });
    }
    return { drained };
  }

  #enqueue(key: string): void {
    if (this.#waiting.has(key)) return;
    this.#waiting.add(key);
    this.#queuedAt.set(key, this.#clock.now());
    this.#metrics?.added();
    this.#metrics?.depth(this.#waiting.size);
    if (this.#running.has(key)) return; // dirty: runs again when the current run ends
    this.#fifo.push(key);
    this.#schedulePump();
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#started && !this.#stopping) {
      while (this.#running.size < this.#concurrency) {
        const key = this.#fifo.shift();
        if (key === undefined) break;
        this.#begin(key);
      }
    }
    this.#checkIdle();
  }

  #begin(key: string): void {
    const now = this.#clock.now();
    const queuedAt = this.#queuedAt.get(key) ?? now;
    this.#waiting.delete(key);
    this.#queuedAt.delete(key);
    this.#running.begin(key, now);
    this.#metrics?.depth(this.#waiting.size);
    this.#metrics?.started((now - queuedAt) / 1000);
    this.#metrics?.active(this.#running.size);
    // This run is the retry: a pending retry of the key is consumed.
    this.#delayed.cancelRetry(key);
    void this.#execute(key, now);
  }

  async #execute(key: string, startedAt: number): Promise<void> {
    let end: { error: unknown } | { outcome: ReconcileOutcome };
    try {
      end = { outcome: await this.#handler(key) ?? DONE };
    } catch (error) {
      end = { error };
    }
    this.#finish(key, startedAt, end);
  }

  #finish(
    key: string,
    startedAt: number,
    end: { error: unknown } | { outcome: ReconcileOutcome },
  ): void {
    const now = this.#clock.now();
    this.#running.end(key);
    this.#metrics?.active(this.#running.size);
    const changed = this.#changedWhileRunning.delete(key);
    const result = "error" in end
      ? this.#failed(key, end.error, now, changed)
      : this.#ended(key, end.outcome, now, changed);
    this.#metrics?.finished(result, (now - startedAt) / 1000);
    if (this.#waiting.has(key)) {
      this.#fifo.push(key);
      this.#schedulePump();
    } else if (this.#fifo.length > 0) {
      this.#schedulePump();
    }
    this.#checkIdle();
  }

  /** Applies the error policy to a run that threw. */
  #failed(key: string, error: unknown, now: number, changed: boolean): RunResult {
    if (this.#stopping) return "error";
    const action = this.#errorPolicy(key, error);
    if (action.action === "terminal") {
      this.#delayed.forget(key);
      this.#log?.warn("Reconcile failed", {
        queue: this.name,
        key,
        err: error,
        retry: "when its input changes",
      });
      return "error";
    }
    const quiet = action.action === "backoff" && action.quiet === true;
    this.#retryLater(key, now, changed, { err: error, quiet });
    return "error";
  }

  /** Acts on the outcome of a run that did not throw. */
  #ended(key: string, outcome: ReconcileOutcome, now: number, changed: boolean): RunResult {
    switch (outcome.kind) {
      case "done":
        this.#delayed.forget(key);
        return "success";
      case "wait":
        this.#delayed.forget(key);
        this.#log?.debug("Waiting for an event", { queue: this.name, key, for: outcome.for });
        return "success";
      case "requeue":
        if (!this.#stopping) this.#retryLater(key, now, changed, { for: outcome.for });
        return "requeue";
      case "requeueAfter": {
        this.#delayed.forget(key);
        const after = outcome.ms;
        if (!(after > 0 && Number.isFinite(after))) return "success";
        if (!this.#stopping) this.#delayed.after(key, now + after);
        return "requeue_after";
      }
    }
  }

  /**
   * Schedules the retry of a run that failed (`why.err`) or asked to poll (`why.for`);
   * `rerunNow` when an add made the key due meanwhile.
   */
  #retryLater(
    key: string,
    now: number,
    rerunNow: boolean,
    why: { err: unknown; quiet: boolean } | { for: string },
  ): void {
    const delayMs = this.#delayed.nextRetryDelay(key);
    this.#metrics?.retried();
    const fields = {
      queue: this.name,
      key,
      ...("err" in why ? { err: why.err } : { for: why.for }),
      failures: this.#delayed.failures(key),
      retryInMs: rerunNow ? 0 : delayMs,
    };
    if (!("err" in why)) this.#log?.debug("Requeued", fields);
    else if (why.quiet) this.#log?.info("Reconcile failed", fields);
    else this.#log?.warn("Reconcile failed", fields);
    if (rerunNow) return; // still waiting: it runs again at once
    if (this.#waiting.delete(key)) {
      this.#queuedAt.delete(key);
      this.#metrics?.depth(this.#waiting.size);
    }
    this.#delayed.retry(key, now + delayMs);
  }

  #isIdle(withinMs: number): boolean {
    if (this.#running.size > 0) return false;
    if (this.#stopping) return true;
    if (this.#waiting.size > 0) return false;
    return !this.#delayed.dueBy(this.#clock.now() + withinMs);
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0) return;
    const still: IdleWaiter[] = [];
    const ready: IdleWaiter[] = [];
    for (const w of this.#idleWaiters) (this.#isIdle(w.withinMs) ? ready : still).push(w);
    this.#idleWaiters = still;
    for (const w of ready) w.resolve();
  }
}
