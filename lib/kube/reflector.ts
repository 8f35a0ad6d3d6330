/**
 * A cache fed by a `Watcher` (`watcher.ts`): a store keyed by `namespace/name`, and callbacks
 * for changes. After every (re-)list the store is replaced and the differences are reported
 * as upserts and deletes, so consumers never miss a deletion that happened while the watch
 * was down.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import { objectKey } from "../core/names.ts";
import type { WatcherEvent } from "./types.ts";

/** What feeds a {@linkcode Reflector}: a `Watcher`, or a test's stand-in. */
export interface WatcherEventSource<T> {
  /** Yields events until `signal` aborts. */
  run(signal: AbortSignal): AsyncIterable<WatcherEvent<T>>;
}

/** Settings of a {@linkcode Reflector}. */
export interface ReflectorOptions<T> {
  /** Store key of an object (default `metadata.namespace/metadata.name`). */
  keyOf?: (object: T) => string;
  /** Version of an object, to skip unchanged objects after a re-list (default `metadata.resourceVersion`). */
  versionOf?: (object: T) => string | undefined;
  /** Name for logs. */
  name?: string;
  /** Logger for handler failures. */
  log?: Logger;
}

/** Callbacks a {@linkcode Reflector} calls. */
export interface ReflectorHandlers<T> {
  /** After the first list has filled the store. */
  synced: () => void;
  /** An object was added or changed; `old` is the previous cached version, if any. */
  upsert: (object: T, old: T | undefined) => void;
  /** An object was deleted: its final state from the watch, or its last cached version after a re-list. */
  delete: (object: T) => void;
}

type Meta = { metadata?: { namespace?: string; name?: string; resourceVersion?: string } };

/** The default store key: `namespace/name` (just `name` for cluster-scoped objects). */
export function metadataKey(object: unknown): string {
  const m = (object as Meta).metadata;
  return m?.namespace ? objectKey(m.namespace, `${m.name}`) : `${m?.name}`;
}

function metadataVersion(object: unknown): string | undefined {
  return (object as Meta).metadata?.resourceVersion;
}

/** A watched, cached collection of objects. */
export class Reflector<T> {
  readonly #watcher: WatcherEventSource<T>;
  readonly #keyOf: (object: T) => string;
  readonly #versionOf: (object: T) => string | undefined;
  readonly #name: string;
  readonly #log: Logger | undefined;
  #store = new Map<string, T>();
  #synced = false;
  #waiters: (() => void)[] = [];
  readonly #handlers: { [K in keyof ReflectorHandlers<T>]: Set<ReflectorHandlers<T>[K]> } = {
    synced: new Set(),
    upsert: new Set(),
    delete: new Set(),
  };

  /** Creates an empty reflector over `watcher`; call {@linkcode run} to fill it. */
  constructor(watcher: WatcherEventSource<T>, options: ReflectorOptions<T> = {}) {
    this.#watcher = watcher;
    this.#keyOf = options.keyOf ?? metadataKey;
    this.#versionOf = options.versionOf ?? metadataVersion;
    this.#name = options.name ?? "objects";
    this.#log = options.log;
  }

  /** Registers a callback; returns a function that removes it. Callbacks must not throw. */
  on<K extends keyof ReflectorHandlers<T>>(event: K, handler: ReflectorHandlers<T>[K]): () => void {
    const set = this.#handlers[event] as Set<ReflectorHandlers<T>[K]>;
    set.add(handler);
    return () => set.delete(handler);
  }

  /** The cached object under `key` (`namespace/name`). */
  get(key: string): T | undefined {
    return this.#store.get(key);
  }

  /** All cached objects. */
  list(): T[] {
    return [...this.#store.values()];
  }

  /** All cached keys. */
  keys(): string[] {
    return [...this.#store.keys()];
  }

  /** Number of cached objects. */
  get size(): number {
    return this.#store.size;
  }

  /** True once the first list has filled the store. */
  hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves when the first list has filled the store (at once if it already has). */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  /** Runs the watcher and applies its events until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    for await (const event of this.#watcher.run(signal)) this.apply(event);
  }

  /** Applies one watcher event to the store and calls the handlers (exposed for tests). */
  apply(event: WatcherEvent<T>): void {
    switch (event.type) {
      case "applied": {
        const key = this.#keyOf(event.object);
        const old = this.#store.get(key);
        this.#store.set(key, event.object);
        this.#emit("upsert", event.object, old);
        return;
      }
      case "deleted": {
        this.#store.delete(this.#keyOf(event.object));
        this.#emit("delete", event.object); // the object's final state, as the server sent it
        return;
      }
      case "restarted": {
        const previous = this.#store;
        const next = new Map<string, T>();
        for (const object of event.objects) next.set(this.#keyOf(object), object);
        this.#store = next;
        for (const [key, object] of next) {
          const old = previous.get(key);
          if (old === undefined || this.#versionOf(old) !== this.#versionOf(object)) {
            this.#emit("upsert", object, old);
          }
        }
        for (const [key, old] of previous) if (!next.has(key)) this.#emit("delete", old);
        if (!this.#synced) {
          this.#synced = true;
          this.#log?.info("Cache synced", { resource: this.#name, count: next.size });
          for (const w of this.#waiters.splice(0)) w();
          this.#emit("synced");
        }
        return;
      }
    }
  }

  #emit<K extends keyof ReflectorHandlers<T>>(
    event: K,
    ...args: Parameters<ReflectorHandlers<T>[K]>
  ): void {
    for (const handler of this.#handlers[event]) {
      try {
        (handler as (...a: unknown[]) => void)(...args);
      } catch (err) {
        this.#log?.error("Cache handler failed", { resource: this.#name, event, err });
      }
    }
  }
}
