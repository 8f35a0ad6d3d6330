/**
 * The reconciler's decisions on failure paths, with in-memory stand-ins for its ports
 * (`tests/support/memory_world.ts`: pod cache, NAD cache, sandbox lookup, delegate, status
 * store, events). The real
 * adapters are exercised on the node rig by the e2e tests; these cases pin down what the
 * reconciler does when a call fails at a precise point, which the rig cannot stage on cue,
 * and the outcome each pass returns (or the error it throws, and what the error policy does
 * with it).
 */
import assert from "node:assert/strict";
import { DEFAULT_ENTRY, MemoryWorld as World } from "./support/memory_world.ts";
import { errorPolicy } from "../lib/reconcile/error_policy.ts";
import { DONE, ReconcileError, requeue, waitFor } from "../lib/reconcile/outcome.ts";
import { type ReconcilerDeps, StatusWriteError } from "../lib/reconcile/ports.ts";
import { Reconciler } from "../lib/reconcile/reconciler.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../lib/core/annotations.ts";
import { formatNetworkStatus } from "../lib/core/status.ts";

/** True for a pass's error that the error policy retries, of exactly the failure `kinds`. */
function isRetried(err: unknown, kinds: string[]): boolean {
  assert.ok(err instanceof ReconcileError, String(err));
  assert.deepEqual(err.kinds, kinds);
  assert.equal(errorPolicy("ns1/p", err).action, "backoff");
  return true;
}

/** True for a pass's error of bad input, which the error policy does not retry. */
function isTerminal(err: unknown): boolean {
  assert.ok(err instanceof ReconcileError, String(err));
  assert.deepEqual(err.kinds, ["bad-input"]);
  assert.equal(errorPolicy("ns1/p", err).action, "terminal");
  return true;
}

function macvlan(name: string): string {
  return JSON.stringify({ cniVersion: "0.3.1", name, type: "macvlan", master: "eth9" });
}

Deno.test("a failed status write is repaired by the next pass without 'already exists'", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.failRecordingWrites = 1;
  const reconciler = world.reconciler();
  await assert.rejects(reconciler.reconcile("ns1/p"), (err) => isRetried(err, ["conflict"]));
  // The interface was attached but not recorded: the state a crash would leave.
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), {});
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.deepEqual(world.attached(), { net1: "a" });
  // The unrecorded ADD is released from the journal first, then planned again from scratch.
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a", "ADD net1 a"]);
  assert.deepEqual(world.journal.podKeys(), []);
});

Deno.test("a swap removes the old attachment before adding the new one (original #297)", async () => {
  const world = new World([{ name: "a", interface: "net1" }], [DEFAULT_ENTRY, {
    name: "ns1/a",
    interface: "net1",
    dns: {},
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  world.setNetworks([{ name: "b", interface: "net1" }]);
  await world.converge(world.reconciler());
  assert.deepEqual(world.delegateCalls, ["DEL net1 a", "ADD net1 b"]);
  assert.deepEqual(world.attached(), { net1: "b" });
  assert.deepEqual(world.recorded(), { net1: "ns1/b" });
  assert.deepEqual(world.events.map((e) => e.reason), ["RemovedInterface", "AddedInterface"]);
});

Deno.test("a change whose new ADD fails puts the old attachment back with the request that made it, and completes once fixed", async () => {
  const old = { name: "a", interface: "net1", mac: "02:00:00:00:00:0a", ips: ["10.1.0.5/24"] };
  const world = new World([old]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  await world.converge(world.reconciler());
  const made = world.delegateRequests.at(-1)!;
  assert.deepEqual(made.interfaceAttributes, { mac: old.mac, ips: old.ips });
  world.delegateCalls = [];
  world.events = [];

  world.setNetworks([{ name: "b", interface: "net1" }]);
  world.failDelegate = (req) =>
    req.command === "ADD" && req.ifname === "net1" &&
      new TextDecoder().decode(req.config).includes('"b"')
      ? "plugin b: failed to set up"
      : undefined;
  await assert.rejects(world.reconciler().reconcile("ns1/p"), (err) => {
    assert.match(String(err), /add ns1\/b\/net1: plugin b: failed to set up/);
    return isRetried(err, ["delegate"]);
  });
  // Old out, new in (failed, undone), old back with the very request that made it.
  assert.deepEqual(world.delegateCalls, ["DEL net1 a", "ADD net1 b", "DEL net1 b", "ADD net1 a"]);
  assert.deepEqual(world.delegateRequests.at(-1), made);
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.deepEqual(world.journal.attached("ns1/p").map((a) => a.request), [made]);
  // The failed ADD was undone before the old one came back: nothing of it stays journaled.
  assert.deepEqual(world.journal.pending("ns1/p"), []);
  assert.deepEqual(world.journal.detaching("ns1/p"), []);
  const condition = world.pod.status?.networksCondition;
  assert.equal(condition?.status, "False");
  assert.match(condition?.message ?? "", /net1 to network: b.*plugin b: failed to set up/);
  assert.deepEqual(world.events.map((e) => e.reason), [
    "RestoredInterface",
    "FailedAddingInterface",
  ]);
  assert.equal(
    world.events[0]!.message,
    "pod [ns1/p]: put back interface net1 of network: a (the change failed; it is retried)",
  );

  world.failDelegate = undefined;
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), { net1: "b" });
  assert.deepEqual(world.recorded(), { net1: "ns1/b" });
  assert.equal(world.pod.status?.networksCondition?.status, "True");
  assert.deepEqual(world.journal.attached("ns1/p").map((a) => a.id.network), ["b"]);
});

Deno.test("a change killed right after the ADD that put the old attachment back converges once the new network works", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  await world.converge(world.reconciler());
  world.setNetworks([{ name: "b", interface: "net1" }]);
  world.failDelegate = (req) =>
    req.command === "ADD" && new TextDecoder().decode(req.config).includes('"b"')
      ? "plugin b: failed to set up"
      : undefined;
  world.delegateCalls = [];
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.delegateCalls.length === 4);
  assert.deepEqual(world.delegateCalls, ["DEL net1 a", "ADD net1 b", "DEL net1 b", "ADD net1 a"]);
  // Only the put-back ADD is unfinished: the failed one was forgotten once undone.
  assert.deepEqual(world.journal.pending("ns1/p").map((a) => a.id.network), ["a"]);

  world.failDelegate = undefined;
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), { net1: "b" });
  assert.deepEqual(world.recorded(), { net1: "ns1/b" });
  assert.deepEqual(world.journal.attached("ns1/p").map((a) => a.id.network), ["b"]);
  assert.deepEqual(world.journal.pending("ns1/p"), []);
  assert.deepEqual(world.journal.detaching("ns1/p"), []);
});

