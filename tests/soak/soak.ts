/**
 * Soak: churns pods and attachments on the rig against one controller process for a bounded
 * time, then reports RSS over time, leaked links and host-local files, and missed edits.
 *
 *     deno task soak                      # 10 minutes
 *     deno task soak --minutes 5 --pods 12 --json soak.json
 *     deno task soak --chaos [--minutes N] [--runtime containerd|crio] [--seed S]   # chaos.ts
 *
 * Each round picks pods and, in parallel: creates one (with a random cold-plugged attachment or
 * none) or deletes one (the kubelet's order), and rewrites the networks annotation of others
 * with a random choice of `none | blue (macvlan) | green (bridge)` for each of net1..net3 —
 * sometimes twice in a row, so only the last edit counts. It then waits (generous deadline)
 * until every pod's network-status, netns links and host-local allocations match its last
 * edit and every deleted pod's addresses are released; a pod that does not converge is a
 * missed edit. The controller's RSS (/proc) and V8 heap in use (its /metrics) are sampled
 * every round; the first third of the run is warm-up.
 *
 * Exits 1 when anything leaked, an edit was missed, or the floor (minimum, i.e. after major
 * collections) of RSS or heap rose from the middle third to the last third beyond the noise
 * allowance.
 *
 * @module
 */
import {
  bridgePorts,
  ControllerProcess,
  type DesiredAttachment,
  ipamAllocations,
  mismatch,
  rssKiB,
  setNetworks,
} from "../support/mod.ts";
import { Rig, type RigPod } from "../rig/mod.ts";
import { parseChaosArgs, runChaos } from "./chaos.ts";

interface Options {
  minutes: number;
  pods: number;
  json?: string;
  /**
   * Allowed rise of the RSS floor from the middle to the last third of the run, in MiB (half
   * of it for the V8 heap in use).
   */
  rssAllowanceMiB: number;
}

function parseArgs(args: string[]): Options {
  const options: Options = { minutes: 10, pods: 10, rssAllowanceMiB: 16 };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2) as [string, string | undefined];
    const value = () => inline ?? args[++i] ?? "";
    if (flag === "--minutes") options.minutes = Number(value());
    else if (flag === "--pods") options.pods = Number(value());
    else if (flag === "--json") options.json = value();
    else if (flag === "--rss-allowance-mib") options.rssAllowanceMiB = Number(value());
    else if (flag === "--help" || flag === "-h") {
      console.log(
        "usage: deno task soak [--minutes N (10)] [--pods N (10)] [--json FILE] [--rss-allowance-mib N (16)]",
      );
      Deno.exit(0);
    } else throw new Error(`unknown argument ${args[i]}; see --help`);
  }
  if (!(options.minutes > 0) || !(options.pods >= 2)) {
    throw new Error("--minutes must be > 0 and --pods at least 2");
  }
  return options;
}

const NS = "soak";
const BLUE = { network: `${NS}/blue`, ipamNetwork: "soak-blue", ipPrefix: "10.82." };
const GREEN = { network: `${NS}/green`, ipamNetwork: "soak-green", ipPrefix: "10.83." };
const IPAM = [BLUE.ipamNetwork, GREEN.ipamNetwork];
const SLOTS = ["net1", "net2", "net3"];

interface Tracked {
  pod: RigPod;
  desired: DesiredAttachment[];
}

function randomInt(n: number): number {
  return Math.floor(Math.random() * n);
}

