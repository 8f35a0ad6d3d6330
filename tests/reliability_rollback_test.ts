/**
 * Changes that roll back, on the node rig: an element moved from a working network to one
 * whose plugin refuses every ADD leaves the pod with its old interface, with the same MAC and
 * address, an honest `NetworksReady` condition (`False`, naming the new network and the
 * plugin's error) and a `RestoredInterface` Event; the change completes once the network is
 * fixed. Killed right before or right after the ADD that puts the old attachment back, the
 * agent converges after a restart like after any other crash: once the network is fixed, the
 * new attachment is in place, and no address of the old one is left allocated.
 */
import assert from "node:assert/strict";
import {
  ControllerProcess,
  type DesiredAttachment,
  interfacesByName,
  ipamAllocations,
  mismatch,
  networksReadyCondition,
  rigTest,
  setNetworks,
  waitConverged,
  waitForEvent,
} from "./support/mod.ts";
import { Rig, type RigPod, waitFor } from "./rig/mod.ts";

const NS = "rollback";
const BLUE = { network: `${NS}/blue`, ipPrefix: "10.78.1." };
const RED = { ipamNetwork: "rb-red", ipPrefix: "10.78.2.", subnet: "10.78.2.0/24" };
const IPAM_NETWORKS = [RED.ipamNetwork];
const MAC = "02:78:00:00:00:01";
const ADDRESS = "10.78.1.50/24";
/** The element of blue, asking for a MAC and an address (static IPAM). */
const BLUE_ELEMENT = { name: "blue", interface: "net1", mac: MAC, ips: [ADDRESS] };

/** blue: macvlan with the address the element asks for (static IPAM). */
function blueConfig(rig: Rig): Record<string, unknown> {
  return {
    cniVersion: "0.3.1",
    name: "rb-blue",
    type: "macvlan",
    master: rig.macvlanMaster,
    mode: "bridge",
    capabilities: { ips: true, mac: true },
    ipam: { type: "static" },
  };
}
const REFUSAL = "dnc-refuses: this network is broken";

/** A CNI plugin whose every ADD fails with a CNI error; its DEL succeeds. */
const REFUSING_PLUGIN = `#!/bin/sh
case "$CNI_COMMAND" in
  ADD) printf '{"cniVersion":"0.3.1","code":11,"msg":"${REFUSAL}"}'; exit 1 ;;
  VERSION) printf '{"cniVersion":"0.3.1","supportedVersions":["0.3.0","0.3.1","0.4.0"]}' ;;
esac
exit 0
`;

/** The config of network `name`: macvlan on the rig's master, or the refusing plugin. */
function redConfig(rig: Rig, refusing: boolean): Record<string, unknown> {
  return {
    ...rig.macvlanConfig(RED.subnet, { name: RED.ipamNetwork }),
    ...(refusing ? { type: "dnc-refuses" } : {}),
  };
}

/** Replaces the config of NAD `name` (a fix of the network). */
async function setNadConfig(rig: Rig, name: string, config: Record<string, unknown>) {
  const path = `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions/${name}`;
  // deno-lint-ignore no-explicit-any
  const nad = await rig.api.request<any>("GET", path);
  nad.spec.config = JSON.stringify(config);
  await rig.api.request("PUT", path, nad);
}

/** net1 as the pod has it: MAC and IPv4 addresses. */
async function net1(rig: Rig, pod: RigPod) {
  const link = (await interfacesByName(rig, pod)).get("net1");
  return link ? { mac: link.mac, ipv4: link.ipv4 } : undefined;
}

const blueOnNet1: DesiredAttachment[] = [{ ...BLUE, iface: "net1" }];
/** For the crash cases: host-local IPAM, so that a leaked address shows. */
const HOST_LOCAL_BLUE = { network: `${NS}/bluehl`, ipamNetwork: "rb-bluehl", ipPrefix: "10.78.3." };
const CRASH_IPAM_NETWORKS = [RED.ipamNetwork, HOST_LOCAL_BLUE.ipamNetwork];
const redOnNet1 = (
  nad: string,
): DesiredAttachment[] => [{ ...RED, network: `${NS}/${nad}`, iface: "net1" }];

