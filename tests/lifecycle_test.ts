/**
 * Pod lifecycles on the rig's real kubelet, with the agent running beside it as a process with
 * its real permission flags. Every check compares the interfaces in the pod's netns, the desired
 * list and network-status, and host-local's files; who did what is read from multus' log (its
 * `/delegate` requests are the agent's, its CNI requests the runtime's), the agent's metrics,
 * log lines and Events.
 *
 * - Graceful deletion, of one pod, of a pod that ignores SIGTERM for 10 s, and of 20 pods at
 *   once: the agent releases what it hot-plugged through multus while the pod exists, once
 *   each, and nothing else; multus' CNI DEL at sandbox teardown replays what it plugged at
 *   creation; nothing may be left.
 * - The sandbox dies: the kubelet makes a new one, multus plugs the annotation's networks into
 *   it (the hot-plugged one too), and the agent leaves them alone; the old sandbox's hot-plugged
 *   addresses must be released too. An ADD left journaled on the old sandbox by a crash is
 *   released on the old sandbox only.
 * - A container restart re-plugs nothing; edits made while the kubelet is down and just after it
 *   is back are applied, and survive its status resync; pods on a Node without a kubelet are
 *   never touched; the kubelet's status writes and the agent's network-status writes, racing
 *   on one pod, never undo each other (every version of the pod is read through a watch).
 *
 * The tests share one rig and one agent, started by the first test that needs them and stopped
 * by the last one ("lifecycle: stop"; include it in a `--filter`).
 */
import assert from "node:assert/strict";
import { RELEASE_FINALIZER } from "../lib/core/annotations.ts";
import { NETWORKS_READY_CONDITION } from "../lib/core/networks_condition.ts";
import {
  bridgePorts,
  coldPlugged,
  CONTROLLER_COMPONENT,
  ControllerProcess,
  type DesiredAttachment,
  eventsFor,
  FLAPPING_READINESS,
  ipamAllocations,
  metricValue,
  mismatch,
  multusActivity,
  multusMark,
  multusSince,
  type PodEvent,
  releases,
  rigTest,
  secondaryStatus,
  setNetworks,
  waitConverged,
} from "./support/mod.ts";
import {
  NETWORK_STATUS_ANNOTATION,
  NETWORKS_ANNOTATION,
  POD_UID_LABEL,
  Rig,
  type RigPod,
  waitFor,
} from "./rig/mod.ts";

const NS = "lifecycle";
const BLUE = { network: `${NS}/blue`, ipamNetwork: "lifecycle-blue", ipPrefix: "10.85.1." };
const GREEN = { network: `${NS}/green`, ipamNetwork: "lifecycle-green", ipPrefix: "10.85.2." };
const SECONDARY_IPAM = [BLUE.ipamNetwork, GREEN.ipamNetwork];
/** The element every pod is created with: multus plugs it at sandbox creation. */
const COLD = { name: "blue", interface: "net0" };
/** What {@linkcode plugged} hot-plugs beside it. */
const HOT = [{ name: "blue", interface: "net1" }, { name: "green", interface: "net2" }];
const THREE: DesiredAttachment[] = [
  { ...BLUE, iface: "net0" },
  { ...BLUE, iface: "net1" },
  { ...GREEN, iface: "net2" },
];
/** A container that takes 10 s to exit after SIGTERM, saying when it got it. */
const IGNORES_TERM = [
  "/bin/sh",
  "-c",
  "trap 'echo TERM received; sleep 10; exit 0' TERM; sleep infinity & wait",
];
const WAIT_MS = 60_000;
/**
 * Who releases what when a pod made with {@linkcode COLD} and given {@linkcode HOT} is deleted:
 * the agent what it hot-plugged, multus' teardown the cluster network and what it plugged at
 * creation (its cache of the sandbox's ADD); each attachment once.
 */
const DELETION_RELEASES = { agent: ["net1", "net2"], teardown: ["eth0", "net0"] };
/** The field manager of the agent's writes (its User-Agent). */
const AGENT_MANAGER = "dynamic-networks-controller";

// ------------------------------------------------------------------ the shared rig and agent

interface Env {
  rig: Rig;
  ctl: ControllerProcess;
  /** The green NAD's bridge on the host. */
  bridge: string;
}

let starting: Promise<Env> | undefined;

