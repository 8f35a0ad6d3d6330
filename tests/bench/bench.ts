/**
 * `deno task bench`: measures the controller on the node rig in one run and prints a table
 * plus a JSON report.
 *
 * 1. Hot-plug and unplug latency, from the annotation write's response to network-status
 *    updated (pod watch) and to the interface up or gone in the pod's netns (`ip monitor`),
 *    against the floor: the multus `/delegate` time of the same operation, read from the
 *    controller's `dynamic_networks_delegate_duration_seconds` histogram.
 * 2. A burst: every pod on the node gets 2 interfaces in one edit, all edits at once, with the
 *    default workers and again with `--workers 1`. Then the same two bursts through a plugin
 *    that waits `--plugin-wait-ms` before doing macvlan's work, as a plugin that calls a cloud
 *    API does: it shows what concurrency gives when the node's CPUs are not the limit.
 * 3. Memory (VmRSS, VmHWM): idle with 0 and with all pods cached, peak during the bursts.
 * 4. Start-up with all pods present: process start → caches synced → first reconcile → all.
 * 5. API economy: requests per hot-plug and per idle hour from `rest_client_requests_total`,
 *    and the writes while nothing changes (resync every 10 s during that window).
 * 6. Start-up with an edit waiting on every pod (`--startups` runs): process start → config
 *    loaded → caches synced → first and last network-status written.
 * 7. What each loaded part costs (RSS, load time), each in a process of its own (`parts.ts`),
 *    and two of the agent's own parts against the library that could stand in for each: the
 *    CRI codec against protobufjs, the metrics registry against prom-client (`libraries.ts`).
 * 8. Floors (`floors.ts`): multus' `/delegate`, the CRI lookup, the watch and the API server's
 *    own time per read and per status write (PUT, and the two PATCHes it could be), each alone.
 * 9. Wake-ups (`--wakeups` rounds): a pod in a ten-minute backoff after a partial pass, and
 *    the time from a late NAD's creation to its interface recorded, and from a graceful
 *    deletion to the hot-plugged attachment released (see `wakeups.ts`).
 * 10. The drift check (`drift.ts`, `--drift-repairs` samples): one CNI CHECK through multus
 *    against an ADD and a DEL, a link deleted in a pod until repaired, and an idle window over
 *    every pod with checks on against one with them off. `--only drift` runs this phase alone
 *    (on `--pods` pods of its own).
 *
 * Needs root and the rig's set-up (`bash tests/rig/setup.sh`). Usage:
 *
 * ```sh
 * deno task bench [--pods 110] [--samples 20] [--idle-seconds 60] [--startups 3]
 *                 [--plugin-wait-ms 200] [--wakeups 5] [--drift-repairs 5] [--only drift]
 *                 [--out FILE]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ControllerProcess } from "../support/mod.ts";
import { NETWORKS_ANNOTATION, Rig, type RigPod } from "../rig/mod.ts";
import { FileJournal } from "../../lib/journal/file_journal.ts";
import { Logger } from "../../lib/base/log.ts";
import { NetnsMonitor } from "./netns_monitor.ts";
import { PodWatch, type WatchedPod } from "./pod_watch.ts";
import { procMemory, RssSampler } from "./proc.ts";
import { deltaBy } from "./prom.ts";
import { round, summarize, type Summary } from "./stats.ts";
import { wakeupPhase, type WakeupResult } from "./wakeups.ts";
import { type PartCost, partCosts } from "./parts.ts";
import { type LibraryCost, libraryCosts } from "./libraries.ts";
import { type ApiFloor, floorsPhase, type FloorsResult } from "./floors.ts";
import { driftPhase, type DriftResult, renderDrift } from "./drift.ts";
import {
  machineCpu,
  ms,
  pool,
  row,
  scrape,
  sleep,
  statusInterfaces,
  waitIdle,
} from "./bench_support.ts";

const NAMESPACE = "bench";
const NAD = "bench-macvlan";
/** A NAD whose plugin waits before it works (see `--plugin-wait-ms`). */
const WAITING_NAD = "bench-waiting-macvlan";
const WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"];

/** Command-line options of the bench. */
interface BenchOptions {
  pods: number;
  samples: number;
  idleSeconds: number;
  startups: number;
  createParallel: number;
  pluginWaitMs: number;
  wakeups: number;
  /** Deleted links timed until repaired; 0 skips the drift phase. */
  driftRepairs: number;
  /** A single phase to run alone (`drift`), or undefined for all. */
  only?: "drift";
  out: string;
}

function parseOptions(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      pods: { type: "string", default: "110" },
      samples: { type: "string", default: "20" },
      "idle-seconds": { type: "string", default: "60" },
      startups: { type: "string", default: "3" },
      "create-parallel": { type: "string", default: "6" },
      "plugin-wait-ms": { type: "string", default: "200" },
      wakeups: { type: "string", default: "5" },
      "drift-repairs": { type: "string", default: "5" },
      only: { type: "string" },
      out: { type: "string", default: ".rig/bench-report.json" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      "usage: deno task bench [--pods 110] [--samples 20] [--idle-seconds 60] [--startups 3]\n" +
        "                       [--create-parallel 6] [--plugin-wait-ms 200 (0: skip)]\n" +
        "                       [--wakeups 5 (0: skip)] [--drift-repairs 5 (0: skip)]\n" +
        "                       [--only drift (that phase alone, on --pods pods)]\n" +
        "                       [--out .rig/bench-report.json]",
    );
    Deno.exit(0);
  }
  const int = (name: string, value: string, min: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      throw new Error(`--${name} ${JSON.stringify(value)}: give a whole number ≥ ${min}`);
    }
    return n;
  };
  if (values.only !== undefined && values.only !== "drift") {
    throw new Error(
      `--only ${JSON.stringify(values.only)}: the only phase that runs alone is "drift"`,
    );
  }
  const driftRepairs = int("drift-repairs", values["drift-repairs"], 0);
  if (values.only === "drift" && driftRepairs === 0) {
    throw new Error(`--drift-repairs 0 skips the drift phase, and --only drift runs nothing else`);
  }
  return {
    pods: int("pods", values.pods, 1),
    samples: int("samples", values.samples, 1),
    idleSeconds: int("idle-seconds", values["idle-seconds"], 1),
    startups: int("startups", values.startups, 1),
    createParallel: int("create-parallel", values["create-parallel"], 1),
    pluginWaitMs: int("plugin-wait-ms", values["plugin-wait-ms"], 0),
    wakeups: int("wakeups", values.wakeups, 0),
    driftRepairs,
    ...(values.only === "drift" ? { only: "drift" as const } : {}),
    out: values.out,
  };
}

