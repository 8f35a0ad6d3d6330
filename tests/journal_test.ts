/**
 * The attachment journal on disk: what one process records, the next one finds; damaged
 * files are set aside with a warning instead of stopping the agent.
 */
import assert from "node:assert/strict";
import { FileJournal } from "../lib/journal/file_journal.ts";
import { MemoryJournal } from "../lib/journal/memory_journal.ts";
import type { PendingAdd } from "../lib/reconcile/ports.ts";
import { Logger } from "../lib/base/log.ts";

function add(uid: string, ifname: string, network = "blue"): PendingAdd {
  return {
    podKey: `ns1/pod-${uid}`,
    id: { namespace: "ns1", network, interface: ifname },
    request: {
      command: "ADD",
      containerId: `sandbox-${uid}`,
      netns: `/var/run/netns/cni-${uid}`,
      ifname,
      podNamespace: "ns1",
      podName: `pod-${uid}`,
      podUid: uid,
      config: new TextEncoder().encode(JSON.stringify({ name: network, type: "macvlan" })),
      interfaceAttributes: { ips: ["10.1.1.5/24"], mac: "02:00:00:00:00:05" },
    },
  };
}

/** A test body run with a fresh temporary directory, removed afterwards. */
function inTempDir(body: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = await Deno.makeTempDir();
    try {
      await body(dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };
}

function quietLog(lines: string[] = []): Logger {
  return new Logger({ level: "debug", sink: (line) => lines.push(line) });
}

Deno.test(
  "journal: a record survives the process and is gone once released",
  inTempDir(async (dir) => {
    const first = await FileJournal.open({ dir: `${dir}/state`, log: quietLog() });
    await first.record(add("u1", "net1"));
    await first.record(add("u1", "net2", "green"));
    await first.record(add("u2", "net1"));
    assert.equal((await Deno.stat(`${dir}/state`)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(`${dir}/state/u1.json`)).mode! & 0o777, 0o600);

    const second = await FileJournal.open({ dir: `${dir}/state`, log: quietLog() });
    assert.deepEqual(second.podKeys().sort(), ["ns1/pod-u1", "ns1/pod-u2"]);
    assert.deepEqual(second.pending("ns1/pod-u1"), [add("u1", "net1"), add("u1", "net2", "green")]);

    await second.settle({ released: [add("u1", "net1"), add("u2", "net1")] });
    assert.deepEqual(second.pending("ns1/pod-u1"), [add("u1", "net2", "green")]);
    assert.deepEqual(second.pending("ns1/pod-u2"), []);
    const files = [...Deno.readDirSync(`${dir}/state`)].map((e) => e.name).sort();
    assert.deepEqual(files, ["u1.json"]);

    const third = await FileJournal.open({ dir: `${dir}/state`, log: quietLog() });
    assert.deepEqual(third.pending("ns1/pod-u1"), [add("u1", "net2", "green")]);
  }),
);

Deno.test(
  "journal: recording the same ADD again replaces it",
  inTempDir(async (dir) => {
    const journal = await FileJournal.open({ dir, log: quietLog() });
    await journal.record(add("u1", "net1"));
    await journal.record(add("u1", "net1"));
    assert.equal(journal.pending("ns1/pod-u1").length, 1);
    const memory = new MemoryJournal();
    await memory.record(add("u1", "net1"));
    await memory.record(add("u1", "net1"));
    assert.equal(memory.pending("ns1/pod-u1").length, 1);
    await memory.settle({ released: [add("u1", "net1")] });
    assert.deepEqual(memory.podKeys(), []);
  }),
);

Deno.test(
  "journal: a damaged or misnamed file is set aside with a warning naming it",
  inTempDir(async (dir) => {
    const good = await FileJournal.open({ dir, log: quietLog() });
    await good.record(add("u1", "net1"));
    await Deno.writeTextFile(`${dir}/u2.json`, '{"version":1,"podKey":"ns1/p"'); // torn
    await Deno.copyFile(`${dir}/u1.json`, `${dir}/u3.json`); // names another pod
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a journal file");

    const lines: string[] = [];
    const journal = await FileJournal.open({ dir, log: quietLog(lines) });
    assert.deepEqual(journal.podKeys(), ["ns1/pod-u1"]);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(files, ["notes.txt", "u1.json", "u2.json.invalid", "u3.json.invalid"]);
    const warnings = lines.map((l) => JSON.parse(l)).filter((r) => r.level === "warn");
    assert.deepEqual(warnings.map((w) => w.file).sort(), [`${dir}/u2.json`, `${dir}/u3.json`]);
    assert.ok(warnings.every((w) => typeof w.err === "string" && w.err !== ""));
  }),
);

Deno.test(
  "journal: a state directory that cannot be created fails with the path and the fix",
  inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    await assert.rejects(
      FileJournal.open({ dir: `${dir}/file/state`, log: quietLog() }),
      (err: Error) =>
        err.message.includes(`${dir}/file/state`) && err.message.includes("set stateDir"),
    );
  }),
);