async function setup(): Promise<Env> {
  const rig = await Rig.start();
  try {
    await rig.createNamespace(NS);
    const bridge = rig.ownLink("lg");
    await rig.createNad(NS, "blue", rig.macvlanConfig("10.85.1.0/24", { name: BLUE.ipamNetwork }));
    await rig.createNad(NS, "green", {
      cniVersion: "0.3.1",
      name: GREEN.ipamNetwork,
      type: "bridge",
      bridge,
      ipam: rig.hostLocalIpam("10.85.2.0/24"),
    });
    const ctl = await ControllerProcess.start(rig);
    return { rig, ctl, bridge };
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

// ------------------------------------------------------------------ pods

/**
 * A pod created with {@linkcode COLD} (multus plugs it), into which the agent then hot-plugs
 * {@linkcode HOT}; resolves once netns, network-status and host-local agree on all three.
 */
async function plugged(
  rig: Rig,
  name: string,
  more: { command?: string[]; terminationGracePeriodSeconds?: number } = {},
): Promise<RigPod> {
  const pod = await rig.createPod({ name, namespace: NS, networks: [COLD], ...more });
  await setNetworks(rig, pod, [COLD, ...HOT]);
  await waitConverged(rig, pod, THREE, SECONDARY_IPAM);
  return pod;
}

/** Runs `make` on `items`, `width` at a time. */
async function inBatches<T, R>(
  items: readonly T[],
  width: number,
  make: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) {
    out.push(...await Promise.all(items.slice(i, i + width).map(make)));
  }
  return out;
}

/** Every host-local address `sandboxId` holds, as `network ip interface`. */
async function heldBy(rig: Rig, sandboxId: string): Promise<string[]> {
  const out: string[] = [];
  for (const network of [...SECONDARY_IPAM, rig.clusterNetworkName]) {
    for (const [ip, iface] of await ipamAllocations(rig, network, sandboxId)) {
      out.push(`${network} ${ip} ${iface}`);
    }
  }
  return out.sort();
}

/** The interfaces whose host-local addresses `sandboxId` holds. */
async function heldInterfaces(rig: Rig, sandboxId: string): Promise<string[]> {
  return (await heldBy(rig, sandboxId)).map((h) => h.split(" ")[2]!).sort();
}

/** A hot-plug on a pod of its own, after which the agent has handled earlier events. */
async function barrier(rig: Rig, name: string): Promise<RigPod> {
  const witness = await rig.createPod({ name, namespace: NS });
  await setNetworks(rig, witness, [{ name: "green", interface: "net1" }]);
  await waitConverged(rig, witness, [{ ...GREEN, iface: "net1" }], SECONDARY_IPAM);
  return witness;
}

/** Checks that every status entry's MAC is the one of the link it names. */
async function assertMacs(rig: Rig, pod: RigPod): Promise<Map<string, string>> {
  const links = new Map((await rig.netnsInterfaces(pod)).map((l) => [l.name, l.mac]));
  const macs = new Map<string, string>();
  for (const entry of await secondaryStatus(rig, pod)) {
    assert.equal(
      entry.mac?.toLowerCase(),
      links.get(entry.interface ?? ""),
      `MAC of ${entry.interface}`,
    );
    macs.set(entry.interface!, entry.mac!.toLowerCase());
  }
  return macs;
}

/** The links of the pod's netns other than `lo`, as `name mac addresses`. */
async function linkPrints(rig: Rig, pod: RigPod): Promise<string[]> {
  return (await rig.netnsInterfaces(pod)).filter((l) => l.name !== "lo").map((l) =>
    `${l.name} ${l.mac} ${l.ipv4.join(",")}`
  ).sort();
}

// ------------------------------------------------------------------ the agent's side

function podKey(pod: { namespace: string; name: string }): string {
  return `${pod.namespace}/${pod.name}`;
}

/** The agent's log records about `pod` from line `from` on. */
function agentRecords(ctl: ControllerProcess, pod: RigPod, from = 0): Record<string, unknown>[] {
  return ctl.records().slice(from).filter((r) => r.pod === podKey(pod));
}

/** Its warning and error lines, one string each. */
function complaints(records: Record<string, unknown>[]): string[] {
  return records.filter((r) => r.level === "warn" || r.level === "error").map((r) =>
    JSON.stringify(r)
  );
}

async function metric(
  ctl: ControllerProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return metricValue((await ctl.get("/metrics")).body, name, labels);
}

/** The agent's multus `/delegate` calls so far, by command. */
async function delegateCalls(ctl: ControllerProcess): Promise<{ ADD: number; DEL: number }> {
  const name = "dynamic_networks_delegate_duration_seconds_count";
  return {
    ADD: await metric(ctl, name, { command: "ADD" }),
    DEL: await metric(ctl, name, { command: "DEL" }),
  };
}

/** True when the agent's journal holds an unfinished ADD of `pod` (its file's `adds`). */
function journalHas(rig: Rig, pod: RigPod): boolean {
  try {
    const file = JSON.parse(Deno.readTextFileSync(`${rig.agentStateDir}/${pod.uid}.json`));
    return (file.adds as unknown[]).length > 0;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ a pod's every version

interface PodVersion {
  metadata: {
    uid: string;
    resourceVersion: string;
    annotations?: Record<string, string>;
    managedFields?: { manager?: string }[];
  };
  status?: {
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; restartCount: number; ready: boolean }[];
  };
}

/**
 * Every version of one Pod object from now on, read through a watch (resumed from the last
 * resourceVersion whenever the server ends it): each write to the pod is one version.
 */
class PodHistory {
  readonly versions: PodVersion[] = [];
  readonly #abort = new AbortController();
  readonly #client: Deno.HttpClient;
  readonly #rig: Rig;
  readonly #pod: RigPod;
  #error: unknown;
  #done: Promise<void> = Promise.resolve();

  private constructor(rig: Rig, pod: RigPod) {
    this.#rig = rig;
    this.#pod = pod;
    const kubeconfig = JSON.parse(Deno.readTextFileSync(rig.kubeconfig)) as {
      users: { user: Record<string, string> }[];
    };
    const user = kubeconfig.users[0]!.user;
    this.#client = Deno.createHttpClient({
      caCerts: [Deno.readTextFileSync(rig.caCertPath)],
      cert: atob(user["client-certificate-data"]!),
      key: atob(user["client-key-data"]!),
      http2: false,
    });
  }

  /** Starts recording `pod`'s versions, beginning with the current one. */
  static async start(rig: Rig, pod: RigPod): Promise<PodHistory> {
    const history = new PodHistory(rig, pod);
    const first = await rig.api.request<PodVersion>(
      "GET",
      `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`,
    );
    history.versions.push(first);
    history.#done = history.#watch(first.metadata.resourceVersion).catch((err) => {
      if (!history.#abort.signal.aborted) history.#error = err;
    });
    return history;
  }

  async #watch(from: string): Promise<void> {
    let rv = from;
    while (!this.#abort.signal.aborted) {
      const url = new URL(`/api/v1/namespaces/${this.#pod.namespace}/pods`, this.#rig.apiServerUrl);
      url.searchParams.set("watch", "true");
      url.searchParams.set("fieldSelector", `metadata.name=${this.#pod.name}`);
      url.searchParams.set("resourceVersion", rv);
      url.searchParams.set("timeoutSeconds", "300");
      const res = await fetch(url, { client: this.#client, signal: this.#abort.signal });
      if (!res.ok || !res.body) throw new Error(`watch: ${res.status} ${await res.text()}`);
      let buffer = "";
      for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const event = JSON.parse(buffer.slice(0, nl)) as { type: string; object: PodVersion };
          buffer = buffer.slice(nl + 1);
          if (event.type === "ERROR") throw new Error(`watch: ${JSON.stringify(event.object)}`);
          if (event.type === "DELETED") return;
          this.versions.push(event.object);
          rv = event.object.metadata.resourceVersion;
        }
      }
    }
  }

  /** Ends the watch; throws if it failed (a version may then be missing). */
  async stop(): Promise<PodVersion[]> {
    this.#abort.abort();
    await this.#done;
    this.#client.close();
    if (this.#error) {
      throw new Error(`the watch of ${podKey(this.#pod)} failed`, { cause: this.#error });
    }
    return this.versions;
  }
}

/**
 * The parts of a pod its writers own: each write should change exactly one. The agent's part
 * is network-status with its own condition (`NETWORKS_READY_CONDITION`), which it writes in
 * the same update; the kubelet's is the rest of the status.
 */
function parts(v: PodVersion): Record<string, string> {
  const { [NETWORKS_ANNOTATION]: networks, [NETWORK_STATUS_ANNOTATION]: status, ...others } =
    v.metadata.annotations ?? {};
  const conditions = v.status?.conditions ?? [];
  const ours = conditions.filter((c) => c.type === NETWORKS_READY_CONDITION);
  const kubelet = v.status
    ? { ...v.status, conditions: conditions.filter((c) => c.type !== NETWORKS_READY_CONDITION) }
    : {};
  return {
    "networks annotation (the test)": networks ?? "",
    "network-status (the agent)": ours.length === 0
      ? status ?? ""
      : JSON.stringify([status ?? "", ours]),
    "other annotations": JSON.stringify(others),
    "status (the kubelet)": JSON.stringify(kubelet),
  };
}

/** For each write (consecutive versions), the parts it changed. */
function writes(versions: readonly PodVersion[]): { rv: string; changed: string[] }[] {
  const out: { rv: string; changed: string[] }[] = [];
  for (let i = 1; i < versions.length; i++) {
    const a = parts(versions[i - 1]!);
    const b = parts(versions[i]!);
    out.push({
      rv: versions[i]!.metadata.resourceVersion,
      changed: Object.keys(b).filter((k) => a[k] !== b[k]),
    });
  }
  return out;
}

/**
 * Asserts that no write to the pod changed both another writer's part and its own: a writer
 * that overwrote the kubelet's status with an old copy (or the kubelet an annotation) would.
 */
function assertNoLostUpdate(pod: RigPod, versions: readonly PodVersion[]): void {
  const mixed = writes(versions).filter((w) => w.changed.length > 1);
  assert.deepEqual(mixed, [], `writes to ${podKey(pod)} that changed two writers' parts`);
}

const changedStatus = (w: { changed: string[] }) => w.changed.includes("status (the kubelet)");
const changedNetworkStatus = (w: { changed: string[] }) =>
  w.changed.includes("network-status (the agent)");

function secondaryInterfaces(v: PodVersion): string {
  const text = v.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  const entries = text ? JSON.parse(text) as { interface?: string; default?: boolean }[] : [];
  return entries.filter((e) => e.default !== true).map((e) => e.interface).join(",");
}

// ------------------------------------------------------------------ graceful deletion

Deno.test({
  name:
    "lifecycle: a deleted pod's hot-plugged addresses are released by the agent through multus while the pod exists, the cold-plugged ones by multus at sandbox teardown",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const pod = await plugged(rig, "alone");
    assert.deepEqual(await heldInterfaces(rig, pod.sandboxId), [
      "eth0",
      "net0",
      "net1",
      "net2",
    ]);
    const calls = await delegateCalls(ctl);
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    const started = Date.now();
    await rig.deletePod(pod);
    const goneMs = Date.now() - started;

    // Once the object is gone, nothing is left: the agent's DELs had to come before (multus
    // refuses a DEL for a pod it cannot look up), the teardown came before the removal.
    assert.deepEqual(await heldBy(rig, pod.sandboxId), []);
    // The host end of the bridge's veth goes with the pod's namespace, which multus keeps open
    // a while longer (see the last test of this file).
    const who = releases(multusActivity(multusSince(rig, mark), pod.uid));
    // The agent releases what it hot-plugged; multus' teardown replays its cache from the
    // sandbox's creation (the cluster network and net0), never the hot-plugged ones.
    assert.deepEqual(who, DELETION_RELEASES);
    assert.equal((await delegateCalls(ctl)).DEL - calls.DEL, 2);
    const records = agentRecords(ctl, pod, line);
    assert.deepEqual(
      records.filter((r) => r.msg === "removed interface").map((r) => r.interfaceName).sort(),
      ["net1", "net2"],
    );
    assert.deepEqual(complaints(records), []);
    const events = await eventsFor(rig, pod);
    assert.ok(events.some((e) => e.reason === "RemovedInterface"), JSON.stringify(events));
    assert.deepEqual(events.filter((e) => e.type === "Warning"), []);
    console.log(
      `deleted in ${goneMs} ms; released by the agent: ${who.agent.join(", ")}; ` +
        `by multus at teardown: ${who.teardown.join(", ")}`,
    );
  },
});

