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

export {
  DONE,
  type ErrorAction,
  type ErrorPolicy,
  type ReconcileOutcome,
  requeue,
  requeueAfter,
  waitFor,
} from "../work_queue/outcome.ts";

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
