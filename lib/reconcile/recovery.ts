/**
 * Recovery from the attachment journal: before a pass does anything else to a pod, it settles
 * what the journal holds for it that the pod no longer describes.
 *
 * - A *pending* ADD (started, never recorded) is recorded when network-status holds its
 *   attachment, for this pod and sandbox, as it asked for it (its IPs and MAC): it becomes
 *   attached. Every other one is undone with a DEL of the very request that was sent,
 *   whatever the annotation or the NAD say now. A journaled ADD on an interface was only sent
 *   after the pass removed whatever held that interface before, so once it is undone nothing
 *   is left on the interface: any entry network-status still shows there is dropped too (it is
 *   the one that was removed, or this ADD's own).
 * - An *attached* ADD made in another sandbox than the pod's current one (the runtime replaced
 *   a dead sandbox, and multus' network-status describes only the new one) is released with a
 *   DEL of its own request: its sandbox ID and network namespace name the old sandbox only,
 *   so the new one is left alone. So is every ADD of a pod gone from the API server (multus
 *   then refuses it: the address may stay allocated, which is said once). A finished pod's
 *   own attachments are released by the deletion phase (`deletion.ts`).
 * - A *detaching* attachment (its DEL sent, the status write that records its removal never
 *   made) that network-status still shows is released again (DEL is idempotent) and its entry
 *   dropped: the interface that entry describes may be gone, and the annotation may ask for
 *   that very attachment again. One that network-status no longer shows, or whose interface
 *   an ADD of the same pass now holds, was recorded as removed: it is only forgotten.
 *
 * The journal is written once, after the status write.
 *
 * @module
 */
import { errorText, type Logger } from "../base/log.ts";
import { NETWORK_STATUS_ANNOTATION } from "../core/annotations.ts";
import { nadKey } from "../core/nad.ts";
import { entrySatisfies } from "../core/attachment_match.ts";
import { groupFailures, type InterfaceItem, listSome } from "../core/event_messages.ts";
import { attachmentKey } from "../core/plan_types.ts";
import type { PodSnapshot } from "../core/pod.ts";
import type { NetworkSelectionElement } from "../core/selection_element.ts";
import { isEntryOf, type NetworkStatus, parseNetworkStatus } from "../core/status.ts";
import type { Effects, EffectsContext } from "./effects.ts";
import { type Failure, ReconcileError } from "./outcome.ts";
import type { AttachmentJournal, PendingAdd, PodSandbox } from "./ports.ts";

/** What {@linkcode settleJournal} acts through: the pass's ports, effects and logger. */
export type RecoveryContext = EffectsContext;

/** Why an entry is released. */
type Why = "unrecorded" | "unfinished removal" | "stale sandbox" | "pod gone";

/** One released attachment, as the log names it. */
interface Released {
  interfaceName: string;
  network: string;
  sandboxId: string;
  why: Why;
}

/** The log line of each reason, for one release and for several. */
const RELEASED: Record<Why, [string, string]> = {
  "unrecorded": [
    "released an attachment whose ADD was never recorded",
    "released attachments whose ADDs were never recorded",
  ],
  "unfinished removal": [
    "finished the removal of an attachment whose DEL was never recorded",
    "finished the removals of attachments whose DELs were never recorded",
  ],
  "stale sandbox": [
    "released an attachment of a sandbox the runtime replaced",
    "released attachments of a sandbox the runtime replaced",
  ],
  "pod gone": [
    "released an attachment of a pod that no longer exists",
    "released attachments of a pod that no longer exists",
  ],
};

/**
 * Settles the journal's entries of pod `key` (see the module documentation). `pod` is its
 * current state (undefined once it is gone from the cache), `sandbox` the one to act in
 * (undefined when the runtime has none).
 *
 * @returns true when network-status was changed, so that the caller plans again.
 * @throws {ReconcileError} when a release failed (`delegate`, retried; the entry stays
 * journaled), the status write failed (`status-write`) or the journal could not be written.
 */