Deno.test({
  name:
    "lifecycle: a pod that ignores SIGTERM for 10 s keeps its attachments while it runs, then they are released and nothing leaks",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const pod = await plugged(rig, "slow-exit", {
      command: IGNORES_TERM,
      terminationGracePeriodSeconds: 60,
    });
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    const started = Date.now();
    const deletion = rig.deletePod(pod);
    deletion.catch(() => undefined);

    // During the grace period the pod keeps what it has, as it keeps what multus plugged:
    // netns = network-status = host-local, all four networks; the finalizer holds the object.
    await waitFor("the container to get SIGTERM", async () => {
      const logs = await rig.kubectl("-n", NS, "logs", pod.name);
      return logs.stdout.includes("TERM received");
    }, WAIT_MS);
    const termMs = Date.now() - started;
    const during = await rig.api.request<{
      metadata: { deletionTimestamp?: string; finalizers?: string[] };
      status: { containerStatuses: { state: { running?: unknown } }[] };
    }>("GET", `/api/v1/namespaces/${NS}/pods/${pod.name}`);
    assert.ok(during.metadata.deletionTimestamp, "the pod is terminating");
    assert.ok(
      during.status.containerStatuses[0]!.state.running,
      "the container still runs after SIGTERM",
    );
    assert.deepEqual(during.metadata.finalizers, [RELEASE_FINALIZER]);
    assert.deepEqual(
      await heldInterfaces(rig, pod.sandboxId),
      ["eth0", "net0", "net1", "net2"],
      "every address is held while the pod runs",
    );
    assert.equal(await mismatch(rig, pod, THREE, SECONDARY_IPAM), undefined);

    await deletion;
    const goneMs = Date.now() - started;
    assert.deepEqual(await heldBy(rig, pod.sandboxId), []);
    const who = releases(multusActivity(multusSince(rig, mark), pod.uid));
    assert.deepEqual(who, DELETION_RELEASES);
    assert.deepEqual(complaints(agentRecords(ctl, pod, line)), []);
    console.log(
      `SIGTERM seen at ${termMs} ms; attachments released after the container exited; ` +
        `object gone after ${(goneMs / 1000).toFixed(1)} s`,
    );
  },
});