Deno.test("a change to a NAD that does not exist yet keeps the old attachment in place and waits for the NAD", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.converge(world.reconciler());
  world.delegateCalls = [];
  world.events.length = 0;
  world.setNetworks([{ name: "late", interface: "net1" }]);
  const reconciler = world.reconciler();
  for (let pass = 0; pass < 3; pass++) {
    // However often it is looked at: no DEL of the old attachment only to put it back (each
    // round trip would cost the pod its link and, with host-local, a new address).
    assert.deepEqual(
      await reconciler.reconcile("ns1/p"),
      waitFor("NetworkAttachmentDefinition ns1/late"),
    );
  }
  assert.deepEqual(world.delegateCalls, []);
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  const condition = world.pod.status?.networksCondition;
  assert.equal(condition?.reason, "NetworkNotFound");
  assert.match(
    condition?.message ?? "",
    /net1 to network: late: NetworkAttachmentDefinition ns1\/late not found/,
  );
  assert.deepEqual([...new Set(world.events.map((e) => e.reason))], ["FailedAddingInterface"]);
  world.nads.set("ns1/late", macvlan("late"));
  await world.converge(world.reconciler());
  assert.deepEqual(world.delegateCalls, ["DEL net1 a", "ADD net1 late"]);
  assert.deepEqual(world.recorded(), { net1: "ns1/late" });
});

Deno.test("an attachment that moves off an interface a missing NAD's element names moves, and is not put back", async () => {
  const red = { name: "a", ips: ["10.1.0.5/24"], mac: "02:00:00:00:00:0a" };
  const world = new World([{ ...red, interface: "net3" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.converge(world.reconciler());
  world.delegateCalls = [];
  // net3 now belongs to a network whose NAD does not exist yet; a's element has no name.
  world.setNetworks([red, { name: "late", interface: "net3" }]);
  assert.deepEqual(
    await world.reconciler().reconcile("ns1/p"),
    waitFor("NetworkAttachmentDefinition ns1/late"),
  );
  // a moves to a free name; it is not kept on net3 as well, nor put back there (the same
  // address and MAC on two interfaces).
  assert.deepEqual(world.delegateCalls, ["DEL net3 a", "ADD net1 a"]);
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.equal(world.pod.status?.networksCondition?.reason, "NetworkNotFound");
  world.nads.set("ns1/late", macvlan("late"));
  await world.converge(world.reconciler());
  assert.deepEqual(world.recorded(), { net1: "ns1/a", net3: "ns1/late" });
});

Deno.test("a failed remove holds back the add that needs its interface name", async () => {
  const world = new World([{ name: "a", interface: "net1" }], [DEFAULT_ENTRY, {
    name: "ns1/a",
    interface: "net1",
    dns: {},
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  world.setNetworks([{ name: "b", interface: "net1" }, { name: "b", interface: "net2" }]);
  world.failDelegate = (req) => req.command === "DEL" ? "plugin crashed" : undefined;
  await assert.rejects(
    world.reconciler().reconcile("ns1/p"),
    (err) => isRetried(err, ["delegate"]),
  );
  assert.deepEqual(world.delegateCalls, ["DEL net1 a", "ADD net2 b"]);
  // net1 still belongs to a, and the status says so; net2 was independent and is recorded.
  assert.deepEqual(world.attached(), { net1: "a", net2: "b" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a", net2: "ns1/b" });
  const failed = world.events.filter((e) => e.type === "Warning").map((e) => e.reason);
  assert.deepEqual(failed, ["FailedRemovingInterface", "FailedAddingInterface"]);
  world.failDelegate = undefined;
  await world.converge(world.reconciler());
  assert.deepEqual(world.recorded(), { net1: "ns1/b", net2: "ns1/b" });
});

Deno.test("one failing attachment does not hold back the others", async () => {
  const world = new World([{ name: "missing", interface: "net1" }, {
    name: "a",
    interface: "net2",
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  // A missing NAD is waited for (its creation wakes the pod), not retried.
  assert.deepEqual(
    await reconciler.reconcile("ns1/p"),
    waitFor("NetworkAttachmentDefinition ns1/missing"),
  );
  assert.deepEqual(world.recorded(), { net2: "ns1/a" });
  assert.deepEqual(reconciler.memory.podsWaitingFor("ns1/missing"), ["ns1/p"]);
  const warning = world.events.find((e) => e.reason === "FailedAddingInterface");
  assert.match(warning?.message ?? "", /not found; create it/);
  world.nads.set("ns1/missing", macvlan("missing"));
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.recorded(), { net1: "ns1/missing", net2: "ns1/a" });
  assert.deepEqual(reconciler.memory.podsWaitingFor("ns1/missing"), []);
});

Deno.test("an invalid networks annotation changes nothing and says why", async () => {
  const world = new World([{ name: "a", interface: "net1" }], [DEFAULT_ENTRY, {
    name: "ns1/a",
    interface: "net1",
    dns: {},
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.pod.metadata.annotations![NETWORKS_ANNOTATION] = '[{"name": "a", "mac": "zz"}]';
  // Bad input: not retried until the annotation changes.
  await assert.rejects(world.reconciler().reconcile("ns1/p"), isTerminal);
  assert.deepEqual(world.delegateCalls, []);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.equal(world.events.length, 1);
  assert.equal(world.events[0]!.reason, "InvalidNetworkSelection");
  assert.match(world.events[0]!.message, /networks\[0\]\.mac/);
});

Deno.test("namespace isolation refuses a NAD from another namespace", async () => {
  const world = new World([{ name: "a", namespace: "other", interface: "net1" }]);
  world.nads.set("other/a", macvlan("a"));
  await assert.rejects(
    world.reconciler({ namespaceIsolation: true }).reconcile("ns1/p"),
    /namespace isolation/,
  );
  await assert.rejects(
    world.reconciler({ namespaceIsolation: true }).reconcile("ns1/p"),
    isTerminal,
  );
  assert.deepEqual(world.delegateCalls, []);
  assert.deepEqual(world.recorded(), {});
});

Deno.test("a deleted pod's attachments that multus made are left to its teardown, even with the sandbox stopped", async () => {
  const world = new World([{ name: "a", interface: "net1" }], [DEFAULT_ENTRY, {
    name: "ns1/a",
    interface: "net1",
    dns: {},
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.pod.metadata.deletionTimestamp = "2026-11-28T00:00:00Z";
  world.sandboxReady = false;
  assert.deepEqual(await world.reconciler().reconcile("ns1/p"), DONE);
  assert.deepEqual(world.delegateCalls, []);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.equal(world.pod.metadata.holdsFinalizer, undefined);
});

Deno.test("a pod that is not running yet is left alone", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.pod.status = { phase: "Pending" };
  assert.deepEqual(await world.reconciler().reconcile("ns1/p"), waitFor("the pod to run"));
  assert.deepEqual(world.delegateCalls, []);
});

Deno.test("attachments are released with the last known sandbox when the runtime removed it first", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  await reconciler.reconcile("ns1/p");
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  world.pod.metadata.deletionTimestamp = "2026-11-28T00:00:00Z";
  world.sandboxRemoved = true;
  await reconciler.reconcile("ns1/p");
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.deepEqual(world.recorded(), {});
});

Deno.test("a failed ADD is undone with a DEL so no unrecorded link stays behind", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  // Like macvlan when its IPAM fails: the link is created, then the ADD reports an error.
  world.failDelegate = (req) => {
    if (req.command !== "ADD") return undefined;
    world.netns.set(req.ifname, "a");
    return "failed to allocate for range 0: no IP addresses available";
  };
  await assert.rejects(world.reconciler().reconcile("ns1/p"), (err) => {
    assert.match(String(err), /no IP addresses available/);
    return isRetried(err, ["delegate"]);
  });
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.deepEqual(world.attached(), {});
  assert.deepEqual(world.recorded(), {});
});

/**
 * Starts a pass that never finishes (the process "dies" inside it) and waits until the
 * world shows the step it dies after.
 */
async function dieDuring(world: World, reached: () => boolean): Promise<void> {
  void world.reconciler().reconcile("ns1/p").catch(() => {});
  for (let i = 0; i < 100 && !reached(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(reached(), "the pass never reached the point it was meant to die at");
  world.hangAfterAdd = false;
  world.hangAfterStatusWrite = false;
  world.hangAfterDel = false;
}

Deno.test("an ADD cut short is released after a restart even when the annotation dropped it", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netns.has("net1"));
  assert.equal(world.journal.pending("ns1/p").length, 1);

  world.setNetworks([]);
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), {});
  assert.deepEqual(world.recorded(), {});
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.deepEqual(world.journal.podKeys(), []);
  assert.deepEqual(world.releases, [true]);
});

Deno.test("an ADD cut short is released with its own config when its name moved to another network", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netns.has("net1"));

  world.setNetworks([{ name: "b", interface: "net1" }]);
  world.nads.delete("ns1/a"); // the journal holds a's config: the release does not need the NAD
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), { net1: "b" });
  assert.deepEqual(world.recorded(), { net1: "ns1/b" });
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a", "ADD net1 b"]);
  assert.deepEqual(world.journal.podKeys(), []);
});

Deno.test("an ADD whose status write landed is only cleared from the journal after a restart", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.hangAfterStatusWrite = true;
  await dieDuring(world, () => world.recorded().net1 !== undefined);
  assert.equal(world.journal.pending("ns1/p").length, 1);

  await world.converge(world.reconciler());
  assert.deepEqual(world.delegateCalls, ["ADD net1 a"]);
  assert.deepEqual(world.releases, []);
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.journal.podKeys(), []);
});

Deno.test("an ADD cut short is released when its pod is deleted before the restart", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netns.has("net1"));

  world.present = false;
  world.sandboxRemoved = true;
  await world.converge(world.reconciler());
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.deepEqual(world.journal.podKeys(), []);
});

Deno.test("a failed release of an unfinished ADD keeps it journaled and retries", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netns.has("net1"));

  world.setNetworks([]);
  let refusals = 1;
  world.failDelegate = (req) =>
    req.command === "DEL" && refusals-- > 0 ? "multus: connection refused" : undefined;
  const reconciler = world.reconciler();
  await assert.rejects(reconciler.reconcile("ns1/p"), /release unrecorded ns1\/a\/net1/);
  assert.equal(world.journal.pending("ns1/p").length, 1);
  await reconciler.reconcile("ns1/p");
  assert.deepEqual(world.attached(), {});
  assert.deepEqual(world.journal.podKeys(), []);
  assert.deepEqual(world.releases, [false, true]);
});

Deno.test("an unfinished ADD is released even when the networks annotation became invalid", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netns.has("net1"));

  world.pod.metadata.annotations![NETWORKS_ANNOTATION] = "[{not json";
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), {});
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.deepEqual(world.journal.podKeys(), []);
  assert.ok(
    world.events.some((e) => e.reason === "InvalidNetworkSelection"),
    JSON.stringify(world.events),
  );
});

