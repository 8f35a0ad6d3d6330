/**
 * Drift, on the node rig: the agent CHECKs (CNI CHECK through multus' `/delegate`) every
 * attachment network-status lists, every few seconds here, and
 *
 * - repairs a hot-plugged macvlan interface deleted inside the pod (`ip link del` in its netns):
 *   it comes back with the same MAC and address (both asked for in its element), with a
 *   `RepairedInterface` Event;
 * - finds a link multus plugged at the pod's creation, then deleted, too, and repairs it;
 * - with `driftRepair: false`, only reports: the condition says `Drifted` naming the interface,
 *   an `InterfaceDrifted` Event, and nothing in the pod changes;
 * - on a node whose multus daemon config says `cniVersion` 0.3.1 (as multus' own manifests ship
 *   it), says once what multus answered (libcni refuses CHECK before 0.4.0) and checks nothing
 *   again.
 *
 * multus puts its daemon config's `cniVersion` into every `/delegate` request, whatever the NAD
 * says: the first two tests run a node whose multus says 0.4.0, the first version with CHECK.
 */
import assert from "node:assert/strict";
import {
  ControllerProcess,
  interfacesByName,
  networksReadyCondition,
  networkStatus,
  rigTest,
  setNetworks,
  statusEntry,
  waitForEvent,
  waitForStatus,
} from "./support/mod.ts";
import { Rig, type RigPod, waitFor } from "./rig/mod.ts";
import { run } from "./rig/exec.ts";

const NS = "drift";
const INTERVAL_S = 3;
const MAC = "02:79:00:00:00:01";
const ADDRESS = "10.79.1.50/24";
/** The hot-plugged element: a MAC and an address asked for, so that a repair gives them back. */
const BLUE = { name: "blue", interface: "net1", mac: MAC, ips: [ADDRESS] };

/** A macvlan NAD config of CNI version 0.4.0 with host-local IPAM on `subnet`. */
function macvlan(rig: Rig, name: string, subnet: string) {
  return { ...rig.macvlanConfig(subnet, { name }), cniVersion: "0.4.0" };
}

/** multus' daemon config says a version that has CHECK. */
const CHECKABLE = { multusCniVersion: "0.4.0" };

/** Deletes link `ifname` inside the pod, as a process in it could. */
async function deleteLink(rig: Rig, pod: RigPod, ifname: string): Promise<void> {
  const netns = await rig.podNetns(pod);
  const out = await run(["nsenter", `--net=${netns}`, "ip", "link", "del", ifname]);
  assert.equal(out.code, 0, out.stderr);
}

async function link(rig: Rig, pod: RigPod, ifname: string) {
  const l = (await interfacesByName(rig, pod)).get(ifname);
  return l ? { mac: l.mac, ipv4: l.ipv4 } : undefined;
}

async function setup(rig: Rig): Promise<void> {
  await rig.createNamespace(NS);
  await rig.createNad(NS, "blue", {
    cniVersion: "0.4.0",
    name: "dr-blue",
    type: "macvlan",
    master: rig.macvlanMaster,
    mode: "bridge",
    capabilities: { ips: true, mac: true },
    ipam: { type: "static" },
  });
  await rig.createNad(NS, "cold", macvlan(rig, "dr-cold", "10.79.2.0/24"));
}

