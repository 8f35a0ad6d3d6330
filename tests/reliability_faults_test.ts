/**
 * Faults of the parts around the controller, on the rig, with one controller process that is
 * never restarted (except where the scenario needs the controller down):
 *
 * - kube-apiserver stopped and started: the watch breaks; an edit made right after the restart,
 *   before the controller's watch is back, is applied, and so is a later one;
 * - multus stopped (socket gone), an edit made meanwhile, multus started (socket recreated):
 *   the edit is applied without restarting the controller;
 * - the runtime (containerd or CRI-O) stopped, an edit made meanwhile, started: the edit is applied;
 * - a CNI plugin that hangs: the delegate call times out (`--delegate-timeout-ms 2000`) with a
 *   clear event, and another pod's hot-plug completes while the plugin still runs;
 * - a NetworkAttachmentDefinition deleted before an unplug: `FailedRemovingInterface` naming
 *   the missing definition; network-status keeps the entry because the interface is still in
 *   the pod; recreating the definition lets the unplug finish and release the address.
 */
import assert from "node:assert/strict";
import {
  ControllerProcess,
  type DesiredAttachment,
  ipamAllocations,
  podEvents,
  rigTest,
  secondaryLinks,
  secondaryStatus,
  setNetworks,
  waitConverged,
} from "./support/mod.ts";
import { Rig, type RigPod, waitFor } from "./rig/mod.ts";

const NS = "faults";
const BLUE = { network: `${NS}/blue`, ipamNetwork: "faults-blue", ipPrefix: "10.78.1." };
const TEMP = { network: `${NS}/temp`, ipamNetwork: "faults-temp", ipPrefix: "10.78.3." };
const IPAM = [BLUE.ipamNetwork, TEMP.ipamNetwork];
const blue = (iface: string): DesiredAttachment => ({ ...BLUE, iface });

/** A CNI plugin whose ADD records its pid and hangs; other commands succeed at once. */
const HANG_PLUGIN = `#!/bin/sh
case "$CNI_COMMAND" in
  ADD) echo $$ >> "$(dirname "$0")/dnc-hang.pids"; sleep 20
       echo '{"code":11,"msg":"hung"}'; exit 1 ;;
  VERSION) echo '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}' ;;
  *) exit 0 ;;
esac
`;

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves once the controller logged a warning or error about `pod` after line `from`. On
 * timeout the error says whether the controller process is still there, and its last lines.
 */
async function waitTrouble(ctl: ControllerProcess, pod: RigPod, from: number): Promise<void> {
  try {
    await waitFor(
      `the controller to report trouble with ${pod.name}`,
      () =>
        ctl.records().slice(from).some((r) =>
          (r.level === "warn" || r.level === "error") && JSON.stringify(r).includes(pod.name)
        ),
      60_000,
    );
  } catch (err) {
    const ended = await Promise.race([
      ctl.status.then((s) => `exited (code ${s.code}, signal ${s.signal ?? "none"})`),
      new Promise<string>((resolve) => setTimeout(() => resolve("still running"), 100)),
    ]);
    throw new Error(
      `${(err as Error).message}; the controller process is ${ended}; its last lines:\n` +
        ctl.lines.slice(-15).join("\n"),
      { cause: err },
    );
  }
}

