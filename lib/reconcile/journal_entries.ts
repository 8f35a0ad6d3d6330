/**
 * The rules both attachment journals (`journal/file_journal.ts` on disk, `journal/memory_journal.ts`
 * in memory) follow for their entries: which two entries are the same attachment, and what
 * settling a pass's changes or journaling a DEL leaves.
 *
 * @module
 */
import type { PendingAdd } from "./ports.ts";

/**
 * True when `a` and `b` are the same ADD: the same request for the same pod, sandbox,
 * attachment and interface. A re-plug (the same attachment asked for with other IPs, MAC or
 * CNI args, or with a changed NAD config) is another ADD than the one it replaces.
 */
export function sameAdd(a: PendingAdd, b: PendingAdd): boolean {
  const x = a.request;
  const y = b.request;
  return x.podUid === y.podUid && x.ifname === y.ifname && x.containerId === y.containerId &&
    a.id.namespace === b.id.namespace && a.id.network === b.id.network &&
    x.netns === y.netns && sameBytes(x.config, y.config) &&
    JSON.stringify(x.interfaceAttributes ?? {}) === JSON.stringify(y.interfaceAttributes ?? {});
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** One pod's entries, as both journals keep them. */
export interface PodEntries {
  /** ADDs sent (or about to be) that network-status does not record yet. */
  pending: PendingAdd[];
  /** ADDs network-status records. */
  attached: PendingAdd[];
  /** Attachments whose DEL was sent (or is about to be) and whose removal network-status does not record yet. */
  detaching: PendingAdd[];
}

/** A pod's entries before anything is journaled for it. */
export function noEntries(): PodEntries {
  return { pending: [], attached: [], detaching: [] };
}

/** True when `entries` holds nothing. */
export function isEmpty(entries: PodEntries): boolean {
  return entries.pending.length + entries.attached.length + entries.detaching.length === 0;
}

/** `entries` with `add` pending (its ADD about to be sent); the input is not changed. */
export function withPending(entries: PodEntries, add: PendingAdd): PodEntries {
  return {
    pending: [...entries.pending.filter((a) => !sameAdd(a, add)), add],
    attached: entries.attached,
    detaching: entries.detaching,
  };
}

/**
 * `entries` with `add` detaching (its DEL about to be sent), no longer pending or attached;
 * the input is not changed.
 */
export function withDetaching(entries: PodEntries, add: PendingAdd): PodEntries {
  const other = (a: PendingAdd) => !sameAdd(a, add);
  return {
    pending: entries.pending.filter(other),
    attached: entries.attached.filter(other),
    detaching: [...entries.detaching.filter(other), add],
  };
}

/**
 * `entries` after `change` (see {@linkcode AttachmentJournal.settle}); the input is not changed.
 * Releases apply first, then records: an attachment a pass released and then made again with
 * the same request (a change that failed and put the old attachment back) ends attached.
 */
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
    attached: [...entries.attached.filter((a) => !gone(a)), ...recorded],
    detaching: entries.detaching.filter((a) => !gone(a)),
  };
}