Deno.test("with an unreadable network-status, unfinished ADDs stay journaled and nothing is sent", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netns.has("net1"));

  world.pod.metadata.annotations![NETWORK_STATUS_ANNOTATION] = "{garbage";
  await world.converge(world.reconciler());
  assert.deepEqual(world.delegateCalls, ["ADD net1 a"]);
  assert.equal(world.journal.pending("ns1/p").length, 1);
  assert.ok(
    world.events.some((e) => e.reason === "InvalidNetworkStatus"),
    JSON.stringify(world.events),
  );
});

Deno.test("an unfinished ADD of a pod that is gone is given up when multus refuses its DEL", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netns.has("net1"));

  world.present = false;
  world.sandboxRemoved = true;
  // What multus answers a DEL for a pod it cannot find any more.
  world.failDelegate = (req) =>
    req.command === "DEL" ? "unexpected CNI response status 400: pod not found" : undefined;
  await world.reconciler().reconcile("ns1/p");
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.deepEqual(world.journal.podKeys(), []);
  assert.deepEqual(world.releases, [false]);
});

Deno.test("a pod that leaves the API before its attachments were released is reported once, by name", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  await reconciler.reconcile("ns1/p");
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });

  // A force deletion: the object is gone without a terminating phase the agent could act in,
  // and multus refuses the DEL of a pod it cannot look up.
  world.present = false;
  world.sandboxRemoved = true;
  world.failDelegate = (req) =>
    req.command === "DEL" ? "unexpected CNI response status 400: pod not found" : undefined;
  reconciler.memory.podRemoved(structuredClone(world.pod));
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  const reports = world.warnings.filter((w) =>
    String(w.msg).startsWith("cannot release an attachment of a pod that no longer exists")
  );
  assert.equal(reports.length, 1, JSON.stringify(world.warnings));
  assert.deepEqual([reports[0]!.interfaceName, reports[0]!.network], ["net1", "ns1/a"]);
  assert.equal(reports[0]!.pod, "ns1/p");
  assert.deepEqual(world.journal.podKeys(), []);
  assert.deepEqual(world.journal.attachedPodKeys(), []);
});

Deno.test("a pod deleted gracefully, its attachments released, leaves without a warning", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  await reconciler.reconcile("ns1/p");
  world.pod.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
  // The release lands; the pod is gone before its status can say so.
  world.podGoneOnWrite = true;
  await reconciler.reconcile("ns1/p");
  assert.deepEqual(world.attached(), {});
  const lastKnown = structuredClone(world.pod);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  world.present = false;
  reconciler.memory.podRemoved(lastKnown);
  assert.deepEqual(world.warnings, []);
});

Deno.test("a swap cut short, then swapped back before the restart: the stale entry goes too", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  await world.converge(world.reconciler());
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });

  // a is removed, b is added, and the process dies before network-status says so.
  world.setNetworks([{ name: "b", interface: "net1" }]);
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netns.get("net1") === "b");
  assert.deepEqual(world.recorded(), { net1: "ns1/a" }); // stale: a is gone

  world.setNetworks([{ name: "a", interface: "net1" }]);
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  // Both halves of the swap are finished (DEL is idempotent), then a is attached afresh.
  assert.deepEqual(world.delegateCalls, [
    "ADD net1 a",
    "DEL net1 a",
    "ADD net1 b",
    "DEL net1 b",
    "DEL net1 a",
    "ADD net1 a",
  ]);
  assert.deepEqual(world.journal.podKeys(), []);
});

