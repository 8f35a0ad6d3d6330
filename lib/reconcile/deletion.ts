/**
 * The lifecycle contract, as one phase of the pass: what becomes of the attachments of a pod
 * that is finished (its deletion has begun, or it has `Succeeded` or `Failed`).
 *
 * 1. While its containers may run (its sandbox is ready and its grace period has not ended),
 *    the agent takes no interface out of it: every network, whoever plugged it, serves the pod
 *    until it stops.
 * 2. Then the agent releases the attachments **it** made, those its journal holds for the
 *    pod, each with a DEL of the very request that made it, through multus, while the pod
 *    object still exists: the agent's finalizer holds it, since multus refuses a DEL for a pod
 *    it cannot look up. It never sends a DEL for an attachment it did not make: multus'
 *    teardown of the sandbox releases those (its cache of the sandbox's creation).
 * 3. Each is released once: it is forgotten as soon as its DEL succeeded, then the finalizer
 *    goes with their network-status entries, in one write. A release that keeps failing does
 *    not hold the pod for ever: the finalizer goes {@linkcode RELEASE_GIVE_UP_MS} past the
 *    pod's deadline anyway, with a warning naming what may stay allocated.
 *
 * The other half of the contract is the pass's: it sends no ADD into a finished pod, and the
 * finalizer is on a pod before the agent's first ADD into it is sent (`announce` in
 * `reconciler.ts`), so no attachment of the agent's exists without it.
 *
 * @module
 */
import { errorText } from "../base/log.ts";
import { attachmentKey } from "../core/plan_types.ts";
import { podKey, type PodSnapshot } from "../core/pod.ts";
import { isEntryOf } from "../core/status.ts";
import type { OperationOutcome } from "./operation.ts";
import {
  DONE,
  type Failure,
  ReconcileError,
  type ReconcileOutcome,
  requeueAfter,
} from "./outcome.ts";
import { type PassContext, passNow } from "./pass_context.ts";
import type { AttachmentJournal, PendingAdd, PodSandbox } from "./ports.ts";
import { releaseWith, writeJournal } from "./recovery.ts";
import { sameAdd } from "./journal_entries.ts";

/** How often a finished pod with attachments of the agent's is looked at until it stops. */
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

/**
 * Rule 1: true while a finished pod's containers may still run, so that every interface stays
 * in it: its sandbox is ready and its grace period has not ended.
 */
export function mayStillRun(
  pod: PodSnapshot,
  sandbox: PodSandbox | undefined,
  now: number,
): boolean {
  return sandbox?.ready === true && !pastDeadline(pod, now);
}

/** The journal's entries made for `pod` (its uid, not an earlier pod of its name), in any state. */
export function madeFor(journal: AttachmentJournal, pod: PodSnapshot): PendingAdd[] {
  const key = podKey(pod);
  return [...journal.pending(key), ...journal.attached(key), ...journal.detaching(key)]
    .filter((a) => a.request.podUid === pod.metadata.uid);
}

/**
 * Whether `pod` should carry the agent's finalizer: while the journal holds attachments the
 * agent made for it, counting `change` (what the pass records and releases). A pod being
 * deleted gets none it does not have (the API server refuses new finalizers then), and loses
 * it once they are released, or once releasing them has failed for
 * {@linkcode RELEASE_GIVE_UP_MS} past its deletion deadline.
 */
export function wantsFinalizer(
  journal: AttachmentJournal,
  pod: PodSnapshot,
  now: number,
  change: JournalChange = {},
): boolean {
  const gone = (a: PendingAdd) => change.released?.some((r) => sameAdd(a, r)) ?? false;
  const held = [...madeFor(journal, pod), ...(change.recorded ?? [])].filter((a) => !gone(a));
  if (held.length === 0) return false;
  if (pod.metadata.deletionTimestamp === undefined) return true;
  return pod.metadata.holdsFinalizer === true && !pastDeadline(pod, now, RELEASE_GIVE_UP_MS);
}

