/**
 * The bench's drift phase: what the drift check (a CNI CHECK through multus' `/delegate` of
 * every attachment network-status lists, spread over `--drift-check-interval-seconds`) costs.
 *
 * 1. One CHECK: `n` direct `/delegate` CHECKs (the agent's own client) of an attachment the
 *    agent hot-plugged, with the request the agent makes for it (the pod's sandbox and netns,
 *    the interface name, the NAD's config as the agent sends it), beside `n` direct ADDs and
 *    DELs of one more interface of the same NAD in the same pod. Every CHECK must succeed: a
 *    failure is multus' answer, reported verbatim.
 * 2. Repair: with checks every {@linkcode REPAIR_INTERVAL_S} s, the hot-plugged link deleted
 *    inside the pod (`ip link del` in its netns) until it is back with the same MAC, polled every
 *    {@linkcode POLL_MS} ms; the time includes the wait for the next check (up to one interval).
 * 3. Idle load: every pod with one hot-plugged attachment, an idle window with an agent that
 *    checks every {@linkcode IDLE_INTERVAL_S} s and one with an agent whose checks are off, each
 *    started fresh: CHECK calls, checks by result, API requests, CRI calls and the agent's CPU
 *    time, per minute.
 *
 * The NAD is macvlan with host-local IPAM and `cniVersion` 0.4.0, the first that has CHECK.
 *
 * @module
 */
import { ControllerProcess } from "../support/mod.ts";
import { NETWORKS_ANNOTATION, type Rig, type RigPod } from "../rig/mod.ts";
import { run } from "../rig/exec.ts";
import { MultusClient } from "../../lib/multus/client.ts";
import { delegateConfig } from "../../lib/core/nad.ts";
import type { DelegateRequest } from "../../lib/reconcile/ports.ts";
import type { PodWatch, WatchedPod } from "./pod_watch.ts";
import { deltaBy } from "./prom.ts";
import { summarize, type Summary } from "./stats.ts";
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

/** The drift phase's NAD (macvlan, host-local, `cniVersion` 0.4.0). */
export const DRIFT_NAD = "bench-drift";
/** The interface each pod gets from {@linkcode DRIFT_NAD}. */
export const DRIFT_IFNAME = "dr1";
/** The interface the direct ADDs and DELs use (never in an annotation). */
const PROBE_IFNAME = "dk1";
/** The MAC the repaired pod's attachment asks for, so that a repair must give it back. */
const DRIFT_MAC = "02:62:64:00:00:01";
/** The check interval of the repair samples, in seconds. */
export const REPAIR_INTERVAL_S = 2;
/** The check interval of the idle window with checks on, in seconds (one round a minute). */
export const IDLE_INTERVAL_S = 60;
/** How often the pod's netns is polled for the repaired link, in ms. */
export const POLL_MS = 20;
/** How long the agent may take to become idle, in ms. */
const IDLE_TIMEOUT_MS = 180_000;

/** What the drift phase is given. */
export interface DriftOptions {
  /** Direct CHECKs (and ADDs and DELs) to time. */
  checks: number;
  /** Deleted links to time until repaired. */
  repairs: number;
  /** The length of each idle window, in seconds. */
  idleSeconds: number;
}

/** The direct `/delegate` calls, in ms. */
export interface DriftCheckCost {
  /** The pod and interface checked. */
  target: string;
  /** CHECKs that succeeded. */
  checkMs: Summary;
  /** multus' answer to each CHECK that failed, verbatim (should be none). */
  checkFailures: string[];
  /** ADD of one more interface of the same NAD in the same pod. */
  addMs: Summary;
  /** Its DEL. */
  delMs: Summary;
}