Deno.test("a removal cut short after its DEL, then asked for again before the restart: attached again", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), { net1: "a" });

  // The DEL lands; the process dies before network-status says so, which still shows net1.
  world.setNetworks([]);
  world.hangAfterDel = true;
  await dieDuring(world, () => !world.netns.has("net1"));
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });

  // The same attachment is asked for again before any agent runs: the stale entry must not
  // pass for it.
  world.setNetworks([{ name: "a", interface: "net1" }]);
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a", "DEL net1 a", "ADD net1 a"]);
  assert.deepEqual(world.journal.attached("ns1/p").length, 1);
});

Deno.test("a re-plug whose status write landed before the process died: only the journal is settled", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.converge(world.reconciler());

  // Remove and add on the same interface and network; the write records both, then the process dies.
  world.setNetworks([{ name: "a", interface: "net1", ips: ["10.1.0.2/24"] }]);
  world.hangAfterStatusWrite = true;
  await dieDuring(world, () => world.status().some((e) => e.ips?.[0] === "10.1.0.2"));
  assert.equal(world.journal.detaching("ns1/p").length, 1);

  await world.converge(world.reconciler());
  // The entry on net1 is the new ADD's own: the old half is forgotten, not sent again.
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a", "ADD net1 a"]);
  assert.deepEqual(world.netnsIps.get("net1"), ["10.1.0.2/24"]);
  assert.deepEqual(world.journal.detaching("ns1/p"), []);
  assert.deepEqual(world.journal.attached("ns1/p").length, 1);
});

