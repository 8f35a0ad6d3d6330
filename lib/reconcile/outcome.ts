/**
 * The reconcile contract, as controller-runtime's `Reconcile(ctx, req) (Result, error)` and
 * kube-rs' `reconcile -> Result<Action, Error>` state it:
 *
 * - a pass **returns** a {@linkcode ReconcileOutcome} for every state of the world it expects:
 *   done; waiting for an event (a NAD that does not exist yet: its creation, the pod's own
 *   changes and the periodic resync wake the pod, no timer is set); requeue (waiting for
 *   something no event announces, the pod sandbox: polled with the key's backoff); or
 *   requeue after a fixed delay;
 * - a pass **throws** a {@linkcode ReconcileError} when something failed. Each failure has a
 *   {@linkcode FailureKind}, and the one error policy (`lib/reconcile/error_policy.ts`) turns
 *   the kinds into an {@linkcode ErrorAction}: back off and retry, or stop until the input
 *   changes. Any other exception is unexpected (a bug) and is retried with backoff too.
 *
 * @module
 */
import { listSome } from "../core/event_messages.ts";

/** How a pass ended when nothing failed; the work queue acts on it. */
export type ReconcileOutcome =
  /** The pod is as it should be (or nothing may be done to it now). */
  | { kind: "done" }
  /** Nothing to do until an event: the pod changes, a NAD it needs appears, the resync. */
  | { kind: "wait"; for: string }
  /** Waiting for something no event announces: run again after the key's backoff. */
  | { kind: "requeue"; for: string }
  /** Run again after `ms`, whatever happens meanwhile. */
  | { kind: "requeueAfter"; ms: number };

/** The pass reached the desired state, or there is nothing it may do. */
export const DONE: ReconcileOutcome = { kind: "done" };

/** A pass that waits for an event, `what` saying which (for the log). */
export function waitFor(what: string): ReconcileOutcome {
  return { kind: "wait", for: what };
}

/** A pass that polls for `what` with the key's backoff. */
export function requeue(what: string): ReconcileOutcome {
  return { kind: "requeue", for: what };
}

/** A pass that asks to run again in `ms`. */
export function requeueAfter(ms: number): ReconcileOutcome {
  return { kind: "requeueAfter", ms };
}

/**
 * What failed in a pass. Each kind is retried or not by the error policy:
 *
 * - `api`: reading the pod from the API server;
 * - `cri`: the container runtime;
 * - `delegate`: multus or a CNI plugin (including time-outs);
 * - `journal`: the node's state directory;
 * - `status-write`: writing network-status;
 * - `conflict`: the status write met a newer version of the pod every time it tried (a
 *   normal race with other writers: the next pass reads the pod again);
 * - `bad-input`: an annotation, an element or a NAD config that cannot be used, or that
 *   namespace isolation forbids; only a change of that input can help.
 */
export type FailureKind =
  | "api"
  | "cri"
  | "delegate"
  | "journal"
  | "status-write"
  | "conflict"
  | "bad-input";

/** One failure of a pass: its kind and a line that names the attachment and the cause. */
export interface Failure {
  /** What failed. */
  kind: FailureKind;
  /** What failed and why, e.g. `add ns/net/net1: <error>`. */
  text: string;
}

/** A pass that could not finish: one or more {@linkcode Failure}s. */
export class ReconcileError extends Error {
  /** Every failure of the pass. */
  readonly failures: readonly Failure[];
  /** Creates an error summarising `failures` for pod `podKey`. */
  constructor(podKey: string, failures: readonly Failure[]) {
    super(
      `pod ${podKey}: ${failures.length} operation(s) failed: ${
        listSome(failures.map((f) => f.text), "; ")
      }`,
    );
    this.name = "ReconcileError";
    this.failures = failures;
  }

  /** The distinct kinds of the failures. */
  get kinds(): FailureKind[] {
    return [...new Set(this.failures.map((f) => f.kind))];
  }
}

/** What the work queue does with a failed pass. */
export type ErrorAction =
  /**
   * Retry after the key's capped exponential backoff. `quiet` when the failure is a normal
   * race that the retry settles (logged at `info`, not as a warning).
   */
  | { action: "backoff"; quiet?: boolean }
  /** Do not retry: only a change of the input (an event) runs the key again. */
  | { action: "terminal" };

/** Maps a failed pass of `key` to what the queue does next (kube-rs' `error_policy`). */
export type ErrorPolicy = (key: string, error: unknown) => ErrorAction;
