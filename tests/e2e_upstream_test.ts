/**
 * The original controller's seven end-to-end scenarios, on the node rig with the controller
 * running as the product runs it. Namespace `ns1`, NADs `tenant-network` (macvlan, bridge mode,
 * no IPAM) and `tenant-network-ipam` (macvlan + static IPAM + tuning, `ips` and `mac`
 * capabilities), as upstream. Annotation edits are full-object updates, as upstream's.
 *
 * Each scenario checks network-status and the real links in the pod's network namespace.
 * Scenario 5 removes the attachment it means to remove (`tenant-network-ipam`) and waits for
 * the hot-plug to finish first. Scenario 7 expects elements without interface names to work.
 */
import assert from "node:assert/strict";
import { Rig, type RigPod } from "./rig/mod.ts";
import {
  assertAttachments,
  ControllerProcess,
  hasInterfaces,
  interfacesByName,
  macvlanConfig,
  macvlanIpamConfig,
  metricValue,
  networkStatus,
  randomMac,
  rigTest,
  setNetworks,
  statusEntry,
  waitForEvent,
  waitForInterfaces,
  waitForStatus,
} from "./support/mod.ts";

const NS = "ns1";
const NET = "tenant-network";
const NET_IPAM = "tenant-network-ipam";

Deno.test({
  name: "e2e (upstream scenarios): hot-plug and hot-unplug on a running pod",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(NS, NET, macvlanConfig(rig, NET));
      await rig.createNad(NS, NET_IPAM, macvlanIpamConfig(rig, NET_IPAM));
      ctl = await ControllerProcess.start(rig);

      /** A running pod with `tenant-network@net1`, cold-plugged by multus. */
      const podWithNet1 = async (name: string): Promise<{ pod: RigPod; net1Mac: string }> => {
        const pod = await rig.createPod({
          name,
          namespace: NS,
          networks: [{ name: NET, interface: "net1" }],
        });
        const macs = await assertAttachments(rig, pod, [{
          network: `${NS}/${NET}`,
          interface: "net1",
        }]);
        return { pod, net1Mac: macs.get("net1")! };
      };

      await t.step("1: adds a new interface to a running pod", async () => {
        const { pod, net1Mac } = await podWithNet1("add-iface");
        const before = await networkStatus(rig, pod);
        await setNetworks(rig, pod, [
          { name: NET, interface: "net1" },
          { name: NET, interface: "ens58" },
        ]);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net1", "ens58"]));
        const macs = await assertAttachments(rig, pod, [
          { network: `${NS}/${NET}`, interface: "net1", mac: net1Mac },
          { network: `${NS}/${NET}`, interface: "ens58" },
        ], entries);
        assert.notEqual(macs.get("ens58"), net1Mac);
        // The entries already there are kept as they were, in order; the new one follows.
        assert.deepEqual(entries.slice(0, before.length), before);
        assert.equal(entries.length, before.length + 1);
        await waitForEvent(rig, pod, {
          reason: "AddedInterface",
          type: "Normal",
          includes: [`pod [${NS}/add-iface]: added interface ens58 to network: ${NET}`],
        });
      });

      await t.step("2: removes an interface from a running pod", async () => {
        const { pod } = await podWithNet1("remove-iface");
        await setNetworks(rig, pod, []);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, []));
        await assertAttachments(rig, pod, [], entries);
        const links = await interfacesByName(rig, pod);
        assert.ok(!links.has("net1"), "net1 still in the pod's netns");
        assert.ok(links.has("eth0"), "the cluster network interface must stay");
        await waitForEvent(rig, pod, {
          reason: "RemovedInterface",
          type: "Normal",
          includes: [`pod [${NS}/remove-iface]: removed interface net1 from network: ${NET}`],
        });
      });

      await t.step("3: adds and removes interfaces in the same edit", async () => {
        const { pod } = await podWithNet1("add-remove");
        await setNetworks(rig, pod, [{ name: NET, interface: "eth321" }]);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["eth321"]));
        await assertAttachments(
          rig,
          pod,
          [{ network: `${NS}/${NET}`, interface: "eth321" }],
          entries,
        );
        assert.ok(!(await interfacesByName(rig, pod)).has("net1"), "net1 still in the netns");
      });

      await t.step("4 and 5: a network with IPAM is hot-plugged, then hot-unplugged", async (t) => {
        const { pod, net1Mac } = await podWithNet1("ipam");
        const mac = randomMac();
        await t.step("4: can be hot-plugged into a running pod", async () => {
          await setNetworks(rig, pod, [
            { name: NET, interface: "net1" },
            { name: NET_IPAM, interface: "ens202", ips: ["10.10.10.111/24"], mac },
          ]);
          const entries = await waitForStatus(
            rig,
            pod,
            (s) => hasInterfaces(s, ["net1", "ens202"]),
          );
          const entry = statusEntry(entries, "ens202")!;
          assert.equal(entry.name, `${NS}/${NET_IPAM}`);
          assert.deepEqual(entry.ips, ["10.10.10.111"]);
          assert.equal(entry.mac, mac);
          await assertAttachments(rig, pod, [
            { network: `${NS}/${NET}`, interface: "net1", mac: net1Mac },
            { network: `${NS}/${NET_IPAM}`, interface: "ens202", ipv4: ["10.10.10.111/24"], mac },
          ], entries);
          await waitForEvent(rig, pod, {
            reason: "AddedInterface",
            includes: [
              `added interface ens202 to network: ${NET_IPAM}(ips: [10.10.10.111/24], mac: ${mac}, cni-args: <nil>)`,
            ],
          });
        });
        await t.step("5: can be hot-unplugged from a running pod", async () => {
          // Hot-plug done (step 4 saw it in status and netns); now remove that very attachment.
          await setNetworks(rig, pod, [{ name: NET, interface: "net1" }]);
          const entries = await waitForStatus(
            rig,
            pod,
            (s) => statusEntry(s, "ens202") === undefined,
          );
          await assertAttachments(rig, pod, [
            { network: `${NS}/${NET}`, interface: "net1", mac: net1Mac },
          ], entries);
          await waitForInterfaces(rig, pod, (links) => !links.some((l) => l.name === "ens202"));
          const stray = (await rig.netnsInterfaces(pod)).filter((l) =>
            l.ipv4.includes("10.10.10.111/24")
          );
          assert.deepEqual(stray, [], "the hot-unplugged address is still in the netns");
          await waitForEvent(rig, pod, {
            reason: "RemovedInterface",
            includes: [`removed interface ens202 from network: ${NET_IPAM}`],
          });
        });
      });

      await t.step("6: adds an interface to a pod created without networks", async () => {
        const pod = await rig.createPod({ name: "no-networks", namespace: NS });
        await assertAttachments(rig, pod, []);
        const mac = randomMac();
        await setNetworks(rig, pod, [{ name: NET, interface: "ens58", mac }]);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["ens58"]));
        assert.equal(statusEntry(entries, "ens58")!.mac, mac);
        await assertAttachments(
          rig,
          pod,
          [{ network: `${NS}/${NET}`, interface: "ens58", mac }],
          entries,
        );
      });

      await t.step("7: elements without interface names work", async () => {
        // multus names the unnamed element's interface net1 at pod creation.
        const pod = await rig.createPod({
          name: "unnamed",
          namespace: NS,
          networks: [{ name: NET }],
        });
        const before = await assertAttachments(rig, pod, [{
          network: `${NS}/${NET}`,
          interface: "net1",
        }]);
        const mac = randomMac();
        await setNetworks(rig, pod, [{ name: NET }, { name: NET, interface: "ens58", mac }]);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net1", "ens58"]));
        await assertAttachments(rig, pod, [
          { network: `${NS}/${NET}`, interface: "net1", mac: before.get("net1")! },
          { network: `${NS}/${NET}`, interface: "ens58", mac },
        ], entries);
        // net1 was kept, not re-plugged: no removal was reported for it.
        const removed = (await rig.api.request<{ items: { reason: string; message: string }[] }>(
          "GET",
          `/api/v1/namespaces/${NS}/events`,
          undefined,
          { query: { fieldSelector: `involvedObject.uid=${pod.uid}` } },
        )).items.filter((e) => e.reason === "RemovedInterface");
        assert.deepEqual(removed, []);
      });

      await t.step("metrics count exactly the operations the scenarios asked for", async () => {
        const { status, body } = await ctl!.get("/metrics");
        assert.equal(status, 200);
        const ops = (operation: string, result: string) =>
          metricValue(body, "dynamic_networks_attachment_operations_total", { operation, result });
        // Adds: 1, 3, 4, 6, 7; removes: 2, 3, 5. Nothing re-plugged, nothing failed.
        assert.equal(ops("add", "success"), 5);
        assert.equal(ops("remove", "success"), 3);
        assert.equal(ops("add", "error"), 0);
        assert.equal(ops("remove", "error"), 0);
        const latency = (operation: string) =>
          metricValue(body, "dynamic_networks_hotplug_latency_seconds_count", { operation });
        assert.equal(latency("add"), 5);
        assert.equal(latency("remove"), 3);
      });
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