// ------------------------------------------------------------------------------- helpers

/** Waits for `work` at most `ms`, ignoring its failure. */
async function within(ms: number, work: Promise<unknown> | undefined): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    (work ?? Promise.resolve()).catch(() => undefined),
    new Promise((r) => timer = setTimeout(r, ms)),
  ]);
  clearTimeout(timer);
}
const started = performance.now();

function progress(message: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  console.error(`[bench ${s}s] ${message}`);
}

function hasAll(pod: WatchedPod, names: readonly string[]): boolean {
  const have = new Set(statusInterfaces(pod));
  return names.every((n) => have.has(n));
}

/** The networks annotation for `ifnames`; names starting with "w" use the waiting plugin. */
function networks(ifnames: readonly string[]): string {
  return JSON.stringify(
    ifnames.map((i) => ({ name: i.startsWith("w") ? WAITING_NAD : NAD, interface: i })),
  );
}

function startController(rig: Rig, args: string[] = []): Promise<ControllerProcess> {
  return ControllerProcess.start(rig, { args: ["--log-level=info", ...args], waitReady: false });
}

// ------------------------------------------------------------------------------- phases

/** One hot-plug or unplug sample, in ms. */
interface LatencySample {
  op: "add" | "remove";
  statusMs: number;
  netnsMs: number;
  floorMs: number;
  overheadMs: number;
  delegateCalls: number;
  /** The controller's own hot-plug histogram (watch event seen → status written). */
  controllerMs: number;
  requests: Record<string, number>;
  /** Time in CRI calls (sandbox lookup). */
  criMs: number;
  /** Time in API requests by verb (GET: fresh reads; PUT: the status write; POST/PATCH: Events). */
  apiMs: Record<string, number>;
}

/**
 * `samples` hot-plugs and unplugs of one interface of `pod`, each waited for. With `kept`
 * interfaces attached throughout, the pod holds the agent's finalizer all along (a later
 * hot-plug); without, every plug is the pod's first one again (the finalizer comes with it).
 */
async function latencyPhase(
  ctl: ControllerProcess,
  watch: PodWatch,
  rig: Rig,
  pod: RigPod,
  samples: number,
  kept: readonly string[] = [],
): Promise<LatencySample[]> {
  const monitor = await NetnsMonitor.start(await rig.podNetns(pod));
  const out: LatencySample[] = [];
  const ifname = "hp1";
  if (kept.length > 0) {
    const attached = watch.until(pod.name, (p) => hasAll(p, kept), 30_000);
    await watch.annotate(pod.name, { [NETWORKS_ANNOTATION]: networks(kept) });
    await attached;
    await waitIdle(ctl);
  }
  try {
    for (let i = 0; i < samples; i++) {
      for (const op of ["add", "remove"] as const) {
        const command = op === "add" ? "ADD" : "DEL";
        const before = await scrape(ctl);
        const statusAt = watch.until(
          pod.name,
          (p) => statusInterfaces(p).includes(ifname) === (op === "add"),
          30_000,
        );
        const netnsAt = monitor.until(ifname, op === "add", 30_000);
        const sent = await watch.annotate(pod.name, {
          [NETWORKS_ANNOTATION]: networks(op === "add" ? [...kept, ifname] : kept),
        });
        const [s, n] = await Promise.all([statusAt, netnsAt]);
        // Let the Event post and the echo of our own status write settle before counting.
        await sleep(250);
        const after = await scrape(ctl);
        const delegate = "dynamic_networks_delegate_duration_seconds";
        const floorMs = 1000 *
          (after.sum(`${delegate}_sum`, { command }) - before.sum(`${delegate}_sum`, { command }));
        const hotplug = "dynamic_networks_hotplug_latency_seconds_sum";
        const statusMs = s - sent;
        out.push({
          op,
          statusMs,
          netnsMs: n - sent,
          floorMs,
          overheadMs: statusMs - floorMs,
          delegateCalls: after.sum("dynamic_networks_delegate_duration_seconds_count") -
            before.sum("dynamic_networks_delegate_duration_seconds_count"),
          controllerMs: 1000 * (after.sum(hotplug) - before.sum(hotplug)),
          requests: deltaBy(
            before.by("rest_client_requests_total", "method"),
            after.by("rest_client_requests_total", "method"),
          ),
          criMs: 1000 * (after.sum("dynamic_networks_cri_duration_seconds_sum") -
            before.sum("dynamic_networks_cri_duration_seconds_sum")),
          apiMs: Object.fromEntries(
            Object.entries(deltaBy(
              before.by("rest_client_request_duration_seconds_sum", "verb"),
              after.by("rest_client_request_duration_seconds_sum", "verb"),
            )).map(([k, v]) => [k, 1000 * v]),
          ),
        });
        await sleep(50 + Math.random() * 150);
      }
    }
  } finally {
    await monitor.stop();
  }
  return out;
}

/** What one start-up took, in ms from the spawn of the process. */
interface StartupSample {
  workers: number;
  /** From the bench calling start to the spawn (the launcher computing the permission flags). */
  launchMs: number;
  cachesSyncedMs: number;
  firstReconcileMs: number;
  allReconciledMs: number;
  readyMs: number;
  rssAfterMiB: number;
}

async function startupRun(
  rig: Rig,
  pods: number,
  args: string[],
): Promise<{ ctl: ControllerProcess; sample: StartupSample }> {
  const calledAt = Date.now();
  const ctl = await startController(rig, args);
  // start() resolves right after the spawn: the process's start, within a millisecond.
  const origin = Date.now();
  let firstAt = 0;
  let allAt = 0;
  let readyAt = 0;
  const deadline = Date.now() + 60_000;
  while ((allAt === 0 || readyAt === 0) && Date.now() < deadline) {
    try {
      const m = await scrape(ctl);
      const now = Date.now();
      const done = m.sum("controller_runtime_reconcile_total");
      if (firstAt === 0 && done >= 1) firstAt = now;
      if (allAt === 0 && done >= pods) allAt = now;
      if (readyAt === 0 && (await ctl.get("/readyz")).status === 200) readyAt = Date.now();
    } catch {
      // Not listening yet.
    }
    await sleep(10);
  }
  if (allAt === 0) throw new Error(`start-up: ${pods} reconciles not done within 60 s`);
  const m = await scrape(ctl);
  const synced = ctl.records().find((r) => r.msg === "Caches synced");
  if (!synced) throw new Error('start-up: no "Caches synced" log line');
  const syncedAt = Date.parse(String(synced.ts));
  await waitIdle(ctl);
  await sleep(1000);
  return {
    ctl,
    sample: {
      workers: Number(m.sum("controller_runtime_max_concurrent_reconciles")),
      launchMs: origin - calledAt,
      cachesSyncedMs: syncedAt - origin,
      firstReconcileMs: firstAt - origin,
      allReconciledMs: allAt - origin,
      readyMs: readyAt - origin,
      rssAfterMiB: procMemory(ctl.pid).rssMiB,
    },
  };
}

