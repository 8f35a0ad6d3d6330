/**
 * What a run of the work queue (`queue.ts`) tells it, as controller-runtime's `Result` and
 * kube-rs' `Action` say it: how a run ended when nothing failed ({@linkcode ReconcileOutcome}),
 * and, for a run that threw, what to do next ({@linkcode ErrorAction}, decided by the
 * {@linkcode ErrorPolicy} the queue is given). Nothing here knows what a key stands for.
 *
 * @module
 */

/** How a run ended when nothing failed; the work queue acts on it. */
export type ReconcileOutcome =
  /** The key is as it should be (or nothing may be done to it now). */
  | { kind: "done" }
  /** Nothing to do until an event queues the key again. */
  | { kind: "wait"; for: string }
  /** Waiting for something no event announces: run again after the key's backoff. */
  | { kind: "requeue"; for: string }
  /** Run again after `ms`, whatever happens meanwhile. */
  | { kind: "requeueAfter"; ms: number };

/** The run reached the desired state, or there is nothing it may do. */
export const DONE: ReconcileOutcome = { kind: "done" };

/** A run that waits for an event, `what` saying which (for the log). */
export function waitFor(what: string): ReconcileOutcome {
  return { kind: "wait", for: what };
}

/** A run that polls for `what` with the key's backoff. */
export function requeue(what: string): ReconcileOutcome {
  return { kind: "requeue", for: what };
}

/** A run that asks to run again in `ms`. */
export function requeueAfter(ms: number): ReconcileOutcome {
  return { kind: "requeueAfter", ms };
}

/** What the work queue does with a failed run. */
export type ErrorAction =
  /**
   * Retry after the key's capped exponential backoff. `quiet` when the failure is a normal
   * race that the retry settles (logged at `info`, not as a warning).
   */
  | { action: "backoff"; quiet?: boolean }
  /** Do not retry: only a change of the input (an event) runs the key again. */
  | { action: "terminal" };

/** Maps a failed run of `key` to what the queue does next (kube-rs' `error_policy`). */
export type ErrorPolicy = (key: string, error: unknown) => ErrorAction;