Deno.test({
  name:
    "lifecycle: 20 pods with hot-plugged attachments deleted at once, one of them slow to exit: nothing leaks, nothing complains",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const names = Array.from({ length: 20 }, (_, i) => `crowd-${i}`);
    const pods = await inBatches(
      names,
      5,
      (name) => plugged(rig, name, name === "crowd-0" ? { command: IGNORES_TERM } : {}),
    );
    const calls = await delegateCalls(ctl);
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    const started = Date.now();
    await Promise.all(pods.map((pod) => rig.deletePod(pod)));
    const goneMs = Date.now() - started;

    const log = multusSince(rig, mark);
    const leaks: string[] = [];
    let kubeletFirst = 0;
    for (const pod of pods) {
      const { requests } = multusActivity(log, pod.uid);
      const teardown = requests.findIndex((r) => r.kind === "CNI" && r.command === "DEL");
      const release = requests.findIndex((r) => r.kind === "delegate" && r.command === "DEL");
      const race = release < 0
        ? "the agent sent no DEL"
        : teardown < release
        ? "multus tore the sandbox down before the agent's first DEL"
        : "the agent's first DEL came before the teardown";
      if (release < 0 || teardown < release) kubeletFirst++;
      const held = await heldBy(rig, pod.sandboxId);
      if (held.length === 0) continue;
      const said = agentRecords(ctl, pod, line).filter((r) => r.level !== "debug").map((r) =>
        `${r.level} ${r.msg}${r.err ? `: ${JSON.stringify(r.err).slice(0, 160)}` : ""}`
      );
      leaks.push(`${pod.name} holds ${held.join(", ")}; ${race}; the agent: ${said.join(" | ")}`);
    }
    console.log(
      `20 pods (60 attachments) deleted at once in ${(goneMs / 1000).toFixed(1)} s; ` +
        `multus' teardown ran before the agent's first DEL in ${kubeletFirst} of them; ` +
        `${leaks.length} left addresses behind`,
    );
    assert.deepEqual(
      leaks,
      [],
      "addresses left behind: the agent releases through multus, which refuses once the " +
        "kubelet has removed the pod object",
    );
    const problems: string[] = [];
    for (const pod of pods) {
      const activity = multusActivity(log, pod.uid);
      const who = releases(activity);
      if (JSON.stringify(who) !== JSON.stringify(DELETION_RELEASES)) {
        // Every request multus logged for the pod, and what the agent said of it, to tell a
        // missing DEL from one that failed or one whose result line was not found.
        const requests = activity.requests.map((r) =>
          `${r.kind} ${r.command} ${r.ifname} ${
            r.ok === undefined ? "unfinished" : r.ok ? "ok" : "failed"
          }`
        );
        const said = agentRecords(ctl, pod, line).slice(-40).map((r) =>
          `${r.level} ${r.msg} ${r.interfaceName ?? ""}`
        );
        problems.push(
          `${pod.name}: released ${JSON.stringify(who)}; multus: ${
            requests.join(", ")
          }; the agent: ${said.join(" | ")}`,
        );
      }
      for (const said of complaints(agentRecords(ctl, pod, line))) {
        problems.push(`${pod.name}: the agent said ${said.slice(0, 300)}`);
      }
      for (const e of (await eventsFor(rig, pod)).filter((e) => e.type === "Warning")) {
        problems.push(`${pod.name}: Warning ${e.reason}: ${e.message}`);
      }
    }
    assert.deepEqual(problems, []);
    // Two DELs a pod, of its hot-plugged attachments; one whose namespace the runtime has torn
    // down is sent once more without it (the second one releases the address).
    const dels = (await delegateCalls(ctl)).DEL - calls.DEL;
    assert.ok(dels >= 40 && dels <= 60, `${dels} DELs for 20 pods of 2 hot-plugged attachments`);
  },
});