/** A start-up with an edit waiting on every pod, in ms from the spawn of the process. */
interface PendingStartupSample {
  /** The log line after the configuration is loaded: runtime start, main.ts's imports, config. */
  configLoadedMs: number;
  /** Caches synced: the controller's import, journal, API client, first list of pods and NADs. */
  cachesSyncedMs: number;
  /** The first pod's network-status written with its edit (pod watch). */
  firstWriteMs: number;
  /** The last one. */
  lastWriteMs: number;
  rssAfterMiB: number;
}

/** True when a pod's network-status records exactly `names`. */
function hasExactly(pod: WatchedPod, names: readonly string[]): boolean {
  const have = statusInterfaces(pod);
  return have.length === names.length && hasAll(pod, names);
}

/**
 * Edits every pod to `want` while no agent runs, then starts one and times, from its spawn,
 * its log phases and the first and the last network-status written.
 */
async function pendingStartup(
  rig: Rig,
  watch: PodWatch,
  pods: RigPod[],
  want: string[],
): Promise<PendingStartupSample> {
  await pool(pods, 8, (p) => watch.annotate(p.name, { [NETWORKS_ANNOTATION]: networks(want) }));
  const waits = pods.map((p) => watch.until(p.name, (w) => hasExactly(w, want), 120_000));
  const ctl = await startController(rig);
  const origin = performance.now();
  const originDate = Date.now();
  try {
    const done = await Promise.all(waits);
    await waitIdle(ctl);
    const at = (msg: string) => {
      const r = ctl.records().find((r) => r.msg === msg);
      if (!r) throw new Error(`pending start-up: no "${msg}" log line`);
      return Date.parse(String(r.ts)) - originDate;
    };
    return {
      configLoadedMs: at("Loaded configuration"),
      cachesSyncedMs: at("Caches synced"),
      firstWriteMs: Math.min(...done) - origin,
      lastWriteMs: Math.max(...done) - origin,
      rssAfterMiB: procMemory(ctl.pid).rssMiB,
    };
  } finally {
    await ctl.stop();
  }
}

/**
 * What journaling costs per hot-plug (the ADD recorded pending before the call, attached after
 * the status write) and per unplug (detaching before the DEL, forgotten after the status
 * write), on a disk-backed directory like the DaemonSet's `/var/lib` hostPath; the journal is
 * not on the controller's metrics, so it is timed here, in-process, `n` times each.
 */
