/**
 * Bad input end to end, on the node rig with the controller running as the product runs it:
 * an annotation that is not JSON, an unknown NAD, an invalid MAC, an invalid IP, two elements
 * asking for one interface name, and ADDs the CNI plugins reject. Each must give a Warning
 * Event naming the problem and a log line, and leave the pod's other attachments, its
 * network-status and its network namespace exactly as they were; other pods are not touched.
 */
import assert from "node:assert/strict";
import { type NetworkSelection, Rig, type RigPod } from "./rig/mod.ts";
import {
  assertAttachments,
  ControllerProcess,
  hasInterfaces,
  macvlanConfig,
  macvlanIpamConfig,
  networkStatusText,
  poll,
  rigTest,
  setNetworks,
  waitForEvent,
  waitForLog,
  waitForStatus,
} from "./support/mod.ts";

const NS = "bad-input";
const NET = "tenant-network";
const NET_IPAM = "tenant-network-ipam";
const BAD_MASTER_NAD = "bad-master";
/** macvlan + host-local, then a tuning step that always fails. */
const BAD_CHAIN_NAD = "bad-chain";
/** A macvlan master that does not exist on the node. */
const MISSING_MASTER = "dncnomaster0";

/** What must not change: the status text and every link with its MAC and addresses. */
interface Snapshot {
  status: string | undefined;
  links: string[];
}

