/**
 * The attachment journal in memory: for `--dry-run`, which acts on nothing and so must not
 * need the node's state directory, and for tests. See `file_journal.ts` for the one on disk.
 *
 * @module
 */
import type { AttachmentJournal, PendingAdd } from "../reconcile/ports.ts";

/** True when `a` and `b` are the same ADD: the same pod, sandbox, attachment and interface. */
export function sameAdd(a: PendingAdd, b: PendingAdd): boolean {
  return a.request.podUid === b.request.podUid && a.request.ifname === b.request.ifname &&
    a.id.namespace === b.id.namespace && a.id.network === b.id.network &&
    a.request.containerId === b.request.containerId;
}

/** A journal in memory: for `--dry-run`, which acts on nothing, and for tests. */
export class MemoryJournal implements AttachmentJournal {
  readonly #adds: PendingAdd[] = [];

  /** {@inheritDoc AttachmentJournal.pending} */
  pending(podKey: string): readonly PendingAdd[] {
    return this.#adds.filter((a) => a.podKey === podKey);
  }

  /** {@inheritDoc AttachmentJournal.podKeys} */
  podKeys(): string[] {
    return [...new Set(this.#adds.map((a) => a.podKey))];
  }

  /** {@inheritDoc AttachmentJournal.record} */
  record(add: PendingAdd): Promise<void> {
    const i = this.#adds.findIndex((a) => sameAdd(a, add));
    if (i >= 0) this.#adds.splice(i, 1);
    this.#adds.push(add);
    return Promise.resolve();
  }

  /** {@inheritDoc AttachmentJournal.clear} */
  clear(adds: readonly PendingAdd[]): Promise<void> {
    for (const add of adds) {
      const i = this.#adds.findIndex((a) => sameAdd(a, add));
      if (i >= 0) this.#adds.splice(i, 1);
    }
    return Promise.resolve();
  }
}
