/**
 * The one error policy: what the work queue does with a pass that failed. It is handed to
 * the queue where the controller is wired (`lib/controller.ts`), as kube-rs hands its
 * `error_policy` to `Controller::run`.
 *
 * A failure that time or another component can fix (the API server, the runtime, multus, a
 * plugin, the state directory) is retried with capped exponential backoff, for ever. Bad input
 * is not retried: nothing changes until the input does, and a change of the pod's annotation
 * (or of the NAD it names) queues the pod again at once. A pass with both kinds of failure is
 * retried. Any other exception is a bug, and is retried too, so that a transient one heals.
 * A pass that failed only because its status write kept meeting newer versions of the pod (a
 * race with other writers, which the retry settles) is retried quietly: logged at `info`,
 * since nothing is wrong that an operator could fix.
 *
 * @module
 */
import { type ErrorAction, type FailureKind, ReconcileError } from "./outcome.ts";

/** What each kind of failure calls for. */
export const FAILURE_ACTIONS: Readonly<Record<FailureKind, ErrorAction["action"]>> = {
  "api": "backoff",
  "cri": "backoff",
  "delegate": "backoff",
  "journal": "backoff",
  "status-write": "backoff",
  "conflict": "backoff",
  "bad-input": "terminal",
};

const BACKOFF: ErrorAction = { action: "backoff" };
const QUIET_BACKOFF: ErrorAction = { action: "backoff", quiet: true };
const TERMINAL: ErrorAction = { action: "terminal" };

/** The controller's error policy; see the module documentation. */
export function errorPolicy(_key: string, error: unknown): ErrorAction {
  if (!(error instanceof ReconcileError)) return BACKOFF;
  const kinds = error.kinds;
  if (kinds.length === 0) return BACKOFF;
  if (kinds.every((kind) => FAILURE_ACTIONS[kind] === "terminal")) return TERMINAL;
  return kinds.every((kind) => kind === "conflict") ? QUIET_BACKOFF : BACKOFF;
}
