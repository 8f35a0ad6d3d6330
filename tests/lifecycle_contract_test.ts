/**
 * The lifecycle contract on the rig's real kubelet, with the agent beside it as a process with
 * its real permission flags; the file runs on containerd and on CRI-O (`.ci/crio_suites`).
 *
 * - A terminating pod keeps every secondary interface while its container runs, whoever
 *   plugged it: sampled every 250 ms through a 15 s shutdown, for a pod whose networks multus
 *   plugged (the agent never touches it) and for one with a hot-plugged attachment. Then the
 *   agent releases what it made, once, and multus' teardown what multus made, once (read from
 *   multus' log).
 * - An attachment hot-plugged before this agent ran (by the original controller, or an agent
 *   without a journal) is never cut from a running pod and never released by the agent; its
 *   address stays allocated after the pod goes (a known limitation the test documents).
 * - A pod deleted while its first ADD runs through a slow plugin (it allocates a host-local
 *   address, then answers 5 s later) leaves no address, no journal entry, no finalizer.
 * - 50 rapid edits to one pod, and the deletion during an ADD, log no `error` line.
 * - A pod whose readiness gate is the agent's condition is not Ready while its new interface is
 *   being added (a plugin that takes 5 s before it plugs, sampled every 100 ms), and Ready again
 *   right after.
 *
 * The tests share one rig and one agent, started by the first test that needs them and stopped
 * by the last one ("contract: stop"; include it in a `--filter`).
 */
import assert from "node:assert/strict";
import { RELEASE_FINALIZER } from "../lib/core/annotations.ts";
import { NETWORKS_READY_CONDITION } from "../lib/core/networks_condition.ts";
import {
  ControllerProcess,
  type DesiredAttachment,
  getPod,
  ipamAllocations,
  metricValue,
  multusActivity,
  multusMark,
  multusSince,
  podConditions,
  releases,
  rigTest,
  setNetworks,
  waitConverged,
} from "./support/mod.ts";
import {
  NETWORK_STATUS_ANNOTATION,
  NETWORKS_ANNOTATION,
  POD_UID_LABEL,
  Rig,
  type RigPod,
  sleep,
  waitFor,
} from "./rig/mod.ts";
import { MultusClient } from "../lib/multus/client.ts";
import { delegateConfig } from "../lib/core/nad.ts";
import { statusFromCniResult } from "../lib/core/status.ts";

const NS = "contract";
const BLUE = { network: `${NS}/blue`, ipamNetwork: "contract-blue", ipPrefix: "10.86.1." };
const GREEN = { network: `${NS}/green`, ipamNetwork: "contract-green", ipPrefix: "10.86.2." };
const SLOW = { network: `${NS}/slow`, ipamNetwork: "contract-slow", ipPrefix: "10.86.3." };
const LATE = { network: `${NS}/late`, ipamNetwork: "contract-late", ipPrefix: "10.86.4." };
const IPAM = [BLUE.ipamNetwork, GREEN.ipamNetwork, SLOW.ipamNetwork, LATE.ipamNetwork];
/** The element pods are created with: multus plugs it at sandbox creation. */
const COLD = { name: "blue", interface: "net0" };
/** A container that keeps running 15 s after SIGTERM, saying when it got it. */
const RUNS_ON_AFTER_TERM = [
  "/bin/sh",
  "-c",
  "trap 'echo TERM received; sleep 15; exit 0' TERM; sleep infinity & wait",
];
/** A container that exits as soon as it gets SIGTERM. */
const EXITS_ON_TERM = ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"];
/** How long the slow plugins take. */
const SLOW_ADD_MS = 5_000;
/**
 * The bridge plugin (host-local IPAM) with an ADD that takes {@linkcode SLOW_ADD_MS} more:
 * `after` it has allocated the address and made the link (a plugin that waits on a remote API
 * at its end), or `before` it does (one that waits at its start).
 */
