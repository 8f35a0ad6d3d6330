/**
 * The chaos soak: random faults under churn, with the invariants checked after every round.
 *
 *     deno task soak --chaos [--minutes N (10)] [--runtime containerd|crio] [--seed S]
 *                            [--pods N (20)] [--faults-per-round N (6)] [--json FILE]
 *
 * Each round, a seeded planner ({@linkcode ChaosPlanner}) deals workload steps (pods created,
 * some with containers slow to exit, and deleted, gracefully or forced; networks annotations
 * rewritten: new lists, interface names swapped between networks, new `ips`/`mac`, elements
 * without an interface name, edits overwritten at once; the late NAD created or deleted) and
 * faults of distinct kinds ({@linkcode FAULT_KINDS}), each at its own instant within the
 * round's window. Once they are done the run waits for the node to be quiet: every
 * invariant (`chaos_invariants.ts`) holds. That instant ends the round; a fault's recovery
 * time runs from its injection to it. A round that does not get there within the quiet
 * deadline, or an error-level log line of the agent outside every fault's span, stops the
 * run with the seed, the round, what it did and what differs. The run ends by deleting every
 * pod and checking that nothing is left.
 *
 * Every decision follows from the seed; the node's own timing does not change what the run
 * asks for, so a seed replays the same run.
 *
 * @module
 */
import {
  bridgePorts,
  findPod,
  multusRequests,
  nonDefaultStatus,
  rssKiB,
  setNetworks,
} from "../support/mod.ts";
import type { StatusEntry } from "../support/mod.ts";
import {
  ApiError,
  NETWORK_STATUS_ANNOTATION,
  NETWORKS_ANNOTATION,
  Rig,
  type RigPod,
  type RigRuntime,
  sleep,
} from "../rig/mod.ts";
import { NETWORKS_READY_CONDITION } from "../../lib/core/networks_condition.ts";
import { RELEASE_GIVE_UP_MS } from "../../lib/reconcile/deletion.ts";
import {
  ChaosPlanner,
  FAULT_KINDS,
  type FaultKind,
  GRACE_SECONDS,
  type NetworkName,
  type PlannedFault,
  type RoundPlan,
  SLOW_EXIT_GRACE_SECONDS,
  type Step,
  type Timed,
} from "./chaos_plan.ts";
import {
  type AllocationView,
  allocationViolations,
  type DeletedPod,
  type ErrorLine,
  type FaultSpan,
  faultsUnderway,
  journalViolations,
  platformLeak,
  podViolations,
  terminatingViolations,
  unexplainedErrors,
} from "./chaos_invariants.ts";
import { Agent, FaultyPlugin, injectFault, retrying } from "./chaos_faults.ts";

/** Options of {@linkcode runChaos}. */
export interface ChaosOptions {
  minutes: number;
  runtime: RigRuntime;
  seed: number;
  pods: number;
  faultsPerRound: number;
  /** How long a round may take to become quiet before it counts as a violation. */
  quietTimeoutMs: number;
  json?: string;
}

/** Parses the soak's `--chaos` command line. */
export function parseChaosArgs(args: readonly string[]): ChaosOptions {
  const options: ChaosOptions = {
    minutes: 10,
    runtime: (Deno.env.get("DNC_RIG_RUNTIME") as RigRuntime | undefined) ?? "containerd",
    seed: Math.floor(Math.random() * 2 ** 31),
    pods: 20,
    faultsPerRound: 6,
    quietTimeoutMs: 240_000,
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2) as [string, string | undefined];
    const value = () => inline ?? args[++i] ?? "";
    if (flag === "--chaos") continue;
    else if (flag === "--minutes") options.minutes = Number(value());
    else if (flag === "--runtime") options.runtime = value() as RigRuntime;
    else if (flag === "--seed") options.seed = Number(value());
    else if (flag === "--pods") options.pods = Number(value());
    else if (flag === "--faults-per-round") options.faultsPerRound = Number(value());
    else if (flag === "--quiet-timeout-s") options.quietTimeoutMs = Number(value()) * 1000;
    else if (flag === "--json") options.json = value();
    else if (flag === "--help" || flag === "-h") {
      console.log(
        "usage: deno task soak --chaos [--minutes N (10)] [--runtime containerd|crio] [--seed S]\n" +
          "                            [--pods N (20)] [--faults-per-round N (6)] [--quiet-timeout-s N (240)] [--json FILE]",
      );
      Deno.exit(0);
    } else throw new Error(`unknown argument ${args[i]}; see --help`);
  }
  if (options.runtime !== "containerd" && options.runtime !== "crio") {
    throw new Error(`--runtime ${options.runtime}: use containerd or crio`);
  }
  if (!Number.isInteger(options.seed) || options.seed < 0) {
    throw new Error(`--seed ${options.seed}: use a non-negative integer`);
  }
  if (!(options.minutes > 0) || !(options.pods >= 4)) {
    throw new Error("--minutes must be > 0 and --pods at least 4");
  }
  if (!(options.faultsPerRound >= 1 && options.faultsPerRound <= FAULT_KINDS.length)) {
    throw new Error(`--faults-per-round must be 1 to ${FAULT_KINDS.length}`);
  }
  return options;
}

