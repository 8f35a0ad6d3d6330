/**
 * Pod deletion releases hot-plugged attachments. multus' own CNI DEL at sandbox teardown
 * replays only what it attached at pod creation, so host-local addresses of hot-plugged
 * interfaces leak unless the controller releases them. Pods with a cold-plugged attachment
 * and two hot-plugged ones (macvlan and bridge, both host-local) are deleted through the API,
 * several at once, and torn down by the rig's kubelet: every address is released, no bridge
 * port is left on the host, and no Warning event or error log line follows. A forced deletion
 * leaves the hot-plugged address behind (multus cannot look the pod up any more), which the
 * agent reports once, while the kubelet's teardown still releases the cluster network's.
 */
import assert from "node:assert/strict";
import {
  bridgePorts,
  ControllerProcess,
  type DesiredAttachment,
  ipamAllocations,
  podEvents,
  rigTest,
  setNetworks,
  waitConverged,
} from "./support/mod.ts";
import { RELEASE_FINALIZER } from "../lib/core/annotations.ts";
import { POD_UID_LABEL, Rig, type RigPod, waitFor } from "./rig/mod.ts";

const NS = "deletion";
const BLUE = { network: `${NS}/blue`, ipamNetwork: "deletion-blue", ipPrefix: "10.79.1." };
const GREEN = { network: `${NS}/green`, ipamNetwork: "deletion-green", ipPrefix: "10.79.2." };
const IPAM = [BLUE.ipamNetwork, GREEN.ipamNetwork];
const PODS = 6;