function slowBridge(wait: "before" | "after"): string {
  const pause = `[ "$CNI_COMMAND" = ADD ] && sleep ${SLOW_ADD_MS / 1000}`;
  return `#!/bin/sh
in=$(cat)
${wait === "before" ? pause : ""}
out=$(printf '%s' "$in" | "$(dirname "$0")/bridge")
rc=$?
${wait === "after" ? `[ $rc -eq 0 ] && ${pause}` : ""}
printf '%s' "$out"
exit $rc
`;
}
const WAIT_MS = 60_000;
/**
 * The longest the kubelet takes to turn `Ready` after a readiness gate's condition changes:
 * its sync of the pod waits for a relist of the runtime newer than its last sync (the generic
 * PLEG relists every second), so up to about two relist periods, plus the status write.
 */
const KUBELET_SYNC_MS = 2_500;

// ------------------------------------------------------------------ the shared rig and agent

interface Env {
  rig: Rig;
  ctl: ControllerProcess;
  /** The CNI configs of the bridge NADs, by name. */
  nads: Record<string, Record<string, unknown>>;
}

let starting: Promise<Env> | undefined;

async function setup(): Promise<Env> {
  const rig = await Rig.start();
  try {
    await rig.createNamespace(NS);
    for (const wait of ["before", "after"] as const) {
      await Deno.writeTextFile(`${rig.cniBinDir}/dnc-bridge-${wait}`, slowBridge(wait), {
        mode: 0o755,
      });
    }
    await rig.createNad(NS, "blue", rig.macvlanConfig("10.86.1.0/24", { name: BLUE.ipamNetwork }));
    const nads: Record<string, Record<string, unknown>> = {};
    for (
      const [name, type, subnet, ipamName, suffix] of [
        ["green", "bridge", "10.86.2.0/24", GREEN.ipamNetwork, "cg"],
        ["slow", "dnc-bridge-after", "10.86.3.0/24", SLOW.ipamNetwork, "cs"],
        ["late", "dnc-bridge-before", "10.86.4.0/24", LATE.ipamNetwork, "cl"],
      ] as const
    ) {
      nads[name] = {
        cniVersion: "0.3.1",
        name: ipamName,
        type,
        bridge: rig.ownLink(suffix),
        ipam: rig.hostLocalIpam(subnet),
      };
      await rig.createNad(NS, name, nads[name]);
    }
    const ctl = await ControllerProcess.start(rig);
    return { rig, ctl, nads };
  } catch (err) {
    await rig.stop();
    throw err;
  }
}

/** The shared rig and agent, started on first use. */
function env(): Promise<Env> {
  starting ??= setup();
  return starting;
}

// ------------------------------------------------------------------ what to look at

function podKey(pod: { namespace: string; name: string }): string {
  return `${pod.namespace}/${pod.name}`;
}

/** The agent's log records about `pod` from line `from` on. */
function agentRecords(ctl: ControllerProcess, pod: RigPod, from = 0): Record<string, unknown>[] {
  return ctl.records().slice(from).filter((r) => r.pod === podKey(pod));
}

/** Every host-local address `sandboxId` holds on the secondary networks, as `network ip`. */
async function heldBy(rig: Rig, sandboxId: string): Promise<string[]> {
  const out: string[] = [];
  for (const network of IPAM) {
    for (const ip of (await ipamAllocations(rig, network, sandboxId)).keys()) {
      out.push(`${network} ${ip}`);
    }
  }
  return out.sort();
}

/** True when the agent's journal holds anything for pod `uid`. */
function journaled(rig: Rig, uid: string): boolean {
  try {
    Deno.statSync(`${rig.agentStateDir}/${uid}.json`);
    return true;
  } catch {
    return false;
  }
}

/** Whether the pod's `app` container runs, as the runtime says. */
async function appRuns(rig: Rig, pod: RigPod): Promise<boolean> {
  const containers = await rig.cri.listContainers({
    [POD_UID_LABEL]: pod.uid,
    "io.kubernetes.container.name": "app",
  });
  return containers.some((c) => c.state === "CONTAINER_RUNNING");
}

/** One look at a terminating pod: whether its container ran, and what its netns held. */
interface ShutdownSample {
  atMs: number;
  running: boolean;
  links: string[];
  finalizers: string[];
}

/**
 * Deletes `pod` gracefully and looks at it every `everyMs` until its container has exited:
 * whether the container runs (asked first), the links in its network namespace, and its
 * finalizers. Resolves, once the object is gone, with every look.
 */
