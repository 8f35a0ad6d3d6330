/**
 * The agent's finalizer (`RELEASE_FINALIZER`): when a pod should carry it, when a deleted pod
 * it holds may go, and the warning when it goes before every attachment was released. The
 * decisions read only the pod, the journal and the clock; the pass (`reconciler.ts`) writes
 * the result with network-status.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import { NETWORK_STATUS_ANNOTATION } from "../core/annotations.ts";
import { attachmentKey } from "../core/plan_types.ts";
import { podKey, type PodSnapshot } from "../core/pod.ts";
import { type NetworkStatus, parseNetworkStatus } from "../core/status.ts";
import { sameAdd } from "./journal_entries.ts";
import type { AttachmentJournal, PendingAdd, PodSandbox } from "./ports.ts";

/** How often a deleted pod held by the agent's finalizer is looked at until its sandbox stops. */
export const SANDBOX_STOP_POLL_MS = 1_000;

/**
 * How long past a deleted pod's deadline (its deletionTimestamp: the end of its grace period)
 * the agent keeps trying to release its attachments before it removes its finalizer anyway,
 * so that a release that cannot succeed never keeps a pod from going.
 */
export const RELEASE_GIVE_UP_MS = 120_000;

/** What a pass changes in the journal once its status write has landed. */
export interface JournalChange {
  /** ADDs network-status now records. */
  recorded?: readonly PendingAdd[];
  /** ADDs the pass released. */
  released?: readonly PendingAdd[];
}

/** True once `pod`'s deletion deadline (its deletionTimestamp) is more than `afterMs` past `now`. */
export function pastDeadline(pod: PodSnapshot, now: number, afterMs = 0): boolean {
  const deadline = Date.parse(pod.metadata.deletionTimestamp ?? "");
  return !Number.isNaN(deadline) && now > deadline + afterMs;
}

/** The journal's entries for `pod` (its uid, not an earlier pod of its name) that `change` keeps. */
function heldBy(
  journal: AttachmentJournal,
  pod: PodSnapshot,
  change: JournalChange,
): PendingAdd[] {
  const key = podKey(pod);
  const gone = (a: PendingAdd) => change.released?.some((r) => sameAdd(a, r)) ?? false;
  return [
    ...journal.pending(key),
    ...journal.attached(key),
    ...journal.detaching(key),
    ...(change.recorded ?? []),
  ]
    .filter((a) => a.request.podUid === pod.metadata.uid && !gone(a));
}

/**
 * Whether `pod` should carry the agent's finalizer: while the journal holds attachments the
 * agent made for it. A pod being deleted gets none it does not have (the API server refuses
 * new finalizers then), and loses it once they are released, or once releasing them has
 * failed for {@linkcode RELEASE_GIVE_UP_MS} past its deletion deadline.
 */
export function wantsFinalizer(
  journal: AttachmentJournal,
  pod: PodSnapshot,
  now: number,
  change: JournalChange = {},
): boolean {
  if (heldBy(journal, pod, change).length === 0) return false;
  if (pod.metadata.deletionTimestamp === undefined) return true;
  return pod.metadata.holdsFinalizer === true && !pastDeadline(pod, now, RELEASE_GIVE_UP_MS);
}

/**
 * True while a deleted pod the finalizer holds keeps its attachments: they serve it until its
 * sandbox stops, as the ones multus attached do, or until its grace period ends.
 */
export function keepsAttachments(
  pod: PodSnapshot,
  sandbox: PodSandbox | undefined,
  now: number,
): boolean {
  return pod.metadata.holdsFinalizer === true && sandbox?.ready === true &&
    !pastDeadline(pod, now);
}

/**
 * Says so when the finalizer went from a deleted pod whose attachments could not all go
 * (`change` holds what this pass released, should the journal not have taken it).
 */
export function warnIfGaveUp(
  journal: AttachmentJournal,
  pod: PodSnapshot,
  finalizer: boolean,
  log: Logger,
  change: JournalChange = {},
): void {
  if (finalizer || !pod.metadata.holdsFinalizer || pod.metadata.deletionTimestamp === undefined) {
    return;
  }
  const left = heldBy(journal, pod, { released: change.released }).map((a) => attachmentKey(a.id));
  if (left.length === 0) return;
  log.warn(
    "gave up releasing attachments of a pod being deleted; its finalizer is removed so that the deletion can finish, and their IPAM addresses may stay allocated",
    { attachments: left, giveUpAfterMs: RELEASE_GIVE_UP_MS },
  );
}

/**
 * Called when `pod` (its last known state) has left the API server with attachments the agent
 * did not see released: multus looks the pod up for every DEL and refuses once it is gone, so
 * those still recorded then can no longer be released (a force deletion, or a grace period
 * that ended while the agent was down). Says so once, naming them.
 */
export function warnIfUnreleased(pod: PodSnapshot, log: Logger): void {
  let entries: NetworkStatus[];
  try {
    entries = parseNetworkStatus(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]);
  } catch {
    return;
  }
  const left = entries.filter((e) => e.default !== true && e.interface).map((e) =>
    `${e.name}/${e.interface}`
  );
  if (left.length === 0) return;
  log.warn(
    "pod left the API server before its attachments were released; multus can no longer release them, so their IPAM addresses may stay allocated (those multus attached at pod creation it releases itself)",
    { pod: podKey(pod), podUid: pod.metadata.uid, attachments: left },
  );
}