export async function settleJournal(
  ctx: RecoveryContext,
  key: string,
  pod: PodSnapshot | undefined,
  sandbox: PodSandbox | undefined,
): Promise<boolean> {
  const { deps, effects, log } = ctx;
  const journaled = {
    pending: deps.journal.pending(key),
    attached: deps.journal.attached(key),
    detaching: deps.journal.detaching(key),
  };
  const unfinished = journaled.pending.length + journaled.detaching.length;
  if (unfinished + journaled.attached.length === 0) return false;
  let entries: NetworkStatus[] = [];
  try {
    entries = parseNetworkStatus(pod?.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]);
  } catch {
    // Without a readable status nothing tells a recorded ADD from a lost one: keep them all
    // until the annotation is repaired (the invalid status has its own Event).
    if (unfinished > 0) {
      log.warn(
        "network-status is invalid; unfinished operations stay journaled until it is fixed",
        {
          pendingAdds: journaled.pending.length,
          pendingDels: journaled.detaching.length,
        },
      );
    }
    return false;
  }
  const where = { pod, sandbox, entries };
  const { recorded, forgotten, toRelease } = triage(journaled, where);
  const { released, emptied, failures } = await releaseAll(ctx, toRelease, where);
  const holdsEmptied = (e: NetworkStatus) =>
    e.default !== true && typeof e.interface === "string" && emptied.has(e.interface);
  let changed = false;
  if (pod && entries.some(holdsEmptied)) {
    log.info("dropping network-status entries of interfaces emptied by the release", {
      interfaces: [...emptied],
    });
    // A failed write throws before the journal is written: the next pass releases them again
    // (DEL is idempotent) and retries the write.
    const written = await effects.writeStatus(pod, log, {
      record: (current) => current.filter((e) => !holdsEmptied(e)),
    });
    changed = written.outcome !== "gone";
  }
  await writeJournal(deps.journal, key, { recorded, released: [...forgotten, ...released] });
  if (failures.length > 0) throw new ReconcileError(key, failures);
  return changed;
}

/** The pod, its sandbox and its network-status entries, as the journal is settled against them. */
interface SettledAgainst {
  pod: PodSnapshot | undefined;
  sandbox: PodSandbox | undefined;
  entries: NetworkStatus[];
}

/** True when `add` was made for `pod` (its uid) in `sandbox`. */
function madeIn(add: PendingAdd, { pod, sandbox }: SettledAgainst): boolean {
  return pod !== undefined && add.request.podUid === pod.metadata.uid &&
    sandbox !== undefined && add.request.containerId === sandbox.id;
}

/**
 * Sorts the journal's entries (see the module documentation): pending ADDs network-status now
 * records, detaching ones whose removal it records (only to forget), and those to release, why.
 */
function triage(
  journaled: {
    pending: readonly PendingAdd[];
    attached: readonly PendingAdd[];
    detaching: readonly PendingAdd[];
  },
  where: SettledAgainst,
): { recorded: PendingAdd[]; forgotten: PendingAdd[]; toRelease: { add: PendingAdd; why: Why }[] } {
  const { pod, sandbox, entries } = where;
  const held = (add: PendingAdd) => {
    const asked = {
      name: add.id.network,
      namespace: add.id.namespace,
      interface: add.id.interface,
      ...add.request.interfaceAttributes,
    } satisfies NetworkSelectionElement;
    return entries.some((e) => isEntryOf(e, add.id) && entrySatisfies(asked, e));
  };
  const recorded: PendingAdd[] = [];
  const forgotten: PendingAdd[] = [];
  const toRelease: { add: PendingAdd; why: Why }[] = [];
  for (const add of journaled.pending) {
    if (madeIn(add, where) && held(add)) recorded.push(add);
    else toRelease.push({ add, why: "unrecorded" });
  }
  for (const add of journaled.attached) {
    const why = attachedRelease(add, pod, sandbox, madeIn(add, where));
    if (why) toRelease.push({ add, why });
  }
  // A recorded ADD on the interface means the status write of its pass landed, and with it the
  // removal of what held the interface before (the entry there now is the ADD's own).
  const recordedOn = new Set(recorded.map((add) => add.id.interface));
  const stillShown = (add: PendingAdd) =>
    !recordedOn.has(add.id.interface) && entries.some((e) => isEntryOf(e, add.id));
  for (const add of journaled.detaching) {
    const why = detachingRelease(add, pod, sandbox, madeIn(add, where), stillShown);
    if (why === "recorded") forgotten.push(add);
    else if (why) toRelease.push({ add, why });
  }
  return { recorded, forgotten, toRelease };
}

/**
 * Releases `toRelease`, each with a DEL of its own request: those released (and those of a pod
 * gone, which nothing can release any more: said once each), the interfaces the releases
 * emptied in the pod's sandbox, and the failures; the releases logged in few lines.
 */