Deno.test({
  name:
    "drift: a deleted hot-plugged link comes back with its MAC and address, and a link multus plugged is found and repaired too",
  ...rigTest,
  async fn() {
    const rig = await Rig.start(CHECKABLE);
    let ctl: ControllerProcess | undefined;
    try {
      await setup(rig);
      ctl = await ControllerProcess.start(rig, {
        args: [`--drift-check-interval-seconds=${INTERVAL_S}`],
      });
      const pod = await rig.createPod({
        name: "checked",
        namespace: NS,
        networks: [{ name: "cold", interface: "net0" }],
      });
      await setNetworks(rig, pod, [
        { name: "cold", interface: "net0" },
        BLUE,
      ]);
      await waitForStatus(rig, pod, (s) => ["net0", "net1"].every((i) => statusEntry(s, i)));
      const before = await link(rig, pod, "net1");
      assert.deepEqual(before, { mac: MAC, ipv4: [ADDRESS] });

      // A hot-plugged link deleted inside the pod.
      const deleted = Date.now();
      await deleteLink(rig, pod, "net1");
      await waitFor(
        "net1 back",
        async () => (await link(rig, pod, "net1")) !== undefined,
        6 * INTERVAL_S * 1000,
        50,
      );
      const backMs = Date.now() - deleted;
      assert.deepEqual(await link(rig, pod, "net1"), before, "the same MAC and address");
      const entry = statusEntry(await networkStatus(rig, pod), "net1");
      assert.equal(entry?.mac, MAC);
      await waitForEvent(rig, pod, {
        reason: "RepairedInterface",
        includes: ["net1 of network: blue", "released and added again with the same request"],
      });

      // A link multus plugged at the pod's creation.
      await deleteLink(rig, pod, "net0");
      await waitFor(
        "net0 back",
        async () => (await link(rig, pod, "net0")) !== undefined,
        6 * INTERVAL_S * 1000,
        50,
      );
      await waitForEvent(rig, pod, {
        reason: "RepairedInterface",
        includes: ["net0 of network: cold"],
      });
      const net0 = statusEntry(await networkStatus(rig, pod), "net0");
      assert.equal(
        net0?.mac,
        (await link(rig, pod, "net0"))?.mac,
        "network-status says the new link",
      );

      const metrics = (await ctl.get("/metrics")).body;
      assert.match(metrics, /dynamic_networks_drift_checks_total\{result="unsupported"\} 0\b/);
      assert.match(metrics, /dynamic_networks_drift_checks_total\{result="drifted"\} [1-9]/);
      assert.match(metrics, /dynamic_networks_drift_repairs_total\{result="success"\} [2-9]/);
      assert.deepEqual(ctl.records().filter((r) => r.level === "error"), []);
      assert.equal((await networksReadyCondition(rig, pod))?.status, "True");
      console.log(
        `net1 deleted in the pod, back with MAC ${before!.mac} and ${before!.ipv4.join(", ")} ` +
          `after ${backMs} ms (check interval ${INTERVAL_S} s)`,
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
    "drift: with driftRepair false, a deleted link is reported (Drifted, an Event) and nothing changes",
  ...rigTest,
  async fn() {
    const rig = await Rig.start(CHECKABLE);
    let ctl: ControllerProcess | undefined;
    try {
      await setup(rig);
      ctl = await ControllerProcess.start(rig, {
        args: [`--drift-check-interval-seconds=${INTERVAL_S}`, "--drift-repair=false"],
      });
      const pod = await rig.createPod({ name: "reported", namespace: NS });
      await setNetworks(rig, pod, [BLUE]);
      await waitForStatus(rig, pod, (s) => statusEntry(s, "net1") !== undefined);
      const status = JSON.stringify(await networkStatus(rig, pod));
      await deleteLink(rig, pod, "net1");
      await waitFor(
        "NetworksReady Drifted",
        async () => (await networksReadyCondition(rig, pod))?.reason === "Drifted",
        6 * INTERVAL_S * 1000,
        100,
      );
      const drifted = await networksReadyCondition(rig, pod);
      assert.equal(drifted?.status, "False");
      assert.match(drifted?.message ?? "", /net1 of network: blue: .*repair is off/);
      await waitForEvent(rig, pod, {
        reason: "InterfaceDrifted",
        includes: ["net1 of network: blue"],
      });
      // Nothing changes: a check interval later the link is still gone and the status as it was.
      await new Promise((r) => setTimeout(r, 2 * INTERVAL_S * 1000));
      assert.equal(await link(rig, pod, "net1"), undefined);
      assert.equal(JSON.stringify(await networkStatus(rig, pod)), status);
      assert.equal((await networksReadyCondition(rig, pod))?.reason, "Drifted");
      assert.deepEqual(ctl.records().filter((r) => r.level === "error"), []);
      console.log(`reported: ${drifted?.message}`);
      await rig.deletePod(pod);
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});

Deno.test({
  name:
    "drift: where multus says cniVersion 0.3.1, an attachment cannot be checked: said once with multus' answer, counted, never checked again",
  ...rigTest,
  async fn() {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      assert.equal(rig.multusCniVersion, "0.3.1");
      await setup(rig);
      ctl = await ControllerProcess.start(rig, {
        args: [`--drift-check-interval-seconds=${INTERVAL_S}`],
      });
      const pod = await rig.createPod({ name: "unchecked", namespace: NS });
      await setNetworks(rig, pod, [BLUE]);
      await waitForStatus(rig, pod, (s) => statusEntry(s, "net1") !== undefined);
      const said = () =>
        ctl!.records().filter((r) =>
          r.msg === "network's attachments cannot be checked for drift; not checking them again"
        );
      await waitFor(
        "the agent to say it cannot check net1",
        () => Promise.resolve(said().length > 0),
        6 * INTERVAL_S * 1000,
      );
      // Three more intervals: still said once, checked once.
      await new Promise((r) => setTimeout(r, 3 * INTERVAL_S * 1000));
      assert.equal(said().length, 1, JSON.stringify(said()));
      const [line] = said();
      assert.equal(line!.interfaceName, "net1");
      assert.match(
        String(line!.detail),
        /configuration version "0.3.1" does not support the CHECK command/,
      );
      const metrics = (await ctl.get("/metrics")).body;
      assert.match(metrics, /dynamic_networks_drift_checks_total\{result="unsupported"\} 1\b/);
      assert.match(metrics, /dynamic_networks_drift_checks_total\{result="drifted"\} 0\b/);
      assert.match(
        metrics,
        /dynamic_networks_delegate_duration_seconds_count\{command="CHECK"\} 1\b/,
      );
      console.log(`multus answered: ${line!.detail}`);
      await rig.deletePod(pod);
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