/** The deleted links and their repairs. */
export interface DriftRepairs {
  /** The agent's `--drift-check-interval-seconds`. */
  intervalSeconds: number;
  /** How often the netns was polled, in ms. */
  pollMs: number;
  /** `ip link del` answered → the link back in the pod with the same MAC. */
  repairMs: Summary;
  /** Every sample, in order. */
  samples: number[];
  /** The checks the agent made meanwhile, by result (`dynamic_networks_drift_checks_total`). */
  checks: Record<string, number>;
  /** Its repairs by result (`dynamic_networks_drift_repairs_total`). */
  repairs: Record<string, number>;
}

/** One idle window of an agent started fresh. */
export interface DriftIdleWindow {
  /** The agent's `--drift-check-interval-seconds` (0: off). */
  intervalSeconds: number;
  /** The window's length, in seconds. */
  windowSeconds: number;
  /** `/delegate` CHECK calls (`dynamic_networks_delegate_duration_seconds_count`). */
  checkCalls: number;
  /** Their mean time as the agent measured it, in ms. */
  checkMeanMs: number;
  /** Checks by result (`dynamic_networks_drift_checks_total`). */
  checks: Record<string, number>;
  /** API requests by method (`rest_client_requests_total`). */
  requests: Record<string, number>;
  /** CRI calls by method (`dynamic_networks_cri_requests_total`). */
  cri: Record<string, number>;
  /** Reconcile passes (a drifted attachment would bring one). */
  reconciles: number;
  /** The agent's CPU time (utime + stime, `/proc/<pid>/stat`), in seconds. */
  cpuSeconds: number;
  /** How busy the machine's CPUs were, in % of all of them (`/proc/stat`). */
  machineCpuBusyPercent: number;
  /** Per minute of the window: CHECK calls, API requests, CRI calls, agent CPU seconds. */
  perMinute: { checks: number; requests: number; cri: number; cpuSeconds: number };
}

/** What the drift phase measured. */
export interface DriftResult {
  /** The NAD's CNI version. */
  cniVersion: string;
  /** Pods with one attachment of {@linkcode DRIFT_NAD} during the idle windows. */
  pods: number;
  /** One CHECK against an ADD and a DEL. */
  cost: DriftCheckCost;
  /** Deleted links → repaired. */
  repair: DriftRepairs;
  /** Idle windows with checks on and off. */
  idle: { on: DriftIdleWindow; off: DriftIdleWindow };
  /** The agents' warn and error log lines (at most 20; should be none). */
  agentProblems: string[];
  /** multus' log of this run. */
  multusLog: string;
}

/** CPU time of process `pid` (utime + stime from `/proc/<pid>/stat`), in seconds. */
export function procCpuSeconds(pid: number): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (in parentheses, which may hold spaces): state is field 3,
  // utime field 14, stime field 15; clock ticks of 1/100 s on Linux.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`/proc/${pid}/stat has no utime and stime: ${JSON.stringify(text)}`);
  }
  return (utime + stime) / 100;
}

/**
 * Sets the networks annotation of every pod in `want` and waits until each network-status
 * records exactly its interfaces. Pods already there are not edited.
 */
async function settle(watch: PodWatch, want: Map<RigPod, object[]>): Promise<void> {
  const waits: Promise<number>[] = [];
  await pool([...want], 8, async ([pod, elements]) => {
    const ifnames = elements.map((e) => (e as { interface: string }).interface).sort();
    const exact = (p: WatchedPod) => statusInterfaces(p).sort().join() === ifnames.join();
    const text = JSON.stringify(elements);
    const current = watch.get(pod.name);
    if (
      current && exact(current) &&
      (current.metadata.annotations?.[NETWORKS_ANNOTATION] ?? "[]") === text
    ) {
      return;
    }
    waits.push(watch.until(pod.name, exact, 300_000));
    await watch.annotate(pod.name, { [NETWORKS_ANNOTATION]: text });
  });
  await Promise.all(waits);
}

function startAgent(rig: Rig, intervalSeconds: number): Promise<ControllerProcess> {
  return ControllerProcess.start(rig, {
    args: ["--log-level=info", `--drift-check-interval-seconds=${intervalSeconds}`],
  });
}