async function watchShutdown(rig: Rig, pod: RigPod, everyMs: number): Promise<ShutdownSample[]> {
  const netns = await rig.podNetns(pod);
  const started = Date.now();
  const deletion = rig.deletePod(pod);
  deletion.catch(() => undefined);
  const samples: ShutdownSample[] = [];
  for (;;) {
    const at = Date.now();
    const running = await appRuns(rig, pod);
    const links = running
      ? (await rig.netnsInterfaces(netns)).map((l) => l.name).filter((n) => n !== "lo").sort()
      : [];
    const object = await rig.api.getOrUndefined<{ metadata: { finalizers?: string[] } }>(
      `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`,
    );
    samples.push({
      atMs: at - started,
      running,
      links,
      finalizers: object?.metadata.finalizers ?? [],
    });
    if (!running) break;
    await sleep(Math.max(0, everyMs - (Date.now() - at)));
  }
  await deletion;
  return samples;
}

/**
 * Checks a shutdown's looks: the container ran at least `runsMs` after the deletion, and every
 * look while it ran found `links`, none more than `everyMs` (plus the look's own time) apart.
 */
function assertKeptThroughShutdown(
  samples: readonly ShutdownSample[],
  links: string[],
  runsMs: number,
  everyMs: number,
): void {
  const running = samples.filter((s) => s.running);
  const lastRunning = running.at(-1)!;
  assert.ok(lastRunning.atMs >= runsMs, `the container ran ${lastRunning.atMs} ms only`);
  const missing = running.filter((s) => JSON.stringify(s.links) !== JSON.stringify(links));
  assert.deepEqual(
    missing.map((s) => `${s.atMs} ms: ${s.links.join(",")}`),
    [],
    `links while the container ran (expected ${links.join(",")})`,
  );
  const gaps = running.slice(1).map((s, i) => s.atMs - running[i]!.atMs);
  assert.ok(Math.max(...gaps) <= everyMs + 250, `looks ${Math.max(...gaps)} ms apart`);
}

// ------------------------------------------------------------------ termination

Deno.test({
  name:
    "contract: a pod whose networks multus plugged keeps every interface until its container exits; the agent sends no DEL and adds no finalizer",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const pod = await rig.createPod({
      name: "untouched",
      namespace: NS,
      networks: [COLD],
      command: RUNS_ON_AFTER_TERM,
      terminationGracePeriodSeconds: 60,
    });
    await waitConverged(rig, pod, [{ ...BLUE, iface: "net0" }], IPAM);
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    const samples = await watchShutdown(rig, pod, 250);

    assertKeptThroughShutdown(samples, ["eth0", "net0"], 14_000, 250);
    assert.deepEqual(samples.flatMap((s) => s.finalizers), [], "no finalizer, ever");
    const activity = multusActivity(multusSince(rig, mark), pod.uid);
    assert.deepEqual(releases(activity), { agent: [], teardown: ["eth0", "net0"] });
    assert.deepEqual(activity.requests.filter((r) => r.kind === "delegate"), []);
    assert.deepEqual(await heldBy(rig, pod.sandboxId), []);
    const said = agentRecords(ctl, pod, line).filter((r) => r.level !== "debug");
    assert.deepEqual(said.filter((r) => r.level === "warn" || r.level === "error"), []);
    assert.ok(!said.some((r) => r.msg === "removed interface"), JSON.stringify(said));
    console.log(
      `${samples.length} looks over ${samples.at(-1)!.atMs} ms: eth0 and net0 in every one ` +
        `while the container ran; released once each, by multus' teardown`,
    );
  },
});

