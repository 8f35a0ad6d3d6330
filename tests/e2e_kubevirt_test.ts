/**
 * KubeVirt's contract, on the node rig: a pod driven the way KubeVirt's virt-controller drives a
 * virt-launcher pod when a VM's secondary interface is hot-plugged and hot-unplugged.
 *
 * What virt-controller does, and so what this test does:
 * - the virt-launcher pod starts with the cluster network only (no networks annotation);
 * - the pod interface of a secondary network is named `pod` + the first 11 hex digits of the
 *   SHA-256 of the VM's *network* name (the logical name in the VM spec, not the NAD's);
 * - once the pod is Ready, it writes the networks annotation with a JSON patch (`add`), a JSON
 *   list of one element per secondary network, in the VM spec's order, each exactly
 *   `{"name":<nad>,"namespace":<ns>,"mac":<mac>,"interface":<pod…>}` (`mac` only when the VM
 *   interface asks for one); a second hot-plug keeps the elements already there and appends;
 * - an unplug writes the list without the element; when no secondary network remains, the
 *   annotation is written as the empty string (not removed);
 * - it reads the outcome from network-status, matching entries by interface name.
 *
 * Checked each time: the interface of that name and MAC in the pod's netns, its network-status
 * entry, the agent's `NetworksReady` condition, the `AddedInterface` / `RemovedInterface` Events,
 * host-local's allocation made and released, and the host side of the bridge veth created and
 * gone.
 */
import assert from "node:assert/strict";
import { NETWORKS_READY_CONDITION } from "../lib/core/networks_condition.ts";
import { NETWORKS_ANNOTATION, Rig, type RigPod, run, waitFor } from "./rig/mod.ts";
import {
  bridgePorts,
  ControllerProcess,
  eventsFor,
  getPod,
  hasInterfaces,
  interfacesByName,
  ipamAllocations,
  networksReadyCondition,
  networkStatus,
  networkStatusText,
  type PodCondition,
  podConditions,
  rigTest,
  type StatusEntry,
  statusEntry,
  waitForEvent,
  waitForInterfaces,
  waitForStatus,
} from "./support/mod.ts";

/** The VM's namespace. */
const NS = "kubevirt-vms";
/** A virt-launcher pod's name: `virt-launcher-<vmi>-<5 random characters>`. */
const POD = "virt-launcher-testvm-x7k2q";
/** virt-controller writes this annotation in the same patch as the networks annotation. */
const EVICT_ONLY_ANNOTATION = "descheduler.alpha.kubernetes.io/request-evict-only";

/** The length of the hash part of a KubeVirt pod interface name. */
const HASH_DIGITS = 11;

/**
 * The pod interface name KubeVirt gives a VM's secondary network: `pod` followed by the first
 * 11 hex digits of the SHA-256 of the VM network's name (UTF-8).
 */
async function kubevirtPodInterfaceName(vmNetworkName: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(vmNetworkName),
  );
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  return `pod${hex.slice(0, HASH_DIGITS)}`;
}

Deno.test("kubevirt: pod interface names are pod + 11 hex digits of SHA-256(network name)", async () => {
  // Names and results KubeVirt's own unit tests pin.
  assert.equal(await kubevirtPodInterfaceName("network1"), "poda7662f44d65");
  assert.equal(await kubevirtPodInterfaceName("network2"), "pod27f4a77f94e");
  assert.equal(await kubevirtPodInterfaceName("red"), "podb1f51a511f1");
  assert.equal(await kubevirtPodInterfaceName("green"), "podba4788b226a");
  // 14 characters: room for KubeVirt's own `-nic` suffix within the kernel's 15.
  assert.equal((await kubevirtPodInterfaceName("any")).length, 14);
});

/** One of the VM's secondary networks, backed by a bridge NAD with host-local IPAM. */
interface VmNetwork {
  /** The network's name in the VM spec: the pod interface name is derived from it. */
  vmName: string;
  /** The NetworkAttachmentDefinition it uses. */
  nad: string;
  /** The CNI config `name`: host-local's directory. */
  ipamNetwork: string;
  subnetPrefix: string;
  /** The MAC the VM interface asks for. */
  mac: string;
  /** Filled in once derived. */
  podIface: string;
  /** The host bridge, owned by the rig run. */
  bridge: string;
}

