/**
 * A pod that waits wakes on every change that matters, on the node rig. Retries wait ten
 * minutes here, so only the event itself can bring the pod back while the test watches. Each
 * case starts from a partial pass: one element attached (its status written, whose echo comes
 * back through the watch) and one naming a NAD that does not exist, which the pod waits for.
 *
 * - the missing NAD is created: it is applied by the same process;
 * - the pod is deleted gracefully: its hot-plugged host-local address is released while the
 *   API server still has the pod, with no warning about attachments left behind.
 */
import assert from "node:assert/strict";
import { Rig, type RigPod, sleep, waitFor } from "./rig/mod.ts";
import {
  assertAttachments,
  ControllerProcess,
  getPod,
  hasInterfaces,
  ipamAllocations,
  rigTest,
  setNetworks,
  waitForEvent,
  waitForStatus,
} from "./support/mod.ts";

const NS = "wakeups";
const BLUE = "blue";
const BLUE_IPAM = "wakeups-blue";
const LONG_BACKOFF = ["--retry-base-delay-ms=600000", "--retry-max-delay-ms=600000"];

/** Puts `pod` in a partial state: net1 on blue attached and recorded, net2 on `missing` failed. */
async function partialPass(
  rig: Rig,
  ctl: ControllerProcess,
  pod: RigPod,
  missing: string,
): Promise<void> {
  await setNetworks(rig, pod, [
    { name: BLUE, interface: "net1" },
    { name: missing, interface: "net2" },
  ]);
  await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net1"]));
  await waitForEvent(rig, pod, {
    reason: "FailedAddingInterface",
    includes: ["net2", `${NS}/${missing} not found`],
  });
  const key = `${NS}/${pod.name}`;
  await waitFor(
    "the partial pass to report the missing NAD",
    () =>
      Promise.resolve(
        ctl.records().some((r) => r.pod === key && r.msg === "adding interface failed"),
      ),
    30_000,
  );
  // Time for the echo of the pass's own status write to come back through the watch.
  await sleep(1_500);
}

Deno.test({
  name: "wake-ups: a waiting pod runs at once for a late NAD and for its deletion",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(NS, BLUE, rig.macvlanConfig("10.81.1.0/24", { name: BLUE_IPAM }));
      ctl = await ControllerProcess.start(rig, { args: LONG_BACKOFF });

      await t.step("a NAD created after a partial pass is applied at once", async () => {
        const pod = await rig.createPod({ name: "late", namespace: NS });
        await partialPass(rig, ctl!, pod, "late-red");
        const pid = ctl!.pid;
        await rig.createNad(NS, "late-red", rig.macvlanConfig("10.81.2.0/24"));
        const entries = await waitForStatus(
          rig,
          pod,
          (s) => hasInterfaces(s, ["net1", "net2"]),
          "net2 to be attached once its NAD exists (retries wait 10 minutes)",
        );
        const status = entries.filter((e) => e.default !== true);
        await assertAttachments(rig, pod, [
          { network: `${NS}/${BLUE}`, interface: "net1", ipv4: [`${status[0]!.ips![0]}/24`] },
          { network: `${NS}/late-red`, interface: "net2", ipv4: [`${status[1]!.ips![0]}/24`] },
        ], entries);
        assert.equal(ctl!.pid, pid, "applied by the same agent process");
      });

      await t.step("a pod deleted while it waits releases its addresses", async () => {
        const pod = await rig.createPod({ name: "doomed", namespace: NS });
        await partialPass(rig, ctl!, pod, "never-made");
        assert.equal((await ipamAllocations(rig, BLUE_IPAM, pod.sandboxId)).size, 1);
        // A graceful deletion: the pod stays in the API server with a deletionTimestamp for as
        // long as its grace period lasts.
        await rig.api.request("DELETE", `/api/v1/namespaces/${NS}/pods/${pod.name}`, {
          apiVersion: "v1",
          kind: "DeleteOptions",
          gracePeriodSeconds: 30,
        });
        await waitFor(
          "the hot-plugged address to be released (retries wait 10 minutes)",
          async () => (await ipamAllocations(rig, BLUE_IPAM, pod.sandboxId)).size === 0,
          20_000,
          100,
        );
        const current = await getPod(rig, pod).catch(() => undefined);
        if (current) {
          assert.equal(current.metadata.uid, pod.uid, "released while the pod was still there");
        }
        await rig.deletePod(pod);
        const leaks = ctl!.records().filter((r) =>
          r.pod === `${NS}/${pod.name}` && String(r.msg).includes("left the API server")
        );
        assert.deepEqual(leaks, [], "no attachment was left behind");
      });
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
