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
import { ControllerProcess } from "./e2e/controller_process.ts";
import { Rig, type RigPod, waitFor } from "./rig/mod.ts";
import {
  bridgePorts,
  type ExpectedAttachment,
  ipamAllocations,
  podEvents,
  setNetworks,
  waitConverged,
} from "./soak/checks.ts";

const isRoot = Deno.uid() === 0;
const rigTest = { ignore: !isRoot, sanitizeResources: false, sanitizeOps: false };

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
      const expected: ExpectedAttachment[] = [
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

Deno.test({
  name:
    "deletion: a force-deleted pod's attachments cannot be released through multus; the agent names them once",
  ...rigTest,
  async fn() {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(
        NS,
        "blue",
        rig.macvlanConfig("10.79.1.0/24", { name: BLUE.ipamNetwork }),
      );
      ctl = await ControllerProcess.start(rig);
      const pod = await rig.createPod({ name: "forced", namespace: NS });
      await setNetworks(rig, pod, [{ name: "blue", interface: "net1" }]);
      await waitConverged(rig, pod, [{ ...BLUE, iface: "net1" }], [BLUE.ipamNetwork]);
      const linesBefore = ctl.records().length;

      assert.equal(
        (await ipamAllocations(rig, rig.clusterNetworkName, pod.sandboxId)).size,
        1,
        "the cluster network's address",
      );

      // `kubectl delete --force --grace-period=0`: the object goes at once; the kubelet then
      // tears the sandbox down on its own. The API server still writes the deletion in two
      // steps (deletionTimestamp, then the removal, a few ms apart), and an agent that acts in
      // between releases through multus after all: the agent is held still over the deletion,
      // as one slower than that gap is, so that it meets the pod only once it is gone.
      Deno.kill(ctl.pid, "SIGSTOP");
      try {
        await rig.forceDeletePod(pod);
      } finally {
        Deno.kill(ctl.pid, "SIGCONT");
      }
      const reports = () =>
        ctl!.records().slice(linesBefore).filter((r) =>
          r.pod === `${NS}/${pod.name}` && String(r.msg).startsWith("pod left the API server")
        );
      await waitFor("the agent to report the unreleased attachment", () => reports().length > 0);
      // multus' CNI DEL at the teardown replays only what it attached at creation: the
      // cluster network's address is released, the hot-plugged one stays.
      assert.equal((await ipamAllocations(rig, rig.clusterNetworkName, pod.sandboxId)).size, 0);
      assert.equal((await ipamAllocations(rig, BLUE.ipamNetwork, pod.sandboxId)).size, 1);

      // A barrier, then: one report naming the attachment, and nothing else about that pod.
      const witness = await rig.createPod({ name: "witness-forced", namespace: NS });
      await setNetworks(rig, witness, [{ name: "blue", interface: "net1" }]);
      await waitConverged(rig, witness, [{ ...BLUE, iface: "net1" }], [BLUE.ipamNetwork]);
      assert.equal(reports().length, 1);
      assert.deepEqual(reports()[0]!.attachments, [`${NS}/blue/net1`]);
      const other = ctl.records().slice(linesBefore).filter((r) =>
        r.pod === `${NS}/${pod.name}` && (r.level === "warn" || r.level === "error") &&
        !String(r.msg).startsWith("pod left the API server")
      );
      assert.deepEqual(other, []);
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
