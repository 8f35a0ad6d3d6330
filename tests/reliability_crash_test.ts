/**
 * Crash anywhere: the controller process is made to exit abruptly (exit code 137, as after
 * SIGKILL) at each instant of an add, a remove and a swap — before the multus delegate call,
 * after it returned, before the network-status write and after it — run as
 * `tests/support/crashing_agent.ts`, the shipped program with a crash armed around its multus
 * client and status store. A fresh controller (`main.ts`) must then converge: the
 * netns interfaces, the desired list and network-status agree, host-local holds exactly the
 * addresses in use, no bridge port is left on the host, and no failure is reported on the way.
 * The same holds when an ADD cut short is abandoned (the annotation drops it) before the
 * restart, or when a swap cut short is undone before the restart: the attachment journal
 * releases the unfinished ADD, and the old attachment comes back; likewise when a removal cut
 * short after its DEL is undone, although network-status still shows the attachment. The last steps SIGKILL the controller at random
 * instants while four pods change their attachments, with a restart after each kill, then with
 * further edits between kills and a single restart at the end; both must converge.
 */
import assert from "node:assert/strict";
import {
  bridgePorts,
  ControllerProcess,
  type DesiredAttachment,
  mismatch,
  podEvents,
  rigTest,
  secondaryLinks,
  secondaryStatus,
  setNetworks,
  waitConverged,
} from "./support/mod.ts";
import { Rig, type RigPod, waitFor } from "./rig/mod.ts";
import { CRASH_AT_ENV } from "./support/crashing_agent.ts";

const NS = "crash";
const BLUE = { network: `${NS}/blue`, ipamNetwork: "crash-blue", ipPrefix: "10.77.1." };
const GREEN = { network: `${NS}/green`, ipamNetwork: "crash-green", ipPrefix: "10.77.2." };
const IPAM_NETWORKS = [BLUE.ipamNetwork, GREEN.ipamNetwork];

type Point = "before-delegate" | "after-delegate" | "before-status-write" | "after-status-write";
const POINTS: Point[] = [
  "before-delegate",
  "after-delegate",
  "before-status-write",
  "after-status-write",
];

interface Case {
  kind: "add" | "remove" | "swap";
  point: Point;
  /** The operation kind whose point is armed. */
  op: "add" | "remove";
  /** The annotation drops every interface while no controller runs (the ADD is abandoned). */
  abandon?: boolean;
  /** The annotation goes back to what it was while no controller runs (the swap is undone). */
  revert?: boolean;
}

const CASES: Case[] = [
  ...POINTS.map((point) => ({ kind: "add" as const, point, op: "add" as const })),
  ...POINTS.map((point) => ({ kind: "remove" as const, point, op: "remove" as const })),
  // A swap is a remove then an add on the same interface name: arm every point of both.
  ...(["before-delegate", "after-delegate"] as const).map((point) => ({
    kind: "swap" as const,
    point,
    op: "remove" as const,
  })),
  ...POINTS.map((point) => ({ kind: "swap" as const, point, op: "add" as const })),
  // An ADD cut short, then abandoned before the restart: only the journal knows it happened.
  ...(["after-delegate", "before-status-write"] as const).flatMap((point) =>
    (["add", "swap"] as const).map((kind) => ({ kind, point, op: "add" as const, abandon: true }))
  ),
  // A removal cut short after its DEL, then undone: network-status still shows the attachment,
  // but its interface is gone; it must come back.
  ...(["after-delegate", "before-status-write"] as const).map((point) => ({
    kind: "remove" as const,
    point,
    op: "remove" as const,
    revert: true,
  })),
  // A swap cut short after the old attachment went, then undone: the old one must come back.
  ...(["after-delegate", "before-status-write"] as const).map((point) => ({
    kind: "swap" as const,
    point,
    op: "add" as const,
    revert: true,
  })),
];

type Net = "none" | "blue" | "green";

