/**
 * The rules both attachment journals (`journal/file_journal.ts` on disk, `journal/memory_journal.ts`
 * in memory) follow for their entries: which two entries are the same attachment, and what
 * settling a pass's changes leaves.
 *
 * @module
 */
import type { PendingAdd } from "./ports.ts";

/** True when `a` and `b` are the same ADD: the same pod, sandbox, attachment and interface. */
export function sameAdd(a: PendingAdd, b: PendingAdd): boolean {
  return a.request.podUid === b.request.podUid && a.request.ifname === b.request.ifname &&
    a.id.namespace === b.id.namespace && a.id.network === b.id.network &&
    a.request.containerId === b.request.containerId;
}

/** One pod's entries, as both journals keep them. */
export interface PodEntries {
  /** ADDs sent (or about to be) that network-status does not record yet. */
  pending: PendingAdd[];
  /** ADDs network-status records. */
  attached: PendingAdd[];
}

/** `entries` after `change` (see {@linkcode AttachmentJournal.settle}); the input is not changed. */
export function settled(
  entries: PodEntries,
  change: { recorded?: readonly PendingAdd[]; released?: readonly PendingAdd[] },
): PodEntries {
  const recorded = change.recorded ?? [];
  const released = change.released ?? [];
  const gone = (a: PendingAdd) =>
    released.some((r) => sameAdd(a, r)) || recorded.some((r) => sameAdd(a, r));
  return {
    pending: entries.pending.filter((a) => !gone(a)),
    attached: [
      ...entries.attached.filter((a) => !gone(a)),
      ...recorded.filter((r) => !released.some((x) => sameAdd(r, x))),
    ],
  };
}