Deno.test({
  name: "faults: API server, multus and runtime restarts, a hanging plugin, a deleted NAD",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(
        NS,
        "blue",
        rig.macvlanConfig("10.78.1.0/24", { name: BLUE.ipamNetwork }),
      );
      await rig.createNad(
        NS,
        "temp",
        rig.macvlanConfig("10.78.3.0/24", { name: TEMP.ipamNetwork }),
      );
      await Deno.writeTextFile(`${rig.cniBinDir}/dnc-hang`, HANG_PLUGIN, { mode: 0o755 });
      await rig.createNad(NS, "hang", {
        cniVersion: "0.3.1",
        name: "faults-hang",
        type: "dnc-hang",
      });
      const pods = {
        api: await rig.createPod({ name: "api", namespace: NS }),
        multus: await rig.createPod({ name: "multus", namespace: NS }),
        containerd: await rig.createPod({ name: "containerd", namespace: NS }),
        slow: await rig.createPod({ name: "slow", namespace: NS }),
        fast: await rig.createPod({ name: "fast", namespace: NS }),
        nadless: await rig.createPod({
          name: "nadless",
          namespace: NS,
          networks: [{ name: "temp", interface: "net1" }],
        }),
      };
      ctl = await ControllerProcess.start(rig, { args: ["--delegate-timeout-ms=2000"] });
      const theCtl = ctl;

      await t.step(
        "kube-apiserver restart: edits right after it, and later, are applied",
        async () => {
          await rig.stopPart("kube-apiserver");
          const from = theCtl.lines.length;
          // The controller notices the broken watch (it logs it) before the server returns.
          await waitFor(
            "the controller to log the lost API server",
            () => theCtl.lines.length > from,
            60_000,
          );
          await rig.startPart("kube-apiserver");
          await setNetworks(rig, pods.api, [{ name: "blue", interface: "net1" }]);
          await waitConverged(rig, pods.api, [blue("net1")], IPAM);
          await setNetworks(rig, pods.api, [
            { name: "blue", interface: "net1" },
            { name: "blue", interface: "net2" },
          ]);
          await waitConverged(rig, pods.api, [blue("net1"), blue("net2")], IPAM);
        },
      );

      await t.step(
        "multus down during an edit, then back on a new socket: applied, no restart",
        async () => {
          await rig.stopPart("multus");
          const from = theCtl.records().length;
          await setNetworks(rig, pods.multus, [{ name: "blue", interface: "net1" }]);
          await waitTrouble(theCtl, pods.multus, from);
          await rig.startPart("multus");
          await waitConverged(rig, pods.multus, [blue("net1")], IPAM);
          await setNetworks(rig, pods.multus, []);
          await waitConverged(rig, pods.multus, [], IPAM);
        },
      );

      await t.step("the runtime down during an edit, then back: applied", async () => {
        await rig.stopPart("runtime");
        const from = theCtl.records().length;
        await setNetworks(rig, pods.containerd, [{ name: "blue", interface: "net1" }]);
        await waitTrouble(theCtl, pods.containerd, from);
        await rig.startPart("runtime");
        await waitConverged(rig, pods.containerd, [blue("net1")], IPAM);
      });

      await t.step(
        "a hanging plugin times out with an event; another pod proceeds meanwhile",
        async () => {
          const pidFile = `${rig.cniBinDir}/dnc-hang.pids`;
          await setNetworks(rig, pods.slow, [{ name: "hang", interface: "net1" }]);
          const firstPid = await waitFor("the hanging plugin to start", async () => {
            try {
              return Number((await Deno.readTextFile(pidFile)).split("\n")[0]);
            } catch {
              return undefined;
            }
          }, 60_000);
          await setNetworks(rig, pods.fast, [{ name: "blue", interface: "net1" }]);
          await waitConverged(rig, pods.fast, [blue("net1")], IPAM);
          // The fast pod finished while the first hanging ADD was still running in multus.
          assert.ok(alive(firstPid), "the hanging plugin ended before the other pod converged");
          const timedOut = await waitFor(
            "a FailedAddingInterface event for the slow pod",
            async () =>
              (await podEvents(rig, NS, "slow")).find((e) =>
                e.reason === "FailedAddingInterface" && /timed out after 2000 ms/.test(e.message)
              ),
            60_000,
          );
          assert.equal(timedOut.type, "Warning");
          assert.ok(
            theCtl.records().some((r) =>
              r.level === "warn" && /timed out after 2000 ms/.test(JSON.stringify(r)) &&
              JSON.stringify(r).includes("slow")
            ),
            "no log line for the timeout",
          );
          assert.deepEqual(await secondaryStatus(rig, pods.slow), []);
          assert.equal(alive(firstPid), true, "still hanging, yet the controller kept serving");
          await setNetworks(rig, pods.slow, []);
        },
      );

      await t.step(
        "a NAD deleted before an unplug: clear event, status kept, finished once recreated",
        async () => {
          const pod = pods.nadless;
          await waitConverged(rig, pod, [{ ...TEMP, iface: "net1" }], IPAM);
          // With the controller down, the definition is deleted and the unplug requested: the
          // restarted controller sees both at once.
          await theCtl.stop();
          const nadPath =
            `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions/temp`;
          const nad = await rig.api.request<{ spec: { config: string } }>("GET", nadPath);
          await rig.api.request("DELETE", nadPath);
          await setNetworks(rig, pod, []);
          ctl = await ControllerProcess.start(rig, { args: ["--delegate-timeout-ms=2000"] });
          const failed = await waitFor(
            "a FailedRemovingInterface event",
            async () =>
              (await podEvents(rig, NS, pod.name)).find((e) =>
                e.reason === "FailedRemovingInterface"
              ),
            60_000,
          );
          assert.equal(failed.type, "Warning");
          assert.match(failed.message, /net1/);
          assert.match(failed.message, /faults\/temp not found/);
          assert.ok(
            ctl.records().some((r) =>
              r.msg === "removing interface failed" && r.pod === `${NS}/${pod.name}`
            ),
            "no log line for the failed removal",
          );
          // The interface is still there, so network-status keeps saying so.
          assert.deepEqual(
            (await secondaryStatus(rig, pod)).map((e) => `${e.name}@${e.interface}`),
            [
              "faults/temp@net1",
            ],
          );
          assert.deepEqual((await secondaryLinks(rig, pod)).map((l) => l.name), ["net1"]);
          assert.equal((await ipamAllocations(rig, TEMP.ipamNetwork, pod.sandboxId)).size, 1);
          await rig.createNad(NS, "temp", nad.spec.config);
          await waitConverged(rig, pod, [], IPAM);
        },
      );

      // None of this touched the other pods' attachments.
      await waitConverged(rig, pods.api, [blue("net1"), blue("net2")], IPAM);
      await waitConverged(rig, pods.containerd, [blue("net1")], IPAM);
      await waitConverged(rig, pods.fast, [blue("net1")], IPAM);
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
