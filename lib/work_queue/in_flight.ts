/**
 * The runs of the work queue (`queue.ts`) in flight: which keys run and since when, for the
 * liveness probe, the `workqueue_unfinished_work_seconds` and longest-running gauges, and the
 * wait for the runs to end at shutdown.
 *
 * @module
 */
import type { Clock } from "../base/clock.ts";
import type { InFlightProbe } from "./queue_metrics.ts";

/** The keys running now and when each run started. */
export class InFlight {
  readonly #clock: Clock;
  readonly #started = new Map<string, number>();
  #drainWaiters: (() => void)[] = [];

  /** Tracks runs on `clock`'s time. */
  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Number of runs in flight. */
  get size(): number {
    return this.#started.size;
  }

  /** True while `key` runs. */
  has(key: string): boolean {
    return this.#started.has(key);
  }

  /** The keys running now. */
  keys(): string[] {
    return [...this.#started.keys()];
  }

  /** A run of `key` started at `at`. */
  begin(key: string, at: number): void {
    this.#started.set(key, at);
  }

  /** The run of `key` ended; the last one to end releases whoever waits in {@linkcode drained}. */
  end(key: string): void {
    this.#started.delete(key);
    if (this.#started.size > 0 || this.#drainWaiters.length === 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  /** How long the oldest run in flight has been running, in ms (0 when none). */
  longestMs(): number {
    const now = this.#clock.now();
    let longest = 0;
    for (const started of this.#started.values()) longest = Math.max(longest, now - started);
    return longest;
  }

  /** The work in flight, for the metrics read at scrape time. */
  probe(): InFlightProbe {
    const now = this.#clock.now();
    let unfinished = 0;
    let longest = 0;
    for (const started of this.#started.values()) {
      unfinished += now - started;
      longest = Math.max(longest, now - started);
    }
    return { unfinishedSeconds: unfinished / 1000, longestRunningSeconds: longest / 1000 };
  }

  /** Resolves true once no run is in flight, or with whether none is after `deadlineMs`. */
  drained(deadlineMs: number): Promise<boolean> {
    if (this.#started.size === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const onDrained = () => {
        this.#clock.clearTimer(timer);
        resolve(true);
      };
      const timer = this.#clock.setTimer(() => {
        this.#drainWaiters = this.#drainWaiters.filter((w) => w !== onDrained);
        resolve(this.#started.size === 0);
      }, deadlineMs);
      this.#drainWaiters.push(onDrained);
    });
  }
}