// ------------------------------------------------------------------ the sandbox dies

interface Rebirth {
  old: RigPod;
  pod: RigPod;
  replacedMs: number;
  /** multus' log from the kill on. */
  log: string;
  records: Record<string, unknown>[];
  eventsBefore: PodEvent[];
}

let rebirth: Promise<Rebirth> | undefined;

/**
 * A pod made with net0 (blue) in its annotation, then green hot-plugged as net1, whose pause
 * process is killed: the kubelet makes a new sandbox and multus plugs both into it.
 */
function sandboxRebirth(): Promise<Rebirth> {
  rebirth ??= (async () => {
    const { rig, ctl } = await env();
    const old = await rig.createPod({ name: "phoenix", namespace: NS, networks: [COLD] });
    await setNetworks(rig, old, [COLD, { name: "green", interface: "net1" }]);
    const expected = [{ ...BLUE, iface: "net0" }, { ...GREEN, iface: "net1" }];
    await waitConverged(rig, old, expected, SECONDARY_IPAM);
    const eventsBefore = await eventsFor(rig, old);
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    const killed = Date.now();
    const pod = await rig.killSandbox(old);
    const replacedMs = Date.now() - killed;
    await waitConverged(rig, pod, expected, SECONDARY_IPAM);
    await barrier(rig, "phoenix-witness");
    return {
      old,
      pod,
      replacedMs,
      log: multusSince(rig, mark),
      records: agentRecords(ctl, pod, line),
      eventsBefore,
    };
  })();
  return rebirth;
}

Deno.test({
  name:
    "lifecycle: the kubelet replaces a dead sandbox and multus plugs the annotation's networks into it, the hot-plugged one too; the agent converges without plugging again",
  ...rigTest,
  async fn() {
    const { rig } = await env();
    const { old, pod, replacedMs, log, records, eventsBefore } = await sandboxRebirth();
    assert.notEqual(pod.sandboxId, old.sandboxId);
    const activity = multusActivity(log, pod.uid);
    // multus set the new sandbox up from the annotation: net1 came from there, not the agent.
    const cni = activity.requests.filter((r) => r.kind === "CNI");
    assert.deepEqual(
      [...new Set(cni.map((r) => `${r.command} ${r.sandboxId}`))],
      [`DEL ${old.sandboxId}`, `ADD ${pod.sandboxId}`],
    );
    assert.deepEqual(coldPlugged(activity), ["eth0", "net0", "net1"]);
    // No double plug: the agent sent nothing to the new sandbox, and nothing was re-attached.
    const onNew = activity.requests.filter((r) =>
      r.kind === "delegate" && r.sandboxId === pod.sandboxId
    );
    assert.deepEqual(onNew, []);
    assert.deepEqual(
      activity.requests.filter((r) => r.command === "ADD" && r.kind === "delegate"),
      [],
    );
    const text = JSON.stringify(records);
    assert.ok(!/already exists|re-attaching/.test(text), text);
    assert.deepEqual(complaints(records), []);
    assert.deepEqual(await eventsFor(rig, pod), eventsBefore, "the agent recorded no Event");
    // No stale entry: network-status names each interface once, with the new sandbox's
    // addresses (waitConverged compared them with the netns and host-local) and MACs.
    const macs = await assertMacs(rig, pod);
    assert.deepEqual([...macs.keys()].sort(), ["net0", "net1"]);
    assert.deepEqual(
      await heldInterfaces(rig, pod.sandboxId),
      ["eth0", "net0", "net1"],
    );
    assert.ok(!journalHas(rig, pod), "nothing is left journaled");
    console.log(`the kubelet replaced the sandbox in ${replacedMs} ms (kill → containers running)`);
  },
});

Deno.test({
  name:
    "lifecycle: a dead sandbox's hot-plugged addresses are released (multus' teardown replays only what it plugged at creation)",
  ...rigTest,
  async fn() {
    const { rig } = await env();
    const { old, log } = await sandboxRebirth();
    const who = releases(multusActivity(log, old.uid));
    assert.deepEqual(who.teardown, ["eth0", "net0"], "multus' teardown of the old sandbox");
    let held: string[] = [];
    try {
      await waitFor("the old sandbox's addresses to be released", async () => {
        held = await heldBy(rig, old.sandboxId);
        return held.length === 0;
      }, 20_000);
    } catch {
      assert.fail(
        `the dead sandbox ${old.sandboxId.slice(0, 12)} still holds ${JSON.stringify(held)}: ` +
          "the hot-plugged net1 was never released (the agent sent no DEL for the old sandbox)",
      );
    }
  },
});