const NS = "chaos";
const WINDOW_MS = 3_000;
/** host-local's directory (the CNI network name) of each network that uses host-local. */
const HOST_LOCAL: Partial<Record<NetworkName, string>> = {
  blue: "chaos-blue",
  green: "chaos-green",
  amber: "chaos-amber",
  late: "chaos-late",
};
/** How long an address no teardown released must stay to count as the platform's loss. */
const TEARDOWN_GRACE_MS = 15_000;
/** How old an allocation file without its owner must be to count as abandoned. */
const UNWRITTEN_RESERVATION_MS = 10_000;
/** An error line this close to a fault's span counts as explained by it. */
const ERROR_SLACK_MS = 5_000;
/** What a deleted pod may take beyond its grace period and the agent's give-up time. */
const TERMINATING_SLACK_MS = 60_000;
/** Command of a pod whose container takes 4 to 5 s to exit after SIGTERM. */
const SLOW_EXIT_COMMAND = [
  "/bin/sh",
  "-c",
  "trap 'sleep 4; exit 0' TERM INT; while true; do sleep 1; done",
];

/** A violation: what differs, and where. */
export interface Violation {
  round: number;
  text: string;
}

function median(values: readonly number[]): number {
  return percentile(values, 0.5);
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function describeStep(s: Timed<Step>): string {
  switch (s.kind) {
    case "create":
      return `+${s.atMs}ms create ${s.pod}${s.slowExit ? " (slow exit)" : ""} ${
        JSON.stringify(s.elements)
      }`;
    case "delete":
      return `+${s.atMs}ms delete ${s.pod}${s.force ? " (forced)" : ""}`;
    case "edit":
      return `+${s.atMs}ms edit ${s.pod} (${s.edit}) ${JSON.stringify(s.elements)}${
        s.overwrite ? ` then at once ${JSON.stringify(s.overwrite)}` : ""
      }`;
    case "late-nad":
      return `+${s.atMs}ms ${s.present ? "create" : "delete"} NAD late`;
  }
}

function describeFault(f: Timed<PlannedFault>): string {
  const detail = f.kind === "sandbox-kill"
    ? ` ${f.pod}`
    : f.kind === "plugin-fault"
    ? ` ${f.mode} for ${f.holdMs} ms`
    : f.kind === "agent-kill"
    ? ` down ${f.downMs} ms`
    : "";
  return `+${f.atMs}ms ${f.kind}${detail}`;
}

interface PodListItem {
  metadata: {
    name: string;
    uid: string;
    deletionTimestamp?: string;
    finalizers?: string[];
    annotations?: Record<string, string>;
  };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/** What a chaos run found (also printed, and written to `--json`). */
export interface ChaosReport {
  seed: number;
  runtime: RigRuntime;
  minutes: number;
  rounds: number;
  faultsPerRound: number;
  /** Faults injected, by kind (and `plugin-fault:slow|fail`). */
  faults: Record<string, number>;
  faultsTotal: number;
  /** Workload steps, by kind (`edit:<how>` for edits). */
  steps: Record<string, number>;
  edits: number;
  podsCreated: number;
  podsDeleted: number;
  agentStarts: number;
  /** From each fault's injection to all invariants holding again, by kind. */
  recoverySeconds: Record<string, { n: number; median: number; p90: number }>;
  roundSeconds: { median: number; p90: number; max: number };
  rssMiB: {
    first: number;
    median: number;
    max: number;
    last: number;
    overTime: { s: number; rssMiB: number }[];
  };
  errorLines: {
    explained: number;
    total: number;
    /** The first explained lines, with the fault kinds under way when each was written. */
    examples: { during: string[]; text: string }[];
  };
  /**
   * Addresses the platform lost (not the agent): made by multus at a sandbox's creation and
   * never released because the runtime's teardown DEL met a restarting multus or raced the
   * sandbox's own ADD, or reserved by a host-local that a multus restart killed before it wrote
   * the owner.
   */
  platformLeaks: { count: number; examples: string[] };
  /** Pods that waited without a sandbox because their annotation named a missing NAD. */
  podsWaitingForNadWithoutSandbox: number;
  violations: number;
  violationDetails: Violation[];
  drain: string | string[];
}

/** Runs the chaos soak on a rig of its own; resolves with what it found. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const deadline = started + options.minutes * 60_000;
  console.log(
    `chaos soak: seed ${options.seed}, ${options.runtime}, ${options.minutes} min, ${options.pods} pods, ` +
      `${options.faultsPerRound} faults a round (replay: deno task soak --chaos --seed ${options.seed} ` +
      `--runtime ${options.runtime} --minutes ${options.minutes} --pods ${options.pods} ` +
      `--faults-per-round ${options.faultsPerRound})`,
  );
  const planner = new ChaosPlanner(options.seed, {
    pods: options.pods,
    faultsPerRound: options.faultsPerRound,
    windowMs: WINDOW_MS,
  });
  const rig = await Rig.start({ runtime: options.runtime });
  let agent: Agent | undefined;
  const violations: Violation[] = [];
  const recovery = new Map<FaultKind, number[]>(FAULT_KINDS.map((k) => [k, []]));
  const faultCounts = new Map<string, number>();
  const stepCounts = new Map<string, number>();
  const spans: FaultSpan[] = [];
  const rss: { s: number; rssMiB: number }[] = [];
  const roundSeconds: number[] = [];
  const rigPods = new Map<string, RigPod>();
  const deleted: DeletedPod[] = [];
  let errorsSeen = 0;
  let explainedErrors = 0;
  /** The first explained error lines, with the fault kinds whose spans hold them. */
  const explainedExamples: { during: string[]; text: string }[] = [];
  let rounds = 0;
  const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

  try {
    await rig.createNamespace(NS);
    const bridge = rig.ownLink("cg");
    const plugin = await FaultyPlugin.install(rig);
    const nadConfigs: Record<NetworkName, Record<string, unknown>> = {
      blue: rig.macvlanConfig("10.82.0.0/16", { name: HOST_LOCAL.blue! }),
      green: {
        cniVersion: "0.3.1",
        name: HOST_LOCAL.green,
        type: "bridge",
        bridge,
        ipam: rig.hostLocalIpam("10.83.0.0/16"),
      },
      red: {
        cniVersion: "0.3.1",
        name: "chaos-red",
        type: "macvlan",
        master: rig.macvlanMaster,
        mode: "bridge",
        capabilities: { ips: true, mac: true },
        ipam: { type: "static" },
      },
      amber: rig.macvlanConfig("10.86.0.0/16", { name: HOST_LOCAL.amber!, type: plugin.type }),
      late: rig.macvlanConfig("10.85.0.0/16", { name: HOST_LOCAL.late! }),
    };
    for (const name of ["blue", "green", "red", "amber"] as const) {
      await rig.createNad(NS, name, nadConfigs[name]);
    }
    agent = await Agent.start(rig, ["--log-level=info"]);
    const theAgent = agent;

    // ---------------------------------------------------------------- the workload's steps
    const nadPath = `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions`;
    const tolerate = async (fn: () => Promise<unknown>, statuses: number[]) => {
      try {
        await fn();
      } catch (err) {
        if (!(err instanceof ApiError && statuses.includes(err.status))) throw err;
      }
    };
    const doStep = async (step: Step): Promise<void> => {
      count(stepCounts, step.kind === "edit" ? `edit:${step.edit}` : step.kind);
      switch (step.kind) {
        case "create": {
          const pod = await retrying(`create pod ${step.pod}`, async () => {
            const existing = await findPod(rig, { name: step.pod, namespace: NS });
            if (existing) {
              return await rig.refreshPod({
                name: step.pod,
                namespace: NS,
                uid: existing.metadata.uid,
                sandboxId: "",
                hostNetwork: false,
              });
            }
            return await rig.createPod({
              name: step.pod,
              namespace: NS,
              networks: step.elements,
              terminationGracePeriodSeconds: step.slowExit
                ? SLOW_EXIT_GRACE_SECONDS
                : GRACE_SECONDS,
              ...(step.slowExit ? { command: SLOW_EXIT_COMMAND } : {}),
            });
          }, 300_000);
          rigPods.set(step.pod, pod);
          return;
        }
        case "delete": {
          const pod = rigPods.get(step.pod)!;
          rigPods.delete(step.pod);
          const grace = step.force ? 0 : undefined;
          deleted.push({
            name: pod.name,
            uid: pod.uid,
            deletedAt: Date.now(),
            graceSeconds: grace ?? SLOW_EXIT_GRACE_SECONDS,
          });
          await retrying(
            `delete pod ${step.pod}`,
            () =>
              tolerate(
                () =>
                  rig.api.request("DELETE", `/api/v1/namespaces/${NS}/pods/${pod.name}`, {
                    apiVersion: "v1",
                    kind: "DeleteOptions",
                    preconditions: { uid: pod.uid },
                    ...(grace === 0 ? { gracePeriodSeconds: 0 } : {}),
                  }),
                [404, 409],
              ),
          );
          return;
        }
        case "edit": {
          const pod = rigPods.get(step.pod)!;
          await retrying(`edit pod ${step.pod}`, () => setNetworks(rig, pod, step.elements));
          if (step.overwrite) {
            await retrying(`edit pod ${step.pod}`, () => setNetworks(rig, pod, step.overwrite!));
          }
          return;
        }
        case "late-nad":
          if (step.present) {
            await retrying(
              "create NAD late",
              () => tolerate(() => rig.createNad(NS, "late", nadConfigs.late), [409]),
            );
          } else {
            await retrying(
              "delete NAD late",
              () => tolerate(() => rig.api.request("DELETE", `${nadPath}/late`), [404]),
            );
          }
          return;
      }
    };

    // ---------------------------------------------------------------- the invariants
    /** Pods that waited without a sandbox for a missing NAD at some check (multus refuses one). */
    const sandboxWaits = new Set<string>();
    /** When each address `platformLeak` explains was first seen (`network/ip@owner`). */
    const suspectSince = new Map<string, number>();
    /** Addresses the platform lost (see `platformLeak`), by `network/ip`. */
    const platformLeaks = new Map<string, AllocationView>();
    /** Each live pod's links at the last quiet instant. */
    let quietLinks = new Map<string, { uid: string; links: string[] }>();
    /** Lifecycle violations: seen once, they stand (the container may exit a moment later). */
    const lifecycleViolations: string[] = [];
    const sandboxPod = (name: string, uid: string, sandboxId: string): RigPod => ({
      name,
      namespace: NS,
      uid,
      sandboxId,
      hostNetwork: false,
    });
    const check = async (): Promise<string[]> => {
      const problems: string[] = [];
      const list = await rig.api.request("GET", `/api/v1/namespaces/${NS}/pods`) as {
        items: PodListItem[];
      };
      const nadList = await rig.api.request("GET", nadPath) as {
        items: { metadata: { name: string } }[];
      };
      const nads = new Set(nadList.items.map((n) => n.metadata.name as NetworkName));
      const sandboxes = await rig.cri.listPodSandbox({});
      const byName = new Map(list.items.map((p) => [p.metadata.name, p]));
      const existingUids = new Set(list.items.map((p) => p.metadata.uid));
      const terminatingUids = new Set(
        list.items.filter((p) => p.metadata.deletionTimestamp).map((p) => p.metadata.uid),
      );
      const expected = new Map<string, { pod: string; addresses: AllocationView[] }>();
      /** Pods multus makes no sandbox for while a NAD their annotation names is missing. */
      const waitingForNad = new Set<string>();
      let liveGreen = 0;
      let terminatingGreen = 0;
      for (const p of list.items) {
        if (!terminatingUids.has(p.metadata.uid)) continue;
        const text = p.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
        const status = text ? nonDefaultStatus(JSON.parse(text) as StatusEntry[]) : [];
        terminatingGreen += status.filter((s) => s.name === `${NS}/green`).length;
      }
      await probeLifecycle(list.items, sandboxes);
      const linksNow = new Map<string, { uid: string; links: string[] }>();
      for (const model of planner.pods.values()) {
        const object = byName.get(model.name);
        const rigPod = rigPods.get(model.name);
        if (!object || !rigPod || object.metadata.uid !== rigPod.uid) {
          problems.push(`pod ${model.name}: the run created it, but it is not there`);
          continue;
        }
        if (object.metadata.deletionTimestamp) {
          problems.push(`pod ${model.name}: terminating, though nobody deleted it`);
          continue;
        }
        const written = object.metadata.annotations?.[NETWORKS_ANNOTATION] ?? "[]";
        if (JSON.stringify(JSON.parse(written)) !== JSON.stringify(model.elements)) {
          problems.push(
            `pod ${model.name}: networks annotation ${written} is not the run's last edit`,
          );
          continue;
        }
        const sandbox = sandboxes.find((s) =>
          s.labels["io.kubernetes.pod.uid"] === rigPod.uid && s.state === "SANDBOX_READY"
        );
        if (!sandbox) {
          // multus makes no sandbox for a pod whose annotation names a missing NAD: until the
          // NAD is back, the pod waits, and its dead sandbox keeps what it held (released once
          // a new one runs, or the pod is deleted).
          if (model.elements.some((e) => !nads.has(e.name))) {
            waitingForNad.add(rigPod.uid);
            sandboxWaits.add(model.name);
          } else {
            problems.push(`pod ${model.name}: no ready sandbox`);
          }
          continue;
        }
        const text = object.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
        const status = (text ? nonDefaultStatus(JSON.parse(text) as StatusEntry[]) : [])
          .map((s) => ({
            name: s.name,
            interface: s.interface,
            ips: s.ips,
            mac: s.mac,
          }));
        liveGreen += status.filter((s) => s.name === `${NS}/green`).length;
        let links;
        try {
          links = (await rig.netnsInterfaces(sandboxPod(model.name, rigPod.uid, sandbox.id)))
            .filter((l) => l.name !== "lo" && l.name !== "eth0")
            .map((l) => ({ name: l.name, mac: l.mac, ipv4: l.ipv4.map((a) => a.split("/")[0]!) }));
        } catch (err) {
          problems.push(`pod ${model.name}: cannot read its netns: ${err}`);
          continue;
        }
        linksNow.set(model.name, { uid: rigPod.uid, links: links.map((l) => l.name) });
        const condition = object.status?.conditions?.find((c) =>
          c.type === NETWORKS_READY_CONDITION
        );
        for (const v of podViolations(model.elements, NS, nads, { status, links, condition })) {
          problems.push(`pod ${model.name}: ${v}`);
        }
        const addresses: AllocationView[] = [];
        for (const s of status) {
          const dir = HOST_LOCAL[s.name.slice(NS.length + 1) as NetworkName];
          if (!dir) continue;
          for (const ip of (s.ips ?? []).filter((ip) => ip.includes("."))) {
            addresses.push({ network: dir, ip, owner: sandbox.id, ifname: s.interface ?? "" });
          }
        }
        expected.set(sandbox.id, { pod: model.name, addresses });
      }
      // Addresses: the secondary networks' exactly; the cluster network's only by owner.
      const lingering = new Set(
        sandboxes.filter((s) => {
          const uid = s.labels["io.kubernetes.pod.uid"] ?? "";
          return terminatingUids.has(uid) || waitingForNad.has(uid);
        }).map((s) => s.id),
      );
      const secondary: AllocationView[] = [];
      const cluster: AllocationView[] = [];
      const secondaryDirs = new Set(Object.values(HOST_LOCAL));
      for await (const dir of Deno.readDir(rig.ipamDataDir)) {
        if (!dir.isDirectory) continue;
        for (const ip of await rig.hostLocalFiles(dir.name)) {
          let text: string;
          try {
            text = await Deno.readTextFile(`${rig.ipamDataDir}/${dir.name}/${ip}`);
          } catch {
            continue; // released meanwhile
          }
          const [owner = "", ifname = ""] = text.split(/\r?\n/).map((s) => s.trim());
          if (owner === "") {
            // host-local reserves an address by creating its file, then writes the owner: a
            // plugin killed in between (a multus restart stops the plugins it runs) leaves a
            // file nothing can release. One a moment old is a reservation under way.
            const path = `${rig.ipamDataDir}/${dir.name}/${ip}`;
            const age = Date.now() - ((await Deno.stat(path).catch(() => undefined))?.mtime
              ?.getTime() ?? Date.now());
            if (age > UNWRITTEN_RESERVATION_MS) {
              platformLeaks.set(`${dir.name}/${ip}`, { network: dir.name, ip, owner, ifname });
            } else {
              problems.push(`host-local is reserving ${dir.name}/${ip}`);
            }
            continue;
          }
          (secondaryDirs.has(dir.name) ? secondary : cluster).push({
            network: dir.name,
            ip,
            owner,
            ifname,
          });
        }
      }
      // An address whose owner neither holds it rightly nor lingers, and that the platform
      // lost (the runtime's teardown hit a restarting multus), is counted, not held against
      // the agent.
      const ready = new Set(
        sandboxes.filter((s) => s.state === "SANDBOX_READY").map((s) => s.id),
      );
      const suspects = [
        ...secondary.filter((a) => !expected.has(a.owner) && !lingering.has(a.owner)),
        ...cluster.filter((a) => !ready.has(a.owner) && !lingering.has(a.owner)),
      ];
      const lost = new Set<AllocationView>();
      if (suspects.length > 0) {
        const requests = multusRequests(await Deno.readTextFile(rig.logFile("multus")));
        const now = Date.now();
        for (const a of suspects) {
          if (!platformLeak(a, requests)) continue;
          const key = `${a.network}/${a.ip}@${a.owner}`;
          const since = suspectSince.get(key) ?? now;
          suspectSince.set(key, since);
          // A teardown may be on its way: only one that does not come counts.
          if (now - since < TEARDOWN_GRACE_MS) continue;
          lost.add(a);
          platformLeaks.set(`${a.network}/${a.ip}`, a);
        }
      }
      const kept = (list: AllocationView[]) => list.filter((a) => !lost.has(a));
      secondary.splice(0, secondary.length, ...kept(secondary));
      cluster.splice(0, cluster.length, ...kept(cluster));
      problems.push(...allocationViolations(secondary, expected, lingering));
      problems.push(
        // Any namespace's pods hold cluster addresses: every ready sandbox may.
        ...allocationViolations(
          cluster,
          new Map(),
          new Set([
            ...ready,
            ...lingering,
          ]),
        ),
      );
      const ports = (await bridgePorts(bridge)).length;
      if (ports < liveGreen || ports > liveGreen + terminatingGreen) {
        problems.push(
          `bridge ${bridge} has ${ports} host veths; live pods' network-status shows ${liveGreen} ` +
            `attachments to green (and terminating pods' ${terminatingGreen})`,
        );
      }
      const journalUids: string[] = [];
      try {
        for await (const f of Deno.readDir(rig.agentStateDir)) {
          if (f.isFile && f.name.endsWith(".json")) journalUids.push(f.name.slice(0, -5));
        }
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      problems.push(...journalViolations(journalUids, existingUids));
      const present = new Map(
        list.items.map((p) => [p.metadata.uid, { finalizers: p.metadata.finalizers ?? [] }]),
      );
      if (problems.length === 0) quietLinks = linksNow;
      problems.push(...lifecycleViolations);
      problems.push(
        ...terminatingViolations(
          deleted,
          present,
          Date.now(),
          RELEASE_GIVE_UP_MS,
          TERMINATING_SLACK_MS,
        ),
      );
      return problems;
    };

    /**
     * The lifecycle contract, probed during rounds and at every check: no interface leaves a
     * deleted pod while its container runs, until its grace period ends.
     */
    const probeLifecycle = async (
      items: PodListItem[],
      sandboxes: Awaited<ReturnType<typeof rig.cri.listPodSandbox>>,
    ): Promise<void> => {
      for (const p of items) {
        const known = quietLinks.get(p.metadata.name);
        if (!p.metadata.deletionTimestamp || !known || known.uid !== p.metadata.uid) continue;
        const sandbox = sandboxes.find((s) =>
          s.labels["io.kubernetes.pod.uid"] === p.metadata.uid && s.state === "SANDBOX_READY"
        );
        if (!sandbox) continue;
        // The contract holds until the grace period ends (a forced deletion has none).
        const graceEnds = Date.parse(p.metadata.deletionTimestamp);
        if (!(Date.now() < graceEnds)) continue;
        let names: string[];
        try {
          names =
            (await rig.netnsInterfaces(sandboxPod(p.metadata.name, p.metadata.uid, sandbox.id)))
              .map((l) => l.name);
        } catch {
          continue; // the sandbox went meanwhile
        }
        // Read within the grace period, or it says nothing about the contract.
        if (!(Date.now() < graceEnds)) continue;
        const gone = known.links.filter((l) => !names.includes(l));
        if (gone.length === 0) continue;
        // Read after the links: a container running now was running when they were read.
        const running = await rig.cri.listContainers({
          "io.kubernetes.pod.uid": p.metadata.uid,
          "io.kubernetes.container.name": "app",
        });
        if (running.some((c) => c.state === "CONTAINER_RUNNING")) {
          lifecycleViolations.push(
            `pod ${p.metadata.name}: ${
              JSON.stringify(gone)
            } taken out while its container still runs`,
          );
        }
      }
    };

    /** Polls the invariants until they hold; resolves with the instant, or the last problems. */
    const quiet = async (timeoutMs: number): Promise<{ at?: number; problems: string[] }> => {
      const until = Date.now() + timeoutMs;
      let nextNote = Date.now() + 30_000;
      let problems: string[] = [];
      for (;;) {
        try {
          problems = await check();
        } catch (err) {
          problems = [`the check itself failed: ${err}`];
        }
        if (problems.length === 0) return { at: Date.now(), problems };
        if (Date.now() > until || lifecycleViolations.length > 0) return { problems };
        if (Date.now() > nextNote) {
          nextNote = Date.now() + 30_000;
          console.log(`  not quiet yet: ${problems.slice(0, 3).join(" | ")}`);
        }
        await sleep(300);
      }
    };

    const sampleRss = () => {
      const kib = rssKiB(theAgent.current.pid);
      if (kib !== undefined) {
        rss.push({ s: Math.round((Date.now() - started) / 1000), rssMiB: kib / 1024 });
      }
    };

    // ---------------------------------------------------------------- the run
    const initial = planner.initial();
    for (let i = 0; i < initial.length; i += 5) {
      await Promise.all(initial.slice(i, i + 5).map(doStep));
    }
    const settled = await quiet(options.quietTimeoutMs);
    if (settled.at === undefined) {
      for (const text of settled.problems) violations.push({ round: -1, text });
    }
    sampleRss();
    let lastReport = Date.now();
    while (violations.length === 0 && Date.now() < deadline) {
      const plan: RoundPlan = planner.round();
      const roundStart = Date.now();
      const injected: { fault: Timed<PlannedFault>; at: number }[] = [];
      const ctx = { rig, agent: theAgent, plugin, pod: (name: string) => rigPods.get(name) };
      let roundOver = false;
      const prober = (async () => {
        while (!roundOver) {
          try {
            const list = await rig.api.request("GET", `/api/v1/namespaces/${NS}/pods`) as {
              items: PodListItem[];
            };
            await probeLifecycle(list.items, await rig.cri.listPodSandbox({}));
          } catch {
            // a part is restarting: the next probe
          }
          await sleep(500);
        }
      })();
      const results = await Promise.allSettled([
        ...plan.steps.map(async (step) => {
          await sleep(step.atMs - (Date.now() - roundStart));
          await doStep(step);
        }),
        ...plan.faults.map(async (fault) => {
          await sleep(fault.atMs - (Date.now() - roundStart));
          injected.push({ fault, at: Date.now() });
          count(faultCounts, fault.kind);
          if (fault.kind === "plugin-fault") count(faultCounts, `plugin-fault:${fault.mode}`);
          await injectFault(fault, ctx);
        }),
      ]);
      roundOver = true;
      await prober;
      const failed = results.flatMap((r) => r.status === "rejected" ? [String(r.reason)] : []);
      const outcome = failed.length > 0
        ? { problems: failed.map((f) => `the round could not do what it planned: ${f}`) }
        : await quiet(options.quietTimeoutMs);
      const end = outcome.at ?? Date.now();
      for (const { fault, at } of injected) {
        spans.push({ kind: fault.kind, start: at, end });
        if (outcome.at !== undefined) recovery.get(fault.kind)!.push(end - at);
      }
      for (const text of outcome.problems) violations.push({ round: plan.index, text });

      // Error lines: every one must fall within a fault's span.
      const errors: ErrorLine[] = theAgent.errorLines();
      const fresh = errors.slice(errorsSeen);
      errorsSeen = errors.length;
      const unexplained = unexplainedErrors(fresh, spans, ERROR_SLACK_MS);
      explainedErrors += fresh.length - unexplained.length;
      for (const e of fresh) {
        if (unexplained.includes(e) || explainedExamples.length >= 5) continue;
        const during = faultsUnderway(e, spans, ERROR_SLACK_MS);
        explainedExamples.push({ during, text: e.text.slice(0, 600) });
      }
      for (const e of unexplained) {
        violations.push({
          round: plan.index,
          text: `an error-level log line no injected fault explains: ${e.text.slice(0, 600)}`,
        });
      }

      rounds++;
      roundSeconds.push((Date.now() - roundStart) / 1000);
      sampleRss();
      if (violations.length > 0) {
        console.error(
          `\nVIOLATION (seed ${options.seed}, ${options.runtime}, round ${plan.index}):\n` +
            `  steps:\n${plan.steps.map((s) => `    ${describeStep(s)}`).join("\n")}\n` +
            `  faults:\n${plan.faults.map((f) => `    ${describeFault(f)}`).join("\n")}\n` +
            `  what differs:\n${violations.map((v) => `    ${v.text}`).join("\n")}`,
        );
        break;
      }
      if (Date.now() - lastReport > 30_000) {
        lastReport = Date.now();
        console.log(
          `[${
            Math.round((Date.now() - started) / 1000)
          }s] round ${rounds}, pods ${planner.pods.size}, ` +
            `faults ${FAULT_KINDS.map((k) => `${k} ${faultCounts.get(k) ?? 0}`).join(", ")}, ` +
            `RSS ${rss.at(-1)?.rssMiB.toFixed(1)} MiB`,
        );
      }
    }

    // ---------------------------------------------------------------- the drain
    let drainProblems: string[] = [];
    if (violations.length === 0) {
      for (const name of [...planner.pods.keys()]) {
        planner.pods.delete(name);
        await doStep({ kind: "delete", pod: name, force: false });
      }
      if (planner.lateNad) await doStep({ kind: "late-nad", present: false });
      const drained = await (async () => {
        const until = Date.now() + RELEASE_GIVE_UP_MS + 120_000;
        for (;;) {
          const problems = await check().catch((err) => [`the check itself failed: ${err}`]);
          const left = (await rig.api.request("GET", `/api/v1/namespaces/${NS}/pods`) as {
            items: unknown[];
          }).items.length;
          if (left > 0) problems.push(`${left} pods are still there`);
          if (problems.length === 0 || Date.now() > until) return problems;
          await sleep(1_000);
        }
      })();
      drainProblems = drained;
      for (const text of drained) {
        violations.push({ round: rounds, text: `after the drain: ${text}` });
      }
    }

    const counts = Object.fromEntries([...faultCounts].sort());
    const steps = Object.fromEntries([...stepCounts].sort());
    const edits = [...stepCounts].filter(([k]) => k.startsWith("edit:")).reduce(
      (n, [, v]) => n + v,
      0,
    );
    const rssValues = rss.map((s) => s.rssMiB);
    const report: ChaosReport = {
      seed: options.seed,
      runtime: options.runtime,
      minutes: Math.round((Date.now() - started) / 600) / 100,
      rounds,
      faultsPerRound: options.faultsPerRound,
      faults: counts,
      faultsTotal: FAULT_KINDS.reduce((n, k) => n + (faultCounts.get(k) ?? 0), 0),
      steps,
      edits,
      podsCreated: stepCounts.get("create") ?? 0,
      podsDeleted: stepCounts.get("delete") ?? 0,
      agentStarts: theAgent.starts,
      recoverySeconds: Object.fromEntries(
        FAULT_KINDS.map((k) => {
          const v = recovery.get(k)!;
          return [k, {
            n: v.length,
            median: Number((median(v) / 1000).toFixed(2)),
            p90: Number((percentile(v, 0.9) / 1000).toFixed(2)),
          }];
        }),
      ),
      roundSeconds: {
        median: Number(median(roundSeconds).toFixed(2)),
        p90: Number(percentile(roundSeconds, 0.9).toFixed(2)),
        max: Number(Math.max(...roundSeconds).toFixed(2)),
      },
      rssMiB: {
        first: Number((rssValues[0] ?? NaN).toFixed(1)),
        median: Number(median(rssValues).toFixed(1)),
        max: Number(Math.max(...rssValues).toFixed(1)),
        last: Number((rssValues.at(-1) ?? NaN).toFixed(1)),
        overTime: rss.filter((_, i) => i % Math.max(1, Math.floor(rss.length / 12)) === 0)
          .map((s) => ({ s: s.s, rssMiB: Number(s.rssMiB.toFixed(1)) })),
      },
      errorLines: { explained: explainedErrors, total: errorsSeen, examples: explainedExamples },
      podsWaitingForNadWithoutSandbox: sandboxWaits.size,
      platformLeaks: {
        count: platformLeaks.size,
        examples: [...platformLeaks.values()].slice(0, 5).map((a) =>
          a.owner === ""
            ? `${a.network}/${a.ip}, reserved and never written (its plugin was killed)`
            : `${a.network}/${a.ip} (${a.ifname}) of sandbox ${a.owner.slice(0, 13)}`
        ),
      },
      violations: violations.length,
      violationDetails: violations.slice(0, 20),
      drain: drainProblems.length === 0 ? "nothing left" : drainProblems.slice(0, 10),
    };
    console.log(JSON.stringify(report, null, 2));
    if (options.json) {
      await Deno.writeTextFile(options.json, JSON.stringify(report, null, 2) + "\n");
    }
    console.log(
      `\nchaos soak ${report.minutes} min on ${options.runtime}, seed ${options.seed}: ${rounds} rounds, ` +
        `${report.faultsTotal} faults (${
          FAULT_KINDS.map((k) => `${k} ${faultCounts.get(k) ?? 0}`).join(", ")
        }), ${edits} edits, ${report.podsCreated} pods created, ${report.podsDeleted} deleted, ` +
        `${violations.length} violations`,
    );
    console.log(violations.length === 0 ? "CHAOS SOAK PASSED" : "CHAOS SOAK FAILED");
    return report;
  } finally {
    await agent?.stop().catch(() => undefined);
    await rig.stop();
  }
}

if (import.meta.main) {
  Deno.exit((await runChaos(parseChaosArgs(Deno.args))).violations === 0 ? 0 : 1);
}