Deno.test({
  name: "e2e (bad input): clear events and log lines, nothing else harmed",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(NS, NET, macvlanConfig(rig, NET));
      await rig.createNad(NS, NET_IPAM, macvlanIpamConfig(rig, NET_IPAM));
      await rig.createNad(NS, BAD_MASTER_NAD, {
        ...macvlanConfig(rig, BAD_MASTER_NAD),
        master: MISSING_MASTER,
      });
      await rig.createNad(NS, BAD_CHAIN_NAD, {
        cniVersion: "0.3.1",
        name: BAD_CHAIN_NAD,
        plugins: [
          {
            type: "macvlan",
            master: rig.macvlanMaster,
            mode: "bridge",
            ipam: {
              type: "host-local",
              dataDir: rig.ipamDataDir,
              ranges: [[{ subnet: "10.61.0.0/24" }]],
            },
          },
          { type: "tuning", sysctl: { "net.ipv4.conf.ens9.dnc_no_such_knob": "1" } },
        ],
      });
      ctl = await ControllerProcess.start(rig);

      const snapshot = async (pod: RigPod): Promise<Snapshot> => ({
        status: await networkStatusText(rig, pod),
        links: (await rig.netnsInterfaces(pod))
          .map((l) => `${l.name} ${l.mac} ${[...l.ipv4].sort().join(",")}`).sort(),
      });

      let next = 0;
      /**
       * A running pod with two healthy attachments (net1: tenant-network, net2:
       * tenant-network-ipam with its own address) and their elements, to keep in every edit.
       */
      const healthyPod = async (name: string) => {
        const ip = `10.60.0.${++next}/24`;
        const kept: NetworkSelection[] = [
          { name: NET, interface: "net1" },
          { name: NET_IPAM, interface: "net2", ips: [ip] },
        ];
        const pod = await rig.createPod({ name, namespace: NS, networks: kept });
        await assertAttachments(rig, pod, [
          { network: `${NS}/${NET}`, interface: "net1" },
          { network: `${NS}/${NET_IPAM}`, interface: "net2", ipv4: [ip] },
        ]);
        const made = { pod, kept, ip, before: await snapshot(pod) };
        checked.push(made);
        return made;
      };
      /** Every pod given bad input, checked once more with the controller stopped. */
      const checked: { pod: RigPod; ip: string; before: Snapshot }[] = [];

      // A pod given no bad input at all: it must not be touched either.
      await healthyPod("bystander");

      /**
       * Asserts the pod is exactly as it was: status text and netns links. While the controller
       * runs, retries of a failing ADD may be under way, so the links are polled until they
       * match; `quiet` (the controller stopped) checks them once.
       */
      const assertIntact = async (pod: RigPod, before: Snapshot, ip: string, quiet = false) => {
        const after = await snapshot(pod);
        assert.equal(after.status, before.status, "network-status changed");
        if (quiet) assert.deepEqual(after.links, before.links, "the pod's netns changed");
        let links = after.links;
        await poll("the pod's netns to be as before", async () => {
          links = (await snapshot(pod)).links;
          return JSON.stringify(links) === JSON.stringify(before.links);
        }, { describe: () => links });
        await assertAttachments(rig, pod, [
          { network: `${NS}/${NET}`, interface: "net1" },
          { network: `${NS}/${NET_IPAM}`, interface: "net2", ipv4: [ip] },
        ]);
      };

      await t.step("an annotation that is not JSON", async () => {
        const { pod, ip, before } = await healthyPod("not-json");
        await setNetworks(rig, pod, `[{"name": "${NET}", "interface": "net1"},`);
        await waitForEvent(rig, pod, {
          reason: "InvalidNetworkSelection",
          type: "Warning",
          includes: ["k8s.v1.cni.cncf.io/networks", "not valid JSON", "nothing was changed"],
        });
        await waitForLog(ctl!, pod, { level: "warn", includes: ["not valid JSON"] });
        await assertIntact(pod, before, ip);
      });

      await t.step("an unknown NetworkAttachmentDefinition", async () => {
        const { pod, kept, ip, before } = await healthyPod("unknown-nad");
        await setNetworks(rig, pod, [...kept, { name: "no-such-net", interface: "ens9" }]);
        await waitForEvent(rig, pod, {
          reason: "FailedAddingInterface",
          type: "Warning",
          includes: ["interface ens9", "no-such-net", "not found"],
        });
        await waitForLog(ctl!, pod, {
          level: "warn",
          msg: "adding interface failed",
          includes: ["no-such-net", "not found"],
        });
        await assertIntact(pod, before, ip);
      });

      await t.step("an invalid MAC", async () => {
        const { pod, kept, ip, before } = await healthyPod("bad-mac");
        await setNetworks(rig, pod, [
          ...kept,
          { name: NET, interface: "ens9", mac: "02:00:00:zz:00:01" },
        ]);
        await waitForEvent(rig, pod, {
          reason: "InvalidNetworkSelection",
          type: "Warning",
          includes: ["networks[2].mac", "02:00:00:zz:00:01", "not a MAC address"],
        });
        await waitForLog(ctl!, pod, { level: "warn", includes: ["networks[2].mac"] });
        await assertIntact(pod, before, ip);
      });

      await t.step("an invalid IP", async () => {
        const { pod, kept, ip, before } = await healthyPod("bad-ip");
        await setNetworks(rig, pod, [
          ...kept,
          { name: NET_IPAM, interface: "ens9", ips: ["10.60.0.300/24"] },
        ]);
        await waitForEvent(rig, pod, {
          reason: "InvalidNetworkSelection",
          type: "Warning",
          includes: ["networks[2].ips[0]", "10.60.0.300/24", "not an IP address"],
        });
        await waitForLog(ctl!, pod, { level: "warn", includes: ["networks[2].ips[0]"] });
        await assertIntact(pod, before, ip);
      });

      await t.step("two elements ask for the same interface name", async () => {
        const { pod, kept, ip, before } = await healthyPod("duplicate");
        // net1 is tenant-network's; the newcomer for net1 is refused.
        await setNetworks(rig, pod, [
          ...kept,
          { name: NET_IPAM, interface: "net1", ips: ["10.60.1.1/24"] },
        ]);
        await waitForEvent(rig, pod, {
          reason: "FailedAddingInterface",
          type: "Warning",
          includes: ['networks[2] and networks[0] both ask for interface "net1"'],
        });
        await waitForLog(ctl!, pod, { level: "warn", includes: ["both ask for interface"] });
        await assertIntact(pod, before, ip);
      });

      await t.step("the plugin rejects the ADD: macvlan master missing", async () => {
        const { pod, kept, ip, before } = await healthyPod("plugin-master");
        await setNetworks(rig, pod, [...kept, { name: BAD_MASTER_NAD, interface: "ens9" }]);
        // The plugin's own words reach the event and the log: macvlan cannot find the link.
        await waitForEvent(rig, pod, {
          reason: "FailedAddingInterface",
          type: "Warning",
          includes: [
            `pod [${NS}/plugin-master]: failed adding interface ens9 to network: ${BAD_MASTER_NAD}`,
            "Link not found",
          ],
        });
        await waitForLog(ctl!, pod, {
          level: "warn",
          msg: "adding interface failed",
          includes: ["ens9", "Link not found"],
        });
        await assertIntact(pod, before, ip);
      });

      await t.step("the plugin rejects the ADD: static IPAM without a prefix", async () => {
        const { pod, kept, ip, before } = await healthyPod("plugin-ipam");
        // A bare IP passes the annotation grammar; the static IPAM plugin wants a CIDR. macvlan
        // leaves its link behind when IPAM fails: the controller must clean it up.
        await setNetworks(rig, pod, [
          ...kept,
          { name: NET_IPAM, interface: "ens9", ips: ["10.60.2.1"] },
        ]);
        await waitForEvent(rig, pod, {
          reason: "FailedAddingInterface",
          type: "Warning",
          includes: [
            `failed adding interface ens9 to network: ${NET_IPAM}`,
            "expected to be in CIDR notation",
            "10.60.2.1",
          ],
        });
        await waitForLog(ctl!, pod, {
          level: "warn",
          msg: "adding interface failed",
          includes: ["10.60.2.1"],
        });
        await assertIntact(pod, before, ip);
      });

      await t.step("the chain fails after IPAM allocated: nothing is left behind", async () => {
        const { pod, kept, ip, before } = await healthyPod("plugin-chain");
        // host-local allocates, then tuning fails on a sysctl that does not exist.
        await setNetworks(rig, pod, [...kept, { name: BAD_CHAIN_NAD, interface: "ens9" }]);
        await waitForEvent(rig, pod, {
          reason: "FailedAddingInterface",
          type: "Warning",
          includes: [`failed adding interface ens9 to network: ${BAD_CHAIN_NAD}`, "tuning"],
        });
        await waitForLog(ctl!, pod, {
          level: "warn",
          msg: "adding interface failed",
          includes: [BAD_CHAIN_NAD],
        });
        await assertIntact(pod, before, ip);
        let held: string[] = [];
        await poll("the failed ADD's address to be released", async () => {
          held = await rig.hostLocalFiles(BAD_CHAIN_NAD);
          return held.length === 0;
        }, { describe: () => held });
      });

      await t.step("a fixed annotation is applied after bad input", async () => {
        const { pod, kept, ip } = await healthyPod("recovers");
        await setNetworks(rig, pod, [...kept, { name: "no-such-net", interface: "ens9" }]);
        await waitForEvent(rig, pod, { reason: "FailedAddingInterface", includes: ["ens9"] });
        await setNetworks(rig, pod, [...kept, { name: NET, interface: "ens9" }]);
        const entries = await waitForStatus(
          rig,
          pod,
          (s) => hasInterfaces(s, ["net1", "net2", "ens9"]),
        );
        await assertAttachments(rig, pod, [
          { network: `${NS}/${NET}`, interface: "net1" },
          { network: `${NS}/${NET_IPAM}`, interface: "net2", ipv4: [ip] },
          { network: `${NS}/${NET}`, interface: "ens9" },
        ], entries);
      });

      await t.step("with the controller stopped, nothing was left behind", async () => {
        // A drained stop: no retry runs any more, so what is in the netns now stays.
        assert.equal(await ctl!.stop(), 0);
        ctl = undefined;
        for (const { pod, before, ip } of checked) {
          if (pod.name === "recovers") continue;
          await assertIntact(pod, before, ip, true);
        }
        assert.deepEqual(await rig.hostLocalFiles(BAD_CHAIN_NAD), [], "leaked host-local address");
      });
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