/**
 * The deletion phase of a pass over the finished `pod` (see the module documentation):
 * nothing while it may still run, then its own attachments released and its finalizer
 * removed. `sandbox` finds its sandbox; it is asked only when the agent made attachments.
 *
 * @returns done once nothing of the agent's is left on the pod; requeue after
 * {@linkcode SANDBOX_STOP_POLL_MS} while the pod may still run.
 * @throws {ReconcileError} when a release failed (`delegate`; retried until the give-up
 * deadline) or the status or journal write failed.
 */
export async function releaseFinished(
  ctx: PassContext,
  pod: PodSnapshot,
  sandbox: () => Promise<PodSandbox | undefined>,
): Promise<ReconcileOutcome> {
  const { deps, effects, log } = ctx;
  const now = passNow(ctx);
  const own = madeFor(deps.journal, pod);
  if (deps.options.dryRun) {
    if (own.length > 0) {
      log.info("dry run: would release the attachments of a finished pod once it has stopped", {
        attachments: own.map((a) => attachmentKey(a.id)),
      });
    }
    return DONE;
  }
  if (own.length === 0) {
    // Nothing of the agent's: the pod's networks are multus' to release at teardown.
    if (pod.metadata.holdsFinalizer) await effects.writeStatus(pod, log, { finalizer: false });
    return DONE;
  }
  if (mayStillRun(pod, await sandbox(), now)) return requeueAfter(SANDBOX_STOP_POLL_MS);
  return await release(ctx, pod, own, now);
}

/**
 * Rules 2 and 3: releases `own`, forgets what went, then writes network-status without it and
 * the finalizer off (kept while a failed release may still be retried).
 */
async function release(
  ctx: PassContext,
  pod: PodSnapshot,
  own: readonly PendingAdd[],
  now: number,
): Promise<ReconcileOutcome> {
  const { deps, effects, log, report } = ctx;
  const released: PendingAdd[] = [];
  const failed: { add: PendingAdd; error: string }[] = [];
  for (const add of own) {
    try {
      // Its sandbox has stopped: the namespace path may be gone, which a DEL without one survives.
      await releaseWith(effects, add, { withoutNetnsOnFailure: true });
      released.push(add);
    } catch (err) {
      failed.push({ add, error: errorText(err) });
    }
  }
  // Forgotten before the status write: should the process die in between, the next pass finds
  // only the finalizer to remove, and sends no second DEL. Given up, the failed ones go too.
  const keep = failed.length > 0 && !pastDeadline(pod, now, RELEASE_GIVE_UP_MS);
  const forgotten = keep ? released : [...released, ...failed.map((f) => f.add)];
  await writeJournal(deps.journal, podKey(pod), { released: forgotten });
  await effects.writeStatus(pod, log, {
    record: (entries) => entries.filter((e) => !released.some((a) => isEntryOf(e, a.id))),
    finalizer: keep,
  });
  report.about(pod.metadata);
  for (const add of released) report.operationEnded(releaseOutcome(add));
  for (const { add, error } of failed) report.operationEnded(releaseOutcome(add, error));
  if (failed.length === 0) return DONE;
  const attachments = failed.map((f) => attachmentKey(f.add.id));
  if (!keep) {
    log.warn(
      "gave up releasing attachments of a pod being deleted; its finalizer is removed so that the deletion can finish, and their IPAM addresses may stay allocated",
      { attachments, giveUpAfterMs: RELEASE_GIVE_UP_MS },
    );
    return DONE;
  }
  throw new ReconcileError(
    podKey(pod),
    failed.map(({ add, error }): Failure => ({
      kind: "delegate",
      text: `release ${attachmentKey(add.id)} of a finished pod: ${error}`,
    })),
  );
}

/** The release of `add` as a removal's outcome, for the pass's report; failed with `error`. */
function releaseOutcome(add: PendingAdd, error?: string): OperationOutcome {
  const entry = { name: `${add.id.namespace}/${add.id.network}`, interface: add.id.interface };
  const op = { kind: "remove" as const, id: add.id, entry, reason: "pod-deleted" as const };
  return error === undefined ? { op, ok: true } : { op, ok: false, kind: "delegate", error };
}
