/**
 * Time as the work queue and other timed parts see it: a monotonic "now" and one-shot
 * timers. {@linkcode systemClock} is the real one; {@linkcode ManualClock} moves only when
 * told to, so timed behaviour is tested without waiting and without timing assertions.
 *
 * @module
 */

/** An opaque handle of a timer set with {@linkcode Clock.setTimer}. */
export type TimerId = unknown;

/** A monotonic time source with one-shot timers. */
export interface Clock {
  /** Milliseconds on a monotonic scale (only differences are meaningful). */
  now(): number;
  /** Runs `fn` once, `ms` from now; returns a handle for {@linkcode Clock.clearTimer}. */
  setTimer(fn: () => void, ms: number): TimerId;
  /** Cancels a timer; unknown or already fired handles are ignored. */
  clearTimer(id: TimerId): void;
}

/** The process clock: `performance.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimer: (id) => clearTimeout(id as number),
};

interface PendingTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that moves only on {@linkcode ManualClock.advance}. Timers fire in order of
 * their due time (ties in the order they were set), synchronously, inside `advance`.
 */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: PendingTimer[] = [];

  /** Creates a clock that reads `start` ms. */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current reading, in ms. */
  now(): number {
    return this.#now;
  }

  /** Schedules `fn` at `now() + ms` (a negative `ms` counts as 0). */
  setTimer(fn: () => void, ms: number): number {
    const id = this.#nextId++;
    this.#timers.push({ id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  /** Cancels the timer `id`. */
  clearTimer(id: TimerId): void {
    this.#timers = this.#timers.filter((t) => t.id !== id);
  }

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Due time of the earliest pending timer, or undefined when none is pending. */
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const t of this.#timers) if (min === undefined || t.at < min) min = t.at;
    return min;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, including
   * timers set by the timers that fired. Throws on a negative or non-finite `ms`.
   */
  advance(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`ManualClock.advance(${ms}): pass a finite number of ms >= 0`);
    }
    const target = this.#now + ms;
    for (;;) {
      let next: PendingTimer | undefined;
      for (const t of this.#timers) {
        if (t.at <= target && (next === undefined || t.at < next.at)) next = t;
      }
      if (next === undefined) break;
      const fired = next;
      this.#timers = this.#timers.filter((t) => t !== fired);
      this.#now = Math.max(this.#now, fired.at);
      fired.fn();
    }
    this.#now = target;
  }
}