/** The agent's warn and error lines. */
function problems(ctl: ControllerProcess): string[] {
  return ctl.lines.filter((line) => {
    try {
      const level = (JSON.parse(line) as { level?: string }).level;
      return level === "warn" || level === "error";
    } catch {
      return false;
    }
  });
}

/** `n` direct CHECKs of `request`'s attachment, and `n` ADDs and DELs of one more interface. */
async function checkCost(
  multus: MultusClient,
  request: Omit<DelegateRequest, "command">,
  target: string,
  n: number,
): Promise<DriftCheckCost> {
  const check: number[] = [];
  const failures: string[] = [];
  const add: number[] = [];
  const del: number[] = [];
  const probe = { ...request, ifname: PROBE_IFNAME };
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    try {
      await multus.delegate({ ...request, command: "CHECK" });
      check.push(performance.now() - t);
    } catch (err) {
      const e = err as { status?: number; body?: string; message?: string };
      failures.push(e.body !== undefined ? `${e.status}: ${e.body}` : String(e.message ?? err));
    }
    await sleep(50);
    t = performance.now();
    await multus.delegate({ ...probe, command: "ADD" });
    add.push(performance.now() - t);
    await sleep(50);
    t = performance.now();
    await multus.delegate({ ...probe, command: "DEL" });
    del.push(performance.now() - t);
    await sleep(50);
  }
  return {
    target,
    checkMs: summarize(check),
    checkFailures: failures,
    addMs: summarize(add),
    delMs: summarize(del),
  };
}

/** The MAC of link `ifname` in `netns`, or undefined when there is none. */
async function linkMac(netns: string, ifname: string): Promise<string | undefined> {
  const out = await run(["nsenter", `--net=${netns}`, "ip", "-j", "link", "show", "dev", ifname], {
    allowFailure: true,
    timeoutMs: 10_000,
  });
  if (out.code !== 0) return undefined;
  return (JSON.parse(out.stdout) as { address?: string }[])[0]?.address;
}

/** `samples` times: the link deleted in the pod, polled until it is back with `mac`. */
async function repairs(
  ctl: ControllerProcess,
  netns: string,
  mac: string,
  samples: number,
  progress: (message: string) => void,
): Promise<DriftRepairs> {
  const before = await scrape(ctl);
  const times: number[] = [];
  const limitMs = 10 * REPAIR_INTERVAL_S * 1000 + 30_000;
  for (let i = 0; i < samples; i++) {
    // A random phase against the check schedule.
    await sleep(500 + Math.random() * REPAIR_INTERVAL_S * 1000);
    const del = await run(["nsenter", `--net=${netns}`, "ip", "link", "del", DRIFT_IFNAME], {
      allowFailure: true,
    });
    if (del.code !== 0) {
      throw new Error(`drift: ip link del ${DRIFT_IFNAME} in ${netns} failed: ${del.stderr}`);
    }
    const deleted = performance.now();
    let back: string | undefined;
    while ((back = await linkMac(netns, DRIFT_IFNAME)) === undefined) {
      if (performance.now() - deleted > limitMs) {
        throw new Error(
          `drift: ${DRIFT_IFNAME} not back in ${netns} ${limitMs} ms after its deletion ` +
            `(check interval ${REPAIR_INTERVAL_S} s)`,
        );
      }
      await sleep(POLL_MS);
    }
    const ms = performance.now() - deleted;
    if (back !== mac) {
      throw new Error(`drift: ${DRIFT_IFNAME} came back with MAC ${back}, not ${mac}`);
    }
    times.push(ms);
    progress(`drift repair ${i + 1}/${samples}: ${ms.toFixed(0)} ms`);
    await waitIdle(ctl, IDLE_TIMEOUT_MS);
  }
  const after = await scrape(ctl);
  return {
    intervalSeconds: REPAIR_INTERVAL_S,
    pollMs: POLL_MS,
    repairMs: summarize(times),
    samples: times,
    checks: deltaBy(
      before.by("dynamic_networks_drift_checks_total", "result"),
      after.by("dynamic_networks_drift_checks_total", "result"),
    ),
    repairs: deltaBy(
      before.by("dynamic_networks_drift_repairs_total", "result"),
      after.by("dynamic_networks_drift_repairs_total", "result"),
    ),
  };
}

