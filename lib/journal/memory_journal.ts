/**
 * The attachment journal in memory: for `--dry-run`, which acts on nothing and so must not
 * need the node's state directory, and for tests. See `file_journal.ts` for the one on disk.
 *
 * @module
 */
import type { AttachmentJournal, PendingAdd } from "../reconcile/ports.ts";
import {
  isEmpty,
  noEntries,
  type PodEntries,
  settled,
  withDetaching,
  withPending,
} from "../reconcile/journal_entries.ts";

/** A journal in memory: for `--dry-run`, which acts on nothing, and for tests. */
export class MemoryJournal implements AttachmentJournal {
  readonly #byKey = new Map<string, PodEntries>();

  /** {@inheritDoc AttachmentJournal.pending} */
  pending(podKey: string): readonly PendingAdd[] {
    return this.#byKey.get(podKey)?.pending ?? [];
  }

  /** {@inheritDoc AttachmentJournal.attached} */
  attached(podKey: string): readonly PendingAdd[] {
    return this.#byKey.get(podKey)?.attached ?? [];
  }

  /** {@inheritDoc AttachmentJournal.detaching} */
  detaching(podKey: string): readonly PendingAdd[] {
    return this.#byKey.get(podKey)?.detaching ?? [];
  }

  /** {@inheritDoc AttachmentJournal.podKeys} */
  podKeys(): string[] {
    return [...this.#byKey].filter(([, e]) => e.pending.length + e.detaching.length > 0)
      .map(([k]) => k);
  }

  /** {@inheritDoc AttachmentJournal.attachedPodKeys} */
  attachedPodKeys(): string[] {
    return [...this.#byKey].filter(([, e]) => e.attached.length > 0).map(([k]) => k);
  }

  /** {@inheritDoc AttachmentJournal.record} */
  record(add: PendingAdd): Promise<void> {
    this.#set(add.podKey, withPending(this.#byKey.get(add.podKey) ?? noEntries(), add));
    return Promise.resolve();
  }

  /** {@inheritDoc AttachmentJournal.recordDetach} */
  recordDetach(add: PendingAdd): Promise<void> {
    this.#set(add.podKey, withDetaching(this.#byKey.get(add.podKey) ?? noEntries(), add));
    return Promise.resolve();
  }

  /** {@inheritDoc AttachmentJournal.settle} */
  settle(
    change: { recorded?: readonly PendingAdd[]; released?: readonly PendingAdd[] },
  ): Promise<void> {
    const keys = new Set(
      [...(change.recorded ?? []), ...(change.released ?? [])].map((a) => a.podKey),
    );
    for (const key of keys) {
      this.#set(key, settled(this.#byKey.get(key) ?? noEntries(), change));
    }
    return Promise.resolve();
  }

  #set(key: string, entries: PodEntries): void {
    if (isEmpty(entries)) this.#byKey.delete(key);
    else this.#byKey.set(key, entries);
  }
}
