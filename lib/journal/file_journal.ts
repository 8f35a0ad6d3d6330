/**
 * The attachment journal: a node-local record of every attachment the agent has made, from
 * before its ADD is sent until it is released.
 *
 * An ADD that the agent does not see through (it is killed, or the call times out while multus
 * carries on) leaves an attachment nothing in the API describes. The journal is written before
 * each ADD (*pending*), so the next pass knows exactly which half-done attachments to release
 * with a DEL built from the same request, even when the pod's annotation has changed
 * meanwhile, its NAD was deleted, or the pod itself is gone. Once the status write records an
 * ADD it stays in the journal as *attached*, with the sandbox it was made in: when the runtime
 * replaces a dead sandbox, multus describes only the new one, and the journal is what still
 * knows which addresses the old one holds. A removal is journaled *detaching* before its DEL
 * is sent, so that a DEL cut short is finished by the next pass rather than taken, from the
 * network-status entry it did not get to remove, for an attachment still in place.
 *
 * One file per pod UID (`<dir>/<uid>.json`), written to a temporary name and renamed, so a
 * reader sees the old or the new content, never a torn one. Only one reconcile pass runs per
 * pod at a time, so each file has a single writer. No fsync: the journal must survive the
 * process, not the machine; a node reboot removes the sandboxes the entries refer to.
 *
 * {@linkcode FileJournal} is the node's journal; `memory_journal.ts` holds the in-memory one
 * that `--dry-run` and the tests use.
 *
 * @module
 */
import { z } from "zod";
import type { Logger } from "../base/log.ts";
import type { AttachmentJournal, PendingAdd } from "../reconcile/ports.ts";
import {
  isEmpty,
  noEntries,
  type PodEntries,
  settled,
  withDetaching,
  withPending,
} from "../reconcile/journal_entries.ts";

const UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,127}$/;

const AddSchema = z.strictObject({
  namespace: z.string(),
  network: z.string(),
  containerId: z.string(),
  netns: z.string(),
  ifname: z.string(),
  podNamespace: z.string(),
  podName: z.string(),
  config: z.base64(),
  interfaceAttributes: z.strictObject({
    ips: z.array(z.string()).optional(),
    mac: z.string().optional(),
    "cni-args": z.record(z.string(), z.unknown()).nullable().optional(),
  }).optional(),
});

/**
 * Files of versions 1 (pending ADDs only) and 2 (no detaching entries) are read too, as left by
 * an earlier release.
 */
const FileSchema = z.strictObject({
  version: z.union([z.literal(1), z.literal(2), z.literal(3)]),
  podKey: z.string(),
  podUid: z.string().regex(UID),
  adds: z.array(AddSchema),
  attached: z.array(AddSchema).optional(),
  detaching: z.array(AddSchema).optional(),
});

type JournalFile = z.infer<typeof FileSchema>;

/** Options of {@linkcode FileJournal.open}. */
export interface FileJournalOptions {
  /** The directory; created when missing. */
  dir: string;
  /** Where a damaged file and the ADDs left by an earlier process are reported. */
  log: Logger;
}

