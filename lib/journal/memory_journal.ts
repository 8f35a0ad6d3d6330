/**
 * The attachment journal in memory: for `--dry-run`, which acts on nothing and so must not
 * need the node's state directory, and for tests. See `file_journal.ts` for the one on disk.
 *
 * @module
 */
import type { AttachmentJournal, PendingAdd } from "../reconcile/ports.ts";
import { type PodEntries, sameAdd, settled } from "../reconcile/journal_entries.ts";

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

  /** {@inheritDoc AttachmentJournal.podKeys} */
  podKeys(): string[] {
    return [...this.#byKey].filter(([, e]) => e.pending.length > 0).map(([k]) => k);
  }

  /** {@inheritDoc AttachmentJournal.attachedPodKeys} */
  attachedPodKeys(): string[] {
    return [...this.#byKey].filter(([, e]) => e.attached.length > 0).map(([k]) => k);
  }

  /** {@inheritDoc AttachmentJournal.record} */
  record(add: PendingAdd): Promise<void> {
    const entries = this.#byKey.get(add.podKey) ?? { pending: [], attached: [] };
    this.#set(add.podKey, {
      pending: [...entries.pending.filter((a) => !sameAdd(a, add)), add],
      attached: entries.attached,
    });
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
      const entries = this.#byKey.get(key);
      if (entries) this.#set(key, settled(entries, change));
      else if (change.recorded?.some((a) => a.podKey === key)) {
        this.#set(key, settled({ pending: [], attached: [] }, change));
      }
    }
    return Promise.resolve();
  }

  #set(key: string, entries: PodEntries): void {
    if (entries.pending.length === 0 && entries.attached.length === 0) this.#byKey.delete(key);
    else this.#byKey.set(key, entries);
  }
}