async function releaseAll(
  ctx: RecoveryContext,
  toRelease: readonly { add: PendingAdd; why: Why }[],
  where: SettledAgainst,
): Promise<{ released: PendingAdd[]; emptied: Set<string>; failures: Failure[] }> {
  const { deps, effects, log } = ctx;
  const { pod, sandbox } = where;
  const released: PendingAdd[] = [];
  const emptied = new Set<string>();
  const failures: Failure[] = [];
  const done: Released[] = [];
  const failedReleases: InterfaceItem[] = [];
  for (const { add, why } of toRelease) {
    const fields = {
      interfaceName: add.id.interface,
      network: nadKey({ namespace: add.id.namespace, name: add.id.network }),
      sandboxId: add.request.containerId,
    };
    const podGone = add.request.podUid !== pod?.metadata.uid;
    try {
      // An entry of a sandbox that is gone or going may name a namespace that is no more.
      // (multus refuses any DEL of a pod that is gone, whatever its namespace.)
      const live = madeIn(add, where) && sandbox?.ready === true;
      await releaseWith(effects, add, { withoutNetnsOnFailure: !live && !podGone });
      deps.observer?.unrecordedRelease?.(true);
      done.push({ ...fields, why });
    } catch (err) {
      deps.observer?.unrecordedRelease?.(false);
      if (!podGone) {
        const error = errorText(err);
        failedReleases.push({
          iface: add.id.interface,
          network: add.id.network,
          namespace: add.id.namespace,
          error,
        });
        failures.push({
          kind: "delegate",
          text: `release ${why} ${attachmentKey(add.id)}: ${error}`,
        });
        continue;
      }
      // multus looks the pod up for every DEL and refuses once it is gone (or replaced):
      // nothing can release it any more. Its link went with the sandbox.
      log.warn(
        "cannot release an attachment of a pod that no longer exists; its IPAM address may stay allocated",
        { ...fields, podUid: add.request.podUid, err },
      );
      released.push(add);
      continue;
    }
    if ((why === "unrecorded" || why === "unfinished removal") && madeIn(add, where)) {
      emptied.add(add.id.interface);
    }
    released.push(add);
  }
  logReleases(log, done, failedReleases);
  return { released, emptied, failures };
}

/** Why an attached entry is released now, or undefined when it stays. */
function attachedRelease(
  add: PendingAdd,
  pod: PodSnapshot | undefined,
  sandbox: PodSandbox | undefined,
  inSandbox: boolean,
): Why | undefined {
  if (pod === undefined || add.request.podUid !== pod.metadata.uid) return "pod gone";
  // No sandbox known: nothing tells whether it is still the one the entry was made in.
  if (sandbox === undefined) return undefined;
  return inSandbox ? undefined : "stale sandbox";
}

/**
 * Why a detaching entry is released now; "recorded" when network-status records its removal
 * (it is only forgotten), undefined when it stays until a sandbox is known.
 */
function detachingRelease(
  add: PendingAdd,
  pod: PodSnapshot | undefined,
  sandbox: PodSandbox | undefined,
  inSandbox: boolean,
  stillShown: (add: PendingAdd) => boolean,
): Why | "recorded" | undefined {
  if (pod === undefined || add.request.podUid !== pod.metadata.uid) return "pod gone";
  if (sandbox === undefined) return undefined;
  if (!inSandbox) return "stale sandbox";
  return stillShown(add) ? "unfinished removal" : "recorded";
}

/**
 * A DEL of the request `add` was made with. With `withoutNetnsOnFailure` (for a sandbox that
 * is gone or being torn down, which can leave a path that is no namespace any more), a failed
 * DEL is sent once more with no network namespace: it still releases the addresses, and the
 * links go with the namespace.
 */
export async function releaseWith(
  effects: Effects,
  add: PendingAdd,
  options: { withoutNetnsOnFailure: boolean },
): Promise<void> {
  const request = { ...add.request, command: "DEL" as const };
  try {
    await effects.delegate(request);
  } catch (err) {
    if (!options.withoutNetnsOnFailure || request.netns === "") throw err;
    await effects.delegate({ ...request, netns: "" }).catch(() => {
      throw err;
    });
  }
}

/**
 * The releases of a pass, in few lines whatever their number: one for all that were released
 * (the single one named in full), one per distinct failure.
 */
function logReleases(
  log: Logger,
  released: readonly Released[],
  failed: readonly InterfaceItem[],
): void {
  for (const why of Object.keys(RELEASED) as Why[]) {
    const these = released.filter((r) => r.why === why);
    const [one, several] = RELEASED[why];
    if (these.length === 1) {
      const { why: _, ...fields } = these[0]!;
      log.info(one, fields);
    } else if (these.length > 1) {
      log.info(several, {
        count: these.length,
        interfaces: listSome(these.map((r) => `${r.network}/${r.interfaceName}`)),
      });
    }
  }
  for (const group of groupFailures(failed)) {
    log.warn("releasing a journaled attachment failed; retrying", {
      count: group.items.length,
      interfaces: listSome(group.items.map((i) => i.iface)),
      network: group.nadKey,
      err: group.error,
    });
  }
}

/** Settles the journal; a failure to do so is a `journal` failure of the pass. */
export async function writeJournal(
  journal: AttachmentJournal,
  key: string,
  change: { recorded?: readonly PendingAdd[]; released?: readonly PendingAdd[] },
): Promise<void> {
  if ((change.recorded?.length ?? 0) + (change.released?.length ?? 0) === 0) return;
  try {
    await journal.settle(change);
  } catch (err) {
    throw new ReconcileError(key, [{
      kind: "journal",
      text: `cannot write the attachment journal (${
        errorText(err)
      }); make the state directory writable`,
    }]);
  }
}