/** The journal on disk, one JSON file per pod UID, mirrored in memory for cheap lookups. */
export class FileJournal implements AttachmentJournal {
  readonly #dir: string;
  /** Pod UID → its entries. */
  readonly #byUid = new Map<string, PodEntries & { podKey: string }>();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Opens (creating if needed) the journal in `dir` and loads what an earlier process left.
   * A file that cannot be read as a journal is renamed to `<name>.invalid` with a warning,
   * so that one damaged file never stops the agent.
   */
  static async open(options: FileJournalOptions): Promise<FileJournal> {
    const { dir, log } = options;
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new Error(
        `cannot create the state directory ${dir}: mount a writable directory there or set stateDir to one`,
        { cause: err },
      );
    }
    const journal = new FileJournal(dir);
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const path = `${dir}/${entry.name}`;
      try {
        const file = FileSchema.parse(JSON.parse(await Deno.readTextFile(path)));
        if (`${file.podUid}.json` !== entry.name) {
          throw new Error(`it holds pod UID ${file.podUid}, not the one its name says`);
        }
        const load = (add: z.infer<typeof AddSchema>): PendingAdd => {
          const { namespace, network, config, ...rest } = add;
          return {
            podKey: file.podKey,
            id: { namespace, network, interface: rest.ifname },
            request: {
              ...rest,
              command: "ADD",
              podUid: file.podUid,
              config: Uint8Array.fromBase64(config),
            },
          };
        };
        const entries = {
          podKey: file.podKey,
          pending: file.adds.map(load),
          attached: (file.attached ?? []).map(load),
          detaching: (file.detaching ?? []).map(load),
        };
        if (!isEmpty(entries)) {
          journal.#byUid.set(file.podUid, entries);
        } else await Deno.remove(path);
      } catch (err) {
        log.warn(
          "ignoring an unreadable attachment journal file; attachments it recorded may need a manual CNI DEL",
          { file: path, movedTo: `${path}.invalid`, err },
        );
        await Deno.rename(path, `${path}.invalid`);
      }
    }
    const all = [...journal.#byUid.values()];
    const pendingAdds = all.reduce((n, e) => n + e.pending.length, 0);
    const pendingDels = all.reduce((n, e) => n + e.detaching.length, 0);
    if (pendingAdds + pendingDels > 0) {
      log.info("attachment journal holds unfinished operations", { pendingAdds, pendingDels, dir });
    }
    return journal;
  }

  /** {@inheritDoc AttachmentJournal.pending} */
  pending(podKey: string): readonly PendingAdd[] {
    return this.#of(podKey, "pending");
  }

  /** {@inheritDoc AttachmentJournal.attached} */
  attached(podKey: string): readonly PendingAdd[] {
    return this.#of(podKey, "attached");
  }

  /** {@inheritDoc AttachmentJournal.detaching} */
  detaching(podKey: string): readonly PendingAdd[] {
    return this.#of(podKey, "detaching");
  }

  /** {@inheritDoc AttachmentJournal.podKeys} */
  podKeys(): string[] {
    return [...new Set([...this.#keysWith("pending"), ...this.#keysWith("detaching")])];
  }

  /** {@inheritDoc AttachmentJournal.attachedPodKeys} */
  attachedPodKeys(): string[] {
    return this.#keysWith("attached");
  }

  /** {@inheritDoc AttachmentJournal.record} */
  async record(add: PendingAdd): Promise<void> {
    const uid = add.request.podUid;
    await this.#write(uid, add.podKey, withPending(this.#byUid.get(uid) ?? noEntries(), add));
  }

  /** {@inheritDoc AttachmentJournal.recordDetach} */
  async recordDetach(add: PendingAdd): Promise<void> {
    const uid = add.request.podUid;
    await this.#write(uid, add.podKey, withDetaching(this.#byUid.get(uid) ?? noEntries(), add));
  }

  /** {@inheritDoc AttachmentJournal.settle} */
  async settle(
    change: { recorded?: readonly PendingAdd[]; released?: readonly PendingAdd[] },
  ): Promise<void> {
    const touched = [...(change.recorded ?? []), ...(change.released ?? [])];
    for (const uid of new Set(touched.map((a) => a.request.podUid))) {
      const before = this.#byUid.get(uid);
      const podKey = before?.podKey ?? touched.find((a) => a.request.podUid === uid)!.podKey;
      const after = settled(before ?? noEntries(), change);
      const same = before !== undefined &&
        after.pending.length === before.pending.length &&
        after.detaching.length === before.detaching.length &&
        after.attached.length === before.attached.length &&
        after.attached.every((a, i) => before.attached[i] === a);
      if (!same) await this.#write(uid, podKey, after);
    }
  }

  #of(podKey: string, which: keyof PodEntries): PendingAdd[] {
    const out: PendingAdd[] = [];
    for (const entries of this.#byUid.values()) {
      if (entries.podKey === podKey) out.push(...entries[which]);
    }
    return out;
  }

  #keysWith(which: keyof PodEntries): string[] {
    const keys = new Set<string>();
    for (const entries of this.#byUid.values()) {
      if (entries[which].length > 0) keys.add(entries.podKey);
    }
    return [...keys];
  }

  async #write(uid: string, podKey: string, entries: PodEntries): Promise<void> {
    if (!UID.test(uid)) {
      throw new Error(`pod UID ${JSON.stringify(uid)} cannot name a journal file`);
    }
    const path = `${this.#dir}/${uid}.json`;
    if (isEmpty(entries)) {
      await Deno.remove(path).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
      this.#byUid.delete(uid);
      return;
    }
    const save = ({ id, request }: PendingAdd) => ({
      namespace: id.namespace,
      network: id.network,
      containerId: request.containerId,
      netns: request.netns,
      ifname: request.ifname,
      podNamespace: request.podNamespace,
      podName: request.podName,
      config: request.config.toBase64(),
      ...(request.interfaceAttributes ? { interfaceAttributes: request.interfaceAttributes } : {}),
    });
    const file: JournalFile = {
      version: 3,
      podKey,
      podUid: uid,
      adds: entries.pending.map(save),
      attached: entries.attached.map(save),
      detaching: entries.detaching.map(save),
    };
    const temporary = `${path}.tmp`;
    await Deno.writeTextFile(temporary, JSON.stringify(file), { mode: 0o600 });
    await Deno.rename(temporary, path);
    this.#byUid.set(uid, { podKey, ...entries });
  }
}