Deno.test("a removal of an attachment the agent did not make, cut short, is finished after a restart", async () => {
  // net1 came with the pod (multus attached it at creation): no journal entry, the DEL is built
  // from the NAD.
  const world = new World([{ name: "a", interface: "net1" }], [DEFAULT_ENTRY, {
    name: "ns1/a",
    interface: "net1",
    ips: [],
    mac: "02:00:00:00:00:09",
    dns: {},
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.setNetworks([]);
  world.hangAfterDel = true;
  await dieDuring(world, () => !world.netns.has("net1"));

  world.setNetworks([{ name: "a", interface: "net1" }]);
  await world.converge(world.reconciler());
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.deepEqual(world.delegateCalls, ["DEL net1 a", "DEL net1 a", "ADD net1 a"]);
});

Deno.test("a re-plug cut short, then its old IPs asked for again: the old record is not taken for the new one", async () => {
  const world = new World([{ name: "a", interface: "net1", ips: ["10.1.0.1/24"] }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.converge(world.reconciler());

  world.setNetworks([{ name: "a", interface: "net1", ips: ["10.1.0.2/24"] }]);
  world.hangAfterAdd = true;
  await dieDuring(world, () => world.netnsIps.get("net1")?.[0] === "10.1.0.2/24");

  world.setNetworks([{ name: "a", interface: "net1", ips: ["10.1.0.1/24"] }]);
  await world.converge(world.reconciler());
  assert.deepEqual(world.netnsIps.get("net1"), ["10.1.0.1/24"]);
  assert.deepEqual(world.status().find((e) => e.interface === "net1")?.ips, ["10.1.0.1"]);
  assert.deepEqual(world.journal.podKeys(), []);
});

Deno.test("a thousand elements naming a missing NAD: one Event and few log lines per pass", async () => {
  const networks = Array.from({ length: 1000 }, (_, i) => ({ name: "x", interface: `n${i}` }));
  const world = new World(networks);
  const reconciler = world.reconciler();
  for (let pass = 1; pass <= 3; pass++) {
    const before = { events: world.events.length, warnings: world.warnings.length };
    // The pod waits for the NAD: each pass (an event or a resync) reports it once more.
    assert.deepEqual(
      await reconciler.reconcile("ns1/p"),
      waitFor("NetworkAttachmentDefinition ns1/x"),
    );
    const events = world.events.slice(before.events);
    assert.deepEqual(events.map((e) => e.reason), ["FailedAddingInterface"], `pass ${pass}`);
    assert.match(
      events[0]!.message,
      /^pod \[ns1\/p\]: 1000 interfaces could not be added: network x: NetworkAttachmentDefinition ns1\/x not found; .* \(n0, n1, n2, n3, n4, n5, n6, n7, … and 992 more\)$/,
    );
    const warnings = world.warnings.slice(before.warnings);
    assert.deepEqual(warnings.map((w) => [w.msg, w.count]), [["adding interfaces failed", 1000]]);
  }
  assert.deepEqual(world.delegateCalls, [], "nothing was sent for a missing NAD");
  assert.deepEqual(reconciler.memory.podsWaitingFor("ns1/x"), ["ns1/p"]);
});

Deno.test("a thousand failing elements: one Event, few log lines, and a short error per pass", async () => {
  const networks = Array.from({ length: 1000 }, (_, i) => ({ name: "x", interface: `n${i}` }));
  const world = new World(networks);
  world.nads.set("ns1/x", macvlan("x"));
  world.failDelegate = (req) => req.command === "ADD" ? "plugin failed" : undefined;
  const reconciler = world.reconciler();
  for (let pass = 1; pass <= 3; pass++) {
    const before = { events: world.events.length, warnings: world.warnings.length };
    await assert.rejects(reconciler.reconcile("ns1/p"), (err: Error) => {
      assert.ok(isRetried(err, ["delegate"]));
      assert.equal((err as ReconcileError).failures.length, 1000);
      assert.ok(err.message.length < 2_000, `an error message of ${err.message.length} chars`);
      assert.match(err.message, /1000 operation\(s\) failed: .*… and 992 more$/);
      return true;
    });
    const events = world.events.slice(before.events);
    assert.deepEqual(events.map((e) => e.reason), ["FailedAddingInterface"], `pass ${pass}`);
    assert.match(
      events[0]!.message,
      /^pod \[ns1\/p\]: 1000 interfaces could not be added: network x: plugin failed \(n0, n1, n2, n3, n4, n5, n6, n7, … and 992 more\)$/,
    );
    const warnings = world.warnings.slice(before.warnings);
    assert.deepEqual(warnings.map((w) => [w.msg, w.count]), [["adding interfaces failed", 1000]]);
  }
});

Deno.test("an invalid annotation is reported once per pass, though the pass plans twice", async () => {
  const world = new World([]);
  world.pod.metadata.annotations![NETWORKS_ANNOTATION] = "{not json";
  await assert.rejects(world.reconciler().reconcile("ns1/p"), isTerminal);
  assert.deepEqual(world.events.map((e) => e.reason), ["InvalidNetworkSelection"]);
  assert.equal(
    world.warnings.filter((w) => w.msg === "cannot plan: annotation is invalid").length,
    1,
  );
});

Deno.test("the pods waiting for a NAD are those whose latest plan needs it", async () => {
  const world = new World([{ name: "x", interface: "net1" }]);
  const reconciler = world.reconciler();
  assert.deepEqual(
    await reconciler.reconcile("ns1/p"),
    waitFor("NetworkAttachmentDefinition ns1/x"),
  );
  assert.deepEqual(reconciler.memory.podsWaitingFor("ns1/x"), ["ns1/p"]);
  world.setNetworks([{ name: "y", interface: "net1" }]);
  assert.deepEqual(
    await reconciler.reconcile("ns1/p"),
    waitFor("NetworkAttachmentDefinition ns1/y"),
  );
  assert.deepEqual(reconciler.memory.podsWaitingFor("ns1/x"), [], "no longer asked for");
  assert.deepEqual(reconciler.memory.podsWaitingFor("ns1/y"), ["ns1/p"]);
  // Waiting starts when the plan needs the NAD, even if the pass stops before acting on it
  // (here to poll for the pod sandbox, which no event announces).
  world.sandboxRemoved = true;
  world.setNetworks([{ name: "z", interface: "net1" }]);
  assert.deepEqual(await reconciler.reconcile("ns1/p"), requeue("a pod sandbox for uid uid-1"));
  assert.deepEqual(reconciler.memory.podsWaitingFor("ns1/z"), ["ns1/p"]);
  reconciler.memory.forget("ns1/p");
  assert.deepEqual(reconciler.memory.podsWaitingFor("ns1/z"), []);
});

Deno.test("the echo of the agent's own status write is no change; others' writes are", async () => {
  const world = new World([{ name: "a", interface: "net1" }, { name: "x", interface: "net2" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  const before = structuredClone(world.pod);
  // The partial pass: net1 attached, net2 waits for its NAD.
  assert.deepEqual(
    await reconciler.reconcile("ns1/p"),
    waitFor("NetworkAttachmentDefinition ns1/x"),
  );
  const after = structuredClone(world.pod);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.equal(reconciler.memory.changeMatters(before, after), false, "own write");
  const edited = structuredClone(after);
  edited.metadata.annotations![NETWORK_STATUS_ANNOTATION] = "[]";
  assert.equal(reconciler.memory.changeMatters(after, edited), true, "someone else's write");
});

Deno.test("a pod without a sandbox yet is polled, not failed", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.sandboxRemoved = true;
  const reconciler = world.reconciler();
  assert.deepEqual(await reconciler.reconcile("ns1/p"), requeue("a pod sandbox for uid uid-1"));
  assert.deepEqual(world.warnings, [], "waiting is no warning");
  world.sandboxRemoved = false;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
});

Deno.test("a NAD whose config cannot be used is bad input, and the pod waits for the NAD to change", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", "{not json");
  const reconciler = world.reconciler();
  await assert.rejects(reconciler.reconcile("ns1/p"), isTerminal);
  assert.deepEqual(
    reconciler.memory.podsWaitingFor("ns1/a"),
    ["ns1/p"],
    "its change wakes the pod",
  );
  world.nads.set("ns1/a", macvlan("a"));
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
});

Deno.test("an unreachable API server or runtime is a failure the policy retries", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const noApi = new Reconciler({
    ...world.deps(),
    pods: {
      cached: () => structuredClone(world.pod),
      fetch: () => Promise.reject(new Error("connection refused")),
    },
  });
  await assert.rejects(noApi.reconcile("ns1/p"), (err) => isRetried(err, ["api"]));
  const noRuntime = new Reconciler({
    ...world.deps(),
    sandboxes: { findSandbox: () => Promise.reject(new Error("CRI socket not found")) },
  });
  await assert.rejects(noRuntime.reconcile("ns1/p"), (err) => isRetried(err, ["cri"]));
});

Deno.test("a sandbox the runtime runs in the node's network gets nothing, whatever the pod spec says", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.sandboxHostNetwork = true;
  await assert.rejects(world.reconciler().reconcile("ns1/p"), (err: Error) => {
    assert.ok(isTerminal(err));
    assert.match(err.message, /sandbox sb1 of pod uid uid-1 in the node's network namespace/);
    return true;
  });
  assert.deepEqual(world.delegateCalls, [], "nothing sent");
  assert.deepEqual(world.events.map((e) => `${e.reason}: ${e.message}`), [
    "InterfaceAddRejected: pod [ns1/p]: will not add interface to host networked pod",
  ]);
  assert.deepEqual(world.journal.podKeys(), []);
});

// --- the journal of attachments, the sandbox replaced, and the finalizer ------------------

Deno.test("an attachment of a sandbox the runtime replaced is released there, the new one left alone", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.reconciler().reconcile("ns1/p");
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.equal(world.journal.attached("ns1/p").length, 1, "recorded, and kept as attached");
  assert.equal(world.pod.metadata.holdsFinalizer, true, "the finalizer came with the status write");

  // The sandbox dies; the kubelet makes a new one, and multus plugs the annotation's networks
  // into it and rewrites network-status for it.
  world.sandboxId = "sb2";
  const status = world.pod.metadata.annotations![NETWORK_STATUS_ANNOTATION]!;
  world.pod.metadata.annotations![NETWORK_STATUS_ANNOTATION] = status.replace(
    "02:00:00:00:00:01",
    "02:00:00:00:00:02",
  );
  const before = world.delegateRequests.length;
  await world.reconciler().reconcile("ns1/p");
  const sent = world.delegateRequests.slice(before);
  assert.deepEqual(
    sent.map((r) => `${r.command} ${r.ifname} ${r.containerId} ${r.netns}`),
    ["DEL net1 sb1 /var/run/netns/sb1"],
    "one DEL, of the old sandbox's own request",
  );
  assert.deepEqual(world.recorded(), { net1: "ns1/a" }, "the new sandbox's entry stays");
  assert.deepEqual(world.journal.attached("ns1/p"), []);
  assert.equal(world.pod.metadata.holdsFinalizer, undefined, "nothing of the agent's is left");
  assert.deepEqual(world.events, [
    {
      type: "Normal",
      reason: "AddedInterface",
      message: "pod [ns1/p]: added interface net1 to network: a",
    },
  ]);
});

Deno.test("the finalizer is on while the pod holds the agent's attachments, and goes with them", async () => {
  const world = new World([{ name: "a", interface: "net1" }, { name: "a", interface: "net2" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.reconciler().reconcile("ns1/p");
  assert.equal(world.pod.metadata.holdsFinalizer, true);
  world.setNetworks([{ name: "a", interface: "net2" }]);
  await world.reconciler().reconcile("ns1/p");
  assert.equal(world.pod.metadata.holdsFinalizer, true, "net2 is still the agent's");
  world.setNetworks([]);
  await world.reconciler().reconcile("ns1/p");
  assert.equal(world.pod.metadata.holdsFinalizer, undefined);
  assert.deepEqual(world.journal.attached("ns1/p"), []);
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "ADD net2 a", "DEL net1 a", "DEL net2 a"]);
});

Deno.test("a deleted pod keeps the agent's attachments until its sandbox stops, then they go with the request that made them", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.reconciler().reconcile("ns1/p");
  const made = world.delegateRequests.at(-1)!;
  world.pod.metadata.deletionTimestamp = new Date(world.now + 30_000).toISOString();
  const reconciler = world.reconciler();
  const waiting = await reconciler.reconcile("ns1/p");
  assert.deepEqual(waiting, { kind: "requeueAfter", ms: 1_000 });
  assert.deepEqual(
    world.delegateCalls,
    ["ADD net1 a"],
    "the pod's networks serve it while it stops",
  );

  world.nads.delete("ns1/a"); // even with its NAD gone
  world.sandboxReady = false;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  const del = world.delegateRequests.at(-1)!;
  assert.equal(del.command, "DEL");
  assert.deepEqual(del.config, made.config, "the DEL carries the ADD's own config");
  assert.equal(del.containerId, "sb1");
  assert.deepEqual(world.recorded(), {});
  assert.equal(world.pod.metadata.holdsFinalizer, undefined, "the deletion can finish");
  assert.deepEqual(world.journal.attached("ns1/p"), []);
});

Deno.test("a deleted pod whose release keeps failing loses the finalizer two minutes past its deadline", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.reconciler().reconcile("ns1/p");
  world.pod.metadata.deletionTimestamp = new Date(world.now).toISOString();
  world.sandboxReady = false;
  world.failDelegate = (req) => req.command === "DEL" ? "multus: plugin crashed" : undefined;
  await assert.rejects(world.reconciler().reconcile("ns1/p"), ReconcileError);
  assert.equal(world.pod.metadata.holdsFinalizer, true, "still trying");
  world.now += 121_000;
  assert.deepEqual(await world.reconciler().reconcile("ns1/p"), DONE);
  assert.equal(world.pod.metadata.holdsFinalizer, undefined, "given up");
  assert.deepEqual(world.journal.attached("ns1/p"), [], "and forgotten");
  assert.ok(
    world.warnings.some((w) =>
      String(w.msg).startsWith("gave up releasing attachments of a pod being deleted") &&
      JSON.stringify(w.attachments) === '["ns1/a/net1"]'
    ),
    JSON.stringify(world.warnings),
  );
});

Deno.test("a terminating pod the agent never plugged into keeps every interface, while it runs and after", async () => {
  // net1 came with the pod (multus attached it at creation), or from a controller before this
  // agent: nothing in the journal, so nothing of the agent's to release.
  const world = new World([{ name: "a", interface: "net1" }], [DEFAULT_ENTRY, {
    name: "ns1/a",
    interface: "net1",
    dns: {},
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.pod.metadata.deletionTimestamp = new Date(world.now + 30_000).toISOString();
  const reconciler = world.reconciler();
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  world.sandboxReady = false;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  world.now += 60_000;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.delegateCalls, []);
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.equal(world.pod.metadata.holdsFinalizer, undefined);
  assert.deepEqual(world.warnings, []);
});

/** `world`'s ports, counting the fresh reads and sandbox lookups. */
function counted(world: World): { deps: ReconcilerDeps; reads: number[]; lookups: number[] } {
  const deps = world.deps();
  const reads: number[] = [];
  const lookups: number[] = [];
  const { fetch } = deps.pods;
  const { findSandbox } = deps.sandboxes;
  deps.pods = { ...deps.pods, fetch: (ns, name) => (reads.push(1), fetch(ns, name)) };
  deps.sandboxes = { findSandbox: (uid) => (lookups.push(1), findSandbox(uid)) };
  return { deps, reads, lookups };
}

Deno.test("the echo of the agent's own status write needs no pass; a new sandbox's network-status does", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const { deps, reads, lookups } = counted(world);
  const reconciler = new Reconciler(deps);
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.equal(reads.length, 1);
  // The resync the echo brings: nothing to read, nothing to look up.
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.equal(reads.length, 1);
  assert.equal(lookups.length, 1);
  // The kubelet replaced the sandbox and multus described the new one: the pass looks again.
  world.sandboxId = "sb2";
  world.netns.clear();
  world.pod.metadata.annotations![NETWORK_STATUS_ANNOTATION] = formatNetworkStatus([DEFAULT_ENTRY]);
  await world.converge(reconciler);
  assert.ok(reads.length > 1);
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a", "ADD net1 a"]);
});

Deno.test("a status write re-read after a conflict marks nothing as settled", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const { deps, reads } = counted(world);
  const update = deps.status.update;
  let raced = false;
  deps.status = {
    update(namespace, name, uid, mutate) {
      if (!raced) {
        // Someone else's entry lands between the pass's read and its write.
        raced = true;
        world.pod.metadata.annotations![NETWORK_STATUS_ANNOTATION] = formatNetworkStatus([
          DEFAULT_ENTRY,
          { name: "other/tool", interface: "tool0", dns: {} },
        ]);
      }
      return update(namespace, name, uid, mutate);
    },
  };
  const reconciler = new Reconciler(deps);
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.equal(reads.length, 1);
  await reconciler.reconcile("ns1/p");
  assert.equal(reads.length, 2, "the network-status the write landed on was not the settled one");
});

// The agent's condition (NETWORKS_READY_CONDITION), as the passes leave it.

Deno.test("condition: True once every element is attached, and no write when it stays so", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  const condition = world.pod.status?.networksCondition;
  assert.equal(condition?.status, "True");
  assert.equal(condition?.reason, "Attached");
  assert.equal(condition?.message, "pod [ns1/p]: 1 of 1 networks attached: net1 to network: a");
  assert.equal(condition?.lastTransitionTime, "2026-12-01T12:00:00Z");
  assert.equal(world.conditionWrites, 2, "Attaching before the ADD, then Attached");
  world.now += 60_000;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(await world.reconciler().reconcile("ns1/p"), DONE);
  assert.equal(world.conditionWrites, 2);
});

Deno.test("condition: a pod whose annotation multus already honoured gets True without operations", async () => {
  const world = new World([{ name: "a", interface: "net1" }], [DEFAULT_ENTRY, {
    name: "ns1/a",
    interface: "net1",
    dns: {},
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  assert.deepEqual(await world.reconciler().reconcile("ns1/p"), DONE);
  assert.deepEqual(world.delegateCalls, []);
  assert.equal(world.pod.status?.networksCondition?.status, "True");
});

Deno.test("condition: untouched on a pod that never asked for networks", async () => {
  const world = new World([]);
  delete world.pod.metadata.annotations![NETWORKS_ANNOTATION];
  assert.deepEqual(await world.reconciler().reconcile("ns1/p"), DONE);
  const empty = new World([]);
  assert.deepEqual(await empty.reconciler().reconcile("ns1/p"), DONE);
  assert.equal(world.pod.status?.networksCondition, undefined);
  assert.equal(empty.pod.status?.networksCondition, undefined);
  assert.equal(world.conditionWrites + empty.conditionWrites, 0);
});

Deno.test("condition: False NetworkNotFound with the Event's words, then True when the NAD appears", async () => {
  const world = new World([{ name: "late", interface: "net1" }]);
  const reconciler = world.reconciler();
  assert.deepEqual(
    await reconciler.reconcile("ns1/p"),
    waitFor("NetworkAttachmentDefinition ns1/late"),
  );
  const missing = world.pod.status?.networksCondition;
  assert.equal(missing?.status, "False");
  assert.equal(missing?.reason, "NetworkNotFound");
  const event = world.events.find((e) => e.reason === "FailedAddingInterface");
  assert.equal(missing?.message, event?.message);
  assert.match(
    missing!.message,
    /net1 to network: late: NetworkAttachmentDefinition ns1\/late not found/,
  );
  const failedAt = missing?.lastTransitionTime;
  world.now += 5_000;
  world.nads.set("ns1/late", macvlan("late"));
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  const ready = world.pod.status?.networksCondition;
  assert.equal(ready?.status, "True");
  assert.notEqual(ready?.lastTransitionTime, failedAt);
  assert.equal(ready?.lastTransitionTime, "2026-12-01T12:00:05Z");
});

Deno.test("condition: lastTransitionTime stays while the status does not change", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.failDelegate = (req) => req.command === "ADD" ? "plugin says no" : undefined;
  const reconciler = world.reconciler();
  await assert.rejects(reconciler.reconcile("ns1/p"), (err) => isRetried(err, ["delegate"]));
  const first = world.pod.status?.networksCondition;
  assert.equal(first?.reason, "AttachFailed");
  assert.match(first!.message, /failed adding interface net1 to network: a: plugin says no/);
  world.now += 10_000;
  world.failDelegate = (req) => req.command === "ADD" ? "plugin still says no" : undefined;
  await assert.rejects(reconciler.reconcile("ns1/p"), (err) => isRetried(err, ["delegate"]));
  const second = world.pod.status?.networksCondition;
  assert.match(second!.message, /plugin still says no/);
  assert.equal(second?.lastTransitionTime, first?.lastTransitionTime);
  // Attaching, AttachFailed; the retry finds the condition False already and announces nothing.
  assert.equal(world.conditionWrites, 3);
});

Deno.test("condition: a failed removal is DetachFailed, and the annotation emptied ends True", async () => {
  const world = new World([], [DEFAULT_ENTRY, { name: "ns1/a", interface: "net1", dns: {} }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.pod.status = {
    phase: "Running",
    networksCondition: {
      status: "True",
      reason: "Attached",
      message: "pod [ns1/p]: 1 of 1 networks attached: net1 to network: a",
      lastTransitionTime: "2026-12-01T11:00:00Z",
    },
  };
  world.failDelegate = (req) => req.command === "DEL" ? "DEL refused" : undefined;
  const reconciler = world.reconciler();
  await assert.rejects(reconciler.reconcile("ns1/p"), (err) => isRetried(err, ["delegate"]));
  const failed = world.pod.status?.networksCondition;
  assert.equal(failed?.status, "False");
  assert.equal(failed?.reason, "DetachFailed");
  assert.match(failed!.message, /failed removing interface net1 from network: a: DEL refused/);
  world.failDelegate = undefined;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.equal(world.pod.status?.networksCondition?.status, "True");
  assert.equal(world.pod.status?.networksCondition?.message, "pod [ns1/p]: no networks requested");
});

Deno.test("condition: an invalid annotation and a duplicate interface are InvalidNetworkSelection", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.pod.metadata.annotations![NETWORKS_ANNOTATION] = '[{"name": "a", "mac": "zz"}]';
  await assert.rejects(world.reconciler().reconcile("ns1/p"), isTerminal);
  const invalid = world.pod.status?.networksCondition;
  assert.equal(invalid?.reason, "InvalidNetworkSelection");
  assert.equal(invalid?.message, world.events[0]!.message);

  const dup = new World([{ name: "a", interface: "net1" }, { name: "b", interface: "net1" }]);
  dup.nads.set("ns1/a", macvlan("a"));
  dup.nads.set("ns1/b", macvlan("b"));
  await assert.rejects(dup.reconciler().reconcile("ns1/p"), isTerminal);
  const refused = dup.pod.status?.networksCondition;
  assert.equal(refused?.status, "False");
  assert.equal(refused?.reason, "InvalidNetworkSelection");
  assert.match(refused!.message, /net1/);
});

Deno.test("condition: Pending while the pod sandbox is not ready; none in a dry run", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.sandboxReady = false;
  assert.deepEqual(
    await world.reconciler().reconcile("ns1/p"),
    requeue("pod sandbox sb1 to be ready"),
  );
  const pending = world.pod.status?.networksCondition;
  assert.equal(pending?.reason, "Pending");
  assert.equal(
    pending?.message,
    "pod [ns1/p]: waiting for the pod sandbox to attach net1 to network: a",
  );

  const dry = new World([{ name: "a", interface: "net1" }]);
  dry.nads.set("ns1/a", macvlan("a"));
  assert.deepEqual(await dry.reconciler({ dryRun: true }).reconcile("ns1/p"), DONE);
  assert.equal(dry.pod.status?.networksCondition, undefined);
});

Deno.test("condition: a pod whose readiness gate is the condition gets it without asking for networks", async () => {
  const world = new World([]);
  delete world.pod.metadata.annotations![NETWORKS_ANNOTATION];
  world.pod.spec.networksGate = true;
  assert.deepEqual(await world.reconciler().reconcile("ns1/p"), DONE);
  assert.equal(world.pod.status?.networksCondition?.status, "True");
  assert.equal(world.pod.status?.networksCondition?.message, "pod [ns1/p]: no networks requested");
});

// --- the lifecycle contract: what a pass does before its operations and at a pod's end ----

Deno.test("contract: the finalizer and an Attaching condition are on the pod before its first ADD is sent", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  assert.deepEqual(await world.converge(world.reconciler()), 1);
  assert.deepEqual(world.atSend, [
    { request: "ADD net1", finalizer: true, condition: "False Attaching" },
  ]);
  assert.equal(world.pod.status?.networksCondition?.status, "True");
  // A later ADD finds the finalizer there; the condition says what is under way again.
  world.setNetworks([{ name: "a", interface: "net1" }, { name: "a", interface: "net2" }]);
  await world.converge(world.reconciler());
  assert.deepEqual(world.atSend.at(-1), {
    request: "ADD net2",
    finalizer: true,
    condition: "False Attaching",
  });
  assert.equal(world.pod.status?.networksCondition?.status, "True");
});

Deno.test("contract: the Attaching condition names every interface the pass changes, and a removal alone is Detaching", async () => {
  const world = new World([{ name: "a", interface: "net1" }, { name: "b", interface: "net2" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  const messages: string[] = [];
  const deps = world.deps();
  const update = deps.status.update;
  deps.status = {
    update: (ns, name, uid, mutate) =>
      update(ns, name, uid, (current) => {
        const next = mutate(current);
        if (next.condition && next.condition !== current.condition) {
          messages.push(`${next.condition.reason}: ${next.condition.message}`);
        }
        return next;
      }),
  };
  await world.converge(new Reconciler(deps));
  world.setNetworks([{ name: "b", interface: "net2" }]);
  await world.converge(new Reconciler(deps));
  assert.deepEqual(messages, [
    "Attaching: pod [ns1/p]: attaching net1 to network: a, attaching net2 to network: b",
    "Attached: pod [ns1/p]: 2 of 2 networks attached: net1 to network: a, net2 to network: b",
    "Detaching: pod [ns1/p]: detaching net1 from network: a",
    "Attached: pod [ns1/p]: 1 of 1 networks attached: net2 to network: b",
  ]);
  assert.deepEqual(world.atSend.map((s) => `${s.request} ${s.condition}`), [
    "ADD net1 False Attaching",
    "ADD net2 False Attaching",
    "DEL net1 False Detaching",
  ]);
});

Deno.test("contract: a pod whose deletion begins before its first ADD is sent gets no ADD and no finalizer", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  // The deletion lands between the pass's fresh read and its first write.
  world.afterFetch = () => {
    world.pod.metadata.deletionTimestamp = new Date(world.now + 30_000).toISOString();
    world.afterFetch = undefined;
  };
  const reconciler = world.reconciler();
  assert.deepEqual(await reconciler.reconcile("ns1/p"), waitFor("the pod's deletion"));
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  world.sandboxReady = false;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.delegateCalls, []);
  assert.equal(world.pod.metadata.holdsFinalizer, undefined);
  assert.deepEqual(world.journal.podKeys(), []);
  assert.deepEqual(world.warnings, []);
});

Deno.test("contract: a pod deleted while its first ADD runs is held until the agent released that attachment, once", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.failDelegate = (req) => {
    if (req.command === "ADD") {
      world.pod.metadata.deletionTimestamp = new Date(world.now + 30_000).toISOString();
    }
    return undefined;
  };
  const reconciler = world.reconciler();
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.equal(world.pod.metadata.holdsFinalizer, true, "on before the ADD, so it holds the pod");
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  // The container runs on through its grace period: its interface stays.
  assert.deepEqual(await reconciler.reconcile("ns1/p"), { kind: "requeueAfter", ms: 1_000 });
  assert.deepEqual(world.attached(), { net1: "a" });
  world.sandboxReady = false;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.equal(world.pod.metadata.holdsFinalizer, undefined, "the deletion can finish");
  assert.deepEqual(world.journal.podKeys(), []);
  assert.deepEqual(world.journal.attachedPodKeys(), []);
  assert.deepEqual(world.warnings, []);
});

Deno.test("contract: once the sandbox stops, the agent releases what it made, once each, and never what multus made", async () => {
  // net0 came with the pod; the agent hot-plugs net1 beside it.
  const world = new World([{ name: "a", interface: "net0" }], [DEFAULT_ENTRY, {
    name: "ns1/a",
    interface: "net0",
    dns: {},
  }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.setNetworks([{ name: "a", interface: "net0" }, { name: "a", interface: "net1" }]);
  await world.converge(world.reconciler());
  assert.deepEqual(world.recorded(), { net0: "ns1/a", net1: "ns1/a" });
  world.pod.metadata.deletionTimestamp = new Date(world.now + 30_000).toISOString();
  const reconciler = world.reconciler();
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await reconciler.reconcile("ns1/p"), { kind: "requeueAfter", ms: 1_000 });
  }
  assert.deepEqual(world.attached(), { net0: "a", net1: "a" }, "all serve the pod while it runs");
  world.sandboxReady = false;
  for (let i = 0; i < 3; i++) assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.deepEqual(world.recorded(), { net0: "ns1/a" }, "multus' own stays for its teardown");
  assert.equal(world.pod.metadata.holdsFinalizer, undefined);
  assert.deepEqual(world.events.map((e) => e.reason), ["AddedInterface", "RemovedInterface"]);
});

Deno.test("contract: a grace period that ends with the sandbox still up releases the agent's attachments", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  await world.converge(world.reconciler());
  world.pod.metadata.deletionTimestamp = new Date(world.now + 30_000).toISOString();
  const reconciler = world.reconciler();
  assert.deepEqual(await reconciler.reconcile("ns1/p"), { kind: "requeueAfter", ms: 1_000 });
  world.now += 31_000;
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.delegateCalls, ["ADD net1 a", "DEL net1 a"]);
  assert.equal(world.pod.metadata.holdsFinalizer, undefined);
});

Deno.test("log levels: a conflict and an unreachable API server are retried quietly; a refused write is an error", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.failRecordingWrites = 1;
  await world.converge(world.reconciler());
  world.setNetworks([]);
  world.failStatusWrites = 1;
  await world.converge(world.reconciler());
  assert.deepEqual(world.recorded(), {});
  assert.deepEqual(world.warnings.filter((w) => w.level === "error"), []);

  world.setNetworks([{ name: "a", interface: "net1" }]);
  const deps = world.deps();
  deps.status = {
    update: () =>
      Promise.reject(
        new StatusWriteError("PUT pods/p/status: HTTP 403 Forbidden", "refused"),
      ),
  };
  await assert.rejects(new Reconciler(deps).reconcile("ns1/p"), ReconcileError);
  const errors = world.warnings.filter((w) => w.level === "error");
  assert.equal(errors.length, 1, JSON.stringify(world.warnings));
  assert.match(JSON.stringify(errors[0]), /403 Forbidden/);
});

Deno.test("error policy: a pass that failed only on conflicts is retried quietly, any other failure is not", () => {
  const conflict = { kind: "conflict" as const, text: "network-status write failed: 409" };
  const delegate = { kind: "delegate" as const, text: "add ns1/a/net1: plugin failed" };
  assert.deepEqual(errorPolicy("ns1/p", new ReconcileError("ns1/p", [conflict])), {
    action: "backoff",
    quiet: true,
  });
  assert.deepEqual(errorPolicy("ns1/p", new ReconcileError("ns1/p", [conflict, delegate])), {
    action: "backoff",
  });
});

Deno.test("a change that leaves two networks with one multus name in a new sandbox plugs, and warns once", async () => {
  // networks[1] names no interface: multus would call it net2 in a new sandbox, the name
  // networks[0] asks for, and fail that sandbox. The running one takes both.
  const world = new World([{ name: "a", interface: "net2" }, { name: "b" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  const reconciler = world.reconciler();
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.deepEqual(world.recorded(), { net1: "ns1/b", net2: "ns1/a" });
  const clashes = world.events.filter((e) => e.reason === "SandboxInterfaceClash");
  assert.equal(clashes.length, 1, JSON.stringify(world.events));
  assert.equal(clashes[0]!.type, "Warning");
  assert.equal(
    clashes[0]!.message,
    'pod [ns1/p]: the networks annotation works in the running sandbox, but multus would fail the next one (made when the kubelet replaces a dead sandbox) and the pod could not start again: networks[1] (b) names no interface, so multus calls it net2 in a new sandbox, the name networks[0] (a) asks for: give networks[1] an "interface", or rename networks[0]\'s',
  );
  // A pass with nothing to change says nothing more.
  assert.deepEqual(await reconciler.reconcile("ns1/p"), DONE);
  assert.equal(world.events.filter((e) => e.reason === "SandboxInterfaceClash").length, 1);
});

Deno.test("an unnamed element whose multus name nobody else asks for draws no clash warning", async () => {
  const world = new World([{ name: "b" }, { name: "a", interface: "net2" }]);
  world.nads.set("ns1/a", macvlan("a"));
  world.nads.set("ns1/b", macvlan("b"));
  assert.deepEqual(await world.reconciler().reconcile("ns1/p"), DONE);
  assert.deepEqual(world.recorded(), { net1: "ns1/b", net2: "ns1/a" });
  assert.deepEqual(world.events.map((e) => e.reason), ["AddedInterface"]);
});