Deno.test({
  name:
    "contract: a pod with a hot-plugged interface keeps every interface until its container exits; then each is released once, the agent's by the agent",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const pod = await rig.createPod({
      name: "hotplugged",
      namespace: NS,
      networks: [COLD],
      command: RUNS_ON_AFTER_TERM,
      terminationGracePeriodSeconds: 60,
    });
    await setNetworks(rig, pod, [COLD, { name: "green", interface: "net1" }]);
    const both: DesiredAttachment[] = [{ ...BLUE, iface: "net0" }, { ...GREEN, iface: "net1" }];
    await waitConverged(rig, pod, both, IPAM);
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    const samples = await watchShutdown(rig, pod, 250);

    assertKeptThroughShutdown(samples, ["eth0", "net0", "net1"], 14_000, 250);
    assert.ok(
      samples.filter((s) => s.running).every((s) => s.finalizers.includes(RELEASE_FINALIZER)),
      "the agent's finalizer holds the pod while it runs",
    );
    const activity = multusActivity(multusSince(rig, mark), pod.uid);
    assert.deepEqual(releases(activity), { agent: ["net1"], teardown: ["eth0", "net0"] });
    const agentDels = activity.requests.filter((r) => r.kind === "delegate");
    assert.deepEqual(agentDels.map((r) => `${r.command} ${r.ifname}`), ["DEL net1"]);
    assert.deepEqual(await heldBy(rig, pod.sandboxId), []);
    assert.ok(!journaled(rig, pod.uid), "nothing left journaled");
    const said = agentRecords(ctl, pod, line);
    assert.deepEqual(said.filter((r) => r.level === "warn" || r.level === "error"), []);
    console.log(
      `${samples.length} looks over ${samples.at(-1)!.atMs} ms: eth0, net0 and net1 in every one ` +
        `while the container ran; net1 released by the agent, eth0 and net0 by multus' teardown`,
    );
  },
});

Deno.test({
  name:
    "contract: an attachment hot-plugged before this agent ran (not in its journal) stays until the container exits, and the agent never releases it",
  ...rigTest,
  async fn() {
    const { rig, ctl, nads } = await env();
    const pod = await rig.createPod({
      name: "inherited",
      namespace: NS,
      networks: [COLD],
      command: RUNS_ON_AFTER_TERM,
      terminationGracePeriodSeconds: 60,
    });
    await waitConverged(rig, pod, [{ ...BLUE, iface: "net0" }], IPAM);
    // net1 plugged as the original controller (or an agent without a journal) does: a
    // /delegate ADD, then both annotations written, and no finalizer.
    const multus = new MultusClient(rig.multusSocket, { timeoutMs: 30_000 });
    const result = await multus.delegate({
      command: "ADD",
      containerId: pod.sandboxId,
      netns: await rig.podNetns(pod),
      ifname: "net1",
      podNamespace: NS,
      podName: pod.name,
      podUid: pod.uid,
      config: delegateConfig({ namespace: NS, name: "green", config: JSON.stringify(nads.green) }),
    });
    const object = await getPod(rig, pod);
    const status = JSON.parse(
      object.metadata.annotations![NETWORK_STATUS_ANNOTATION]!,
    ) as unknown[];
    status.push(statusFromCniResult(GREEN.network, result!));
    await rig.api.request("PATCH", `/api/v1/namespaces/${NS}/pods/${pod.name}`, {
      metadata: {
        resourceVersion: object.metadata.resourceVersion,
        annotations: {
          [NETWORKS_ANNOTATION]: JSON.stringify([COLD, { name: "green", interface: "net1" }]),
          [NETWORK_STATUS_ANNOTATION]: JSON.stringify(status),
        },
      },
    }, { contentType: "application/merge-patch+json" });
    const both: DesiredAttachment[] = [{ ...BLUE, iface: "net0" }, { ...GREEN, iface: "net1" }];
    await waitConverged(rig, pod, both, IPAM);
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    const samples = await watchShutdown(rig, pod, 250);

    assertKeptThroughShutdown(samples, ["eth0", "net0", "net1"], 14_000, 250);
    assert.deepEqual(samples.flatMap((s) => s.finalizers), [], "no finalizer, ever");
    const activity = multusActivity(multusSince(rig, mark), pod.uid);
    const released = releases(activity);
    assert.deepEqual(released.agent, [], "the agent sent no DEL");
    // multus' teardown replays what it plugged at creation (its cache); a second teardown of
    // the same sandbox, which the runtime sometimes runs, finds no cache and rebuilds the list
    // from the pod's annotation, net1 included.
    assert.ok(
      ["eth0,net0", "eth0,net0,net1"].includes(released.teardown.join(",")),
      `multus' teardown released ${released.teardown}`,
    );
    assert.deepEqual(agentRecords(ctl, pod, line).filter((r) => r.level === "error"), []);
    // The known limitation: unless that second teardown comes, nothing releases its address
    // (the agent releases only what it made).
    const left = await heldBy(rig, pod.sandboxId);
    const byTeardown = released.teardown.includes("net1");
    assert.deepEqual(left.map((h) => h.split(" ")[0]), byTeardown ? [] : [GREEN.ipamNetwork]);
    for (const held of left) {
      await Deno.remove(`${rig.ipamDataDir}/${GREEN.ipamNetwork}/${held.split(" ")[1]}`);
    }
    console.log(
      `${samples.length} looks over ${samples.at(-1)!.atMs} ms: eth0, net0 and net1 in every one ` +
        `while the container ran; no DEL from the agent; ` +
        (byTeardown
          ? "multus' second teardown released net1"
          : `net1's address ${left[0]} stayed allocated after the pod went (removed by the test)`),
    );
  },
});

