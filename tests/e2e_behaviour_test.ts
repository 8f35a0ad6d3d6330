/**
 * End-to-end behaviour beyond the original's scenarios, on the node rig with the controller
 * running as the product runs it: an interface name moving to another network, changed
 * `ips`/`mac`, elements without interface names, an edit while the pod is Pending, an edit while
 * the controller is down, a NAD that appears after a pod asked for it, a host-network pod, and
 * a burst over many pods. Each checks network-status and the real links in the pod's netns.
 */
import assert from "node:assert/strict";
import { Rig, type RigPod, run } from "./rig/mod.ts";
import {
  annotateNetworks,
  assertAttachments,
  ControllerProcess,
  hasInterfaces,
  interfacesByName,
  macvlanConfig,
  macvlanIpamConfig,
  macvlanStaticConfig,
  networkStatus,
  networkStatusText,
  poll,
  randomMac,
  rigTest,
  setNetworks,
  statusEntry,
  waitForEvent,
  waitForLog,
  waitForStatus,
} from "./support/mod.ts";

const NS = "behaviour";
const NET = "tenant-network";
const NET_IPAM = "tenant-network-ipam";

Deno.test({
  name: "e2e (behaviour): swaps, changes, unnamed elements, Pending pods, restarts, bursts",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(NS, NET, macvlanConfig(rig, NET));
      await rig.createNad(NS, NET_IPAM, macvlanIpamConfig(rig, NET_IPAM));
      await rig.createNad(NS, "swap-a", macvlanStaticConfig(rig, "swap-a", ["10.20.1.1/24"]));
      await rig.createNad(NS, "swap-b", macvlanStaticConfig(rig, "swap-b", ["10.20.2.1/24"]));
      ctl = await ControllerProcess.start(rig);
      const net = `${NS}/${NET}`;
      const netIpam = `${NS}/${NET_IPAM}`;

      await t.step("an interface name moves to another network", async () => {
        const pod = await rig.createPod({
          name: "swap",
          namespace: NS,
          networks: [{ name: "swap-a", interface: "net1" }],
        });
        await assertAttachments(rig, pod, [
          { network: `${NS}/swap-a`, interface: "net1", ipv4: ["10.20.1.1/24"] },
        ]);
        await setNetworks(rig, pod, [{ name: "swap-b", interface: "net1" }]);
        const entries = await waitForStatus(
          rig,
          pod,
          (s) => statusEntry(s, "net1")?.name === `${NS}/swap-b`,
        );
        // The interface exists and is swap-b's: it holds swap-b's address and not swap-a's.
        await assertAttachments(rig, pod, [
          { network: `${NS}/swap-b`, interface: "net1", ipv4: ["10.20.2.1/24"] },
        ], entries);
        await waitForEvent(rig, pod, {
          reason: "RemovedInterface",
          includes: ["removed interface net1 from network: swap-a"],
        });
        // Remove first, then add (the original added first and failed: #297).
        const order = ctl!.records().filter((r) =>
          r.pod === `${NS}/swap` && (r.msg === "removed interface" || r.msg === "added interface")
        ).map((r) => `${r.msg} ${r.network}`);
        assert.deepEqual(order, [
          `removed interface ${NS}/swap-a`,
          `added interface ${NS}/swap-b`,
        ]);
        await waitForEvent(rig, pod, {
          reason: "AddedInterface",
          includes: ["added interface net1 to network: swap-b"],
        });
      });

      await t.step("changed ips and mac re-plug the attachment", async () => {
        const mac1 = randomMac();
        const pod = await rig.createPod({
          name: "change",
          namespace: NS,
          networks: [{ name: NET_IPAM, interface: "net1", ips: ["10.10.10.11/24"], mac: mac1 }],
        });
        await assertAttachments(rig, pod, [
          { network: netIpam, interface: "net1", ipv4: ["10.10.10.11/24"], mac: mac1 },
        ]);
        const mac2 = randomMac();
        await setNetworks(rig, pod, [
          { name: NET_IPAM, interface: "net1", ips: ["10.10.10.12/24"], mac: mac2 },
        ]);
        const entries = await waitForStatus(rig, pod, (s) => statusEntry(s, "net1")?.mac === mac2);
        await assertAttachments(rig, pod, [
          { network: netIpam, interface: "net1", ipv4: ["10.10.10.12/24"], mac: mac2 },
        ], entries);

        // Only the address changes now; the MAC stays as asked.
        await setNetworks(rig, pod, [
          { name: NET_IPAM, interface: "net1", ips: ["10.10.10.13/24"], mac: mac2 },
        ]);
        const again = await waitForStatus(
          rig,
          pod,
          (s) => statusEntry(s, "net1")?.ips?.[0] === "10.10.10.13",
        );
        await assertAttachments(rig, pod, [
          { network: netIpam, interface: "net1", ipv4: ["10.10.10.13/24"], mac: mac2 },
        ], again);
      });

      await t.step("elements without interface names take the lowest free netN", async () => {
        const pod = await rig.createPod({
          name: "unnamed",
          namespace: NS,
          networks: [{ name: NET, interface: "net2" }],
        });
        const initial = await assertAttachments(rig, pod, [{ network: net, interface: "net2" }]);
        // net1 is free: the first unnamed element gets it.
        await setNetworks(rig, pod, [
          { name: NET, interface: "net2" },
          { name: NET_IPAM, ips: ["10.10.20.1/24"] },
        ]);
        const first = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net1", "net2"]));
        const macs = await assertAttachments(rig, pod, [
          { network: net, interface: "net2", mac: initial.get("net2")! },
          { network: netIpam, interface: "net1", ipv4: ["10.10.20.1/24"] },
        ], first);
        // net1 and net2 are taken: the next one is net3; the first keeps net1 untouched.
        await setNetworks(rig, pod, [
          { name: NET, interface: "net2" },
          { name: NET_IPAM, ips: ["10.10.20.1/24"] },
          { name: NET_IPAM, ips: ["10.10.20.2/24"] },
        ]);
        const second = await waitForStatus(
          rig,
          pod,
          (s) => hasInterfaces(s, ["net1", "net2", "net3"]),
        );
        await assertAttachments(rig, pod, [
          { network: net, interface: "net2", mac: initial.get("net2")! },
          { network: netIpam, interface: "net1", ipv4: ["10.10.20.1/24"], mac: macs.get("net1")! },
          { network: netIpam, interface: "net3", ipv4: ["10.10.20.2/24"] },
        ], second);
      });

      await t.step("the short form written with kubectl annotate", async () => {
        const pod = await rig.createPod({
          name: "short-form",
          namespace: NS,
          networks: `${NET}@net1`,
        });
        const initial = await assertAttachments(rig, pod, [{ network: net, interface: "net1" }]);
        await annotateNetworks(rig, pod, `${NET}@net1, ${NS}/${NET}@ens61`);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net1", "ens61"]));
        await assertAttachments(rig, pod, [
          { network: net, interface: "net1", mac: initial.get("net1")! },
          { network: net, interface: "ens61" },
        ], entries);
      });

      await t.step("removing the annotation removes every attachment", async () => {
        const pod = await rig.createPod({
          name: "annotation-removed",
          namespace: NS,
          networks: [
            { name: NET, interface: "net1" },
            { name: NET_IPAM, interface: "net2", ips: ["10.10.40.1/24"] },
          ],
        });
        await assertAttachments(rig, pod, [
          { network: net, interface: "net1" },
          { network: netIpam, interface: "net2", ipv4: ["10.10.40.1/24"] },
        ]);
        await setNetworks(rig, pod, undefined);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, []));
        await assertAttachments(rig, pod, [], entries);
        const left = [...(await interfacesByName(rig, pod)).keys()].sort();
        assert.deepEqual(left, ["eth0", "lo"]);
      });

      await t.step("rapid edits end in the last one, with no stray interface", async () => {
        const pod = await rig.createPod({
          name: "rapid",
          namespace: NS,
          networks: [{ name: NET, interface: "net1" }],
        });
        await assertAttachments(rig, pod, [{ network: net, interface: "net1" }]);
        const edits = [
          [{ name: NET, interface: "net1" }, { name: NET, interface: "ens71" }],
          [{ name: NET, interface: "net1" }, { name: NET, interface: "ens72" }],
          [{ name: NET_IPAM, interface: "ens73", ips: ["10.10.50.3/24"] }],
          [
            { name: NET, interface: "net1" },
            { name: NET_IPAM, interface: "ens74", ips: ["10.10.50.4/24"] },
            { name: NET, interface: "ens75" },
          ],
        ];
        // One after another, without waiting for the controller in between.
        for (const edit of edits) await setNetworks(rig, pod, edit);
        const entries = await waitForStatus(
          rig,
          pod,
          (s) => hasInterfaces(s, ["net1", "ens74", "ens75"]),
        );
        await assertAttachments(rig, pod, [
          { network: net, interface: "net1" },
          { network: netIpam, interface: "ens74", ipv4: ["10.10.50.4/24"] },
          { network: net, interface: "ens75" },
        ], entries);
        const names = [...(await interfacesByName(rig, pod)).keys()].sort();
        assert.deepEqual(names, ["ens74", "ens75", "eth0", "lo", "net1"]);
      });

      await t.step("an edit while the pod is Pending is applied once it runs", async () => {
        // Its init container waits: the sandbox runs with net1 cold-plugged, phase Pending.
        const pod = await rig.createPod({
          name: "pending",
          namespace: NS,
          networks: [{ name: NET, interface: "net1" }],
          pending: true,
        });
        const initial = await assertAttachments(rig, pod, [{ network: net, interface: "net1" }]);
        const waiting = () =>
          ctl!.records().filter((r) =>
            r.pod === `${NS}/pending` && r.msg === "pod not running yet; waiting"
          ).length;
        const seenBefore = waiting();
        await setNetworks(rig, pod, [
          { name: NET, interface: "net1" },
          { name: NET, interface: "ens58" },
        ]);
        // The controller saw the edit and waits for the pod to run; nothing was done yet.
        await poll(
          "the controller to see the edit of the Pending pod",
          () => Promise.resolve(waiting() > seenBefore),
        );
        await assertAttachments(rig, pod, [{ network: net, interface: "net1" }]);
        await rig.releasePending(pod);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net1", "ens58"]));
        await assertAttachments(rig, pod, [
          { network: net, interface: "net1", mac: initial.get("net1")! },
          { network: net, interface: "ens58" },
        ], entries);
      });

      await t.step("an edit while the controller is down is applied after its start", async () => {
        const pod = await rig.createPod({
          name: "offline-edit",
          namespace: NS,
          networks: [{ name: NET, interface: "net1" }],
        });
        await assertAttachments(rig, pod, [{ network: net, interface: "net1" }]);
        assert.equal(await ctl!.stop(), 0, "the controller should stop cleanly on SIGTERM");
        ctl = undefined;
        await setNetworks(rig, pod, [{
          name: NET_IPAM,
          interface: "ens59",
          ips: ["10.10.30.1/24"],
        }]);
        ctl = await ControllerProcess.start(rig);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["ens59"]));
        await assertAttachments(rig, pod, [
          { network: netIpam, interface: "ens59", ipv4: ["10.10.30.1/24"] },
        ], entries);
        assert.ok(!(await interfacesByName(rig, pod)).has("net1"), "net1 still in the netns");
      });

      await t.step("a NAD created after the pod asked for it is applied", async () => {
        // Retries wait minutes here: only the NAD's appearance can bring the pod back in time.
        await ctl!.stop();
        ctl = undefined;
        ctl = await ControllerProcess.start(rig, {
          args: ["--retry-base-delay-ms=120000", "--retry-max-delay-ms=300000"],
        });
        const pod = await rig.createPod({
          name: "late-nad",
          namespace: NS,
          networks: [{ name: NET, interface: "net1" }],
        });
        const initial = await assertAttachments(rig, pod, [{ network: net, interface: "net1" }]);
        await setNetworks(rig, pod, [
          { name: NET, interface: "net1" },
          { name: "late-net", interface: "ens60" },
        ]);
        await waitForEvent(rig, pod, {
          reason: "FailedAddingInterface",
          type: "Warning",
          includes: ["ens60", "late-net", "not found"],
        });
        await assertAttachments(rig, pod, [
          { network: net, interface: "net1", mac: initial.get("net1")! },
        ]);
        const pid = ctl!.pid;
        await rig.createNad(NS, "late-net", macvlanStaticConfig(rig, "late-net", ["10.20.3.1/24"]));
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net1", "ens60"]));
        await assertAttachments(rig, pod, [
          { network: net, interface: "net1", mac: initial.get("net1")! },
          { network: `${NS}/late-net`, interface: "ens60", ipv4: ["10.20.3.1/24"] },
        ], entries);
        assert.equal(ctl!.pid, pid, "applied by the same controller process");
        await ctl!.stop();
        ctl = undefined;
        ctl = await ControllerProcess.start(rig);
      });

      await t.step("a host-network pod gets an event and nothing else", async () => {
        const pod = await rig.createPod({ name: "host-net", namespace: NS, hostNetwork: true });
        const before = await networkStatusText(rig, pod);
        const ifname = `hn${rig.id}`;
        await setNetworks(rig, pod, [{ name: NET, interface: ifname }]);
        await waitForEvent(rig, pod, {
          reason: "InterfaceAddRejected",
          type: "Warning",
          includes: [`pod [${NS}/host-net]: will not add interface to host networked pod`],
        });
        await waitForLog(ctl!, pod, { level: "warn", includes: ["host-network"] });
        assert.equal(await networkStatusText(rig, pod), before, "network-status changed");
        const link = await run(["ip", "link", "show", ifname], { allowFailure: true });
        assert.notEqual(link.code, 0, `${ifname} appeared in the host's network namespace`);
        const added = ctl!.records().filter((r) =>
          r.pod === `${NS}/host-net` && r.msg === "added interface"
        );
        assert.deepEqual(added, []);
      });

      await t.step("a burst over 22 pods converges", async () => {
        const count = 22;
        const pods: RigPod[] = [];
        // Start them a few at a time, each with one cold-plugged attachment.
        for (let i = 0; i < count; i += 6) {
          const batch = [];
          for (let j = i; j < Math.min(count, i + 6); j++) {
            batch.push(rig.createPod({
              name: `burst-${j}`,
              namespace: NS,
              networks: [{ name: NET, interface: "net1" }],
            }));
          }
          pods.push(...await Promise.all(batch));
        }
        const net1Macs = new Map<string, string>();
        for (const pod of pods) {
          const entries = await networkStatus(rig, pod);
          net1Macs.set(pod.name, statusEntry(entries, "net1")!.mac!);
        }
        const ipOf = (i: number) => `10.40.0.${i + 1}/24`;
        // One burst: every pod gets a second attachment at once.
        const burstStart = performance.now();
        await Promise.all(pods.map((pod, i) =>
          setNetworks(rig, pod, [
            { name: NET, interface: "net1" },
            { name: NET_IPAM, interface: "net2", ips: [ipOf(i)] },
          ])
        ));
        for (const [i, pod] of pods.entries()) {
          const entries = await waitForStatus(
            rig,
            pod,
            (s) => hasInterfaces(s, ["net1", "net2"]),
            "the burst to converge",
            60_000,
          );
          await assertAttachments(rig, pod, [
            { network: net, interface: "net1", mac: net1Macs.get(pod.name)! },
            { network: netIpam, interface: "net2", ipv4: [ipOf(i)] },
          ], entries);
        }
        console.log(
          `burst: ${count} pods converged ${
            Math.round(performance.now() - burstStart)
          } ms after the edits began`,
        );
      });
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
