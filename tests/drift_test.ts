/**
 * Drift: the planner's repairs (`core/drift.ts`), what a pass does with an attachment the drift
 * check found missing or altered (repair, or report when repair is off), and the drift check
 * itself (`reconcile/drift_check.ts`) over stand-ins for multus, the runtime and the caches.
 */
import assert from "node:assert/strict";
import { DEFAULT_ENTRY, MemoryWorld as World } from "./support/memory_world.ts";
import { withRepairs } from "../lib/core/drift.ts";
import { planPod } from "../lib/core/plan.ts";
import { parseNetworkSelection } from "../lib/core/selection.ts";
import { checkError, DriftCheck } from "../lib/reconcile/drift_check.ts";
import { PodMemory } from "../lib/reconcile/pod_memory.ts";
import { MemoryJournal } from "../lib/journal/memory_journal.ts";
import { Logger } from "../lib/base/log.ts";
import type { DelegateRequest, DriftCheckResult } from "../lib/reconcile/ports.ts";
import type { PodSnapshot } from "../lib/core/pod.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../lib/core/annotations.ts";
import type { NetworkStatus } from "../lib/core/status.ts";

function macvlan(name: string, cniVersion = "0.4.0"): string {
  return JSON.stringify({ cniVersion, name, type: "macvlan", master: "eth9" });
}

const NET1: NetworkStatus = { name: "ns1/a", interface: "net1", mac: "02:00:00:00:00:01", dns: {} };
const NET2: NetworkStatus = { name: "ns1/b", interface: "net2", dns: {} };
const A1 = { namespace: "ns1", network: "a", interface: "net1" };

Deno.test("drift: the planner repairs a drifted attachment that is asked for and recorded, and nothing else", () => {
  const view = { namespace: "ns1", name: "p", uid: "u1", hostNetwork: false, deleting: false };
  const desired = parseNetworkSelection(
    JSON.stringify([{ name: "a", interface: "net1", mac: NET1.mac }, {
      name: "b",
      interface: "net2",
    }]),
    "ns1",
  );
  const entries = [DEFAULT_ENTRY, NET1, NET2];
  const plan = planPod(view, desired, entries);
  assert.deepEqual(plan.operations, []);
  const repaired = withRepairs(plan, [{ id: A1, found: "Link not found" }], entries, "ns1");
  assert.deepEqual(
    repaired.operations.map((op) => `${op.kind} ${op.id.interface} ${op.reason}`),
    ["remove net1 drifted", "add net1 repair"],
  );
  const add = repaired.operations[1]!;
  assert.equal(add.kind === "add" && add.element.mac, NET1.mac, "the same request: its MAC");
  assert.equal(add.kind === "add" && add.found, "Link not found");
  // One no longer recorded, or no longer asked for, is not repaired.
  const gone = { namespace: "ns1", network: "c", interface: "net3" };
  assert.deepEqual(withRepairs(plan, [{ id: gone, found: "x" }], entries, "ns1").operations, []);
  // One the plan already changes is left to the plan.
  const swapped = planPod(view, parseNetworkSelection('[{"name":"b","interface":"net1"}]', "ns1"), [
    DEFAULT_ENTRY,
    NET1,
  ]);
  const before = swapped.operations.map((op) => `${op.kind} ${op.id.network}/${op.id.interface}`);
  const after = withRepairs(swapped, [{ id: A1, found: "x" }], [DEFAULT_ENTRY, NET1], "ns1")
    .operations.map((op) => `${op.kind} ${op.id.network}/${op.id.interface}`);
  assert.deepEqual(after, before);
});