/**
 * Waits for the agent's first drift checks (its first round starts with it) and gives them
 * by result, with its log lines that speak of the drift check.
 */
async function firstChecks(
  ctl: ControllerProcess,
): Promise<{ checks: Record<string, number>; lines: string[] }> {
  const deadline = Date.now() + 3 * REPAIR_INTERVAL_S * 1000 + 10_000;
  let checks: Record<string, number> = {};
  while (Date.now() < deadline) {
    checks = (await scrape(ctl)).by("dynamic_networks_drift_checks_total", "result");
    if (Object.values(checks).some((v) => v > 0)) break;
    await sleep(100);
  }
  const lines = ctl.lines.filter((line) => {
    try {
      return /drift|check/i.test(String((JSON.parse(line) as { msg?: unknown }).msg));
    } catch {
      return false;
    }
  });
  return { checks, lines };
}

/** An idle window of `seconds` with a fresh agent checking every `intervalSeconds` (0: off). */
async function idleWindow(
  rig: Rig,
  intervalSeconds: number,
  seconds: number,
  agentProblems: string[],
): Promise<DriftIdleWindow> {
  const ctl = await startAgent(rig, intervalSeconds);
  try {
    await waitIdle(ctl, IDLE_TIMEOUT_MS);
    await sleep(3000);
    const before = await scrape(ctl);
    const cpuBefore = procCpuSeconds(ctl.pid);
    const machineBefore = machineCpu();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const after = await scrape(ctl);
    const cpuSeconds = procCpuSeconds(ctl.pid) - cpuBefore;
    const machineAfter = machineCpu();
    const window = (performance.now() - t0) / 1000;
    const delta = (name: string, label: string) =>
      deltaBy(before.by(name, label), after.by(name, label));
    const d = "dynamic_networks_delegate_duration_seconds";
    const checkCalls = after.sum(`${d}_count`, { command: "CHECK" }) -
      before.sum(`${d}_count`, { command: "CHECK" });
    const checkSum = after.sum(`${d}_sum`, { command: "CHECK" }) -
      before.sum(`${d}_sum`, { command: "CHECK" });
    const requests = delta("rest_client_requests_total", "method");
    const cri = delta("dynamic_networks_cri_requests_total", "method");
    const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
    const perMinute = (v: number) => (v * 60) / window;
    return {
      intervalSeconds,
      windowSeconds: window,
      checkCalls,
      checkMeanMs: checkCalls > 0 ? (1000 * checkSum) / checkCalls : NaN,
      checks: delta("dynamic_networks_drift_checks_total", "result"),
      requests,
      cri,
      reconciles: after.sum("controller_runtime_reconcile_total") -
        before.sum("controller_runtime_reconcile_total"),
      cpuSeconds,
      machineCpuBusyPercent: 100 * (machineAfter.busy - machineBefore.busy) /
        (machineAfter.total - machineBefore.total),
      perMinute: {
        checks: perMinute(checkCalls),
        requests: perMinute(total(requests)),
        cri: perMinute(total(cri)),
        cpuSeconds: perMinute(cpuSeconds),
      },
    };
  } finally {
    agentProblems.push(...problems(ctl));
    await ctl.stop();
  }
}

/**
 * Runs the drift phase on `pods` (all running, in `watch`'s namespace; `pods[0]` is the one
 * checked directly and repaired), whatever networks they hold: they end with one attachment of
 * {@linkcode DRIFT_NAD} each. No agent may be running when it starts; none is when it ends.
 */
