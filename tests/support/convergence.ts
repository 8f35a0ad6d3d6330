/**
 * Convergence of a rig pod's attachments, observed from three independent places — the pod's
 * network-status, the links in its network namespace, and host-local's allocation files — and
 * compared with what the networks annotation asks for.
 *
 * @module
 */
import { type Rig, type RigPod, run, waitFor } from "../rig/mod.ts";
import { findPod, nonDefaultStatus, type PodEvent, type StatusEntry } from "./pods.ts";
import { NETWORK_STATUS_ANNOTATION } from "../rig/mod.ts";

/** One requested attachment and where to find its IPAM allocation. */
export interface DesiredAttachment {
  /** `"<nad namespace>/<nad name>"`, as network-status names it. */
  network: string;
  /** Interface name inside the pod. */
  iface: string;
  /** The CNI config `name` (host-local's directory), when its IPAM is host-local. */
  ipamNetwork?: string;
  /** IPv4 prefix the address must start with, e.g. `"10.77.1."`. */
  ipPrefix?: string;
}

/** The pod's network-status entries that are not the default network. */
export async function secondaryStatus(rig: Rig, pod: RigPod): Promise<StatusEntry[]> {
  const text = (await findPod(rig, pod))?.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  return text ? nonDefaultStatus(JSON.parse(text) as StatusEntry[]) : [];
}

/**
 * host-local's allocations under `network` held by `containerId`: address → interface name.
 * Each allocation is a file named after the address whose first line is the container ID and
 * whose second line is the interface name.
 */
export async function ipamAllocations(
  rig: Rig,
  network: string,
  containerId: string,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const ip of await rig.hostLocalFiles(network)) {
    let text: string;
    try {
      text = await Deno.readTextFile(`${rig.ipamDataDir}/${network}/${ip}`);
    } catch {
      continue; // released meanwhile
    }
    const [owner, ifname] = text.split(/\r?\n/).map((s) => s.trim());
    if (owner === containerId) out.set(ip, ifname ?? "");
  }
  return out;
}

/** The links in the pod's netns other than `lo` and the cluster interface `eth0`. */
export async function secondaryLinks(
  rig: Rig,
  pod: RigPod,
): Promise<{ name: string; ipv4: string[] }[]> {
  const links = await rig.netnsInterfaces(pod);
  return links.filter((l) => l.name !== "lo" && l.name !== "eth0").map((l) => ({
    name: l.name,
    ipv4: l.ipv4.map((a) => a.split("/")[0]!),
  }));
}

/**
 * Compares the pod's state with `expected`; resolves with a description of every mismatch, or
 * `undefined` when network-status, the netns and the IPAM files all match the desired list.
 * `ipamNetworks` lists every host-local network to check for allocations (an attachment not
 * expected must hold none).
 */
export async function mismatch(
  rig: Rig,
  pod: RigPod,
  expected: readonly DesiredAttachment[],
  ipamNetworks: readonly string[] = [],
): Promise<string | undefined> {
  const problems: string[] = [];
  const status = await secondaryStatus(rig, pod);
  const links = await secondaryLinks(rig, pod);
  const statusKeys = status.map((e) => `${e.name}@${e.interface}`).sort();
  const wantKeys = expected.map((e) => `${e.network}@${e.iface}`).sort();
  if (JSON.stringify(statusKeys) !== JSON.stringify(wantKeys)) {
    problems.push(
      `network-status ${JSON.stringify(statusKeys)} != desired ${JSON.stringify(wantKeys)}`,
    );
  }
  const linkNames = links.map((l) => l.name).sort();
  const wantNames = expected.map((e) => e.iface).sort();
  if (JSON.stringify(linkNames) !== JSON.stringify(wantNames)) {
    problems.push(
      `netns links ${JSON.stringify(linkNames)} != desired ${JSON.stringify(wantNames)}`,
    );
  }
  for (const want of expected) {
    const link = links.find((l) => l.name === want.iface);
    const entry = status.find((e) => e.name === want.network && e.interface === want.iface);
    if (!link || !entry) continue;
    if (want.ipPrefix && !link.ipv4.some((ip) => ip.startsWith(want.ipPrefix!))) {
      problems.push(`${want.iface} has ${JSON.stringify(link.ipv4)}, not in ${want.ipPrefix}*`);
    }
    const statusIps = (entry.ips ?? []).filter((ip) => ip.includes(".")).sort();
    if (JSON.stringify(statusIps) !== JSON.stringify([...link.ipv4].sort())) {
      problems.push(
        `${want.iface}: status ips ${JSON.stringify(statusIps)} != netns ${
          JSON.stringify(link.ipv4)
        }`,
      );
    }
  }
  for (const network of ipamNetworks) {
    const held = await ipamAllocations(rig, network, pod.sandboxId);
    const wanted = new Map<string, string>();
    for (const want of expected.filter((e) => e.ipamNetwork === network)) {
      for (const ip of links.find((l) => l.name === want.iface)?.ipv4 ?? []) {
        wanted.set(ip, want.iface);
      }
    }
    const a = JSON.stringify([...held].sort());
    const b = JSON.stringify([...wanted].sort());
    if (a !== b) problems.push(`host-local ${network} holds ${a}, expected ${b}`);
  }
  return problems.length === 0 ? undefined : problems.join("; ");
}

/**
 * Polls until {@linkcode mismatch} finds nothing; throws with the last mismatch after
 * `timeoutMs` (a generous deadline: convergence is awaited, never timed).
 */
export async function waitConverged(
  rig: Rig,
  pod: RigPod,
  expected: readonly DesiredAttachment[],
  ipamNetworks: readonly string[] = [],
  timeoutMs = 60_000,
): Promise<void> {
  let last: string | undefined;
  try {
    await waitFor(
      `pod ${pod.namespace}/${pod.name} to converge`,
      async () => {
        last = await mismatch(rig, pod, expected, ipamNetworks);
        return last === undefined;
      },
      timeoutMs,
      200,
    );
  } catch (err) {
    throw new Error(`pod ${pod.namespace}/${pod.name} did not converge: ${last}`, { cause: err });
  }
}

/** Events about pod `name` in `namespace` (all sources). */
export async function podEvents(
  rig: Rig,
  namespace: string,
  name: string,
): Promise<PodEvent[]> {
  const list = await rig.api.request<{ items: PodEvent[] }>(
    "GET",
    `/api/v1/namespaces/${namespace}/events`,
    undefined,
    { query: { fieldSelector: `involvedObject.name=${name}` } },
  );
  return list.items;
}

/** Names of the host's links enslaved to `bridge` (the host ends of a bridge NAD's veths). */
export async function bridgePorts(bridge: string): Promise<string[]> {
  const out = await run(["ip", "-j", "link", "show", "master", bridge], { allowFailure: true });
  if (out.code !== 0 || !out.stdout.trim()) return [];
  return (JSON.parse(out.stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
}

/** Resident set size of a process in KiB, from /proc; undefined when it is gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