Deno.test("drift: a pass repairs a drifted attachment with the request that made it, and says what it found", async () => {
  const world = new World([{ name: "a", interface: "net1", ips: ["10.1.0.5/24"] }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  await world.converge(reconciler);
  const made = world.delegateRequests.at(-1)!;
  world.delegateCalls = [];
  world.events = [];
  // The link was deleted inside the pod; the check found it.
  world.netns.delete("net1");
  reconciler.memory.driftFound("ns1/p", { id: A1, found: "failed to find interface net1" });
  await world.converge(reconciler);
  assert.deepEqual(world.delegateCalls, ["DEL net1 a", "ADD net1 a"]);
  assert.deepEqual(world.delegateRequests.at(-1), made);
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.deepEqual(world.events.map((e) => e.reason), ["RepairedInterface"]);
  assert.match(
    world.events[0]!.message,
    /net1 of network: a \(found: failed to find interface net1\)/,
  );
  assert.deepEqual(reconciler.memory.drifts("ns1/p"), [], "repaired: the drift is over");
  assert.equal(world.pod.status?.networksCondition?.status, "True");
  assert.deepEqual(world.journal.attached("ns1/p").map((a) => a.request), [made]);
});

Deno.test("drift: a drift seen in another network-status than the pod's now is not acted on", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  await world.converge(reconciler);
  world.delegateCalls = [];
  // Checked while a pass was changing the pod: what it saw may have been that pass.
  reconciler.memory.driftFound("ns1/p", { id: A1, found: "Link not found", seenIn: "[]" });
  await world.converge(reconciler);
  assert.deepEqual(world.delegateCalls, []);
  assert.equal(world.pod.status?.networksCondition?.status, "True");
});

Deno.test("drift: a failed release of a drifted attachment does not hold back its repair", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler();
  await world.converge(reconciler);
  world.delegateCalls = [];
  world.netns.delete("net1");
  world.failDelegate = (req) => req.command === "DEL" ? "netns gone" : undefined;
  reconciler.memory.driftFound("ns1/p", { id: A1, found: "Link not found" });
  await world.converge(reconciler);
  assert.deepEqual(world.delegateCalls, ["DEL net1 a", "ADD net1 a"]);
  assert.deepEqual(world.attached(), { net1: "a" });
  assert.deepEqual(world.recorded(), { net1: "ns1/a" });
  assert.equal(world.journal.attached("ns1/p").length, 1);
});

Deno.test("drift: with repair off the pod's condition says Drifted, an Event names it, and nothing is sent", async () => {
  const world = new World([{ name: "a", interface: "net1" }]);
  world.nads.set("ns1/a", macvlan("a"));
  const reconciler = world.reconciler({ driftRepair: false });
  await world.converge(reconciler);
  world.delegateCalls = [];
  world.events = [];
  reconciler.memory.driftFound("ns1/p", { id: A1, found: "Link not found" });
  await world.converge(reconciler);
  assert.deepEqual(world.delegateCalls, []);
  const condition = world.pod.status?.networksCondition;
  assert.equal(condition?.status, "False");
  assert.equal(condition?.reason, "Drifted");
  assert.match(condition?.message ?? "", /net1 of network: a: Link not found; repair is off/);
  assert.deepEqual(world.events.map((e) => `${e.type} ${e.reason}`), ["Warning InterfaceDrifted"]);
  // The check finds it as recorded again (someone fixed it): the condition turns True.
  reconciler.memory.driftCleared("ns1/p", "ns1/a/net1");
  await world.converge(reconciler);
  assert.equal(world.pod.status?.networksCondition?.status, "True");
});

/** A pod of the node with `status` as its network-status. */
function runningPod(name: string, status: NetworkStatus[]): PodSnapshot {
  return {
    metadata: {
      namespace: "ns1",
      name,
      uid: `uid-${name}`,
      annotations: {
        [NETWORKS_ANNOTATION]: "[]",
        [NETWORK_STATUS_ANNOTATION]: JSON.stringify(status),
      },
    },
    spec: {},
    status: { phase: "Running" },
  } as PodSnapshot;
}

/** An error as the multus client throws it for an answer that is not 200. */
function answered(body: string): Error {
  return Object.assign(new Error(`unexpected CNI response status 500: '${body}'`), {
    status: 500,
    body,
  });
}

function checker(
  pods: PodSnapshot[],
  answer: (req: DelegateRequest) => Error | undefined,
  nads: Record<string, string>,
) {
  const memory = new PodMemory();
  const queued: string[] = [];
  const results: DriftCheckResult[] = [];
  const requests: DelegateRequest[] = [];
  const lines: Record<string, unknown>[] = [];
  // While a round runs, the pods it lists; the next listing (the next round's) ends the run.
  let listing: (() => readonly PodSnapshot[]) | undefined;
  const check = new DriftCheck({
    pods: () => listing?.() ?? [],
    nads: {
      get: (namespace, name) => {
        const config = nads[`${namespace}/${name}`];
        return config === undefined ? undefined : { namespace, name, config };
      },
    },
    sandboxes: {
      findSandbox: (uid) =>
        Promise.resolve({
          id: `sb-${uid}`,
          netnsPath: `/run/netns/${uid}`,
          ready: true,
          createdAt: 1,
        }),
    },
    delegator: {
      delegate(req) {
        requests.push(req);
        const err = answer(req);
        return err ? Promise.reject(err) : Promise.resolve(undefined);
      },
    },
    journal: new MemoryJournal(),
    memory,
    enqueue: (key) => queued.push(key),
    log: new Logger({ level: "debug", sink: (l) => lines.push(JSON.parse(l)) }),
    observer: { driftCheck: (r) => results.push(r) },
    // Short, so that a round's pauses between checks take no time worth waiting for.
    intervalMs: 4,
  });
  /**
   * One round of {@linkcode DriftCheck.run}, as the agent runs it: every attachment of every
   * pod checked once; the run stops when it lists the pods for the next round.
   */
  async function round(): Promise<void> {
    const stop = new AbortController();
    let listed = false;
    listing = () => {
      if (!listed) {
        listed = true;
        return pods;
      }
      stop.abort();
      return [];
    };
    try {
      await check.run(stop.signal);
    } finally {
      listing = undefined;
    }
  }
  return { round, memory, queued, results, requests, lines };
}