// ------------------------------------------------------------------ deletion during an ADD

Deno.test({
  name:
    "contract: a pod deleted while its first ADD runs through a slow plugin leaves no address, no journal entry and no finalizer, and no error line",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const pod = await rig.createPod({ name: "midway", namespace: NS, command: EXITS_ON_TERM });
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    await setNetworks(rig, pod, [{ name: "slow", interface: "net1" }]);
    await waitFor(
      "the slow plugin to allocate net1's address",
      async () => (await ipamAllocations(rig, SLOW.ipamNetwork, pod.sandboxId)).size > 0,
      WAIT_MS,
      50,
    );
    const object = await getPod(rig, pod) as { metadata: { finalizers?: string[] } };
    assert.deepEqual(
      object.metadata.finalizers,
      [RELEASE_FINALIZER],
      "the finalizer is on before the ADD",
    );
    await sleep(1_500);
    const started = Date.now();
    await rig.deletePod(pod);
    const goneMs = Date.now() - started;

    assert.deepEqual(await heldBy(rig, pod.sandboxId), [], "every address released");
    assert.ok(!journaled(rig, pod.uid), "nothing left journaled");
    const activity = multusActivity(multusSince(rig, mark), pod.uid);
    assert.deepEqual(
      activity.requests.filter((r) => r.kind === "delegate").map((r) =>
        `${r.command} ${r.ifname} ${r.ok ? "ok" : "failed"}`
      ),
      ["ADD net1 ok", "DEL net1 ok"],
    );
    const said = agentRecords(ctl, pod, line);
    assert.deepEqual(said.filter((r) => r.level === "error"), []);
    assert.deepEqual(
      said.filter((r) => r.level === "warn").map((r) => r.msg),
      [],
      "no warning either",
    );
    console.log(`deleted 1.5 s into a ${SLOW_ADD_MS} ms ADD; gone ${goneMs} ms after the delete`);
  },
});

// ------------------------------------------------------------------ normal races

Deno.test({
  name: "contract: 50 rapid edits to one pod converge and log no error line",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const pod = await rig.createPod({ name: "busy", namespace: NS });
    const line = ctl.lines.length;
    const lists = [
      [{ name: "green", interface: "net1" }],
      [{ name: "green", interface: "net1" }, { name: "blue", interface: "net2" }],
      [{ name: "blue", interface: "net2" }],
      [],
    ];
    const conflicts = async () =>
      metricValue(
        (await ctl.get("/metrics")).body,
        "dynamic_networks_status_update_conflicts_total",
      );
    const before = await conflicts();
    for (let i = 0; i < 50; i++) await setNetworks(rig, pod, lists[i % lists.length]!);
    // The 50th edit is the second list.
    await waitConverged(rig, pod, [{ ...GREEN, iface: "net1" }, { ...BLUE, iface: "net2" }], IPAM);
    const said = agentRecords(ctl, pod, line);
    assert.deepEqual(said.filter((r) => r.level === "error"), []);
    console.log(
      `50 edits: ${said.filter((r) => r.level === "warn").length} warnings, ` +
        `${(await conflicts()) - before} conflicts met and retried`,
    );
    await rig.deletePod(pod);
  },
});

