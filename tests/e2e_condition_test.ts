/**
 * The agent's pod condition (`dynamic-networks-controller.io/NetworksReady`) on the node rig,
 * with the real kubelet: it goes False → True when a missing NAD appears (and `kubectl wait`
 * follows it), a pod whose readiness gate it is turns Ready only after its hot-plug, the
 * kubelet's own status writes (a flipping readiness probe, a kubelet restart) never erase it,
 * and resyncs that change nothing write nothing.
 */
import assert from "node:assert/strict";
import { NETWORKS_READY_CONDITION } from "../lib/core/networks_condition.ts";
import { Rig, type RigPod, sleep, waitFor } from "./rig/mod.ts";
import {
  ControllerProcess,
  FLAPPING_READINESS,
  getPod,
  hasInterfaces,
  networksReadyCondition,
  networkStatus,
  type PodCondition,
  podConditions,
  rigTest,
  setNetworks,
} from "./support/mod.ts";

const NS = "condition";

async function ready(rig: Rig, pod: RigPod): Promise<PodCondition | undefined> {
  return (await podConditions(rig, pod)).find((c) => c.type === "Ready");
}

async function waitCondition(
  rig: Rig,
  pod: RigPod,
  what: string,
  test: (c: PodCondition) => boolean,
  timeoutMs = 30_000,
): Promise<PodCondition> {
  return await waitFor(what, async () => {
    const c = await networksReadyCondition(rig, pod);
    return c !== undefined && test(c) ? c : undefined;
  }, timeoutMs);
}

Deno.test({
  name: "condition: False → True on a late NAD, a readiness gate, and the kubelet's writes",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(NS, "blue", rig.macvlanConfig("10.83.1.0/24"));
      ctl = await ControllerProcess.start(rig, { args: ["--resync-period-seconds=2"] });

      await t.step("a pod that never asks for networks gets no condition", async () => {
        const plain = await rig.createPod({ name: "plain", namespace: NS });
        await sleep(3_000); // a resync included
        assert.equal(await networksReadyCondition(rig, plain), undefined);
        await rig.deletePod(plain);
      });

      await t.step(
        "False NetworkNotFound, then True once the NAD exists; kubectl wait",
        async () => {
          // multus refuses to start a sandbox whose annotation names a missing NAD: the pod
          // asks for it once it runs.
          const pod = await rig.createPod({ name: "late", namespace: NS });
          await setNetworks(rig, pod, [{ name: "late-red", interface: "net1" }]);
          const missing = await waitCondition(
            rig,
            pod,
            "NetworkNotFound",
            (c) => c.status === "False",
          );
          assert.equal(missing.reason, "NetworkNotFound");
          assert.match(missing.message!, /net1 to network: late-red/);
          assert.match(
            missing.message!,
            /NetworkAttachmentDefinition condition\/late-red not found/,
          );
          const waiting = rig.kubectl(
            "-n",
            NS,
            "wait",
            `--for=condition=${NETWORKS_READY_CONDITION}`,
            "pod/late",
            "--timeout=60s",
          );
          await sleep(1_000);
          await rig.createNad(NS, "late-red", rig.macvlanConfig("10.83.2.0/24"));
          const res = await waiting;
          assert.equal(res.code, 0, `kubectl wait: ${res.stdout} ${res.stderr}`);
          assert.match(res.stdout, /condition met/);
          const ok = await networksReadyCondition(rig, pod);
          assert.equal(ok?.status, "True");
          assert.equal(ok?.reason, "Attached");
          assert.ok(hasInterfaces(await networkStatus(rig, pod), ["net1"]));
          assert.ok(Date.parse(ok!.lastTransitionTime!) >= Date.parse(missing.lastTransitionTime!));
          // Nothing changes: resyncs every 2 s write nothing more.
          const rv = (await getPod(rig, pod)).metadata.resourceVersion;
          await sleep(5_000);
          assert.equal((await getPod(rig, pod)).metadata.resourceVersion, rv, "no write on resync");
          await rig.deletePod(pod);
        },
      );

      await t.step("a readiness-gated pod turns Ready only after its hot-plug", async () => {
        // The annotation is written while the pod is Pending (its sandbox runs, an init
        // container waits), so that the interface can only come from a hot-plug once it runs.
        const pod = await rig.createPod({
          name: "gated",
          namespace: NS,
          pending: true,
          readinessGates: [NETWORKS_READY_CONDITION],
        });
        await setNetworks(rig, pod, [{ name: "gate-green", interface: "net1" }]);
        await rig.releasePending(pod);
        await waitCondition(rig, pod, "NetworkNotFound", (c) => c.status === "False");
        await sleep(2_000);
        const before = await ready(rig, pod);
        assert.equal(before?.status, "False", "not Ready while its network is missing");
        assert.equal((await getPod(rig, pod)).status?.phase, "Running");
        await rig.createNad(NS, "gate-green", rig.macvlanConfig("10.83.3.0/24"));
        const readyAt = await waitFor(
          "the pod to be Ready",
          async () => {
            const r = await ready(rig, pod);
            return r?.status === "True" ? r : undefined;
          },
          30_000,
          50,
        );
        assert.ok(readyAt);
        // By the time it is Ready, the interface is there and recorded.
        assert.ok(hasInterfaces(await networkStatus(rig, pod), ["net1"]));
        const links = await rig.netnsInterfaces(pod);
        assert.ok(links.some((l) => l.name === "net1"), "net1 is in the pod's namespace");
        // A hot-unplug to a missing network takes readiness away again.
        await setNetworks(rig, pod, [{ name: "gate-missing", interface: "net2" }]);
        await waitFor("the pod to be unready again", async () => {
          const r = await ready(rig, pod);
          return r?.status === "False" ? r : undefined;
        }, 30_000);
        await rig.deletePod(pod);
      });

      await t.step("the kubelet's status writes and its restart never erase it", async () => {
        // Ready flips every second: the kubelet writes the pod's status each time.
        const pod = await rig.createPod({
          name: "flipper",
          namespace: NS,
          networks: [{ name: "blue", interface: "net1" }],
          ...FLAPPING_READINESS,
        });
        const first = await waitCondition(rig, pod, "True", (c) => c.status === "True");
        let flips = 0;
        let lastReady: string | undefined;
        const deadline = Date.now() + 8_000;
        while (Date.now() < deadline) {
          const all = await podConditions(rig, pod);
          const mine = all.find((c) => c.type === NETWORKS_READY_CONDITION);
          assert.deepEqual(mine, first, "the condition is as the agent wrote it");
          const r = all.find((c) => c.type === "Ready")?.status;
          if (lastReady !== undefined && r !== lastReady) flips++;
          lastReady = r;
          await sleep(100);
        }
        assert.ok(flips >= 3, `the kubelet flipped Ready only ${flips} times`);
        await ctl!.stop();
        ctl = undefined;
        await rig.restartKubelet();
        await sleep(3_000);
        assert.deepEqual(
          await networksReadyCondition(rig, pod),
          first,
          "kept across a kubelet restart",
        );
        console.log(
          `the condition outlived ${flips} Ready flips written by the kubelet and its restart`,
        );
        await rig.deletePod(pod);
      });
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