Deno.test("drift check: every non-default attachment is CHECKed with its network's config; a drift is remembered and queues the pod once", async () => {
  const pod = runningPod("p", [DEFAULT_ENTRY, NET1, NET2]);
  let broken = true;
  const w = checker(
    [pod],
    (req) =>
      req.ifname === "net1" && broken ? answered("failed to find interface net1") : undefined,
    { "ns1/a": macvlan("a"), "ns1/b": macvlan("b") },
  );
  await w.round();
  assert.deepEqual(w.requests.map((r) => `${r.command} ${r.ifname} ${r.containerId}`), [
    "CHECK net1 sb-uid-p",
    "CHECK net2 sb-uid-p",
  ]);
  assert.deepEqual(w.results, ["drifted", "ok"]);
  assert.deepEqual(w.queued, ["ns1/p"]);
  assert.deepEqual(w.memory.drifts("ns1/p"), [{
    id: A1,
    found: "failed to find interface net1",
    seenIn: pod.metadata.annotations![NETWORK_STATUS_ANNOTATION],
  }]);
  // The same finding again queues nothing more; once it checks out, the pod is queued again.
  await w.round();
  assert.deepEqual(w.queued, ["ns1/p"]);
  broken = false;
  await w.round();
  assert.deepEqual(w.queued, ["ns1/p", "ns1/p"]);
  assert.deepEqual(w.memory.drifts("ns1/p"), []);
});

Deno.test("drift check: a network whose attachments cannot be checked is said once and not checked again; multus down is no drift", async () => {
  const pod = runningPod("p", [DEFAULT_ENTRY, NET1, NET2]);
  // Another pod on the same network: after the first answer, never checked at all.
  const other = runningPod("q", [DEFAULT_ENTRY, NET1]);
  let multusDown = false;
  const w = checker(
    [pod, other],
    (req) =>
      multusDown
        ? new Error("delegate CHECK of net2: connect ENOENT")
        : req.ifname === "net1"
        ? answered('configuration version "0.3.1" does not support the CHECK command')
        : undefined,
    { "ns1/a": macvlan("a", "0.3.1"), "ns1/b": macvlan("b") },
  );
  await w.round();
  await w.round();
  assert.deepEqual(w.results, ["unsupported", "ok", "ok"]);
  assert.equal(w.lines.filter((l) => /cannot be checked/.test(String(l.msg))).length, 1);
  assert.ok(
    !w.requests.some((r) => r.podName === "q"),
    "the other pod's attachment was not checked",
  );
  multusDown = true;
  await w.round();
  assert.deepEqual(w.results.at(-1), "error");
  assert.deepEqual(w.memory.drifts("ns1/p"), []);
  assert.deepEqual(w.queued, []);
});

Deno.test("drift check: a drift whose attachment network-status no longer lists is over", async () => {
  const w = checker([runningPod("p", [DEFAULT_ENTRY])], () => undefined, {});
  w.memory.driftFound("ns1/p", { id: A1, found: "Link not found" });
  await w.round();
  assert.deepEqual(w.memory.drifts("ns1/p"), []);
  assert.deepEqual(w.queued, ["ns1/p"]);
  assert.deepEqual(w.requests, []);
});

Deno.test("drift check: what a CHECK found is the plugin's words, without multus' preamble", () => {
  assert.equal(
    checkError(
      'ContainerID:"63e5" Netns:"/run/netns/x" IfName:"net1" Args:"K8S_POD_NAMESPACE=a" Path:"" ERRORED: DelegateCheck: error invoking DelegateCheck - "": error in getting result from CheckNetwork: failed to find interface net1',
    ),
    "error in getting result from CheckNetwork: failed to find interface net1",
  );
  assert.equal(checkError("plain words"), "plain words");
});
