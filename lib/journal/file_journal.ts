/**
 * The attachment journal: a node-local record of every ADD the agent has started but not yet
 * recorded in `network-status`.
 *
 * An ADD that the agent does not see through (it is killed, or the call times out while multus
 * carries on) leaves an attachment nothing in the API describes. The journal is written before
 * each ADD and cleared once the status write records it, so the next pass knows exactly which
 * half-done attachments to release with a DEL built from the same request, even when the pod's
 * annotation has changed meanwhile, its NAD was deleted, or the pod itself is gone.
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
import { sameAdd } from "./memory_journal.ts";

const UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,127}$/;

const FileSchema = z.strictObject({
  version: z.literal(1),
  podKey: z.string(),
  podUid: z.string().regex(UID),
  adds: z.array(z.strictObject({
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
  })),
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
  /** Pod UID → its pending ADDs. */
  readonly #byUid = new Map<string, PendingAdd[]>();

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
        const adds = file.adds.map(({ namespace, network, config, ...rest }): PendingAdd => ({
          podKey: file.podKey,
          id: { namespace, network, interface: rest.ifname },
          request: {
            ...rest,
            command: "ADD",
            podUid: file.podUid,
            config: Uint8Array.fromBase64(config),
          },
        }));
        if (adds.length > 0) journal.#byUid.set(file.podUid, adds);
        else await Deno.remove(path);
      } catch (err) {
        log.warn(
          "ignoring an unreadable attachment journal file; attachments it recorded may need a manual CNI DEL",
          { file: path, movedTo: `${path}.invalid`, err },
        );
        await Deno.rename(path, `${path}.invalid`);
      }
    }
    const pendingAdds = [...journal.#byUid.values()].reduce((n, adds) => n + adds.length, 0);
    if (pendingAdds > 0) log.info("attachment journal holds unfinished ADDs", { pendingAdds, dir });
    return journal;
  }

  /** {@inheritDoc AttachmentJournal.pending} */
  pending(podKey: string): readonly PendingAdd[] {
    const out: PendingAdd[] = [];
    for (const adds of this.#byUid.values()) {
      if (adds[0]?.podKey === podKey) out.push(...adds);
    }
    return out;
  }

  /** {@inheritDoc AttachmentJournal.podKeys} */
  podKeys(): string[] {
    return [...new Set([...this.#byUid.values()].flatMap((adds) => adds.map((a) => a.podKey)))];
  }

  /** {@inheritDoc AttachmentJournal.record} */
  async record(add: PendingAdd): Promise<void> {
    const uid = add.request.podUid;
    const adds = (this.#byUid.get(uid) ?? []).filter((a) => !sameAdd(a, add));
    await this.#write(uid, [...adds, add]);
  }

  /** {@inheritDoc AttachmentJournal.clear} */
  async clear(adds: readonly PendingAdd[]): Promise<void> {
    for (const uid of new Set(adds.map((a) => a.request.podUid))) {
      const before = this.#byUid.get(uid) ?? [];
      const after = before.filter((a) => !adds.some((c) => sameAdd(a, c)));
      if (after.length !== before.length) await this.#write(uid, after);
    }
  }

  async #write(uid: string, adds: PendingAdd[]): Promise<void> {
    if (!UID.test(uid)) {
      throw new Error(`pod UID ${JSON.stringify(uid)} cannot name a journal file`);
    }
    const path = `${this.#dir}/${uid}.json`;
    if (adds.length === 0) {
      await Deno.remove(path).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
      this.#byUid.delete(uid);
      return;
    }
    const file: JournalFile = {
      version: 1,
      podKey: adds[0]!.podKey,
      podUid: uid,
      adds: adds.map(({ id, request }) => ({
        namespace: id.namespace,
        network: id.network,
        containerId: request.containerId,
        netns: request.netns,
        ifname: request.ifname,
        podNamespace: request.podNamespace,
        podName: request.podName,
        config: request.config.toBase64(),
        ...(request.interfaceAttributes
          ? { interfaceAttributes: request.interfaceAttributes }
          : {}),
      })),
    };
    const temporary = `${path}.tmp`;
    await Deno.writeTextFile(temporary, JSON.stringify(file), { mode: 0o600 });
    await Deno.rename(temporary, path);
    this.#byUid.set(uid, adds);
  }
}