async function journalCost(n: number): Promise<{ plug: Summary; unplug: Summary }> {
  const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "dnc-bench-journal-" });
  try {
    const journal = await FileJournal.open({
      dir,
      log: new Logger({ level: "error", sink: () => {} }),
    });
    const config = new TextEncoder().encode(JSON.stringify({
      cniVersion: "0.3.1",
      name: NAD,
      type: "macvlan",
      master: "eth1",
      ipam: { type: "host-local", ranges: [[{ subnet: "10.150.0.0/16" }]] },
    }));
    const plug: number[] = [];
    const unplug: number[] = [];
    for (let i = 0; i < n; i++) {
      const add = {
        podKey: `${NAMESPACE}/bench-${i % 110}`,
        id: { namespace: NAMESPACE, network: NAD, interface: "net1" },
        request: {
          command: "ADD" as const,
          containerId: `${i % 110}`.padStart(64, "0"),
          netns: `/var/run/netns/cni-${i % 110}`,
          ifname: "net1",
          podNamespace: NAMESPACE,
          podName: `bench-${i % 110}`,
          podUid: `00000000-0000-0000-0000-${String(i % 110).padStart(12, "0")}`,
          config,
        },
      };
      const t0 = performance.now();
      await journal.record(add);
      await journal.settle({ recorded: [add] });
      const t1 = performance.now();
      await journal.recordDetach(add);
      await journal.settle({ released: [add] });
      unplug.push(performance.now() - t1);
      plug.push(t1 - t0);
    }
    return { plug: summarize(plug), unplug: summarize(unplug) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Installs, in the rig's CNI directory, a plugin that sleeps `waitMs` and then does macvlan's
 * work, and a NAD that uses it: the stand-in for a plugin that waits on a remote API.
 */
async function waitingPlugin(rig: Rig, waitMs: number): Promise<void> {
  const type = "bench-waiting-macvlan";
  await Deno.writeTextFile(
    `${rig.cniBinDir}/${type}`,
    `#!/bin/sh\nsleep ${(waitMs / 1000).toFixed(3)}\nexec "$(dirname "$0")/macvlan" "$@"\n`,
    { mode: 0o755 },
  );
  await rig.createNad(NAMESPACE, WAITING_NAD, rig.macvlanConfig("10.151.0.0/16", { type }));
}

/** The outcome of one burst. */
interface BurstResult {
  workers: number;
  pods: number;
  interfacesPerPod: number;
  /** From the first edit sent to the last edit's response. */
  editsMs: number;
  /** From the first edit sent to every network-status right (watch). */
  allStatusMs: number;
  perPodMs: Summary;
  delegateCalls: number;
  delegateSumMs: number;
  requests: Record<string, number>;
  retries: number;
  reconcileErrors: number;
  /** CPU seconds the controller used during the burst. */
  controllerCpuSeconds: number;
  /** How busy the machine's CPUs were during the burst, in % of all of them (/proc/stat). */
  machineCpuBusyPercent: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
  hwmMiB: number;
  netnsChecked: number;
  netnsMissing: string[];
}

async function burst(
  ctl: ControllerProcess,
  watch: PodWatch,
  rig: Rig,
  pods: RigPod[],
  keep: string[],
  add: string[],
): Promise<BurstResult> {
  await waitIdle(ctl);
  const before = await scrape(ctl);
  const rssBefore = procMemory(ctl.pid).rssMiB;
  const cpuBefore = machineCpu();
  const sampler = new RssSampler(ctl.pid, 25);
  const want = [...keep, ...add];
  const waits = pods.map((p) => watch.until(p.name, (w) => hasAll(w, want), 300_000));
  const t0 = performance.now();
  const responses = await Promise.all(
    pods.map((p) => watch.annotate(p.name, { [NETWORKS_ANNOTATION]: networks(want) })),
  );
  const done = await Promise.all(waits);
  const cpuAfter = machineCpu();
  await waitIdle(ctl);
  const peak = sampler.stop();
  const hwm = procMemory(ctl.pid).hwmMiB;
  const after = await scrape(ctl);
  const missing: string[] = [];
  await pool(pods, 8, async (p) => {
    const names = new Set((await rig.netnsInterfaces(p)).map((i) => i.name));
    for (const n of want) if (!names.has(n)) missing.push(`${p.name}:${n}`);
  });
  const d = "dynamic_networks_delegate_duration_seconds";
  return {
    workers: after.sum("controller_runtime_max_concurrent_reconciles"),
    pods: pods.length,
    interfacesPerPod: add.length,
    editsMs: Math.max(...responses) - t0,
    allStatusMs: Math.max(...done) - t0,
    perPodMs: summarize(done.map((t) => t - t0)),
    delegateCalls: after.sum(`${d}_count`) - before.sum(`${d}_count`),
    delegateSumMs: 1000 * (after.sum(`${d}_sum`) - before.sum(`${d}_sum`)),
    requests: deltaBy(
      before.by("rest_client_requests_total", "method"),
      after.by("rest_client_requests_total", "method"),
    ),
    retries: after.sum("workqueue_retries_total") - before.sum("workqueue_retries_total"),
    reconcileErrors: after.sum("controller_runtime_reconcile_errors_total") -
      before.sum("controller_runtime_reconcile_errors_total"),
    controllerCpuSeconds: after.sum("process_cpu_seconds_total") -
      before.sum("process_cpu_seconds_total"),
    machineCpuBusyPercent: 100 * (cpuAfter.busy - cpuBefore.busy) /
      (cpuAfter.total - cpuBefore.total),
    rssBeforeMiB: rssBefore,
    peakRssMiB: peak,
    hwmMiB: hwm,
    netnsChecked: pods.length * want.length,
    netnsMissing: missing,
  };
}

/**
 * The least time a burst could take if the agent used no CPU at all: the CPU time everything
 * else on the machine used during it (multus, the plugins, the API server, etcd, the kubelet),
 * spread over every core.
 */
function othersCpuFloorMs(b: BurstResult): number {
  const cores = navigator.hardwareConcurrency;
  const busyCoreMs = (b.machineCpuBusyPercent / 100) * cores * b.allStatusMs;
  return (busyCoreMs - 1000 * b.controllerCpuSeconds) / cores;
}

/** Idle RSS readings over a few seconds. */
async function idleRss(ctl: ControllerProcess, seconds: number): Promise<Summary> {
  const values: number[] = [];
  for (let i = 0; i < seconds * 2; i++) {
    values.push(procMemory(ctl.pid).rssMiB);
    await sleep(500);
  }
  return summarize(values);
}

/** Requests and memory over an idle window. */
interface IdleResult {
  windowSeconds: number;
  resyncPeriodSeconds: number;
  reconciles: number;
  requests: Record<string, number>;
  requestsPerHour: number;
  writes: number;
  rss: Summary;
  /** At the window's end: the resident set's file pages and anonymous memory, and V8's heap. */
  split: { fileMiB: number; anonMiB: number; v8HeapMiB: number };
}

async function idlePhase(
  ctl: ControllerProcess,
  seconds: number,
  resync: number,
): Promise<IdleResult> {
  const before = await scrape(ctl);
  const t0 = performance.now();
  const rss: number[] = [];
  while (performance.now() - t0 < seconds * 1000) {
    rss.push(procMemory(ctl.pid).rssMiB);
    await sleep(1000);
  }
  const after = await scrape(ctl);
  const window = (performance.now() - t0) / 1000;
  const { fileMiB, anonMiB } = procMemory(ctl.pid);
  const requests = deltaBy(
    before.by("rest_client_requests_total", "method"),
    after.by("rest_client_requests_total", "method"),
  );
  const total = Object.values(requests).reduce((a, b) => a + b, 0);
  return {
    windowSeconds: window,
    resyncPeriodSeconds: resync,
    reconciles: after.sum("controller_runtime_reconcile_total") -
      before.sum("controller_runtime_reconcile_total"),
    requests,
    requestsPerHour: (total * 3600) / window,
    writes: WRITE_METHODS.reduce((a, m) => a + (requests[m] ?? 0), 0),
    rss: summarize(rss),
    split: { fileMiB, anonMiB, v8HeapMiB: after.sum("deno_heap_total_bytes") / 2 ** 20 },
  };
}

// ------------------------------------------------------------------------------- report

function machine() {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const meminfo = Deno.readTextFileSync("/proc/meminfo");
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  return {
    cpu: model,
    cpus: navigator.hardwareConcurrency,
    memoryGiB: round(memKiB / 1024 / 1024, 1),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    loadavg: loadavg(),
  };
}

/** The 1, 5 and 15 minute load averages (/proc/loadavg). */
function loadavg(): number[] {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).map(Number);
}

function verdict(ok: boolean): string {
  return ok ? "meets" : "MISSES";
}

/**
 * What no controller on this rig can go below, as sums of medians measured outside the agent
 * (`floors.ts`, `parts.ts`): the parts each figure cannot do without.
 *
 * - overhead: the status write (the PUT; the PATCHes are no faster), the CRI lookup that finds
 *   the netns, and two trips through a watch (the edit to the agent, the status to the user);
 * - interface up: the edit's trip through the watch, the CRI lookup, multus to the link up;
 * - first write: the runtime's start, loading the controller, a first API request (the
 *   process's first TLS connection), then one pass alone: CRI lookup, ADD, status write.
 */
function lowerBounds(floors: FloorsResult, parts: PartCost[]) {
  const controller = parts.find((p) => p.label === "the whole controller");
  const write = Math.min(
    floors.put.client.median,
    floors.mergePatch.client.median,
    floors.strategicPatch.client.median,
  );
  return {
    overheadMs: write + floors.criLookupMs.median + 2 * floors.watchDeliveryMs.median,
    interfaceUpMs: floors.watchDeliveryMs.median + floors.criLookupMs.median +
      floors.delegateLinkUpMs.median,
    firstWriteMs: (controller ? controller.runtimeStartMs + controller.importMs : NaN) +
      floors.firstRequestMs.median + floors.criLookupMs.median + floors.delegateAddMs.median +
      write,
  };
}

interface Target {
  name: string;
  target: string;
  measured: string;
  ok: boolean;
}

/** The idle resident set's parts, in words. */
function idleSplit(report: Record<string, unknown>): string {
  const { split } = (report.api as { idle: IdleResult }).idle;
  return `file pages ${ms(split.fileMiB)}, anonymous ${ms(split.anonMiB)}, of which V8 heap ${
    ms(split.v8HeapMiB)
  }`;
}

function render(report: Record<string, unknown>, targets: Target[]): string {
  const lines: string[] = [];
  const lat = report.latency as Record<string, Summary>;
  const w = [34, 5, 8, 8, 8];
  lines.push(row(["hot-plug latency (ms)", "n", "median", "p90", "p99"], w));
  for (
    const [label, key] of [
      ["plug → network-status", "addStatus"],
      ["plug → interface up in netns", "addNetns"],
      ["plug floor (multus /delegate ADD)", "addFloor"],
      ["plug overhead (status − floor)", "addOverhead"],
      ["unplug → network-status", "removeStatus"],
      ["unplug → interface gone in netns", "removeNetns"],
      ["unplug floor (/delegate DEL)", "removeFloor"],
      ["unplug overhead (status − floor)", "removeOverhead"],
      ["later plug → network-status", "laterAddStatus"],
      ["later plug → interface up in netns", "laterAddNetns"],
      ["later unplug → network-status", "laterRemoveStatus"],
      ["later overhead, plug and unplug", "laterOverhead"],
      ["overhead, plug and unplug", "overhead"],
      ["  of which CRI sandbox lookup", "criMs"],
      ["  of which API GETs (fresh reads)", "apiGetMs"],
      ["  of which API PUT (status write)", "apiPutMs"],
      ["  of which the rest (watch, JS)", "restMs"],
      ["  journal, per plug (2 writes)", "journalMs"],
      ["  journal, per unplug (2 writes)", "journalDelMs"],
    ] as const
  ) {
    const s = lat[key]!;
    lines.push(row([label, s.n, ms(s.median), ms(s.p90), ms(s.p99)], w));
  }
  lines.push("");
  const floors = report.floors as FloorsResult;
  lines.push(row(["floors, outside the agent (ms)", "n", "median", "p90", "p99"], w));
  for (
    const [label, s] of [
      ["multus /delegate ADD → link up", floors.delegateLinkUpMs],
      ["multus /delegate ADD", floors.delegateAddMs],
      ["multus /delegate DEL", floors.delegateDelMs],
      ["CRI sandbox lookup", floors.criLookupMs],
      ["edit response → its watch event", floors.watchDeliveryMs],
      ["a process's first API request", floors.firstRequestMs],
      ["  and its second", floors.secondRequestMs],
    ] as const
  ) lines.push(row([label, s.n, ms(s.median), ms(s.p90), ms(s.p99)], w));
  const aw = [34, 5, 8, 8, 14];
  lines.push(row(["API request, client vs server (ms)", "n", "median", "p90", "server mean"], aw));
  for (
    const [label, f] of [
      ["GET pod", floors.get],
      ["PUT pods/status (the agent's)", floors.put],
      ["merge PATCH pods/status", floors.mergePatch],
      ["strategic PATCH pods/status", floors.strategicPatch],
    ] as const satisfies readonly (readonly [string, ApiFloor])[]
  ) {
    lines.push(
      row([label, f.client.n, ms(f.client.median), ms(f.client.p90), ms(f.serverMeanMs)], aw),
    );
  }
  lines.push("");
  const bw = [34, 8, 10, 10, 10, 10];
  lines.push(row(["burst", "workers", "all ms", "pod p50", "pod p90", "peak MiB"], bw));
  const burstLines = (bursts: BurstResult[], label: string, speedup: number) => {
    for (const b of bursts) {
      lines.push(
        row([
          `${b.pods} pods × ${b.interfacesPerPod} interfaces${label}`,
          b.workers,
          ms(b.allStatusMs),
          ms(b.perPodMs.median),
          ms(b.perPodMs.p90),
          ms(b.peakRssMiB),
        ], bw),
      );
    }
    lines.push(
      `speed-up: ${speedup.toFixed(2)}× · per /delegate call: ${
        bursts.map((b) => `${ms(b.delegateSumMs / b.delegateCalls)} ms`).join(" vs ")
      } · machine CPU busy: ${
        bursts.map((b) => `${b.machineCpuBusyPercent.toFixed(0)} %`).join(" vs ")
      } · controller CPU: ${
        bursts.map((b) => `${b.controllerCpuSeconds.toFixed(2)} s`).join(" vs ")
      }`,
    );
  };
  burstLines(report.bursts as BurstResult[], "", report.burstSpeedup as number);
  const waiting = report.waitingBursts as BurstResult[];
  if (waiting.length > 0) {
    burstLines(
      waiting,
      `, plugin waits ${(report.options as BenchOptions).pluginWaitMs} ms`,
      report.waitingBurstSpeedup as number,
    );
  }
  lines.push("");
  const st = report.startup as Record<string, Summary>;
  lines.push(row(["start-up with pods present (ms)", "n", "median", "p90", "max"], w));
  for (
    const [label, key] of [
      ["process start → caches synced", "cachesSyncedMs"],
      ["process start → first reconcile", "firstReconcileMs"],
      ["process start → all reconciled", "allReconciledMs"],
      ["process start → /readyz 200", "readyMs"],
    ] as const
  ) {
    const s = st[key]!;
    lines.push(row([label, s.n, ms(s.median), ms(s.p90), ms(s.max)], w));
  }
  lines.push("");
  const pend = report.pendingStartup as Record<string, Summary>;
  lines.push(row(["start-up, an edit on every pod (ms)", "n", "median", "p90", "max"], w));
  for (
    const [label, key] of [
      ["process start → config loaded", "configLoadedMs"],
      ["process start → caches synced", "cachesSyncedMs"],
      ["process start → first write", "firstWriteMs"],
      ["process start → last write", "lastWriteMs"],
    ] as const
  ) {
    const s = pend[key]!;
    lines.push(row([label, s.n, ms(s.median), ms(s.p90), ms(s.max)], w));
  }
  lines.push("");
  const pw = [38, 5, 10, 10, 10, 10];
  lines.push(
    row(["loaded part (own process)", "runs", "start ms", "load ms", "RSS MiB", "+MiB"], pw),
  );
  for (const p of report.parts as PartCost[]) {
    lines.push(
      row(
        [p.label, p.runs, ms(p.runtimeStartMs), ms(p.importMs), ms(p.rssMiB), ms(p.extraMiB)],
        pw,
      ),
    );
  }
  lines.push("");
  const lw = [46, 5, 9, 7, 10, 10];
  lines.push(
    row(
      ["own part or library (own process)", "runs", "load ms", "+MiB", "work µs", "render µs"],
      lw,
    ),
  );
  for (const l of report.libraries as LibraryCost[]) {
    lines.push(
      row([
        l.label,
        l.runs,
        ms(l.loadMs),
        ms(l.extraMiB),
        ms(l.workUs),
        l.renderUs === undefined ? "" : ms(l.renderUs),
      ], lw),
    );
  }
  lines.push("");
  const mem = report.memory as Record<string, number>;
  lines.push(
    `memory (MiB): idle 0 pods ${ms(mem.idle0PodsMiB!)} · idle ${report.pods} pods ${
      ms(mem.idleAllPodsMiB!)
    } (${idleSplit(report)}) · burst peak ${ms(mem.burstPeakMiB!)} (VmHWM ${ms(mem.burstHwmMiB!)})`,
  );
  const api = report.api as Record<string, unknown>;
  lines.push(
    `API requests: per plug ${JSON.stringify(api.perPlug)} · per unplug ${
      JSON.stringify(api.perUnplug)
    } · idle ${(api.idle as IdleResult).requestsPerHour.toFixed(0)}/h measured ${
      JSON.stringify((api.idle as IdleResult).requests)
    } (2 watches re-open every 300-600 s by design: ~16 GET/h), writes while idle ${
      (api.idle as IdleResult).writes
    } over ${(api.idle as IdleResult).reconciles} resync reconciles`,
  );
  const wake = report.wakeups as WakeupResult | undefined;
  if (wake) {
    lines.push("");
    lines.push(row(["wake-up from a 10-minute backoff (ms)", "n", "median", "p90", "max"], w));
    for (
      const [label, s] of [
        ["late NAD created → applied", wake.lateNadMs],
        ["graceful delete → released", wake.deletionReleaseMs],
      ] as const
    ) lines.push(row([label, s.n, ms(s.median), ms(s.p90), ms(s.max)], w));
    lines.push(`host-local addresses left by the deleted pods: ${wake.leakedAddresses}`);
  }
  const drift = report.drift as DriftResult | undefined;
  if (drift) lines.push("", ...renderDrift(drift));
  if (report.driftError) lines.push("", `drift phase FAILED: ${report.driftError}`);
  lines.push("");
  const tw = [30, 22, 34, 7];
  lines.push(row(["target", "goal", "measured", ""], tw));
  for (const t of targets) lines.push(row([t.name, t.target, t.measured, verdict(t.ok)], tw));
  return lines.join("\n");
}

// ------------------------------------------------------------------------------- main

/** The bench's pod names, `bench-000` on. */
function podNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `bench-${String(i).padStart(3, "0")}`);
}

