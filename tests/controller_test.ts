/**
 * The controller's wiring (`wireReconciler` in `lib/controller.ts`), with the real reconciler,
 * work queue and caches, fed by fake sources: the pod and NAD caches are `Reflector`s given
 * watch events by hand, the API server, runtime, multus and journal are in memory
 * (`tests/support/memory_world.ts`, as for the pass's own tests), and the
 * queue's timers run on a manual clock. Each case checks which queue call an event makes and
 * what the pod's next pass then does.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../lib/base/clock.ts";
import { Logger } from "../lib/base/log.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../lib/core/annotations.ts";
import type { NetworkAttachmentDefinition } from "../lib/core/nad.ts";
import type { PodSnapshot } from "../lib/core/pod.ts";
import { wireReconciler, type Wiring } from "../lib/controller.ts";
import { MemoryJournal } from "../lib/journal/memory_journal.ts";
import { Reflector } from "../lib/kube/reflector.ts";
import type { WatcherEvent } from "../lib/kube/types.ts";
import { MemoryWorld } from "./support/memory_world.ts";

const KEY = "ns1/p";
const RETRY_MS = 1000;

/** A cache that never watches: the test applies its events. */
function cache<T>(keyOf?: (object: T) => string): Reflector<T> {
  const none = { async *run(): AsyncIterable<WatcherEvent<T>> {} };
  return new Reflector<T>(none, keyOf ? { keyOf } : {});
}

/** The node as the controller sees it, in memory, and the wiring under test. */
class Node {
  readonly clock = new ManualClock();
  readonly pods = cache<PodSnapshot>();
  readonly nads = cache<NetworkAttachmentDefinition>((n) => `${n.namespace}/${n.name}`);
  /** The API server's pod, its NADs, the runtime, multus and the journal. */
  readonly world: MemoryWorld;
  /** Interfaces whose ADD fails. */
  readonly failing = new Set<string>();
  /** Queue calls made by the triggers, in order. */
  readonly calls: string[] = [];
  readonly wiring: Wiring;

  constructor(networks: unknown[]) {
    this.world = new MemoryWorld(networks, []);
    this.world.pod.metadata.resourceVersion = "1";
    this.world.failDelegate = (req) =>
      req.command === "ADD" && this.failing.has(req.ifname) ? "plugin failed" : undefined;
    const quiet = new Logger({ level: "error", sink: () => {} });
    this.wiring = wireReconciler({
      pods: this.pods,
      nads: this.nads,
      deps: this.world.deps({ cached: (key) => this.pods.get(key), log: quiet }),
      queue: {
        concurrency: 2,
        baseDelayMs: RETRY_MS,
        maxDelayMs: RETRY_MS,
        jitter: 0,
        clock: this.clock,
        log: quiet,
      },
    });
    const queue = this.wiring.queue;
    const add = queue.add.bind(queue);
    const resync = queue.resync.bind(queue);
    queue.add = (key) => {
      this.calls.push(`add ${key}`);
      add(key);
    };
    queue.resync = (key) => {
      this.calls.push(`resync ${key}`);
      resync(key);
    };
  }

  /** The API server's copy of the pod (status writes land here). */
  get pod(): PodSnapshot {
    return this.world.pod;
  }

  get journal(): MemoryJournal {
    return this.world.journal;
  }

  /** The delegate calls so far, as `command ifname`. */
  get delegateCalls(): string[] {
    return this.world.delegateRequests.map((r) => `${r.command} ${r.ifname}`);
  }

  macvlan(name: string): void {
    this.world.nads.set(
      `ns1/${name}`,
      JSON.stringify({ cniVersion: "0.3.1", name, type: "macvlan" }),
    );
  }

  /** The watch delivers the API server's current pod. */
  watchPod(): void {
    this.pods.apply({ type: "applied", object: structuredClone(this.pod) });
  }

  /** The watch delivers a NAD. */
  watchNad(name: string): void {
    this.nads.apply({
      type: "applied",
      object: { namespace: "ns1", name, config: this.world.nads.get(`ns1/${name}`)! },
    });
  }

  setNetworks(networks: unknown[]): void {
    this.pod.metadata.annotations![NETWORKS_ANNOTATION] = JSON.stringify(networks);
    this.pod.metadata.resourceVersion = `${Number(this.pod.metadata.resourceVersion) + 1}`;
  }

  recorded(): string[] {
    const text = this.pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] ?? "[]";
    return (JSON.parse(text) as { interface: string }[]).map((e) => e.interface);
  }

  /** Lets the queue run everything due now (timers are not advanced). */
  async settle(): Promise<void> {
    await this.wiring.queue.idle();
  }

  async stop(): Promise<void> {
    await this.wiring.queue.shutdown(0);
  }
}