export async function driftPhase(
  rig: Rig,
  watch: PodWatch,
  pods: readonly RigPod[],
  options: DriftOptions,
  progress: (message: string) => void,
): Promise<DriftResult> {
  const first = pods[0];
  if (!first) throw new Error("drift phase: no pods given");
  const namespace = first.namespace;
  const cniVersion = "0.4.0";
  const config = JSON.stringify({
    ...rig.macvlanConfig("10.153.0.0/16", { name: DRIFT_NAD }),
    cniVersion,
  });
  await rig.createNad(namespace, DRIFT_NAD, config);
  // The NAD as the agent sees it: spec.config as the API server gives it back.
  const nad = await rig.api.request<{ spec: { config: string } }>(
    "GET",
    `/apis/k8s.cni.cncf.io/v1/namespaces/${namespace}/network-attachment-definitions/${DRIFT_NAD}`,
  );
  const element = (mac?: string) => ({
    name: DRIFT_NAD,
    interface: DRIFT_IFNAME,
    ...(mac ? { mac } : {}),
  });
  const agentProblems: string[] = [];

  // The first pod alone gets the attachment: the repairs are timed with nothing else to check.
  progress(`drift: ${first.name} gets ${DRIFT_IFNAME}; the other pods none`);
  let ctl = await startAgent(rig, 0);
  let cost: DriftCheckCost;
  let netns: string;
  try {
    await settle(
      watch,
      new Map(pods.map((p, i) => [p, i === 0 ? [element(DRIFT_MAC)] : []])),
    );
    await waitIdle(ctl, IDLE_TIMEOUT_MS);
    netns = await rig.podNetns(first);
    const mac = await linkMac(netns, DRIFT_IFNAME);
    if (mac !== DRIFT_MAC) {
      throw new Error(`drift: ${first.name}'s ${DRIFT_IFNAME} has MAC ${mac}, not ${DRIFT_MAC}`);
    }
    progress(`drift: ${options.checks} direct CHECKs, ADDs and DELs in ${first.name}`);
    const multus = new MultusClient(rig.multusSocket, { timeoutMs: 30_000 });
    cost = await checkCost(
      multus,
      {
        containerId: first.sandboxId,
        netns,
        ifname: DRIFT_IFNAME,
        podNamespace: first.namespace,
        podName: first.name,
        podUid: first.uid,
        config: delegateConfig({ namespace, name: DRIFT_NAD, config: nad.spec.config }),
      },
      `${first.namespace}/${first.name} ${DRIFT_IFNAME}`,
      options.checks,
    );
    if (cost.checkFailures.length > 0) {
      progress(
        `drift: ${cost.checkFailures.length} of ${options.checks} CHECKs failed; multus answered ` +
          JSON.stringify(cost.checkFailures[0]),
      );
    }
  } finally {
    agentProblems.push(...problems(ctl));
    await ctl.stop();
  }

  progress(`drift: ${options.repairs} deleted links, checks every ${REPAIR_INTERVAL_S} s`);
  ctl = await startAgent(rig, REPAIR_INTERVAL_S);
  let repair: DriftRepairs;
  try {
    await waitIdle(ctl, IDLE_TIMEOUT_MS);
    // CHECK must work through this node's multus, or there is nothing to time.
    const seen = await firstChecks(ctl);
    if (cost.checkMs.n === 0 || !((seen.checks.ok ?? 0) > 0)) {
      throw new Error(
        `drift: CHECK through multus does not work here: of ${options.checks} direct CHECKs, ` +
          `${cost.checkFailures.length} failed` +
          (cost.checkFailures.length > 0
            ? `, multus answering ${JSON.stringify(cost.checkFailures[0])}`
            : "") +
          `; the agent's first checks by result: ${JSON.stringify(seen.checks)}; its log ` +
          `lines about them:\n${seen.lines.join("\n")}\nmultus' log: ${rig.logFile("multus")}`,
      );
    }
    repair = await repairs(ctl, netns, DRIFT_MAC, options.repairs, progress);
  } finally {
    agentProblems.push(...problems(ctl));
    await ctl.stop();
  }

  progress(`drift: ${DRIFT_IFNAME} on each of ${pods.length} pods`);
  ctl = await startAgent(rig, 0);
  try {
    await settle(watch, new Map(pods.slice(1).map((p) => [p, [element()]])));
    await waitIdle(ctl, IDLE_TIMEOUT_MS);
  } finally {
    agentProblems.push(...problems(ctl));
    await ctl.stop();
  }
  progress(`drift: idle window of ${options.idleSeconds} s, checks off`);
  const off = await idleWindow(rig, 0, options.idleSeconds, agentProblems);
  progress(
    `drift: idle window of ${options.idleSeconds} s, checks every ${IDLE_INTERVAL_S} s`,
  );
  const on = await idleWindow(rig, IDLE_INTERVAL_S, options.idleSeconds, agentProblems);
  return {
    cniVersion,
    pods: pods.length,
    cost,
    repair,
    idle: { on, off },
    agentProblems: agentProblems.slice(0, 20),
    multusLog: rig.logFile("multus"),
  };
}