/** Which network net1 belongs to in the netns (by address) and in network-status. */
async function crashState(rig: Rig, pod: RigPod): Promise<{ link: Net; status: Net }> {
  const link = (await secondaryLinks(rig, pod)).find((l) => l.name === "net1");
  const entry = (await secondaryStatus(rig, pod)).find((e) => e.interface === "net1");
  const byIp = (ips: string[]): Net =>
    ips.some((ip) => ip.startsWith(BLUE.ipPrefix))
      ? "blue"
      : ips.some((ip) => ip.startsWith(GREEN.ipPrefix))
      ? "green"
      : "none";
  return {
    link: link ? byIp(link.ipv4) : "none",
    status: entry ? (entry.name === BLUE.network ? "blue" : "green") : "none",
  };
}

/** What net1 looks like when the process dies at `c`'s point. */
function stateAtCrash(c: Case): { link: Net; status: Net } {
  const delegated = c.point !== "before-delegate";
  const recorded = c.point === "after-status-write";
  if (c.kind === "add") {
    return { link: delegated ? "blue" : "none", status: recorded ? "blue" : "none" };
  }
  if (c.kind === "remove") {
    return { link: delegated ? "none" : "blue", status: recorded ? "none" : "blue" };
  }
  if (c.op === "remove") return { link: delegated ? "none" : "blue", status: "blue" };
  return { link: delegated ? "green" : "none", status: recorded ? "green" : "blue" };
}