// ------------------------------------------------------------------ readiness

interface ReadinessSample {
  atMs: number;
  ready: string;
  networks: string;
  hasNet1: boolean;
}

Deno.test({
  name:
    "contract: a readiness-gated pod is not Ready while its new interface is being added, and Ready again right after",
  ...rigTest,
  async fn() {
    const { rig } = await env();
    const pod = await rig.createPod({
      name: "gated",
      namespace: NS,
      readinessGates: [NETWORKS_READY_CONDITION],
    });
    await waitFor(
      "the gated pod to be Ready",
      async () =>
        (await podConditions(rig, pod)).some((c) => c.type === "Ready" && c.status === "True"),
      WAIT_MS,
    );
    const netns = await rig.podNetns(pod);
    const started = Date.now();
    await setNetworks(rig, pod, [{ name: "late", interface: "net1" }]);
    const samples: ReadinessSample[] = [];
    let readyAgain: ReadinessSample | undefined;
    while (!readyAgain && Date.now() - started < WAIT_MS) {
      const at = Date.now();
      const all = await podConditions(rig, pod);
      const ours = all.find((c) => c.type === NETWORKS_READY_CONDITION);
      const hasNet1 = (await rig.netnsInterfaces(netns)).some((l) => l.name === "net1");
      const sample = {
        atMs: at - started,
        ready: all.find((c) => c.type === "Ready")?.status ?? "",
        networks: `${ours?.status} ${ours?.reason}`,
        hasNet1,
      };
      samples.push(sample);
      if (hasNet1 && sample.ready === "True") readyAgain = sample;
      await sleep(Math.max(0, 100 - (Date.now() - at)));
    }
    const show = samples.map((s) =>
      `${s.atMs}: ${s.ready} ${s.networks}${s.hasNet1 ? " net1" : ""}`
    ).join("\n");
    assert.ok(readyAgain, `Ready again once net1 was there:\n${show}`);
    // The agent's first pass after the edit: the condition says Attaching, at the first look.
    const firstPass = samples.findIndex((s) => s.networks !== "True Attached");
    const plugged = samples.findIndex((s) => s.hasNet1);
    assert.ok(firstPass >= 0 && firstPass < plugged, `Attaching before net1:\n${show}`);
    assert.ok(samples[firstPass]!.atMs <= 500, `Attaching only at ${samples[firstPass]!.atMs} ms`);
    assert.equal(samples[firstPass]!.networks, "False Attaching", show);
    // The kubelet owns Ready: it turns it False once its sync of the pod sees the condition,
    // and that sync waits for a look at the runtime newer than its last one (it relists every
    // second). From then on the pod is not Ready at any look until net1 is there.
    const notReady = samples.findIndex((s) => s.ready === "False");
    assert.ok(notReady >= firstPass && notReady < plugged, `not Ready before net1:\n${show}`);
    const readyMeanwhile = samples.slice(notReady, plugged).filter((s) => s.ready !== "False");
    assert.deepEqual(readyMeanwhile, [], show);
    const lagMs = samples[notReady]!.atMs - samples[firstPass]!.atMs;
    assert.ok(lagMs <= KUBELET_SYNC_MS, `the kubelet took ${lagMs} ms to see Attaching:\n${show}`);
    const backMs = readyAgain!.atMs - samples[plugged]!.atMs;
    assert.ok(backMs <= KUBELET_SYNC_MS, `Ready ${backMs} ms after net1 appeared:\n${show}`);
    console.log(
      `Attaching seen ${samples[firstPass]!.atMs} ms after the edit, Ready False ${lagMs} ms ` +
        `later; net1 in the netns at ${samples[plugged]!.atMs} ms; not Ready in every one of ` +
        `the ${plugged - notReady} looks between; Ready again ${backMs} ms after net1 appeared`,
    );
    await rig.deletePod(pod);
  },
});

Deno.test({
  name: "contract: stop",
  ...rigTest,
  async fn() {
    const e = await starting?.catch(() => undefined);
    if (!e) return;
    await e.ctl.stop();
    await e.rig.stop();
  },
});
