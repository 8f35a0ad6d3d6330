/**
 * What the work queue (`queue.ts`) reports: the port its metrics sink implements
 * (`ControllerMetrics.queueMetrics` in `lib/observe/controller_metrics.ts`, with the
 * `workqueue_*` and `controller_runtime_*` metric families).
 *
 * @module
 */

/** How a run ended, as controller-runtime's `result` label names it. */
export type RunResult = "success" | "error" | "requeue" | "requeue_after";

/** Work in flight, read when metrics are scraped. */
export interface InFlightProbe {
  /** Sum of the time every running handler has been running, in seconds. */
  unfinishedSeconds: number;
  /** Time the longest-running handler has been running, in seconds (0 when idle). */
  longestRunningSeconds: number;
}

/**
 * Where the queue reports what it does. `ControllerMetrics.queueMetrics` in
 * `controller_metrics.ts` implements it with the `workqueue_*` and
 * `controller_runtime_*` metric families.
 */
export interface QueueMetrics {
  /** The queue's configured concurrency. */
  maxConcurrency(workers: number): void;
  /** A key entered the queue (a duplicate does not count). */
  added(): void;
  /** Number of keys that wait to run. */
  depth(keys: number): void;
  /** A key left the queue for a worker after waiting `seconds`. */
  started(waitedSeconds: number): void;
  /** A run ended after `seconds` with `result`. */
  finished(result: RunResult, seconds: number): void;
  /** A failed key was scheduled to run again. */
  retried(): void;
  /** Number of runs in flight. */
  active(workers: number): void;
  /** Registers a probe of the work in flight, to be read at scrape time. */
  observeInFlight(probe: () => InFlightProbe): void;
}
