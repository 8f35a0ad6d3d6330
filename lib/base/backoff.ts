/**
 * Capped exponential backoff with jitter, the retry pacing of the watcher and the
 * event recorder. Pure: the random source is injectable.
 *
 * @module
 */

/** Settings of a {@linkcode Backoff}. */
export interface BackoffOptions {
  /** First delay in ms (default 800, as kube-rs' watcher). */
  initialMs?: number;
  /** Largest delay in ms (default 30 000). */
  maxMs?: number;
  /** Growth factor per failure (default 2). */
  factor?: number;
  /** Fraction of the delay that is random, 0..1 (default 0.5: delay × [0.5, 1]). */
  jitter?: number;
  /** Random source in [0, 1); `Math.random` unless a test injects one. */
  random?: () => number;
}

/** Counts consecutive failures and turns them into delays; {@linkcode reset} after a success. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #failures = 0;

  /** Creates a backoff; throws when an option is out of range. */
  constructor(options: BackoffOptions = {}) {
    this.#initial = options.initialMs ?? 800;
    this.#max = options.maxMs ?? 30_000;
    this.#factor = options.factor ?? 2;
    this.#jitter = options.jitter ?? 0.5;
    this.#random = options.random ?? Math.random;
    if (!(this.#initial > 0) || !(this.#max >= this.#initial)) {
      throw new RangeError(
        `backoff initialMs=${this.#initial} maxMs=${this.#max}: need 0 < initialMs <= maxMs`,
      );
    }
    if (!(this.#factor >= 1)) {
      throw new RangeError(`backoff factor=${this.#factor}: use a factor of at least 1`);
    }
    if (!(this.#jitter >= 0 && this.#jitter <= 1)) {
      throw new RangeError(`backoff jitter=${this.#jitter}: use a value between 0 and 1`);
    }
  }

  /** Consecutive failures since the last {@linkcode reset}. */
  get failures(): number {
    return this.#failures;
  }

  /** Records a failure and returns how long to wait before the next attempt, in ms. */
  next(): number {
    const base = Math.min(this.#max, this.#initial * this.#factor ** this.#failures);
    this.#failures++;
    return Math.round(base * (1 - this.#jitter * this.#random()));
  }

  /** Forgets past failures: the next delay is the initial one again. */
  reset(): void {
    this.#failures = 0;
  }
}

/**
 * Resolves after `ms`, or rejects with the signal's reason as soon as `signal` aborts.
 * The timer never keeps the process alive after an abort.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