function driftOptions(options: BenchOptions) {
  return {
    checks: options.samples,
    repairs: options.driftRepairs,
    idleSeconds: options.idleSeconds,
  };
}

async function writeReport(path: string, output: unknown): Promise<void> {
  await Deno.mkdir(path.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(output, null, 2) + "\n");
}

function header(m: ReturnType<typeof machine> & { loadavgAtStart: number[] }): string {
  return `\ndynamic-networks-controller bench · ${m.cpus} × ${m.cpu} · ${m.memoryGiB} GiB · ` +
    `Linux ${m.kernel} · Deno ${m.deno} · ${m.date}\n` +
    `load average at start ${m.loadavgAtStart.join(" ")}, at end ${m.loadavg.join(" ")}\n`;
}

/** `--only drift`: the drift phase alone, on `--pods` pods of its own. */
async function driftOnly(
  rig: Rig,
  watch: PodWatch,
  options: BenchOptions,
  loadAtStart: number[],
): Promise<void> {
  progress(`creating ${options.pods} pods`);
  const createdAt = performance.now();
  const pods = await pool(
    podNames(options.pods),
    options.createParallel,
    (name) => rig.createPod({ name, namespace: NAMESPACE }),
  );
  const createMs = performance.now() - createdAt;
  const drift = await driftPhase(rig, watch, pods, driftOptions(options), progress);
  const report = {
    machine: { ...machine(), loadavgAtStart: loadAtStart },
    options,
    pods: pods.length,
    podCreateMs: createMs,
    drift,
  };
  await writeReport(options.out, report);
  console.log(header(report.machine));
  console.log(renderDrift(drift).join("\n"));
  console.log(`\nreport: ${options.out}`);
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const loadAtStart = loadavg();
  progress(`starting the rig (${options.pods} pods, ${options.samples} samples)`);
  // CHECK through multus needs its daemon config at cniVersion 0.4.0 or later.
  const rig = await Rig.start(options.only === "drift" ? { multusCniVersion: "0.4.0" } : {});
  const controllers: ControllerProcess[] = [];
  let watch: PodWatch | undefined;
  try {
    await rig.createNamespace(NAMESPACE);
    if (options.only === "drift") {
      watch = await PodWatch.start(rig.kubeconfig, NAMESPACE);
      await driftOnly(rig, watch, options, loadAtStart);
      return;
    }
    const nadConfig = rig.macvlanConfig("10.150.0.0/16");
    await rig.createNad(NAMESPACE, NAD, nadConfig);
    if (options.pluginWaitMs > 0) await waitingPlugin(rig, options.pluginWaitMs);
    watch = await PodWatch.start(rig.kubeconfig, NAMESPACE);

    // Controller A: resync every 10 s, so that the idle window covers several resyncs.
    const resync = 10;
    progress("controller A (resync 10 s), idle with 0 pods");
    const a = await startController(rig, [`--resync-period-seconds=${resync}`]);
    controllers.push(a);
    await a.waitReady();
    await sleep(3000);
    const idle0 = await idleRss(a, 5);

    progress("hot-plug latency samples");
    const names = podNames(options.pods);
    const first = await rig.createPod({ name: names[0]!, namespace: NAMESPACE });
    await waitIdle(a);
    const samples = await latencyPhase(a, watch, rig, first, options.samples);
    progress("hot-plug latency samples, the pod holding another attachment (and the finalizer)");
    const laterSamples = await latencyPhase(a, watch, rig, first, options.samples, ["hp0"]);
    await watch.annotate(first.name, { [NETWORKS_ANNOTATION]: networks([]) });
    await waitIdle(a);
    progress("floors: multus, the CRI lookup, the watch and the API server alone");
    const floors = await floorsPhase(rig, watch, first, {
      namespace: NAMESPACE,
      name: NAD,
      config: JSON.stringify(nadConfig),
    }, options.samples);

    progress(`creating ${options.pods - 1} more pods`);
    const createdAt = performance.now();
    const rest = await pool(
      names.slice(1),
      options.createParallel,
      (name) => rig.createPod({ name, namespace: NAMESPACE }),
    );
    const pods = [first, ...rest];
    const createMs = performance.now() - createdAt;
    await waitIdle(a);
    await sleep(3000);
    progress(`idle window of ${options.idleSeconds} s with ${pods.length} pods`);
    const idle = await idlePhase(a, options.idleSeconds, resync);
    await a.stop();

    progress(`start-up × ${options.startups} with ${pods.length} pods present`);
    const startups: StartupSample[] = [];
    let b: ControllerProcess | undefined;
    for (let i = 0; i < options.startups; i++) {
      const { ctl, sample } = await startupRun(rig, pods.length, []);
      startups.push(sample);
      if (i < options.startups - 1) await ctl.stop();
      else b = ctl;
    }
    controllers.push(b!);

    progress("burst with the default workers");
    const burstMany = await burst(b!, watch, rig, pods, [], ["ba1", "ba2"]);
    await b!.stop();

    progress("burst with --workers 1");
    const { ctl: c, sample: startupOne } = await startupRun(rig, pods.length, ["--workers=1"]);
    controllers.push(c);
    const burstOne = await burst(c, watch, rig, pods, ["ba1", "ba2"], ["bc1", "bc2"]);
    const waitingBursts: BurstResult[] = [];
    if (options.pluginWaitMs > 0) {
      progress(`burst through a plugin that waits ${options.pluginWaitMs} ms, --workers 1`);
      const kept = ["ba1", "ba2", "bc1", "bc2"];
      const waitingOne = await burst(c, watch, rig, pods, kept, ["wc1", "wc2"]);
      await c.stop();
      progress("the same with the default workers");
      const { ctl: d } = await startupRun(rig, pods.length, []);
      controllers.push(d);
      waitingBursts.push(await burst(d, watch, rig, pods, [...kept, "wc1", "wc2"], ["wa1", "wa2"]));
      waitingBursts.push(waitingOne);
      await d.stop();
    } else await c.stop();
    progress(`start-up × ${options.startups} with an edit waiting on each of ${pods.length} pods`);
    const settled = options.pluginWaitMs > 0
      ? ["ba1", "ba2", "bc1", "bc2", "wc1", "wc2", "wa1", "wa2"]
      : ["ba1", "ba2", "bc1", "bc2"];
    const pendingStartups: PendingStartupSample[] = [];
    for (let i = 0; i < options.startups; i++) {
      // Alternately one ADD and one DEL per pod, so that the pods end as they began.
      const want = i % 2 === 0 ? [...settled, "sp1"] : settled;
      pendingStartups.push(await pendingStartup(rig, watch, pods, want));
    }
    progress("what each loaded part costs, in processes of their own");
    const parts = await partCosts(5);
    progress("our CRI codec and metrics registry against protobufjs and prom-client");
    const libraries = await libraryCosts(5);
    const wakeups = options.wakeups > 0
      ? await wakeupPhase(rig, watch, NAMESPACE, options.wakeups, progress)
      : undefined;
    // The drift phase needs multus' daemon config at cniVersion 0.4.0 or later (CHECK), which
    // this rig's multus does not say (as multus' own manifest): it runs with `--only drift`, on
    // a rig whose multus does.
    const drift: DriftResult | undefined = undefined;
    const driftError: string | undefined = options.driftRepairs > 0
      ? "run `deno task bench --only drift`: CHECK needs multus at cniVersion 0.4.0, which this rig's multus (0.3.1, as multus' own manifest) does not say"
      : undefined;

    const pick = (op: "add" | "remove", f: keyof LatencySample) =>
      samples.filter((s) => s.op === op).map((s) => s[f] as number);
    const perOp = (op: "add" | "remove", from = samples) => {
      const list = from.filter((s) => s.op === op);
      const sum: Record<string, number> = {};
      for (const s of list) {
        for (const [k, v] of Object.entries(s.requests)) sum[k] = (sum[k] ?? 0) + v;
      }
      return Object.fromEntries(
        Object.entries(sum).map(([k, v]) => [k, round(v / list.length, 2)]),
      );
    };
    const latency = {
      addStatus: summarize(pick("add", "statusMs")),
      addNetns: summarize(pick("add", "netnsMs")),
      addFloor: summarize(pick("add", "floorMs")),
      addOverhead: summarize(pick("add", "overheadMs")),
      addController: summarize(pick("add", "controllerMs")),
      removeStatus: summarize(pick("remove", "statusMs")),
      removeNetns: summarize(pick("remove", "netnsMs")),
      removeFloor: summarize(pick("remove", "floorMs")),
      removeOverhead: summarize(pick("remove", "overheadMs")),
      removeController: summarize(pick("remove", "controllerMs")),
      laterAddStatus: summarize(
        laterSamples.filter((s) => s.op === "add").map((s) => s.statusMs),
      ),
      laterAddNetns: summarize(laterSamples.filter((s) => s.op === "add").map((s) => s.netnsMs)),
      laterRemoveStatus: summarize(
        laterSamples.filter((s) => s.op === "remove").map((s) => s.statusMs),
      ),
      laterOverhead: summarize(laterSamples.map((s) => s.overheadMs)),
      overhead: summarize(samples.map((s) => s.overheadMs)),
      criMs: summarize(samples.map((s) => s.criMs)),
      apiGetMs: summarize(samples.map((s) => s.apiMs.GET ?? 0)),
      apiPutMs: summarize(samples.map((s) => s.apiMs.PUT ?? 0)),
      // What is neither the delegate call nor a CRI call nor the pod's reads and status write
      // (Events are written after the status, off the path): the watch delivering the edit to
      // the agent and the write back to the bench, the journal, planning, JSON. The CRI lookup
      // may overlap the fresh read, so this is a lower bound.
      restMs: summarize(
        samples.map((s) => s.overheadMs - s.criMs - (s.apiMs.GET ?? 0) - (s.apiMs.PUT ?? 0)),
      ),
      ...await journalCost(500).then(({ plug, unplug }) => ({
        journalMs: plug,
        journalDelMs: unplug,
      })),
    };
    const startupSummary = Object.fromEntries(
      (["cachesSyncedMs", "firstReconcileMs", "allReconciledMs", "readyMs", "launchMs"] as const)
        .map((k) => [k, summarize(startups.map((s) => s[k]))]),
    );
    const memory = {
      idle0PodsMiB: idle0.median,
      idleAllPodsMiB: idle.rss.median,
      burstPeakMiB: burstMany.peakRssMiB,
      burstHwmMiB: burstMany.hwmMiB,
      burstOnePeakMiB: burstOne.peakRssMiB,
      afterStartupMiB: summarize(startups.map((s) => s.rssAfterMiB)).median,
      /** Idle RSS after each start-up with all pods (several processes). */
      idleAfterStartupsMiB: summarize([
        ...startups.map((s) => s.rssAfterMiB),
        startupOne.rssAfterMiB,
        ...pendingStartups.map((s) => s.rssAfterMiB),
      ]),
      /** The peak of every burst (one process each, or two bursts in one). */
      burstPeaksMiB: [burstMany, burstOne, ...waitingBursts].map((b) => b.peakRssMiB),
    };
    const pendingSummary = Object.fromEntries(
      (["configLoadedMs", "cachesSyncedMs", "firstWriteMs", "lastWriteMs"] as const)
        .map((k) => [k, summarize(pendingStartups.map((s) => s[k]))]),
    );
    const speedup = burstOne.allStatusMs / burstMany.allStatusMs;
    const report = {
      machine: { ...machine(), loadavgAtStart: loadAtStart },
      options,
      pods: pods.length,
      podCreateMs: createMs,
      latency,
      latencySamples: samples,
      laterLatencySamples: laterSamples,
      floors,
      bursts: [burstMany, burstOne],
      burstSpeedup: speedup,
      waitingBursts,
      waitingBurstSpeedup: waitingBursts.length === 2
        ? waitingBursts[1]!.allStatusMs / waitingBursts[0]!.allStatusMs
        : undefined,
      startup: startupSummary,
      startupSamples: [...startups, startupOne],
      pendingStartup: pendingSummary,
      pendingStartupSamples: pendingStartups,
      parts,
      libraries,
      memory,
      api: {
        perPlug: perOp("add"),
        perUnplug: perOp("remove"),
        perLaterPlug: perOp("add", laterSamples),
        perLaterUnplug: perOp("remove", laterSamples),
        idle,
      },
      wakeups,
      drift,
      driftError,
    };
    const over = latency.overhead;
    const burstOk = burstMany.netnsMissing.length === 0 && burstOne.netnsMissing.length === 0;
    // The status writes are the PUTs (the announcement before the operation, the record after
    // it); Events are POSTed (or PATCHed when repeated).
    const writesPerPlug = report.api.perPlug.PUT ?? 0;
    const writesPerLaterPlug = report.api.perLaterPlug.PUT ?? 0;
    const writesPerUnplug = report.api.perUnplug.PUT ?? 0;
    const readsPerPlug = report.api.perPlug.GET ?? 0;
    const pend = pendingSummary as Record<string, Summary>;
    const bounds = lowerBounds(floors, parts);
    const targets: Target[] = [
      {
        name: "overhead median / p90",
        target: "≤ 12 / ≤ 25 ms",
        measured: `${ms(over.median)} / ${ms(over.p90)} ms (n ${over.n}); floor ${
          ms(bounds.overheadMs)
        }`,
        ok: over.median <= 12 && over.p90 <= 25,
      },
      {
        name: "plug → interface up",
        target: "≤ 14 ms median",
        measured: `${ms(latency.addNetns.median)} ms (n ${latency.addNetns.n}); floor ${
          ms(bounds.interfaceUpMs)
        }`,
        ok: latency.addNetns.median <= 14,
      },
      {
        name: "start → first write",
        target: "≤ 150 ms median",
        measured: `${ms(pend.firstWriteMs!.median)} ms (n ${pend.firstWriteMs!.n}); floor ${
          ms(bounds.firstWriteMs)
        }`,
        ok: pend.firstWriteMs!.median <= 150,
      },
      {
        name: `start → all ${pods.length} written`,
        target: "≤ 3500 ms median",
        measured: `${ms(pend.lastWriteMs!.median)} ms`,
        ok: pend.lastWriteMs!.median <= 3500,
      },
      {
        name: "burst all correct",
        target: "0 missing",
        measured: `${burstMany.netnsMissing.length + burstOne.netnsMissing.length} missing`,
        ok: burstOk,
      },
      {
        name: "burst, default workers",
        target: "≤ 5000 ms",
        measured: `${ms(burstMany.allStatusMs)} ms (workers 1: ${
          ms(burstOne.allStatusMs)
        } ms); floor ${ms(othersCpuFloorMs(burstMany))}`,
        ok: burstMany.allStatusMs <= 5000,
      },
      {
        name: `RSS idle, ${pods.length} pods`,
        target: "≤ 60 MiB",
        measured: `${ms(memory.idleAllPodsMiB)} MiB (after start-ups: median ${
          ms(memory.idleAfterStartupsMiB.median)
        }, n ${memory.idleAfterStartupsMiB.n})`,
        ok: memory.idleAllPodsMiB <= 60,
      },
      {
        name: "RSS peak in burst",
        target: "≤ 70 MiB",
        measured: `${ms(memory.burstPeakMiB)} MiB (all bursts: ${
          memory.burstPeaksMiB.map(ms).join(", ")
        })`,
        ok: memory.burstPeakMiB <= 70,
      },
      {
        name: "API writes while idle",
        target: "0",
        measured: `${idle.writes} in ${idle.windowSeconds.toFixed(0)} s`,
        ok: idle.writes === 0,
      },
      {
        // One before the operations (the Attaching/Detaching condition, with the finalizer on
        // a first hot-plug) and one after (network-status, the finalizer, the condition).
        name: "status writes per hot-plug",
        target: "≤ 2",
        measured: `first ${writesPerPlug}, later ${writesPerLaterPlug}, unplug ${writesPerUnplug}`,
        ok: writesPerPlug <= 2 && writesPerLaterPlug <= 2,
      },
      {
        name: "API reads per hot-plug",
        target: "1",
        measured: `${readsPerPlug}`,
        ok: readsPerPlug <= 1,
      },
      ...(wakeups
        ? [{
          name: "wake-up from a long backoff",
          // A deleted pod keeps its networks until its sandbox stops (the agent's finalizer), so
          // its figure holds the pod's own shutdown: it is reported, the target is no leak.
          target: "NAD ≤ 1000 ms, 0 leaked",
          measured: `NAD ${ms(wakeups.lateNadMs.max)} ms max, delete ${
            ms(wakeups.deletionReleaseMs.max)
          } ms max, ${wakeups.leakedAddresses} leaked`,
          ok: wakeups.lateNadMs.max <= 1000 && wakeups.leakedAddresses === 0,
        }]
        : []),
    ];
    const output = { ...report, lowerBounds: bounds, targets };
    await writeReport(options.out, output);
    console.log(header(report.machine));
    console.log(render(output, targets));
    console.log(`\nreport: ${options.out}`);
  } finally {
    // The rig is stopped whatever hangs before it: its daemons would outlive the bench.
    for (const ctl of controllers) await within(30_000, ctl.stop());
    await within(10_000, watch?.stop());
    progress("stopping the rig");
    await rig.stop();
    progress("done");
  }
}

if (import.meta.main) {
  await main();
  // A watch that would not stop must not keep the process (and the lock it runs under) alive.
  Deno.exit(0);
}