Deno.test({
  name:
    "lifecycle: an ADD left journaled by a crash when the sandbox dies is released on the old sandbox; the new one keeps what multus plugged",
  ...rigTest,
  async fn() {
    const e = await env();
    const { rig } = e;
    const old = await rig.createPod({ name: "journaled", namespace: NS, networks: [COLD] });
    let pod: RigPod;
    let links: string[];
    let mark: number;
    await e.ctl.stop();
    let armed: ControllerProcess | undefined;
    try {
      armed = await ControllerProcess.start(rig, {
        crashAt: "after-delegate:add",
      });
      await setNetworks(rig, old, [COLD, { name: "green", interface: "net1" }]);
      assert.equal((await armed.status).code, 137, "the agent died after the ADD");
      const journal = JSON.parse(
        Deno.readTextFileSync(`${rig.agentStateDir}/${old.uid}.json`),
      ) as { adds: { containerId: string; ifname: string }[] };
      assert.deepEqual(journal.adds.map((a) => `${a.ifname} ${a.containerId}`), [
        `net1 ${old.sandboxId}`,
      ]);
      assert.equal((await ipamAllocations(rig, GREEN.ipamNetwork, old.sandboxId)).size, 1);

      // With no agent running, the sandbox dies and the kubelet makes another; multus plugs
      // net1 (in the annotation now) into it.
      pod = await rig.killSandbox(old);
      await waitFor(
        "multus to record the new sandbox's interfaces",
        async () => (await secondaryStatus(rig, pod)).length === 2,
        WAIT_MS,
      );
      links = await linkPrints(rig, pod);
      mark = multusMark(rig);
    } finally {
      await armed?.stop();
      e.ctl = await ControllerProcess.start(rig);
    }
    await waitFor("the journal to be settled", () => !journalHas(rig, pod), WAIT_MS);
    const expected = [{ ...BLUE, iface: "net0" }, { ...GREEN, iface: "net1" }];
    await waitConverged(rig, pod, expected, SECONDARY_IPAM);
    await barrier(rig, "journaled-witness");

    // Released with the old sandbox's ID only; the new sandbox's links are as multus made them.
    const activity = multusActivity(multusSince(rig, mark), pod.uid);
    assert.deepEqual(
      activity.requests.map((r) => `${r.kind} ${r.command} ${r.ifname} ${r.sandboxId}`),
      [`delegate DEL net1 ${old.sandboxId}`],
    );
    assert.deepEqual(await linkPrints(rig, pod), links);
    assert.deepEqual(await heldBy(rig, old.sandboxId), []);
    const records = agentRecords(e.ctl, pod);
    assert.deepEqual(
      records.filter((r) => r.msg === "released an attachment whose ADD was never recorded")
        .map((r) => r.sandboxId),
      [old.sandboxId],
    );
    assert.equal(
      await metric(e.ctl, "dynamic_networks_unrecorded_releases_total", { result: "success" }),
      1,
    );
    assert.deepEqual(complaints(records), []);
  },
});

// ------------------------------------------------------------------ restarts

Deno.test({
  name:
    "lifecycle: a container restart keeps the sandbox and re-plugs nothing (same MACs, no delegate call, no Event)",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const pod = await plugged(rig, "restarts");
    const links = await linkPrints(rig, pod);
    const status = await secondaryStatus(rig, pod);
    const events = await eventsFor(rig, pod);
    const calls = await delegateCalls(ctl);
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    const history = await PodHistory.start(rig, pod);
    await rig.restartContainer(pod);
    await waitFor("the kubelet to record the restart", () => {
      const v = history.versions.at(-1)!;
      return v.status?.containerStatuses?.[0]?.restartCount === 1 &&
        v.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    }, WAIT_MS);
    const witness = await barrier(rig, "restarts-witness");
    const versions = await history.stop();

    assert.equal((await rig.refreshPod(pod)).sandboxId, pod.sandboxId, "the same sandbox");
    assert.deepEqual(await linkPrints(rig, pod), links);
    assert.deepEqual(await secondaryStatus(rig, pod), status);
    await waitConverged(rig, pod, THREE, SECONDARY_IPAM);
    assert.deepEqual(multusActivity(multusSince(rig, mark), pod.uid).requests, []);
    // The one ADD since is the witness's.
    const now = await delegateCalls(ctl);
    assert.deepEqual({ ADD: now.ADD - calls.ADD, DEL: now.DEL - calls.DEL }, { ADD: 1, DEL: 0 });
    assert.equal(
      multusActivity(multusSince(rig, mark), witness.uid).requests.filter((r) =>
        r.kind === "delegate"
      ).length,
      1,
      "the witness's ADD",
    );
    assert.deepEqual(await eventsFor(rig, pod), events);
    assert.deepEqual(agentRecords(ctl, pod, line).filter((r) => r.level !== "debug"), []);
    const w = writes(versions);
    assert.ok(w.some(changedStatus), "the kubelet wrote the pod's status");
    assert.deepEqual(w.filter(changedNetworkStatus), [], "nobody rewrote network-status");
    assertNoLostUpdate(pod, versions);
  },
});