Deno.test(
  "journal: a pod UID that cannot name a file is refused before anything is sent",
  inTempDir(async (dir) => {
    const journal = await FileJournal.open({ dir, log: quietLog() });
    await assert.rejects(journal.record(add("../escape", "net1")), /pod UID "..\/escape"/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  }),
);

Deno.test(
  "journal: a recorded ADD stays attached, with its request, until it is released",
  inTempDir(async (dir) => {
    for (
      const make of [() => FileJournal.open({ dir, log: quietLog() }), () => new MemoryJournal()]
    ) {
      const journal = await make();
      await journal.record(add("u1", "net1"));
      await journal.record(add("u1", "net2", "green"));
      await journal.settle({ recorded: [add("u1", "net1")] });
      assert.deepEqual(journal.pending("ns1/pod-u1"), [add("u1", "net2", "green")]);
      assert.deepEqual(journal.attached("ns1/pod-u1"), [add("u1", "net1")]);
      assert.deepEqual(journal.podKeys(), ["ns1/pod-u1"]);
      assert.deepEqual(journal.attachedPodKeys(), ["ns1/pod-u1"]);
      // Recording and releasing in one settle: one attached, the pending one gone.
      await journal.settle({
        recorded: [add("u1", "net2", "green")],
        released: [add("u1", "net1")],
      });
      assert.deepEqual(journal.pending("ns1/pod-u1"), []);
      assert.deepEqual(journal.attached("ns1/pod-u1"), [add("u1", "net2", "green")]);
      assert.deepEqual(journal.podKeys(), []);
      if (journal instanceof FileJournal) {
        const reopened = await FileJournal.open({ dir, log: quietLog() });
        assert.deepEqual(reopened.attached("ns1/pod-u1"), [add("u1", "net2", "green")]);
        assert.deepEqual(reopened.pending("ns1/pod-u1"), []);
      }
      await journal.settle({ released: [add("u1", "net2", "green")] });
      assert.deepEqual(journal.attachedPodKeys(), []);
    }
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no file once nothing is held");
  }),
);

Deno.test(
  "journal: a removal is detaching from before its DEL until it is released, and survives a restart",
  inTempDir(async (dir) => {
    for (
      const make of [() => FileJournal.open({ dir, log: quietLog() }), () => new MemoryJournal()]
    ) {
      const journal = await make();
      await journal.record(add("u1", "net1"));
      await journal.settle({ recorded: [add("u1", "net1")] });
      await journal.recordDetach(add("u1", "net1"));
      // An attachment the agent did not make is journaled from the request built for its DEL.
      await journal.recordDetach(add("u2", "net1", "green"));
      assert.deepEqual(journal.attached("ns1/pod-u1"), []);
      assert.deepEqual(journal.detaching("ns1/pod-u1"), [add("u1", "net1")]);
      assert.deepEqual(journal.podKeys().sort(), ["ns1/pod-u1", "ns1/pod-u2"]);
      assert.deepEqual(journal.attachedPodKeys(), []);
      if (journal instanceof FileJournal) {
        const reopened = await FileJournal.open({ dir, log: quietLog() });
        assert.deepEqual(reopened.detaching("ns1/pod-u1"), [add("u1", "net1")]);
        assert.deepEqual(reopened.detaching("ns1/pod-u2"), [add("u2", "net1", "green")]);
      }
      // A recorded ADD does not take a detaching entry back; a release forgets it.
      await journal.settle({ recorded: [add("u1", "net2")] });
      assert.deepEqual(journal.detaching("ns1/pod-u1"), [add("u1", "net1")]);
      await journal.settle({ released: [add("u1", "net1"), add("u1", "net2")] });
      await journal.settle({ released: [add("u2", "net1", "green")] });
      assert.deepEqual(journal.podKeys(), []);
      assert.deepEqual(journal.attachedPodKeys(), []);
    }
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no file once nothing is held");
  }),
);

Deno.test(
  "journal: a version 2 file (no detaching entries, as an earlier release wrote) is read",
  inTempDir(async (dir) => {
    const journal = await FileJournal.open({ dir, log: quietLog() });
    await journal.record(add("u1", "net1"));
    await journal.settle({ recorded: [add("u1", "net1")] });
    const file = JSON.parse(await Deno.readTextFile(`${dir}/u1.json`));
    delete file.detaching;
    await Deno.writeTextFile(`${dir}/u1.json`, JSON.stringify({ ...file, version: 2 }));
    const reopened = await FileJournal.open({ dir, log: quietLog() });
    assert.deepEqual(reopened.attached("ns1/pod-u1"), [add("u1", "net1")]);
    assert.deepEqual(reopened.detaching("ns1/pod-u1"), []);
  }),
);

Deno.test(
  "journal: a version 1 file (pending ADDs only, as an earlier release wrote) is read",
  inTempDir(async (dir) => {
    const journal = await FileJournal.open({ dir, log: quietLog() });
    await journal.record(add("u1", "net1"));
    const file = JSON.parse(await Deno.readTextFile(`${dir}/u1.json`));
    assert.equal(file.version, 3);
    delete file.attached;
    delete file.detaching;
    await Deno.writeTextFile(`${dir}/u1.json`, JSON.stringify({ ...file, version: 1 }));
    const reopened = await FileJournal.open({ dir, log: quietLog() });
    assert.deepEqual(reopened.pending("ns1/pod-u1"), [add("u1", "net1")]);
    assert.deepEqual(reopened.attached("ns1/pod-u1"), []);
  }),
);
