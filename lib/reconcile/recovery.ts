/**
 * Crash recovery from the attachment journal: before a pass does anything else to a pod, it
 * settles the ADDs earlier passes started for it but did not record.
 *
 * An ADD is recorded when network-status holds its attachment, for this pod and sandbox, as
 * it asked for it (its IPs and MAC): then it is simply forgotten. Every other one is undone
 * with a DEL of the very request that was sent, whatever the annotation or the NAD say now.
 * A journaled ADD on an interface was only sent after the pass removed whatever held that
 * interface before, so once it is undone nothing is left on the interface: any entry
 * network-status still shows there is dropped too (it is the one that was removed, or this
 * ADD's own). The journal is cleared only after that status write.
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
import type { Effects } from "./effects.ts";
import { type Failure, ReconcileError } from "./outcome.ts";
import type { AttachmentJournal, PendingAdd, PodSandbox, ReconcilerDeps } from "./ports.ts";

/** What {@linkcode releaseUnrecorded} acts through. */
export interface RecoveryContext {
  /** The reconciler's ports. */
  deps: ReconcilerDeps;
  /** Delegate calls and the status write. */
  effects: Effects;
  /** The pass's logger. */
  log: Logger;
}

/**
 * Settles the unrecorded ADDs of pod `key` (see the module documentation). `pod` is its
 * current state (undefined once it is gone from the cache), `sandbox` the one to act in.
 *
 * @returns true when network-status was changed, so that the caller plans again.
 * @throws {ReconcileError} when a release failed (`delegate`, retried; the ADD stays
 * journaled), the status write failed (`status-write`) or the journal could not be written.
 */
export async function releaseUnrecorded(
  ctx: RecoveryContext,
  key: string,
  pod: PodSnapshot | undefined,
  sandbox: PodSandbox | undefined,
): Promise<boolean> {
  const { deps, effects, log } = ctx;
  const pending = deps.journal.pending(key);
  if (pending.length === 0) return false;
  let entries: NetworkStatus[] = [];
  try {
    entries = parseNetworkStatus(pod?.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]);
  } catch {
    // Without a readable status nothing tells a recorded ADD from a lost one: keep them all
    // until the annotation is repaired (the invalid status has its own Event).
    log.warn("network-status is invalid; unfinished ADDs stay journaled until it is fixed", {
      pendingAdds: pending.length,
    });
    return false;
  }
  const done: PendingAdd[] = [];
  const emptied = new Set<string>();
  const failures: Failure[] = [];
  const released: { interfaceName: string; network: string; sandboxId: string }[] = [];
  const failedReleases: InterfaceItem[] = [];
  for (const add of pending) {
    const ours = add.request.podUid === pod?.metadata.uid &&
      add.request.containerId === sandbox?.id;
    const asked = {
      name: add.id.network,
      namespace: add.id.namespace,
      interface: add.id.interface,
      ...add.request.interfaceAttributes,
    } satisfies NetworkSelectionElement;
    if (ours && entries.some((e) => isEntryOf(e, add.id) && entrySatisfies(asked, e))) {
      done.push(add);
      continue;
    }
    const fields = {
      interfaceName: add.id.interface,
      network: nadKey({ namespace: add.id.namespace, name: add.id.network }),
      sandboxId: add.request.containerId,
    };
    try {
      await effects.delegate({ ...add.request, command: "DEL" });
      deps.observer?.unrecordedRelease?.(true);
      released.push(fields);
    } catch (err) {
      deps.observer?.unrecordedRelease?.(false);
      if (add.request.podUid !== pod?.metadata.uid) {
        // multus looks the pod up for every DEL and refuses once it is gone (or replaced):
        // nothing can release it any more. Its link went with the sandbox.
        log.warn(
          "cannot release an unrecorded attachment of a pod that no longer exists; its IPAM address may stay allocated",
          { ...fields, podUid: add.request.podUid, err },
        );
        done.push(add);
        continue;
      }
      failedReleases.push({
        iface: add.id.interface,
        network: add.id.network,
        namespace: add.id.namespace,
        error: errorText(err),
      });
      failures.push({
        kind: "delegate",
        text: `release unrecorded ${attachmentKey(add.id)}: ${errorText(err)}`,
      });
      continue;
    }
    if (ours) emptied.add(add.id.interface);
    done.push(add);
  }
  logReleases(log, released, failedReleases);
  const holdsEmptied = (e: NetworkStatus) =>
    e.default !== true && typeof e.interface === "string" && emptied.has(e.interface);
  let changed = false;
  if (pod && entries.some(holdsEmptied)) {
    log.info("dropping network-status entries of interfaces emptied by the release", {
      interfaces: [...emptied],
    });
    // A failed write throws before the journal is cleared: the next pass releases them again
    // (DEL is idempotent) and retries the write.
    changed = await effects.writeStatus(
      pod,
      (current) => current.filter((e) => !holdsEmptied(e)),
      log,
    );
  }
  await clearJournal(deps.journal, key, done);
  if (failures.length > 0) throw new ReconcileError(key, failures);
  return changed;
}

/**
 * The releases of a pass, in few lines whatever their number: one for all that were released
 * (the single one named in full), one per distinct failure.
 */
function logReleases(
  log: Logger,
  released: readonly { interfaceName: string; network: string; sandboxId: string }[],
  failed: readonly InterfaceItem[],
): void {
  if (released.length === 1) {
    log.info("released an attachment whose ADD was never recorded", released[0]);
  } else if (released.length > 1) {
    log.info("released attachments whose ADDs were never recorded", {
      count: released.length,
      interfaces: listSome(released.map((r) => `${r.network}/${r.interfaceName}`)),
    });
  }
  for (const group of groupFailures(failed)) {
    log.warn("releasing an unrecorded attachment failed; retrying", {
      count: group.items.length,
      interfaces: listSome(group.items.map((i) => i.iface)),
      network: group.nadKey,
      err: group.error,
    });
  }
}

/** Forgets settled ADDs; a failure to do so is a `journal` failure of the pass. */
async function clearJournal(journal: AttachmentJournal, key: string, adds: PendingAdd[]) {
  try {
    await journal.clear(adds);
  } catch (err) {
    throw new ReconcileError(key, [{
      kind: "journal",
      text: `cannot clear the attachment journal (${
        errorText(err)
      }); make the state directory writable`,
    }]);
  }
}
