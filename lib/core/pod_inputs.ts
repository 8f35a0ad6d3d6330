/**
 * What a reconcile pass reads of a pod, and whether an update changed it. The triggers
 * (`reconcile/triggers.ts`) ask this of every pod update, to tell the work queue whether the
 * pod is due now (`add`: the update may be the fix, or the deletion to act on) or only worth
 * another look (`resync`: a pod that backs off keeps backing off).
 *
 * A pass reads the pod's uid, deletion, phase, `hostNetwork`, the networks annotation and
 * network-status (and, through other channels, the NADs and the sandbox). A new sandbox shows
 * here too: the kubelet moves the pod to Running once it has one, and multus writes
 * network-status for every sandbox it sets up. Everything else in a pod update (the
 * kubelet's conditions, labels, other annotations) changes no outcome.
 *
 * @module
 */
import type { PodSnapshot } from "./pod.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "./annotations.ts";

/**
 * True when `next` differs from `previous` in something a pass reads. A network-status that
 * changed to `ownStatus` (the text this agent wrote last) is the echo of its own write, not a
 * change. A pod seen for the first time (`previous` undefined) has changed.
 */
export function inputsChanged(
  previous: PodSnapshot | undefined,
  next: PodSnapshot,
  ownStatus?: string,
): boolean {
  if (!previous) return true;
  const before = previous.metadata;
  const after = next.metadata;
  if (before.uid !== after.uid || before.deletionTimestamp !== after.deletionTimestamp) {
    return true;
  }
  if (previous.status?.phase !== next.status?.phase) return true;
  if ((previous.spec.hostNetwork === true) !== (next.spec.hostNetwork === true)) return true;
  if (before.annotations?.[NETWORKS_ANNOTATION] !== after.annotations?.[NETWORKS_ANNOTATION]) {
    return true;
  }
  const status = after.annotations?.[NETWORK_STATUS_ANNOTATION];
  return status !== before.annotations?.[NETWORK_STATUS_ANNOTATION] && status !== ownStatus;
}