Deno.test({
  name:
    "rollback: a change to a network whose plugin fails keeps the old interface, says so honestly, and completes once the network is fixed",
  ...rigTest,
  async fn() {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await Deno.writeTextFile(`${rig.cniBinDir}/dnc-refuses`, REFUSING_PLUGIN, { mode: 0o755 });
      await rig.createNamespace(NS);
      await rig.createNad(NS, "blue", blueConfig(rig));
      await rig.createNad(NS, "red", redConfig(rig, true));
      ctl = await ControllerProcess.start(rig);
      const pod = await rig.createPod({ name: "swapped", namespace: NS });
      await setNetworks(rig, pod, [BLUE_ELEMENT]);
      await waitConverged(rig, pod, blueOnNet1, IPAM_NETWORKS);
      const before = await net1(rig, pod);
      assert.deepEqual(before, { mac: MAC, ipv4: [ADDRESS] });

      const changed = Date.now();
      await setNetworks(rig, pod, [{ name: "red", interface: "net1" }]);
      await waitForEvent(rig, pod, {
        reason: "RestoredInterface",
        includes: [`pod [${NS}/swapped]: put back interface net1 of network: blue`],
      });
      const restoredMs = Date.now() - changed;
      // Retries keep failing with backoff: between them the old interface is in place as it
      // was, network-status says so, and the condition names the new network and its error.
      await waitFor(
        "the old interface back between retries",
        async () => {
          const now = await net1(rig, pod);
          return now?.mac === before!.mac &&
            JSON.stringify(now.ipv4) === JSON.stringify(before!.ipv4) &&
            await mismatch(rig, pod, blueOnNet1, IPAM_NETWORKS) === undefined;
        },
        30_000,
        100,
      );
      const held = await networksReadyCondition(rig, pod);
      assert.equal(held?.status, "False", JSON.stringify(held));
      assert.match(held?.message ?? "", /net1 to network: red/);
      assert.ok(held?.message?.includes(REFUSAL), String(held?.message));
      assert.equal((await ipamAllocations(rig, RED.ipamNetwork, pod.sandboxId)).size, 0);

      // The network is fixed: the change goes through, and blue's address is released.
      await setNadConfig(rig, "red", redConfig(rig, false));
      await waitConverged(rig, pod, redOnNet1("red"), IPAM_NETWORKS, 90_000);
      await waitFor(
        "NetworksReady True",
        async () => (await networksReadyCondition(rig, pod))?.status === "True",
        30_000,
      );
      assert.deepEqual(ctl.records().filter((r) => r.level === "error"), []);
      console.log(
        `old interface put back ${restoredMs} ms after the change (MAC ${before!.mac}, ` +
          `${before!.ipv4.join(", ")}); the change completed once the network was fixed`,
      );
      await rig.deletePod(pod);
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});

Deno.test({
  name:
    "rollback: killed right before or right after the ADD that puts the old attachment back, the agent converges after a restart",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    try {
      await Deno.writeTextFile(`${rig.cniBinDir}/dnc-refuses`, REFUSING_PLUGIN, { mode: 0o755 });
      await rig.createNamespace(NS);
      await rig.createNad(NS, "bluehl", rig.macvlanConfig("10.78.3.0/24", { name: "rb-bluehl" }));
      for (const point of ["before-delegate", "after-delegate"] as const) {
        await t.step(`${point}:rollback`, async () => {
          const nad = `red-${point}`;
          await rig.createNad(NS, nad, redConfig(rig, true));
          const pod = await rig.createPod({ name: `crash-${point}`, namespace: NS });
          const plain = await ControllerProcess.start(rig);
          try {
            await setNetworks(rig, pod, [{ name: "bluehl", interface: "net1", mac: MAC }]);
            await waitConverged(
              rig,
              pod,
              [{ ...HOST_LOCAL_BLUE, iface: "net1" }],
              CRASH_IPAM_NETWORKS,
            );
          } finally {
            await plain.stop();
          }

          const armed = await ControllerProcess.start(rig, { crashAt: `${point}:rollback` });
          await setNetworks(rig, pod, [{ name: nad, interface: "net1" }]);
          const status = await waitFor(
            "the armed agent to exit at its crash point",
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
            armed.lines.some((l) => l.includes(`crash armed: exiting at ${point} of rollback`)),
            "the process did not exit at the armed point",
          );

          const restarted = await ControllerProcess.start(rig);
          try {
            await setNadConfig(rig, nad, redConfig(rig, false));
            // Converged: red on net1, and host-local holds no address of bluehl any more.
            await waitConverged(rig, pod, redOnNet1(nad), CRASH_IPAM_NETWORKS, 90_000);
            assert.deepEqual(restarted.records().filter((r) => r.level === "error"), []);
            // Deleted while an agent runs: its finalizer holds the pod until it released red.
            await rig.deletePod(pod);
          } finally {
            await restarted.stop();
          }
        });
      }
    } finally {
      await rig.stop();
    }
  },
});