Deno.test("wiring: a pod's first sighting and an update that changes an input are adds, due now even in backoff", async () => {
  const node = new Node([{ name: "a", interface: "net1" }]);
  node.macvlan("a");
  node.failing.add("net1");
  node.watchPod();
  node.wiring.start();
  await node.settle();
  assert.deepEqual(node.calls, [`add ${KEY}`, `add ${KEY}`], "the upsert, then start()");
  assert.equal(node.wiring.queue.failures(KEY), 1, "the ADD failed: the pod backs off");

  node.failing.clear();
  node.setNetworks([{ name: "a", interface: "net1" }, { name: "a", interface: "net2" }]);
  const before = node.delegateCalls.length;
  node.watchPod();
  await node.settle();
  assert.equal(node.calls.at(-1), `add ${KEY}`);
  assert.ok(node.delegateCalls.length > before, "ran at once, without waiting for the retry");
  assert.deepEqual(node.recorded(), ["net1", "net2"]);
  await node.stop();
});

Deno.test("wiring: the echo of the agent's own status write is a resync, folded into the pending retry", async () => {
  const node = new Node([{ name: "a", interface: "net1" }, { name: "a", interface: "net2" }]);
  node.macvlan("a");
  node.failing.add("net2");
  node.watchPod();
  node.wiring.start();
  await node.settle();
  assert.deepEqual(node.recorded(), ["net1"], "net1 recorded, net2 failed");
  const calls = node.delegateCalls.length;

  node.watchPod(); // the watch brings back the status the pass wrote
  await node.settle();
  assert.equal(node.calls.at(-1), `resync ${KEY}`);
  assert.equal(node.delegateCalls.length, calls, "no pass before the retry is due");

  node.failing.clear();
  node.clock.advance(RETRY_MS);
  await node.settle();
  assert.deepEqual(node.recorded(), ["net1", "net2"], "the retry ran");
  await node.stop();
});

Deno.test("wiring: a NAD upsert wakes the pods that wait for it", async () => {
  const node = new Node([{ name: "late", interface: "net1" }]);
  node.watchPod();
  node.wiring.start();
  await node.settle();
  assert.deepEqual(node.delegateCalls, [], "nothing to send without the NAD");
  assert.deepEqual(node.wiring.reconciler.memory.podsWaitingFor("ns1/late"), [KEY]);
  assert.equal(node.clock.pending, 0, "waiting for an event sets no timer");

  node.macvlan("late");
  const calls = node.calls.length;
  node.watchNad("late");
  await node.settle();
  assert.deepEqual(node.calls.slice(calls), [`add ${KEY}`]);
  assert.deepEqual(node.recorded(), ["net1"]);

  node.macvlan("other");
  node.watchNad("other");
  await node.settle();
  assert.equal(node.calls.length, calls + 1, "a NAD nobody waits for queues nothing");
  await node.stop();
});

Deno.test("wiring: a deleted pod with a journal entry gets a pass that releases it", async () => {
  const node = new Node([{ name: "a", interface: "net1" }]);
  node.macvlan("a");
  node.watchPod();
  node.wiring.start();
  await node.settle();
  // An ADD cut short, as a crash leaves it.
  await node.journal.record({
    podKey: KEY,
    id: { namespace: "ns1", network: "a", interface: "net9" },
    request: {
      command: "ADD",
      containerId: "sb1",
      netns: "/run/netns/x",
      ifname: "net9",
      podNamespace: "ns1",
      podName: "p",
      podUid: "uid-1",
      config: new TextEncoder().encode('{"name":"a"}'),
    },
  });
  const calls = node.delegateCalls.length;
  node.pods.apply({ type: "deleted", object: structuredClone(node.pod) });
  await node.settle();
  assert.equal(node.calls.at(-1), `add ${KEY}`);
  // The unfinished ADD, then the recorded one: nothing of a pod that is gone is kept.
  assert.deepEqual(node.delegateCalls.slice(calls), ["DEL net9", "DEL net1"]);
  assert.deepEqual(node.journal.podKeys(), []);
  await node.stop();
});

Deno.test("wiring: start() gives a pass to pods the journal holds that the cache no longer has", async () => {
  const node = new Node([]);
  await node.journal.record({
    podKey: "ns1/gone",
    id: { namespace: "ns1", network: "a", interface: "net1" },
    request: {
      command: "ADD",
      containerId: "sb0",
      netns: "/run/netns/y",
      ifname: "net1",
      podNamespace: "ns1",
      podName: "gone",
      podUid: "uid-0",
      config: new TextEncoder().encode('{"name":"a"}'),
    },
  });
  node.wiring.start();
  await node.settle();
  assert.deepEqual(node.calls, ["add ns1/gone"]);
  assert.deepEqual(node.delegateCalls, ["DEL net1"]);
  assert.deepEqual(node.journal.podKeys(), []);
  node.watchPod();
  node.wiring.resync();
  await node.settle();
  assert.deepEqual(node.calls.slice(1), [`add ${KEY}`, `resync ${KEY}`]);
  await node.stop();
});