Deno.test({
  name:
    "lifecycle: edits made while the kubelet is down and just after it is back are applied, and survive its status resync",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const a = await rig.createPod({ name: "kubelet-a", namespace: NS, networks: [COLD] });
    const b = await plugged(rig, "kubelet-b");
    const histories = [await PodHistory.start(rig, a), await PodHistory.start(rig, b)];
    const line = ctl.lines.length;

    await rig.stopPart("kubelet");
    let restarted = false;
    let startedAt = 0;
    let readyMs = 0;
    try {
      await setNetworks(rig, a, [COLD, { name: "green", interface: "net1" }]);
      await setNetworks(rig, b, [COLD, { name: "blue", interface: "net1" }]);
      // b's container dies meanwhile: the kubelet has a status to write when it is back.
      const [app] = (await rig.cri.listContainers({
        [POD_UID_LABEL]: b.uid,
        "io.kubernetes.container.name": "app",
      })).filter((c) => c.state === "CONTAINER_RUNNING");
      Deno.kill(await rig.cri.containerPid(app!.id), "SIGKILL");
      await waitConverged(rig, a, [{ ...BLUE, iface: "net0" }, { ...GREEN, iface: "net1" }], [
        ...SECONDARY_IPAM,
      ]);
      await waitConverged(rig, b, [{ ...BLUE, iface: "net0" }, { ...BLUE, iface: "net1" }], [
        ...SECONDARY_IPAM,
      ]);

      // Edits while the kubelet starts and resyncs.
      startedAt = Date.now();
      const back = rig.startPart("kubelet");
      restarted = true;
      await setNetworks(rig, a, [COLD, { name: "green", interface: "net1" }, {
        name: "blue",
        interface: "net2",
      }]);
      await setNetworks(rig, b, [COLD]);
      await back;
      readyMs = Date.now() - startedAt;
    } finally {
      if (!restarted) await rig.startPart("kubelet");
    }
    const finalA = [{ ...BLUE, iface: "net0" }, { ...GREEN, iface: "net1" }, {
      ...BLUE,
      iface: "net2",
    }];
    const finalB = [{ ...BLUE, iface: "net0" }];
    await waitConverged(rig, a, finalA, SECONDARY_IPAM);
    await waitConverged(rig, b, finalB, SECONDARY_IPAM);
    await waitFor("the kubelet to restart b's container and write its status", () => {
      const v = histories[1]!.versions.at(-1)!;
      return v.status?.containerStatuses?.[0]?.restartCount === 1 &&
        v.status.containerStatuses[0].ready;
    }, WAIT_MS);
    const resyncedMs = Date.now() - startedAt;
    const [va, vb] = [await histories[0]!.stop(), await histories[1]!.stop()];

    // Nothing lost once the kubelet has written: every part is as its last writer left it.
    assert.equal(await mismatch(rig, a, finalA, SECONDARY_IPAM), undefined);
    assert.equal(await mismatch(rig, b, finalB, SECONDARY_IPAM), undefined);
    assertNoLostUpdate(a, va);
    assertNoLostUpdate(b, vb);
    const last = writes(vb).findLastIndex(changedStatus);
    assert.ok(
      last >= 0 && writes(vb).slice(0, last).some(changedNetworkStatus),
      "the kubelet wrote b's status after the agent's writes",
    );
    assert.equal(secondaryInterfaces(vb.at(-1)!), "net0");
    assert.deepEqual(complaints(agentRecords(ctl, a, line)), []);
    assert.deepEqual(complaints(agentRecords(ctl, b, line)), []);
    console.log(
      `the kubelet was back (Node Ready) ${readyMs} ms after its start and had restarted the ` +
        `container that died meanwhile, and written its status, within ${resyncedMs} ms`,
    );
  },
});

// ------------------------------------------------------------------ another node

Deno.test({
  name:
    "lifecycle: pods on another Node (no kubelet behind it) are never touched: no status write, no Event, no delegate call",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    const node = `${NS}-elsewhere`;
    await rig.api.createIfMissing("/api/v1/nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: node },
    });
    const path = (name: string) => `/api/v1/namespaces/${NS}/pods/${name}`;
    // Looks like pods running there with attachments: Running, network-status from multus.
    const claimed = JSON.stringify([
      { name: "rig-cluster", interface: "eth0", ips: ["10.1.2.3"], default: true },
      { name: `${NS}/blue`, interface: "net1", ips: ["10.85.1.250"], mac: "02:00:00:00:00:01" },
    ]);
    const far = [
      { name: "far-a", networks: JSON.stringify([{ name: "blue", interface: "net1" }]) },
      { name: "far-b", networks: "blue@net1,green" },
      { name: "far-c", networks: JSON.stringify([{ name: "green", interface: "net1" }]) },
    ];
    const uids = new Map<string, string>();
    for (const p of far) {
      const created = await rig.api.request<{ metadata: { uid: string } }>(
        "POST",
        `/api/v1/namespaces/${NS}/pods`,
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: {
            name: p.name,
            namespace: NS,
            annotations: {
              [NETWORKS_ANNOTATION]: p.networks,
              [NETWORK_STATUS_ANNOTATION]: claimed,
            },
          },
          spec: { nodeName: node, containers: [{ name: "app", image: "busybox" }] },
        },
      );
      uids.set(p.name, created.metadata.uid);
      await rig.api.request("PATCH", `${path(p.name)}/status`, {
        status: { phase: "Running" },
      }, { contentType: "application/merge-patch+json" });
    }
    const calls = await delegateCalls(ctl);
    const mark = multusMark(rig);
    const line = ctl.lines.length;
    try {
      // Edits an agent would act on: an added network, an emptied list, a deletion.
      await setNetworks(rig, { name: "far-a", namespace: NS }, [
        { name: "blue", interface: "net1" },
        { name: "green", interface: "net2" },
      ]);
      await setNetworks(rig, { name: "far-b", namespace: NS }, []);
      await rig.api.request("DELETE", path("far-c"), {
        apiVersion: "v1",
        kind: "DeleteOptions",
        gracePeriodSeconds: 30,
      });
      const witness = await barrier(rig, "far-witness");

      for (const p of far) {
        // (The Node's lifecycle controller may write these pods' status; the agent never.)
        const obj = await rig.api.request<PodVersion>("GET", path(p.name));
        assert.equal(obj.metadata.annotations?.[NETWORK_STATUS_ANNOTATION], claimed);
        const managers = (obj.metadata.managedFields ?? []).map((m) => m.manager);
        assert.ok(!managers.includes(AGENT_MANAGER), `${p.name} written by ${managers.join()}`);
        const ref = {
          name: p.name,
          namespace: NS,
          uid: uids.get(p.name)!,
          sandboxId: "",
          hostNetwork: false,
        };
        assert.deepEqual(await eventsFor(rig, ref), [], `${p.name}: Events`);
        assert.deepEqual(agentRecords(ctl, ref, line), [], `${p.name}: the agent's log`);
        assert.deepEqual(multusActivity(multusSince(rig, mark), ref.uid).requests, []);
      }
      const now = await delegateCalls(ctl);
      assert.deepEqual({ ADD: now.ADD - calls.ADD, DEL: now.DEL - calls.DEL }, { ADD: 1, DEL: 0 });
      assert.equal(
        multusActivity(multusSince(rig, mark), witness.uid).requests.filter((r) =>
          r.kind === "delegate"
        ).length,
        1,
      );
      const component = CONTROLLER_COMPONENT;
      const all = await rig.api.request<{
        items: { involvedObject: { name: string }; source?: { component?: string } }[];
      }>("GET", `/api/v1/namespaces/${NS}/events`);
      assert.deepEqual(
        all.items.filter((e) =>
          far.some((p) => p.name === e.involvedObject.name) && e.source?.component === component
        ),
        [],
      );
    } finally {
      for (const p of far) {
        await rig.api.request("DELETE", path(p.name), {
          apiVersion: "v1",
          kind: "DeleteOptions",
          gracePeriodSeconds: 0,
        }).catch(() => undefined);
      }
      await rig.api.request("DELETE", `/api/v1/nodes/${node}`).catch(() => undefined);
    }
  },
});