Deno.test({
  name:
    "crash anywhere: after a kill at each point of an add, a remove and a swap, a restart converges",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    try {
      await rig.createNamespace(NS);
      const bridge = rig.ownLink("cg");
      await rig.createNad(
        NS,
        "blue",
        rig.macvlanConfig("10.77.1.0/24", { name: BLUE.ipamNetwork }),
      );
      await rig.createNad(NS, "green", {
        cniVersion: "0.3.1",
        name: GREEN.ipamNetwork,
        type: "bridge",
        bridge,
        ipam: rig.hostLocalIpam("10.77.2.0/24"),
      });

      await t.step("the shipped agent does not crash where the variable arms one", async () => {
        // main.ts with the agent's own flags: nothing in it reads the variable or can crash.
        const agent = await ControllerProcess.start(rig, {
          env: { [CRASH_AT_ENV]: "after-delegate:add" },
        });
        try {
          const pod = await rig.createPod({ name: "unarmed", namespace: NS });
          await setNetworks(rig, pod, [{ name: "blue", interface: "net1" }]);
          await waitConverged(rig, pod, [{ ...BLUE, iface: "net1" }], IPAM_NETWORKS);
          const exited = await Promise.race([
            agent.status.then(() => true),
            new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
          ]);
          assert.equal(exited, false, agent.lines.slice(-20).join("\n"));
          await rig.deletePod(pod);
        } finally {
          await agent.stop();
        }
      });

      const pods: RigPod[] = [];
      for (const c of CASES) {
        const name = `${c.kind}-${c.point}-${c.op}${
          c.abandon ? "-abandoned" : c.revert ? "-reverted" : ""
        }`;
        const ok = await t.step(name, async () => {
          const blue = { name: "blue", interface: "net1" };
          const green = { name: "green", interface: "net1" };
          const initial = c.kind === "add" ? [] : [blue];
          const desired = c.kind === "add" ? [blue] : c.kind === "remove" ? [] : [green];
          const expected: DesiredAttachment[] = c.abandon
            ? []
            : c.revert
            ? [{ ...BLUE, iface: "net1" }]
            : c.kind === "add"
            ? [{ ...BLUE, iface: "net1" }]
            : c.kind === "remove"
            ? []
            : [{ ...GREEN, iface: "net1" }];
          const pod = await rig.createPod({ name, namespace: NS, networks: initial });
          pods.push(pod);
          const before: DesiredAttachment[] = initial.length ? [{ ...BLUE, iface: "net1" }] : [];
          assert.equal(await mismatch(rig, pod, before, IPAM_NETWORKS), undefined);

          // 1. The armed controller dies at the point.
          const armed = await ControllerProcess.start(rig, {
            crashAt: `${c.point}:${c.op}`,
          });
          await setNetworks(rig, pod, desired);
          const status = await waitFor(
            "the armed controller to exit at its fault point",
            () =>
              Promise.race([
                armed.status,
                new Promise<undefined>((r) => setTimeout(() => r(undefined), 500)),
              ]),
            60_000,
          );
          await armed.stop();
          assert.equal(status.code, 137, armed.lines.slice(-20).join("\n"));
          assert.ok(
            armed.lines.some((l) => l.includes(`crash armed: exiting at ${c.point} of ${c.op}`)),
            "the process did not exit at the armed point",
          );
          // The world as the crash left it: proves the kill landed where it was meant to.
          assert.deepEqual(await crashState(rig, pod), stateAtCrash(c), "state at the crash");
          if (c.abandon) await setNetworks(rig, pod, []);
          if (c.revert) await setNetworks(rig, pod, initial);

          // 2. A restarted controller converges with no failure on the way.
          const restarted = await ControllerProcess.start(rig);
          try {
            await waitConverged(rig, pod, expected, IPAM_NETWORKS);
            const warnings = (await podEvents(rig, NS, name)).filter((e) => e.type === "Warning");
            assert.deepEqual(warnings.map((e) => `${e.reason}: ${e.message}`), []);
            const errors = restarted.records().filter((r) => r.level === "error");
            assert.deepEqual(errors, []);
          } finally {
            await restarted.stop();
          }

          // 3. No bridge port on the host without a green interface in some pod.
          let green_in_pods = 0;
          for (const p of pods) {
            const links = await secondaryLinks(rig, p);
            green_in_pods += links.filter((l) => l.ipv4.some((ip) => ip.startsWith(GREEN.ipPrefix)))
              .length;
          }
          assert.equal((await bridgePorts(bridge)).length, green_in_pods, "leftover host veth");
        });
        if (!ok) console.error(`case ${name} failed`);
      }

      let series = 0;
      /**
       * SIGKILLs a controller at a random instant after editing four pods, `rounds` times.
       * With `settle`, a clean restart converges the pods after each kill, before the next
       * edit; without it, the next edits come while the last kill's work may be unfinished.
       */
      const randomKills = async (rounds: number, settle: boolean) => {
        const churn: RigPod[] = [];
        for (let i = 0; i < 4; i++) {
          churn.push(await rig.createPod({ name: `random-${series}-${i}`, namespace: NS }));
        }
        series++;
        pods.push(...churn);
        const desired = new Map<string, DesiredAttachment[]>();
        const random = (n: number) => Math.floor(Math.random() * n);
        const converge = async () => {
          const ctl = await ControllerProcess.start(rig);
          try {
            for (const pod of churn) {
              await waitConverged(rig, pod, desired.get(pod.name)!, IPAM_NETWORKS);
            }
          } finally {
            await ctl.stop();
          }
        };
        for (let round = 0; round < rounds; round++) {
          const ctl = await ControllerProcess.start(rig);
          for (const pod of churn) {
            const list: { name: string; interface: string }[] = [];
            const want: DesiredAttachment[] = [];
            for (const iface of ["net1", "net2"]) {
              const pick = random(3);
              if (pick === 0) continue;
              list.push({ name: pick === 1 ? "blue" : "green", interface: iface });
              want.push({ ...(pick === 1 ? BLUE : GREEN), iface });
            }
            await setNetworks(rig, pod, list);
            desired.set(pod.name, want);
          }
          // Not an assertion: this only chooses where in the work the kill lands.
          await new Promise((r) => setTimeout(r, random(800)));
          await ctl.crash();
          if (settle) await converge();
        }
        if (!settle) await converge();
        let green_in_pods = 0;
        for (const p of pods) {
          const links = await secondaryLinks(rig, p);
          green_in_pods += links.filter((l) => l.ipv4.some((ip) => ip.startsWith(GREEN.ipPrefix)))
            .length;
        }
        assert.equal((await bridgePorts(bridge)).length, green_in_pods, "leftover host veth");
      };

      await t.step(
        "SIGKILL at random instants while pods change, each kill followed by a restart",
        () => randomKills(6, true),
      );

      // Kills during a multus ADD whose interface the next edits drop or give to the other
      // network before any controller runs again: the journal is what releases them.
      await t.step(
        "SIGKILL at random instants with further edits before the restart",
        () => randomKills(8, false),
      );
    } finally {
      await rig.stop();
    }
  },
});
