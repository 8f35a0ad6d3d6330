/**
 * When each key of the work queue (`queue.ts`) runs again later: its retry after a failure
 * or a requeue, paced by the key's own capped exponential backoff with jitter, and any run
 * asked for after a fixed delay. A key keeps one timer, at the earliest of its delays.
 *
 * @module
 */
import { Backoff } from "../base/backoff.ts";
import type { Clock, TimerId } from "../base/clock.ts";

/** Timers may fire a fraction of a ms early on the monotonic scale. */
const TIMER_SLACK_MS = 1;

/** A key's pending delays and its one timer. */
interface Delayed {
  retryAt?: number;
  afterAt?: number;
  timer?: TimerId;
  timerAt?: number;
}

/** Settings of {@linkcode DelayedRuns}. */
export interface DelayedRunsOptions {
  /** Time source and timers. */
  clock: Clock;
  /** First retry delay, in ms. */
  baseDelayMs: number;
  /** Largest retry delay, in ms. */
  maxDelayMs: number;
  /** Fraction of a retry delay that is random, 0..1. */
  jitter: number;
  /** Random source in [0, 1) for the jitter. */
  random: () => number;
  /** Called when a key's delay has passed: it is due now. */
  due: (key: string) => void;
  /** Called when a timer fired early and re-armed without making its key due. */
  rearmed: () => void;
}

/** The delayed runs of every key; see the module documentation. */
export class DelayedRuns {
  readonly #options: DelayedRunsOptions;
  readonly #delayed = new Map<string, Delayed>();
  readonly #backoffs = new Map<string, Backoff>();

  /** Creates an empty set of delays. */
  constructor(options: DelayedRunsOptions) {
    this.#options = options;
  }

  /** Consecutive retries of `key` since it last succeeded (0 when none). */
  failures(key: string): number {
    return this.#backoffs.get(key)?.failures ?? 0;
  }

  /** Forgets the retries of `key`: its next backoff starts from the base delay again. */
  forget(key: string): void {
    this.#backoffs.delete(key);
  }

  /** Counts one more retry of `key` and returns its delay, in ms. */
  nextRetryDelay(key: string): number {
    let backoff = this.#backoffs.get(key);
    if (!backoff) {
      const { baseDelayMs, maxDelayMs, jitter, random } = this.#options;
      backoff = new Backoff({ initialMs: baseDelayMs, maxMs: maxDelayMs, jitter, random });
      this.#backoffs.set(key, backoff);
    }
    return backoff.next();
  }

  /** True when `key` waits for a retry. */
  hasRetry(key: string): boolean {
    return this.#delayed.get(key)?.retryAt !== undefined;
  }

  /** Schedules the retry of `key` at `at` (the earlier one wins). */
  retry(key: string, at: number): void {
    this.#set(key, "retryAt", at);
  }

  /** Schedules a run of `key` at `at` (the earlier one wins). */
  after(key: string, at: number): void {
    this.#set(key, "afterAt", at);
  }

  /** Cancels the pending retry of `key`, if any; a run asked for with {@linkcode after} stays. */
  cancelRetry(key: string): void {
    const delayed = this.#delayed.get(key);
    if (delayed?.retryAt === undefined) return;
    delayed.retryAt = undefined;
    this.#arm(key, delayed);
  }

  /** True when some key's timer is due at or before `at`. */
  dueBy(at: number): boolean {
    for (const delayed of this.#delayed.values()) {
      if (delayed.timerAt !== undefined && delayed.timerAt <= at) return true;
    }
    return false;
  }

  /** Drops every delay and clears every timer. */
  clear(): void {
    for (const delayed of this.#delayed.values()) {
      if (delayed.timer !== undefined) this.#options.clock.clearTimer(delayed.timer);
    }
    this.#delayed.clear();
  }

  #set(key: string, field: "retryAt" | "afterAt", at: number): void {
    const delayed = this.#delayed.get(key) ?? {};
    delayed[field] = Math.min(delayed[field] ?? Infinity, at);
    this.#delayed.set(key, delayed);
    this.#arm(key, delayed);
  }

  /** Keeps one timer for the key, at its earliest pending delay, or none. */
  #arm(key: string, delayed: Delayed): void {
    const clock = this.#options.clock;
    const due = Math.min(delayed.retryAt ?? Infinity, delayed.afterAt ?? Infinity);
    if (delayed.timer !== undefined && delayed.timerAt === due) return;
    if (delayed.timer !== undefined) clock.clearTimer(delayed.timer);
    delayed.timer = undefined;
    delayed.timerAt = undefined;
    if (due === Infinity) {
      this.#delayed.delete(key);
      return;
    }
    delayed.timerAt = due;
    delayed.timer = clock.setTimer(() => this.#fire(key), due - clock.now());
  }

  #fire(key: string): void {
    const delayed = this.#delayed.get(key);
    if (!delayed) return;
    delayed.timer = undefined;
    delayed.timerAt = undefined;
    const now = this.#options.clock.now() + TIMER_SLACK_MS;
    let due = false;
    if (delayed.retryAt !== undefined && delayed.retryAt <= now) {
      delayed.retryAt = undefined;
      due = true;
    }
    if (delayed.afterAt !== undefined && delayed.afterAt <= now) {
      delayed.afterAt = undefined;
      due = true;
    }
    this.#arm(key, delayed);
    if (due) this.#options.due(key);
    else this.#options.rearmed();
  }
}