function randomDesired(): {
  annotation: { name: string; interface: string }[];
  expected: DesiredAttachment[];
} {
  const annotation: { name: string; interface: string }[] = [];
  const expected: DesiredAttachment[] = [];
  for (const iface of SLOTS) {
    const pick = randomInt(3);
    if (pick === 0) continue;
    const net = pick === 1 ? BLUE : GREEN;
    annotation.push({ name: pick === 1 ? "blue" : "green", interface: iface });
    expected.push({ ...net, iface });
  }
  return { annotation, expected };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  const started = Date.now();
  const deadline = started + options.minutes * 60_000;
  const rig = await Rig.start();
  let ctl: ControllerProcess | undefined;
  const samples: { s: number; rssMiB: number; heapMiB: number }[] = [];
  const roundSeconds: number[] = [];
  const missed: string[] = [];
  const counts = { rounds: 0, created: 0, deleted: 0, edits: 0, overwrittenEdits: 0 };
  let releasedLeaks = 0;
  try {
    await rig.createNamespace(NS);
    const bridge = rig.ownLink("sg");
    await rig.createNad(NS, "blue", rig.macvlanConfig("10.82.0.0/16", { name: BLUE.ipamNetwork }));
    await rig.createNad(NS, "green", {
      cniVersion: "0.3.1",
      name: GREEN.ipamNetwork,
      type: "bridge",
      bridge,
      ipam: rig.hostLocalIpam("10.83.0.0/16"),
    });
    ctl = await ControllerProcess.start(rig, { args: ["--log-level=info"] });
    const sample = async () => {
      const kib = rssKiB(ctl!.pid);
      const metrics = (await ctl!.get("/metrics")).body;
      const heap = Number(/^deno_heap_used_bytes (\S+)$/m.exec(metrics)?.[1]);
      if (kib !== undefined) {
        samples.push({
          s: Math.round((Date.now() - started) / 1000),
          rssMiB: kib / 1024,
          heapMiB: heap / 2 ** 20,
        });
      }
    };
    await sample();

    const live = new Map<string, Tracked>();
    let serial = 0;
    const create = async () => {
      const name = `churn-${serial++}`;
      const cold = Math.random() < 0.5 ? [{ name: "blue", interface: "net1" }] : [];
      const pod = await rig.createPod({ name, namespace: NS, networks: cold });
      live.set(name, {
        pod,
        desired: cold.length ? [{ ...BLUE, iface: "net1" }] : [],
      });
      counts.created++;
    };
    const released: RigPod[] = [];
    const remove = async (t: Tracked) => {
      live.delete(t.pod.name);
      await rig.deletePod(t.pod);
      released.push(t.pod);
      counts.deleted++;
    };
    const edit = async (t: Tracked) => {
      let next = randomDesired();
      await setNetworks(rig, t.pod, next.annotation);
      counts.edits++;
      if (Math.random() < 0.25) {
        next = randomDesired();
        await setNetworks(rig, t.pod, next.annotation);
        counts.edits++;
        counts.overwrittenEdits++;
      }
      t.desired = next.expected;
    };

    for (let i = 0; i < options.pods; i++) await create();
    let lastReport = Date.now();
    while (Date.now() < deadline) {
      const roundStart = performance.now();
      const pods = [...live.values()].sort(() => Math.random() - 0.5);
      const work: Promise<void>[] = [];
      if (pods.length > options.pods / 2 && Math.random() < 0.5) work.push(remove(pods.pop()!));
      if (live.size < options.pods + 2 && Math.random() < 0.6) work.push(create());
      for (const t of pods.slice(0, Math.max(2, Math.ceil(pods.length / 3)))) work.push(edit(t));
      await Promise.all(work);

      // Converge: every live pod matches its last edit; every deleted pod holds nothing.
      const waitUntil = Date.now() + 120_000;
      let pending = new Map<string, string>();
      for (;;) {
        pending = new Map();
        for (const t of live.values()) {
          const problem = await mismatch(rig, t.pod, t.desired, IPAM);
          if (problem) pending.set(t.pod.name, problem);
        }
        for (const pod of released) {
          for (const network of IPAM) {
            const held = await ipamAllocations(rig, network, pod.sandboxId);
            if (held.size > 0) pending.set(pod.name, `deleted pod still holds ${[...held.keys()]}`);
          }
        }
        if (pending.size === 0 || Date.now() > waitUntil) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      for (const [name, problem] of pending) {
        missed.push(`round ${counts.rounds}: ${name}: ${problem}`);
        console.error(`MISSED round ${counts.rounds}: ${name}: ${problem}`);
        const t = live.get(name);
        if (t) live.delete(name); // stop tracking it so one miss is counted once
        else releasedLeaks++;
      }
      released.length = 0;
      counts.rounds++;
      roundSeconds.push((performance.now() - roundStart) / 1000);
      await sample();
      if (Date.now() - lastReport > 30_000) {
        lastReport = Date.now();
        const last = samples.at(-1)!;
        console.log(
          `[${last.s}s] rounds ${counts.rounds}, live pods ${live.size}, created ${counts.created}, ` +
            `deleted ${counts.deleted}, edits ${counts.edits}, RSS ${
              last.rssMiB.toFixed(1)
            } MiB, missed ${missed.length}`,
        );
      }
    }

    // Drain: delete every pod; nothing may stay behind.
    const last = [...live.values()];
    await Promise.all(last.map((t) => remove(t)));
    let leakedFiles: string[] = [];
    const drainUntil = Date.now() + 120_000;
    for (;;) {
      leakedFiles = [];
      for (const network of IPAM) {
        leakedFiles.push(...(await rig.hostLocalFiles(network)).map((f) => `${network}/${f}`));
      }
      if (leakedFiles.length === 0 || Date.now() > drainUntil) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const leakedPorts = await bridgePorts(bridge);
    const records = ctl.records();
    const errors = records.filter((r) => r.level === "error").length;
    const warnings = records.filter((r) => r.level === "warn").length;
    await sample();

    // The first third is warm-up (V8 grows its heap to the working set); a leak shows as
    // growth from the middle third to the last one.
    const third = Math.max(1, Math.floor(samples.length / 3));
    const middle = samples.slice(third, 2 * third);
    const end = samples.slice(-third);
    const early = median(middle.map((s) => s.rssMiB));
    const late = median(end.map((s) => s.rssMiB));
    const heapEarly = median(middle.map((s) => s.heapMiB));
    const heapLate = median(end.map((s) => s.heapMiB));
    // Memory is a sawtooth between major collections; a leak raises its floor. Compare the
    // floors (minimum) of the two thirds.
    const rssFloor = [
      Math.min(...middle.map((s) => s.rssMiB)),
      Math.min(...end.map((s) => s.rssMiB)),
    ];
    const heapFloor = [
      Math.min(...middle.map((s) => s.heapMiB)),
      Math.min(...end.map((s) => s.heapMiB)),
    ];
    const report = {
      minutes: Math.round((Date.now() - started) / 600) / 100,
      ...counts,
      roundSeconds: {
        p50: Number(percentile(roundSeconds, 0.5).toFixed(2)),
        p99: Number(percentile(roundSeconds, 0.99).toFixed(2)),
        max: Number(Math.max(...roundSeconds).toFixed(2)),
      },
      rssMiB: {
        first: Number(samples[0]!.rssMiB.toFixed(1)),
        middleThirdMedian: Number(early.toFixed(1)),
        lastThirdMedian: Number(late.toFixed(1)),
        min: Number(Math.min(...samples.map((s) => s.rssMiB)).toFixed(1)),
        max: Number(Math.max(...samples.map((s) => s.rssMiB)).toFixed(1)),
        last: Number(samples.at(-1)!.rssMiB.toFixed(1)),
        middleThirdFloor: Number(rssFloor[0]!.toFixed(1)),
        lastThirdFloor: Number(rssFloor[1]!.toFixed(1)),
        floorGrowth: Number((rssFloor[1]! - rssFloor[0]!).toFixed(1)),
        allowance: options.rssAllowanceMiB,
      },
      heapUsedMiB: {
        middleThirdMedian: Number(heapEarly.toFixed(1)),
        lastThirdMedian: Number(heapLate.toFixed(1)),
        min: Number(Math.min(...samples.map((s) => s.heapMiB)).toFixed(1)),
        max: Number(Math.max(...samples.map((s) => s.heapMiB)).toFixed(1)),
        middleThirdFloor: Number(heapFloor[0]!.toFixed(1)),
        lastThirdFloor: Number(heapFloor[1]!.toFixed(1)),
        floorGrowth: Number((heapFloor[1]! - heapFloor[0]!).toFixed(1)),
      },
      overTime: samples.filter((_, i) => i % Math.max(1, Math.floor(samples.length / 20)) === 0)
        .map((s) => ({
          s: s.s,
          rssMiB: Number(s.rssMiB.toFixed(1)),
          heapMiB: Number(s.heapMiB.toFixed(1)),
        })),
      missedEdits: missed.length,
      missed: missed.slice(0, 20),
      deletedPodsStillHolding: releasedLeaks,
      leakedIpamFiles: leakedFiles,
      leakedBridgePorts: leakedPorts,
      controllerLog: {
        warnings,
        errors,
        examples: records.filter((r) => r.level === "error" || r.level === "warn").slice(0, 5)
          .map((r) => JSON.stringify(r).slice(0, 1500)),
      },
    };
    console.log(JSON.stringify(report, null, 2));
    if (options.json) {
      await Deno.writeTextFile(options.json, JSON.stringify(report, null, 2) + "\n");
    }
    console.log(
      `\nsoak ${report.minutes} min: ${counts.rounds} rounds, ${counts.created} pods created, ` +
        `${counts.deleted} deleted, ${counts.edits} edits (${counts.overwrittenEdits} overwritten at once)\n` +
        `RSS MiB first ${report.rssMiB.first}, middle-third median ${report.rssMiB.middleThirdMedian}, ` +
        `last-third median ${report.rssMiB.lastThirdMedian}, max ${report.rssMiB.max}; ` +
        `V8 heap used MiB middle ${report.heapUsedMiB.middleThirdMedian}, last ${report.heapUsedMiB.lastThirdMedian}\n` +
        `floors (minimum) of the middle and last thirds: RSS ${report.rssMiB.middleThirdFloor} -> ` +
        `${report.rssMiB.lastThirdFloor} MiB, heap ${report.heapUsedMiB.middleThirdFloor} -> ` +
        `${report.heapUsedMiB.lastThirdFloor} MiB\n` +
        `missed edits ${missed.length}, leaked IPAM files ${leakedFiles.length}, ` +
        `leaked bridge ports (host veths) ${leakedPorts.length}, ` +
        `log warnings ${warnings}, errors ${errors}`,
    );
    const failed = missed.length > 0 || releasedLeaks > 0 || leakedFiles.length > 0 ||
      leakedPorts.length > 0 || rssFloor[1]! - rssFloor[0]! > options.rssAllowanceMiB ||
      heapFloor[1]! - heapFloor[0]! > options.rssAllowanceMiB / 2;
    console.log(failed ? "SOAK FAILED" : "SOAK PASSED");
    return failed ? 1 : 0;
  } finally {
    await ctl?.stop();
    await rig.stop();
  }
}

if (import.meta.main) {
  Deno.exit(
    Deno.args.includes("--chaos")
      ? ((await runChaos(parseChaosArgs(Deno.args))).violations === 0 ? 0 : 1)
      : await main(),
  );
}