/** The drift phase's lines of the bench's report. */
export function renderDrift(d: DriftResult): string[] {
  const lines: string[] = [];
  const w = [44, 5, 8, 8, 8];
  lines.push(row([`drift check, cniVersion ${d.cniVersion} (ms)`, "n", "median", "p90", "max"], w));
  for (
    const [label, s] of [
      ["multus /delegate CHECK, direct", d.cost.checkMs],
      ["multus /delegate ADD, direct (same NAD)", d.cost.addMs],
      ["multus /delegate DEL, direct (same NAD)", d.cost.delMs],
      [`link deleted → back, interval ${d.repair.intervalSeconds} s`, d.repair.repairMs],
    ] as const
  ) lines.push(row([label, s.n, ms(s.median), ms(s.p90), ms(s.max)], w));
  lines.push(
    `CHECK failures: ${d.cost.checkFailures.length}${
      d.cost.checkFailures.length > 0 ? ` (multus: ${JSON.stringify(d.cost.checkFailures[0])})` : ""
    } · during the repairs: checks ${JSON.stringify(d.repair.checks)}, repairs ${
      JSON.stringify(d.repair.repairs)
    }`,
  );
  const iw = [44, 14, 14];
  const { on, off } = d.idle;
  lines.push(
    row([
      `idle, ${d.pods} pods × 1 attachment, per minute`,
      `every ${on.intervalSeconds} s`,
      "checks off",
    ], iw),
  );
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  for (
    const [label, a, b] of [
      ["CHECK calls", on.perMinute.checks, off.perMinute.checks],
      ["API requests", on.perMinute.requests, off.perMinute.requests],
      ["CRI calls", on.perMinute.cri, off.perMinute.cri],
      ["agent CPU (s)", on.perMinute.cpuSeconds, off.perMinute.cpuSeconds],
      ["machine CPU busy (%)", on.machineCpuBusyPercent, off.machineCpuBusyPercent],
      ["mean CHECK as the agent timed it (ms)", on.checkMeanMs, off.checkMeanMs],
    ] as const
  ) {
    const digits = label === "agent CPU (s)" ? 3 : 1;
    lines.push(row([label, a.toFixed(digits), b.toFixed(digits)], iw));
  }
  lines.push(
    `windows ${on.windowSeconds.toFixed(1)} / ${
      off.windowSeconds.toFixed(1)
    } s · checks by result ${JSON.stringify(on.checks)} / ${JSON.stringify(off.checks)} · API ${
      JSON.stringify(on.requests)
    } / ${JSON.stringify(off.requests)} · CRI ${JSON.stringify(on.cri)} / ${
      JSON.stringify(off.cri)
    } (${sum(on.cri)} / ${sum(off.cri)}) · reconciles ${on.reconciles} / ${off.reconciles}`,
  );
  if (d.agentProblems.length > 0) {
    lines.push(`agent warnings and errors (${d.agentProblems.length}, first 20):`);
    lines.push(...d.agentProblems.map((l) => `  ${l}`));
  }
  return lines;
}