Deno.test({
  name: "deletion: hot-plugged host-local addresses are released when their pods go, quietly",
  ...rigTest,
  async fn() {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      const bridge = rig.ownLink("dg");
      await rig.createNad(
        NS,
        "blue",
        rig.macvlanConfig("10.79.1.0/24", { name: BLUE.ipamNetwork }),
      );
      await rig.createNad(NS, "green", {
        cniVersion: "0.3.1",
        name: GREEN.ipamNetwork,
        type: "bridge",
        bridge,
        ipam: rig.hostLocalIpam("10.79.2.0/24"),
      });
      ctl = await ControllerProcess.start(rig);
      const cold = { name: "blue", interface: "net0" };
      const pods: RigPod[] = [];
      for (let i = 0; i < PODS; i++) {
        pods.push(await rig.createPod({ name: `doomed-${i}`, namespace: NS, networks: [cold] }));
      }
      const expected: DesiredAttachment[] = [
        { ...BLUE, iface: "net0" },
        { ...BLUE, iface: "net1" },
        { ...GREEN, iface: "net2" },
      ];
      await Promise.all(pods.map((pod) =>
        setNetworks(rig, pod, [
          cold,
          { name: "blue", interface: "net1" },
          { name: "green", interface: "net2" },
        ])
      ));
      for (const pod of pods) await waitConverged(rig, pod, expected, IPAM);
      assert.equal((await bridgePorts(bridge)).length, PODS);
      for (const pod of pods) {
        assert.equal((await ipamAllocations(rig, BLUE.ipamNetwork, pod.sandboxId)).size, 2);
        assert.equal((await ipamAllocations(rig, GREEN.ipamNetwork, pod.sandboxId)).size, 1);
      }

      const linesBefore = ctl.records().length;
      await Promise.all(pods.map((pod) => rig.deletePod(pod)));

      await waitFor(
        "every address of the deleted pods to be released",
        async () => {
          for (const pod of pods) {
            for (const network of IPAM) {
              if ((await ipamAllocations(rig, network, pod.sandboxId)).size > 0) return false;
            }
          }
          return true;
        },
        60_000,
        200,
      );
      assert.deepEqual(await bridgePorts(bridge), []);

      // A barrier: a later hot-plug on another pod completes, so the deletions were handled.
      const witness = await rig.createPod({ name: "witness", namespace: NS });
      await setNetworks(rig, witness, [{ name: "green", interface: "net1" }]);
      await waitConverged(rig, witness, [{ ...GREEN, iface: "net1" }], IPAM);

      const logs = ctl.records().slice(linesBefore).filter((r) =>
        pods.some((p) => r.pod === `${NS}/${p.name}`)
      );
      const errors = logs.filter((r) => r.level === "error");
      const warnings = logs.filter((r) => r.level === "warn");
      assert.deepEqual(errors, [], "error log lines after the deletions");
      assert.deepEqual(warnings, [], "warning log lines after the deletions");
      for (const pod of pods) {
        const events = (await podEvents(rig, NS, pod.name)).filter((e) => e.type === "Warning");
        assert.deepEqual(events.map((e) => `${e.reason}: ${e.message}`), [], pod.name);
      }
      console.log(
        `deleted ${PODS} pods with ${PODS * 2} hot-plugged addresses: all released; ` +
          `${logs.length} log lines about them afterwards, none warn or error`,
      );
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});

/** Pod `name` with `blue` hot-plugged on net1 by the agent, which must be running. */
async function bluePod(rig: Rig, name: string): Promise<RigPod> {
  await rig.createNamespace(NS);
  await rig.createNad(NS, "blue", rig.macvlanConfig("10.79.1.0/24", { name: BLUE.ipamNetwork }));
  const pod = await rig.createPod({ name, namespace: NS });
  await setNetworks(rig, pod, [{ name: "blue", interface: "net1" }]);
  await waitConverged(rig, pod, [{ ...BLUE, iface: "net1" }], [BLUE.ipamNetwork]);
  return pod;
}

Deno.test({
  name:
    "deletion: a force-deleted pod stays until the agent has released its attachments, then goes; nothing leaks",
  ...rigTest,
  async fn() {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      ctl = await ControllerProcess.start(rig);
      const pod = await bluePod(rig, "forced");
      const linesBefore = ctl.records().length;
      const path = `/api/v1/namespaces/${NS}/pods/${pod.name}`;
      const object = () =>
        rig.api.getOrUndefined<{
          metadata: { uid: string; deletionTimestamp?: string; finalizers?: string[] };
        }>(path);
      assert.deepEqual((await object())?.metadata.finalizers, [RELEASE_FINALIZER]);

      // `kubectl delete --force --grace-period=0`, with the agent held still: the object would
      // go at once, and the kubelet tear the sandbox down on its own, but the agent's
      // finalizer keeps it (multus refuses any release for a pod it cannot look up).
      Deno.kill(ctl.pid, "SIGSTOP");
      try {
        await rig.api.request("DELETE", path, {
          apiVersion: "v1",
          kind: "DeleteOptions",
          gracePeriodSeconds: 0,
        });
        await waitFor(
          "the kubelet to stop the sandbox",
          async () => {
            const sandboxes = await rig.cri.listPodSandbox({ [POD_UID_LABEL]: pod.uid });
            return sandboxes.every((s) => s.state !== "SANDBOX_READY");
          },
          30_000,
          100,
        );
        const held = await object();
        assert.equal(held?.metadata.uid, pod.uid, "the deleted pod is still there");
        assert.ok(held?.metadata.deletionTimestamp);
        assert.equal((await ipamAllocations(rig, BLUE.ipamNetwork, pod.sandboxId)).size, 1);
      } finally {
        Deno.kill(ctl.pid, "SIGCONT");
      }
      await waitFor("the pod to be gone", async () => (await object()) === undefined, 60_000);
      assert.equal((await ipamAllocations(rig, BLUE.ipamNetwork, pod.sandboxId)).size, 0);
      assert.equal((await ipamAllocations(rig, rig.clusterNetworkName, pod.sandboxId)).size, 0);
      const trouble = ctl.records().slice(linesBefore).filter((r) =>
        r.pod === `${NS}/${pod.name}` && (r.level === "warn" || r.level === "error")
      );
      assert.deepEqual(trouble, []);
      assert.equal(journalFiles(rig, pod.uid), 0, "nothing left journaled");
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});

Deno.test({
  name:
    "deletion: a pod removed while the agent is down, its finalizer stripped by hand, is reported once, naming what multus can no longer release",
  ...rigTest,
  async fn() {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      ctl = await ControllerProcess.start(rig);
      const pod = await bluePod(rig, "stripped");
      await ctl.stop();
      ctl = undefined;
      // What an operator does to pods of a node whose agent is gone for good.
      const path = `/api/v1/namespaces/${NS}/pods/${pod.name}`;
      await rig.api.request("PATCH", path, { metadata: { finalizers: null } }, {
        contentType: "application/merge-patch+json",
      });
      await rig.forceDeletePod(pod);
      // multus' teardown replays only what it attached at creation: the cluster network's
      // address is released, the hot-plugged one stays.
      assert.equal((await ipamAllocations(rig, rig.clusterNetworkName, pod.sandboxId)).size, 0);
      assert.equal((await ipamAllocations(rig, BLUE.ipamNetwork, pod.sandboxId)).size, 1);

      ctl = await ControllerProcess.start(rig);
      const reports = () =>
        ctl!.records().filter((r) =>
          r.pod === `${NS}/${pod.name}` && (r.level === "warn" || r.level === "error")
        );
      await waitFor(
        "the agent to report the attachment it cannot release",
        () => reports().length > 0,
      );
      // A barrier, then: one report naming the attachment, and nothing else about that pod.
      const witness = await rig.createPod({ name: "witness-stripped", namespace: NS });
      await setNetworks(rig, witness, [{ name: "blue", interface: "net1" }]);
      await waitConverged(rig, witness, [{ ...BLUE, iface: "net1" }], [BLUE.ipamNetwork]);
      assert.deepEqual(
        reports().map((r) => [r.msg, r.interfaceName, r.network]),
        [[
          "cannot release an attachment of a pod that no longer exists; its IPAM address may stay allocated",
          "net1",
          `${NS}/blue`,
        ]],
      );
      assert.equal(journalFiles(rig, pod.uid), 0, "reported once, then forgotten");
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});

/** 1 when the agent's journal has a file for pod `uid`, else 0. */
function journalFiles(rig: Rig, uid: string): number {
  try {
    Deno.statSync(`${rig.agentStateDir}/${uid}.json`);
    return 1;
  } catch {
    return 0;
  }
}
