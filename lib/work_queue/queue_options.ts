/**
 * The work queue's settings (`queue.ts`) and their checks: a setting out of range is refused
 * with a RangeError naming it, its value and what it must be.
 *
 * @module
 */
import type { Clock } from "../base/clock.ts";
import type { Logger } from "../base/log.ts";
import type { ErrorPolicy } from "./outcome.ts";
import type { QueueMetrics } from "./queue_metrics.ts";

/** Settings of a {@linkcode WorkQueue}. */
export interface WorkQueueOptions {
  /** Most keys run at once (an integer >= 1). */
  concurrency: number;
  /** Delay before the first retry of a failed key, in ms (> 0). */
  baseDelayMs: number;
  /** Largest retry delay, in ms (>= baseDelayMs). */
  maxDelayMs: number;
  /** Fraction of a retry delay that is random, 0..1 (default 0.25: delay × [0.75, 1]). */
  jitter?: number;
  /** Random source in [0, 1) for the jitter; `Math.random` unless a test injects one. */
  random?: () => number;
  /** Time source and timers (default the system clock). */
  clock?: Clock;
  /** Metrics sink. */
  metrics?: QueueMetrics;
  /** Name for logs (default `queue`). */
  name?: string;
  /** Logger for failures (warn) and shutdown (info). */
  log?: Logger;
  /** What to do with a run that throws (default: back off and retry, whatever the error). */
  errorPolicy?: ErrorPolicy;
}

/** The numeric settings of a queue, checked, with their defaults filled in. */
export interface CheckedQueueOptions {
  /** Most keys run at once. */
  concurrency: number;
  /** First retry delay, in ms. */
  baseDelayMs: number;
  /** Largest retry delay, in ms. */
  maxDelayMs: number;
  /** Fraction of a retry delay that is random. */
  jitter: number;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new RangeError(message);
}

/** Checks the numeric settings of queue `name`; throws a RangeError naming the bad one. */
export function checkQueueOptions(name: string, options: WorkQueueOptions): CheckedQueueOptions {
  const { concurrency, baseDelayMs, maxDelayMs } = options;
  const jitter = options.jitter ?? 0.25;
  const q = `work queue ${name}`;
  check(
    Number.isInteger(concurrency) && concurrency >= 1,
    `${q}: concurrency=${concurrency} is not a whole number >= 1; set it to 1 or more`,
  );
  check(
    Number.isFinite(baseDelayMs) && baseDelayMs > 0,
    `${q}: baseDelayMs=${baseDelayMs} must be a finite number of ms > 0`,
  );
  check(
    Number.isFinite(maxDelayMs) && maxDelayMs >= baseDelayMs,
    `${q}: maxDelayMs=${maxDelayMs} must be finite and >= baseDelayMs (${baseDelayMs})`,
  );
  check(
    jitter >= 0 && jitter <= 1,
    `${q}: jitter=${jitter} must be between 0 and 1 (a fraction of the delay)`,
  );
  return { concurrency, baseDelayMs, maxDelayMs, jitter };
}