// ------------------------------------------------------------------ racing writers

Deno.test({
  name:
    "lifecycle: the kubelet's status writes and the agent's network-status writes race on one pod; neither undoes the other, every write lands",
  ...rigTest,
  async fn() {
    const { rig, ctl } = await env();
    // Ready flips every second: the kubelet writes the pod's status each time.
    const pod = await rig.createPod({
      name: "racer",
      namespace: NS,
      ...FLAPPING_READINESS,
    });
    const conflicts = await metric(ctl, "dynamic_networks_status_update_conflicts_total");
    const line = ctl.lines.length;
    const history = await PodHistory.start(rig, pod);
    const wanted: string[] = [];
    const kubeletWrites = () => writes(history.versions).filter(changedStatus).length;
    // Hot-plug and unplug, each waited for, until the kubelet has written ten times meanwhile.
    const started = Date.now();
    while (wanted.length < 20 || kubeletWrites() < 10) {
      assert.ok(wanted.length < 400, `the kubelet wrote ${kubeletWrites()} times only`);
      const on = wanted.length % 2 === 0;
      await setNetworks(rig, pod, on ? [{ name: "blue", interface: "net1" }] : []);
      wanted.push(on ? "net1" : "");
      await waitFor(
        `toggle ${wanted.length}`,
        async () => {
          const status = await secondaryStatus(rig, pod);
          return status.map((e) => e.interface).join(",") === wanted.at(-1);
        },
        WAIT_MS,
        20,
      );
    }
    const seconds = (Date.now() - started) / 1000;
    await waitConverged(
      rig,
      pod,
      wanted.at(-1) ? [{ ...BLUE, iface: "net1" }] : [],
      SECONDARY_IPAM,
    );
    const versions = await history.stop();

    assertNoLostUpdate(pod, versions);
    assert.ok(
      versions.at(-1)!.metadata.managedFields?.some((m) => m.manager === AGENT_MANAGER),
      "the agent's writes carry its field manager",
    );
    // Every network-status write landed, once and in order: one per toggle (the agent's other
    // write of a toggle, before its operation, changes only its condition).
    const statusOf = (v: PodVersion) => v.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
    const statusWrites = versions.slice(1).filter((v, i) => statusOf(v) !== statusOf(versions[i]!))
      .map(secondaryInterfaces);
    assert.deepEqual(statusWrites, wanted);
    assert.ok(
      writes(versions).filter(changedNetworkStatus).length <= 2 * wanted.length,
      "at most two writes of the agent's per toggle: its announcement and its record",
    );
    assert.deepEqual(complaints(agentRecords(ctl, pod, line)), []);
    const met = await metric(ctl, "dynamic_networks_status_update_conflicts_total") - conflicts;
    console.log(
      `${wanted.length} hot-plug toggles and ${kubeletWrites()} kubelet status writes in ` +
        `${seconds.toFixed(1)} s on one pod; the agent met ${met} conflicts (409) and retried`,
    );
    await rig.deletePod(pod);
  },
});

Deno.test({
  name:
    "lifecycle: every host end of a deleted pod's bridge veth goes once multus lets go of the pod's namespace",
  ...rigTest,
  async fn() {
    const { rig, bridge } = await env();
    // A pod's hot-plugged bridge attachment is released (its address) once its sandbox stops,
    // when the namespace's path is gone: the veth then goes with the namespace itself, which
    // multus keeps open until its runtime collects a handle it leaks at every ADD (at most
    // about two minutes). Only the pods that still exist may keep a port on the bridge.
    const expected = async () => {
      const pods = await rig.api.request<{ items: { metadata: { name: string } }[] }>(
        "GET",
        `/api/v1/namespaces/${NS}/pods`,
      );
      let ports = 0;
      for (const p of pods.items) {
        const status = await secondaryStatus(
          rig,
          { name: p.metadata.name, namespace: NS } as RigPod,
        );
        ports += status.filter((e) => e.name === GREEN.network).length;
      }
      return ports;
    };
    let have = 0;
    let want = 0;
    await waitFor(
      "the deleted pods' veth host ends to go",
      async () => {
        have = (await bridgePorts(bridge)).length;
        want = await expected();
        return have === want;
      },
      180_000,
      1_000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}: ${have} ports on the bridge, ${want} expected`);
    });
  },
});

Deno.test({
  name: "lifecycle: stop",
  ...rigTest,
  async fn() {
    const e = await starting?.catch(() => undefined);
    if (!e) return;
    await e.ctl.stop();
    await e.rig.stop();
  },
});