/** A network selection element exactly as virt-controller marshals it (field order included). */
function kubevirtElement(net: VmNetwork): Record<string, string> {
  return { name: net.nad, namespace: NS, mac: net.mac, interface: net.podIface };
}

/** `"<ns>/<nad>"`, as network-status names the attachment. */
function statusName(net: VmNetwork): string {
  return `${NS}/${net.nad}`;
}

function escapeJsonPointer(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * virt-controller's write of the pod's annotations: a JSON patch with one `add` per annotation
 * whose value differs from the pod's.
 */
async function syncPodAnnotations(
  rig: Rig,
  pod: RigPod,
  annotations: Record<string, string>,
): Promise<void> {
  const current = (await getPod(rig, pod)).metadata.annotations ?? {};
  const ops = Object.entries(annotations).filter(([key, value]) => current[key] !== value).map((
    [key, value],
  ) => ({ op: "add", path: `/metadata/annotations/${escapeJsonPointer(key)}`, value }));
  if (ops.length === 0) return;
  await rig.api.request(
    "PATCH",
    `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`,
    ops,
    { contentType: "application/json-patch+json" },
  );
}

/** The networks annotation virt-controller writes for the VM's secondary `networks`. */
function networksAnnotation(networks: readonly VmNetwork[]): string {
  return networks.length === 0 ? "" : JSON.stringify(networks.map(kubevirtElement));
}

/** The agent's condition, once it is True. */
async function waitNetworksReady(rig: Rig, pod: RigPod): Promise<PodCondition> {
  let last: PodCondition | undefined;
  try {
    return await waitFor(`${NETWORKS_READY_CONDITION} True`, async () => {
      last = await networksReadyCondition(rig, pod);
      return last?.status === "True" ? last : undefined;
    }, 30_000);
  } catch (err) {
    throw new Error(`the condition is ${JSON.stringify(last)}`, { cause: err });
  }
}

/** The host end of the veth whose pod end is `iface` in the pod's netns, found on `bridge`. */
async function hostVethOf(
  rig: Rig,
  pod: RigPod,
  iface: string,
  bridge: string,
): Promise<{ name: string; ifindex: number }> {
  const netns = await rig.podNetns(pod);
  const inPod = JSON.parse(
    (await run(["nsenter", `--net=${netns}`, "ip", "-j", "link", "show", "dev", iface])).stdout,
  ) as { link_index?: number; link_type?: string }[];
  const peerIndex = inPod[0]?.link_index;
  assert.ok(peerIndex, `${iface} in the pod has no peer link: ${JSON.stringify(inPod)}`);
  const out = await run(["ip", "-j", "link", "show", "master", bridge]);
  const ports = JSON.parse(out.stdout || "[]") as { ifname: string; ifindex: number }[];
  const port = ports.find((p) => p.ifindex === peerIndex);
  assert.ok(
    port,
    `no port of ${bridge} is the peer (ifindex ${peerIndex}) of ${iface}: ${JSON.stringify(ports)}`,
  );
  return { name: port.ifname, ifindex: port.ifindex };
}

/** True when the host has a link named `name`. */
async function hostLinkExists(name: string): Promise<boolean> {
  return (await run(["ip", "link", "show", "dev", name], { allowFailure: true })).code === 0;
}

/** The AddedInterface Events of the agent on `pod` that name `iface`, counted. */
async function addedCount(rig: Rig, pod: RigPod, iface: string): Promise<number> {
  return (await eventsFor(rig, pod))
    .filter((e) => e.reason === "AddedInterface" && e.message.includes(` ${iface} `))
    .reduce((n, e) => n + (e.count ?? 1), 0);
}

Deno.test({
  name:
    "kubevirt: hot-plug and hot-unplug of a VM's bridge networks, as virt-controller writes them",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      const blue: VmNetwork = {
        vmName: "hotplug-blue",
        nad: "bridge-blue",
        ipamNetwork: "kubevirt-blue",
        subnetPrefix: "10.87.1.",
        mac: "02:00:00:5e:10:01",
        podIface: "",
        bridge: rig.ownLink("kvb"),
      };
      const green: VmNetwork = {
        vmName: "hotplug-green",
        nad: "bridge-green",
        ipamNetwork: "kubevirt-green",
        subnetPrefix: "10.87.2.",
        mac: "02:00:00:5e:20:02",
        podIface: "",
        bridge: rig.ownLink("kvg"),
      };
      for (const net of [blue, green]) {
        net.podIface = await kubevirtPodInterfaceName(net.vmName);
        await rig.createNad(NS, net.nad, {
          cniVersion: "0.3.1",
          name: net.ipamNetwork,
          type: "bridge",
          bridge: net.bridge,
          ipam: rig.hostLocalIpam(`${net.subnetPrefix}0/24`),
        });
      }
      assert.notEqual(blue.podIface, green.podIface);
      ctl = await ControllerProcess.start(rig);

      // A virt-launcher pod of a VM with no secondary network: the cluster network only.
      const pod = await rig.createPod({
        name: POD,
        namespace: NS,
        labels: { "kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": "testvm" },
      });
      assert.equal((await getPod(rig, pod)).metadata.annotations?.[NETWORKS_ANNOTATION], undefined);
      // virt-controller patches the pod's networks only once the pod is Ready.
      await waitFor("the virt-launcher pod to be Ready", async () => {
        const ready = (await podConditions(rig, pod)).find((c) => c.type === "Ready");
        return ready?.status === "True";
      }, 30_000);

      const timings: string[] = [];
      const veths = new Map<VmNetwork, string>();
      const ips = new Map<VmNetwork, string>();

      /** The plugged attachment of `net`: netns, network-status, host-local and bridge. */
      const checkPlugged = async (net: VmNetwork) => {
        const entries = await networkStatus(rig, pod);
        const entry = statusEntry(entries, net.podIface);
        assert.ok(entry, `no network-status entry for ${net.podIface}: ${JSON.stringify(entries)}`);
        assert.equal(entry.name, statusName(net));
        assert.equal(entry.mac, net.mac);
        assert.equal(entry.ips?.length, 1, JSON.stringify(entry));
        const ip = entry.ips![0]!;
        assert.ok(ip.startsWith(net.subnetPrefix), `${ip} is not in ${net.subnetPrefix}0/24`);
        const link = (await interfacesByName(rig, pod)).get(net.podIface);
        assert.ok(link, `${net.podIface} missing in the pod's netns`);
        assert.equal(link.mac, net.mac, `MAC of ${net.podIface} in the netns`);
        assert.deepEqual(link.ipv4, [`${ip}/24`]);
        const held = await ipamAllocations(rig, net.ipamNetwork, pod.sandboxId);
        assert.deepEqual([...held], [[ip, net.podIface]], `host-local ${net.ipamNetwork}`);
        const veth = await hostVethOf(rig, pod, net.podIface, net.bridge);
        assert.deepEqual(await bridgePorts(net.bridge), [veth.name], `ports of ${net.bridge}`);
        return { ip, veth: veth.name };
      };

      /** Writes the annotation virt-controller writes for `networks` and times its effect. */
      const writeNetworks = async (
        networks: readonly VmNetwork[],
        converged: (entries: StatusEntry[]) => boolean,
        label: string,
      ) => {
        const text = networksAnnotation(networks);
        const started = performance.now();
        await syncPodAnnotations(rig, pod, {
          [EVICT_ONLY_ANNOTATION]: "",
          [NETWORKS_ANNOTATION]: text,
        });
        assert.equal((await getPod(rig, pod)).metadata.annotations?.[NETWORKS_ANNOTATION], text);
        await waitForStatus(rig, pod, converged, label);
        const ms = Math.round(performance.now() - started);
        timings.push(`${label} ${ms} ms`);
        return ms;
      };

      await t.step(
        "hot-plug: the element KubeVirt writes gives its interface and MAC",
        async () => {
          await writeNetworks(
            [blue],
            (s) => hasInterfaces(s, [blue.podIface]),
            `plug ${blue.podIface}`,
          );
          // The exact text virt-controller would write.
          assert.equal(
            (await getPod(rig, pod)).metadata.annotations?.[NETWORKS_ANNOTATION],
            `[{"name":"${blue.nad}","namespace":"${NS}","mac":"${blue.mac}","interface":"${blue.podIface}"}]`,
          );
          const { ip, veth } = await checkPlugged(blue);
          ips.set(blue, ip);
          veths.set(blue, veth);
          const condition = await waitNetworksReady(rig, pod);
          assert.equal(condition.reason, "Attached");
          await waitForEvent(rig, pod, {
            reason: "AddedInterface",
            type: "Normal",
            includes: [
              `pod [${NS}/${POD}]: added interface ${blue.podIface} to network: ${blue.nad}` +
              `(ips: [], mac: ${blue.mac}, cni-args: <nil>)`,
            ],
          });
          // The cluster network stays as multus made it.
          const status = await networkStatus(rig, pod);
          assert.equal(status.filter((e) => e.default === true).length, 1);
          assert.ok((await interfacesByName(rig, pod)).has("eth0"));
        },
      );

      await t.step("a second hot-plug appends; the first attachment is untouched", async () => {
        const blueBefore = statusEntry(await networkStatus(rig, pod), blue.podIface);
        await writeNetworks(
          [blue, green],
          (s) => hasInterfaces(s, [blue.podIface, green.podIface]),
          `plug ${green.podIface}`,
        );
        const { ip, veth } = await checkPlugged(green);
        ips.set(green, ip);
        veths.set(green, veth);
        // blue: same entry, same address, same host veth, added once only.
        assert.deepEqual(statusEntry(await networkStatus(rig, pod), blue.podIface), blueBefore);
        assert.deepEqual(await checkPlugged(blue), { ip: ips.get(blue), veth: veths.get(blue) });
        assert.equal((await waitNetworksReady(rig, pod)).reason, "Attached");
        await waitForEvent(rig, pod, {
          reason: "AddedInterface",
          type: "Normal",
          includes: [
            `added interface ${green.podIface} to network: ${green.nad}(ips: [], mac: ${green.mac}`,
          ],
        });
        assert.equal(await addedCount(rig, pod, blue.podIface), 1, "blue was added again");
        assert.equal(
          (await eventsFor(rig, pod)).filter((e) => e.type === "Warning").length,
          0,
          "Warning events",
        );
      });

      /** The checks after `net` is unplugged: gone from everywhere, the other kept. */
      const checkUnplugged = async (net: VmNetwork) => {
        await waitForInterfaces(
          rig,
          pod,
          (links) => !links.some((l) => l.name === net.podIface),
          `${net.podIface} to leave the netns`,
        );
        const status = await networkStatus(rig, pod);
        assert.equal(statusEntry(status, net.podIface), undefined);
        assert.ok(!status.some((e) => e.name === statusName(net)), JSON.stringify(status));
        await waitForEvent(rig, pod, {
          reason: "RemovedInterface",
          type: "Normal",
          includes: [
            `pod [${NS}/${POD}]: removed interface ${net.podIface} from network: ${net.nad}`,
          ],
        });
        const condition = await waitNetworksReady(rig, pod);
        assert.equal(condition.reason, "Attached");
        assert.deepEqual(
          [...await ipamAllocations(rig, net.ipamNetwork, pod.sandboxId)],
          [],
          `host-local still holds ${ips.get(net)} for the pod`,
        );
        assert.deepEqual(await rig.hostLocalFiles(net.ipamNetwork), [], "any address left");
        const veth = veths.get(net)!;
        assert.equal(await hostLinkExists(veth), false, `host veth ${veth} is still there`);
        assert.deepEqual(await bridgePorts(net.bridge), [], `ports left on ${net.bridge}`);
      };

      await t.step("hot-unplug: the list without the element", async () => {
        await writeNetworks(
          [green],
          (s) => hasInterfaces(s, [green.podIface]),
          `unplug ${blue.podIface}`,
        );
        await checkUnplugged(blue);
        assert.deepEqual(await checkPlugged(green), { ip: ips.get(green), veth: veths.get(green) });
      });

      await t.step("hot-unplug of the last one: the annotation written empty", async () => {
        await writeNetworks([], (s) => hasInterfaces(s, []), `unplug ${green.podIface}`);
        assert.equal((await getPod(rig, pod)).metadata.annotations?.[NETWORKS_ANNOTATION], "");
        await checkUnplugged(green);
        const links = [...(await interfacesByName(rig, pod)).keys()].sort();
        assert.deepEqual(links, ["eth0", "lo"]);
        const status = JSON.parse((await networkStatusText(rig, pod))!) as unknown[];
        assert.equal(status.length, 1, "only the cluster network is left");
        assert.equal(
          (await eventsFor(rig, pod)).filter((e) => e.type === "Warning").length,
          0,
          "Warning events",
        );
      });

      console.log(
        `kubevirt: ${blue.vmName} → ${blue.podIface} (${blue.mac}), ${green.vmName} → ` +
          `${green.podIface} (${green.mac}) on ${rig.runtime}; ${timings.join(", ")}`,
      );
      await rig.deletePod(pod);
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
