/**
 * The last fresh read of each pod, as the API server sent it, kept for the status write that
 * follows it in the same pass: the write then starts from that read (its resourceVersion makes
 * the PUT conditional) instead of reading the pod once more. A write that finds the pod changed
 * meanwhile gets 409 Conflict and reads again, so a kept read can cost a retry, never a lost
 * update.
 *
 * A read is taken at most once, only while young, and only the latest few are kept: a pass
 * that reads and does not write leaves one entry behind until it is replaced, evicted or too
 * old.
 *
 * @module
 */

/** Options of {@linkcode FreshPodReads}. */
export interface FreshPodReadsOptions {
  /** Most reads kept (default 32: several workers' passes in flight). */
  max?: number;
  /** A read older than this is not used (default 10 000 ms). */
  maxAgeMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** Full pod objects from fresh reads, by "namespace/name", each taken at most once. */
export class FreshPodReads {
  readonly #max: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #reads = new Map<string, { pod: Record<string, unknown>; at: number }>();

  /** An empty store. */
  constructor(options: FreshPodReadsOptions = {}) {
    this.#max = options.max ?? 32;
    this.#maxAgeMs = options.maxAgeMs ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Keeps `pod`, just read, in place of any earlier read of the same pod. */
  put(namespace: string, name: string, pod: Record<string, unknown>): void {
    const key = `${namespace}/${name}`;
    this.#reads.delete(key);
    this.#reads.set(key, { pod, at: this.#now() });
    for (const oldest of this.#reads.keys()) {
      if (this.#reads.size <= this.#max) break;
      this.#reads.delete(oldest);
    }
  }

  /** Removes and returns the kept read of a pod, when there is one young enough. */
  take(namespace: string, name: string): Record<string, unknown> | undefined {
    const key = `${namespace}/${name}`;
    const read = this.#reads.get(key);
    if (!read) return undefined;
    this.#reads.delete(key);
    return this.#now() - read.at <= this.#maxAgeMs ? read.pod : undefined;
  }

  /** Forgets the kept read of a pod (it is gone). */
  forget(namespace: string, name: string): void {
    this.#reads.delete(`${namespace}/${name}`);
  }

  /** How many reads are kept. */
  get size(): number {
    return this.#reads.size;
  }
}
