/**
 * Pods as the tests see them through the API server: reading and editing a pod's network annotations,
 * polling for convergence (never a fixed sleep), the controller's Events on a pod and the
 * interfaces inside a pod's network namespace. Pods themselves are the rig's, run by its
 * kubelet (`Rig.createPod`, with `pending: true` for one that stays Pending until
 * `Rig.releasePending`).
 *
 * Every wait polls with a generous deadline and, on timeout, reports the last observation.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type NetnsInterface,
  NETWORK_STATUS_ANNOTATION,
  NETWORKS_ANNOTATION,
  type NetworkSelection,
  type Rig,
  type RigPod,
} from "../rig/mod.ts";
import { NETWORKS_READY_CONDITION } from "../../lib/core/networks_condition.ts";
import type { ControllerProcess } from "./controller_process.ts";

/** How long a convergence wait lasts before failing. */
export const CONVERGE_TIMEOUT_MS = 30_000;

/** The component the controller records its Events under (as upstream). */
export const CONTROLLER_COMPONENT = "pod-networks-updates";

/** One entry of `k8s.v1.cni.cncf.io/network-status`. */
export interface StatusEntry {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  default?: boolean;
  [key: string]: unknown;
}

/** One of a pod's `status.conditions`, as far as the tests read it. */
export interface PodCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

/** The parts of a Pod object the tests read and write. */
export interface PodObject {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  status?: { phase?: string; conditions?: PodCondition[] };
  [key: string]: unknown;
}

/** A core/v1 Event, as far as the tests read it. */
export interface PodEvent {
  type: string;
  reason: string;
  message: string;
  count?: number;
  source?: { component?: string };
  reportingComponent?: string;
  involvedObject: { uid?: string; name?: string; namespace?: string };
}

function podPath(pod: { name: string; namespace: string }): string {
  return `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`;
}

/**
 * Polls `probe` every `intervalMs` until it returns something other than `undefined` or
 * `false`, and resolves with that value. On timeout it throws, naming `what` and the last
 * observation (`describe()` or the last error).
 */
export async function poll<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number; describe?: () => unknown } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? CONVERGE_TIMEOUT_MS);
  let lastError: unknown;
  while (true) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
  let last = "";
  try {
    last = lastError !== undefined
      ? `last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`
      : `last seen: ${JSON.stringify(options.describe?.() ?? null)}`;
  } catch { /* describe failed */ }
  throw new Error(`timed out waiting for ${what}; ${last}`);
}

/** The Pod object as the API server has it now. */
export async function getPod(rig: Rig, pod: RigPod): Promise<PodObject> {
  return await rig.api.request<PodObject>("GET", podPath(pod));
}

/** The pod's conditions as the API server has them now (empty when it has none). */
export async function podConditions(rig: Rig, pod: RigPod): Promise<PodCondition[]> {
  return (await getPod(rig, pod)).status?.conditions ?? [];
}

/**
 * The agent's condition ({@linkcode NETWORKS_READY_CONDITION}) of the pod as the API server has
 * it now, or `undefined` when the pod has none.
 */
export async function networksReadyCondition(
  rig: Rig,
  pod: RigPod,
): Promise<PodCondition | undefined> {
  return (await podConditions(rig, pod)).find((c) => c.type === NETWORKS_READY_CONDITION);
}

/** The Pod object, or `undefined` once the API server no longer has it. */
export async function findPod(
  rig: Rig,
  pod: { name: string; namespace: string },
): Promise<PodObject | undefined> {
  return await rig.api.getOrUndefined<PodObject>(podPath(pod));
}

/** The pod's network-status entries (empty when the annotation is absent). */
export async function networkStatus(rig: Rig, pod: RigPod): Promise<StatusEntry[]> {
  const obj = await getPod(rig, pod);
  const text = obj.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  return text === undefined ? [] : JSON.parse(text) as StatusEntry[];
}

/** The raw network-status annotation (undefined when absent). */
export async function networkStatusText(rig: Rig, pod: RigPod): Promise<string | undefined> {
  return (await getPod(rig, pod)).metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
}

/** The entries that are not the cluster default network. */
export function nonDefaultStatus(entries: readonly StatusEntry[]): StatusEntry[] {
  return entries.filter((e) => e.default !== true);
}

/** The network-status entry for interface `iface`, if any. */
export function statusEntry(
  entries: readonly StatusEntry[],
  iface: string,
): StatusEntry | undefined {
  return entries.find((e) => e.interface === iface);
}

/**
 * Replaces the pod's networks annotation with a merge patch: a list is JSON-encoded, a string
 * (raw text, e.g. the short form) is written as is, `undefined` removes the annotation.
 */
export async function setNetworks(
  rig: Rig,
  pod: { name: string; namespace: string },
  value: string | readonly unknown[] | undefined,
): Promise<void> {
  const text = value === undefined
    ? null
    : typeof value === "string"
    ? value
    : JSON.stringify(value);
  await rig.api.request(
    "PATCH",
    podPath(pod),
    { metadata: { annotations: { [NETWORKS_ANNOTATION]: text } } },
    { contentType: "application/merge-patch+json" },
  );
}

/**
 * Writes the networks annotation with `kubectl annotate --overwrite`, as a user would: a list
 * is JSON-encoded, a string (e.g. the short form `net-a@net1,net-b`) is written as is.
 */
export async function annotateNetworks(
  rig: Rig,
  pod: RigPod,
  value: string | NetworkSelection[],
): Promise<void> {
  const res = await rig.kubectl(
    "-n",
    pod.namespace,
    "annotate",
    "--overwrite",
    "pod",
    pod.name,
    `${NETWORKS_ANNOTATION}=${typeof value === "string" ? value : JSON.stringify(value)}`,
  );
  assert.equal(res.code, 0, `kubectl annotate failed: ${res.stderr}`);
}

/** Polls the pod's network-status until `predicate` holds; resolves with the entries. */
export async function waitForStatus(
  rig: Rig,
  pod: RigPod,
  predicate: (entries: StatusEntry[]) => boolean,
  what = "network-status to converge",
  timeoutMs = CONVERGE_TIMEOUT_MS,
): Promise<StatusEntry[]> {
  return await readUntil(`${pod.namespace}/${pod.name}: ${what}`, () => networkStatus(rig, pod), {
    predicate,
    timeoutMs,
  });
}

/** Polls the pod's netns until `predicate` holds; resolves with its interfaces. */
export async function waitForInterfaces(
  rig: Rig,
  pod: RigPod,
  predicate: (links: NetnsInterface[]) => boolean,
  what = "the pod's interfaces to converge",
  timeoutMs = CONVERGE_TIMEOUT_MS,
): Promise<NetnsInterface[]> {
  return await readUntil(`${pod.namespace}/${pod.name}: ${what}`, () => rig.netnsInterfaces(pod), {
    predicate,
    timeoutMs,
    describe: (links) => links.map((l) => `${l.name} ${l.mac} ${l.ipv4.join(",")}`),
  });
}

/** Reads with `read` until `predicate` holds of what it read; a timeout shows the last read. */
async function readUntil<T>(
  what: string,
  read: () => Promise<T>,
  options: { predicate: (value: T) => boolean; timeoutMs: number; describe?: (v: T) => unknown },
): Promise<T> {
  let last: T | undefined;
  return await poll(what, async () => {
    last = await read();
    return options.predicate(last) ? last : undefined;
  }, {
    timeoutMs: options.timeoutMs,
    describe: () => last === undefined ? undefined : options.describe?.(last) ?? last,
  });
}

/**
 * A container whose readiness flips every second, so that the kubelet writes the pod's status
 * every second: spread into `createPod` options.
 */
export const FLAPPING_READINESS = {
  command: [
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; while :; do touch /tmp/ready; sleep 1; rm -f /tmp/ready; sleep 1; done & wait",
  ],
  readinessProbe: {
    exec: { command: ["/bin/sh", "-c", "test -e /tmp/ready"] },
    periodSeconds: 1,
    failureThreshold: 1,
    successThreshold: 1,
  },
};

/** The pod's interfaces by name, loopback and the default `eth0` included. */
export async function interfacesByName(
  rig: Rig,
  pod: RigPod,
): Promise<Map<string, NetnsInterface>> {
  return new Map((await rig.netnsInterfaces(pod)).map((l) => [l.name, l]));
}

/** The attachment a test expects: a status entry and a real interface of the same name. */
export interface ExpectedAttachment {
  /** `"<namespace>/<nad>"` */
  network: string;
  interface: string;
  /**
   * The interface's IPv4 addresses with prefix, e.g. `10.10.10.111/24`: exactly these, in the
   * netns and (bare) in the status entry. Default: none (an attachment without IPAM).
   */
  ipv4?: string[];
  /** When given, the MAC of both the status entry and the interface. */
  mac?: string;
}

/**
 * Asserts that the non-default network-status entries are exactly `expected` (in any order:
 * names, interfaces, IPs and MACs) and that the pod's netns holds each one as a real link with
 * the recorded MAC and exactly the expected IPv4 addresses (none unless given). Returns the MAC of every attachment by interface.
 */
export async function assertAttachments(
  rig: Rig,
  pod: RigPod,
  expected: readonly ExpectedAttachment[],
  entries?: StatusEntry[],
): Promise<Map<string, string>> {
  const status = nonDefaultStatus(entries ?? await networkStatus(rig, pod));
  assert.deepEqual(
    status.map((e) => `${e.name}/${e.interface}`).sort(),
    expected.map((e) => `${e.network}/${e.interface}`).sort(),
    `network-status of ${pod.namespace}/${pod.name}: ${JSON.stringify(status)}`,
  );
  const links = await interfacesByName(rig, pod);
  const macs = new Map<string, string>();
  for (const want of expected) {
    const entry = statusEntry(status, want.interface)!;
    const link = links.get(want.interface);
    assert.ok(
      link,
      `interface ${want.interface} missing in the netns of ${pod.namespace}/${pod.name}; has ${
        [...links.keys()].join(", ")
      }`,
    );
    assert.ok(entry.mac, `status entry ${want.interface} has no MAC: ${JSON.stringify(entry)}`);
    assert.equal(link.mac, entry.mac!.toLowerCase(), `MAC of ${want.interface}: netns vs status`);
    if (want.mac) assert.equal(link.mac, want.mac.toLowerCase(), `MAC of ${want.interface}`);
    const ipv4 = want.ipv4 ?? [];
    assert.deepEqual([...link.ipv4].sort(), [...ipv4].sort(), `IPs of ${want.interface}`);
    assert.deepEqual(
      [...(entry.ips ?? [])].sort(),
      ipv4.map((ip) => ip.split("/")[0]).sort(),
      `status IPs of ${want.interface}`,
    );
    macs.set(want.interface, link.mac);
  }
  return macs;
}

/** True when the non-default entries name exactly these interfaces (any order). */
export function hasInterfaces(entries: readonly StatusEntry[], names: readonly string[]): boolean {
  const have = nonDefaultStatus(entries).map((e) => e.interface ?? "").sort();
  return JSON.stringify(have) === JSON.stringify([...names].sort());
}

/** The controller's Events on `pod` (by uid; multus' own Events excluded). */
export async function eventsFor(rig: Rig, pod: RigPod): Promise<PodEvent[]> {
  const list = await rig.api.request<{ items: PodEvent[] }>(
    "GET",
    `/api/v1/namespaces/${pod.namespace}/events`,
    undefined,
    { query: { fieldSelector: `involvedObject.uid=${pod.uid}` } },
  );
  return list.items.filter((e) =>
    e.source?.component === CONTROLLER_COMPONENT || e.reportingComponent === CONTROLLER_COMPONENT
  );
}

/** Waits for an Event of the controller on `pod` with `reason` whose message contains every `includes`. */
export async function waitForEvent(
  rig: Rig,
  pod: RigPod,
  want: { reason: string; type?: "Normal" | "Warning"; includes?: readonly string[] },
  timeoutMs = CONVERGE_TIMEOUT_MS,
): Promise<PodEvent> {
  let last: PodEvent[] = [];
  return await poll(
    `${pod.namespace}/${pod.name}: a ${want.reason} event containing ${
      JSON.stringify(want.includes ?? [])
    }`,
    async () => {
      last = await eventsFor(rig, pod);
      return last.find((e) =>
        e.reason === want.reason && (want.type === undefined || e.type === want.type) &&
        (want.includes ?? []).every((s) => e.message.includes(s))
      );
    },
    { timeoutMs, describe: () => last.map((e) => `${e.type} ${e.reason}: ${e.message}`) },
  );
}

/** Waits for a controller log line about `pod` with `level` and `msg`, whose text has `includes`. */
export async function waitForLog(
  ctl: ControllerProcess,
  pod: RigPod,
  want: { level?: string; msg?: string; includes?: readonly string[] },
  timeoutMs = CONVERGE_TIMEOUT_MS,
): Promise<Record<string, unknown>> {
  const key = `${pod.namespace}/${pod.name}`;
  return await poll(`a log line about ${key} matching ${JSON.stringify(want)}`, () => {
    const found = ctl.records().find((r) => {
      if (r.pod !== key) return false;
      if (want.level !== undefined && r.level !== want.level) return false;
      if (want.msg !== undefined && r.msg !== want.msg) return false;
      const text = JSON.stringify(r);
      return (want.includes ?? []).every((s) => text.includes(s));
    });
    return Promise.resolve(found);
  }, { timeoutMs });
}

/** A random locally administered unicast MAC, e.g. `02:5e:…`. */
export function randomMac(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  bytes[0] = (bytes[0]! & 0xfc) | 0x02;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** A short random suffix for unique names. */
export function uniqueSuffix(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(3)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** macvlan in bridge mode on the rig's veth, no IPAM: upstream's `tenant-network`. */
export function macvlanConfig(rig: Rig, name: string): Record<string, unknown> {
  return {
    cniVersion: "0.3.1",
    name,
    type: "macvlan",
    master: rig.macvlanMaster,
    mode: "bridge",
    ipam: {},
  };
}

/**
 * Upstream's `tenant-network-ipam`: a conflist of macvlan with static IPAM taking its addresses
 * from the `ips` capability, and tuning taking the MAC from the `mac` capability.
 */
export function macvlanIpamConfig(rig: Rig, name: string): Record<string, unknown> {
  return {
    cniVersion: "0.3.1",
    name,
    plugins: [
      {
        type: "macvlan",
        master: rig.macvlanMaster,
        mode: "bridge",
        capabilities: { ips: true },
        ipam: { type: "static" },
      },
      { type: "tuning", capabilities: { mac: true } },
    ],
  };
}

/** macvlan with static IPAM holding fixed `addresses` (e.g. `10.20.1.1/24`) in the NAD itself. */
export function macvlanStaticConfig(
  rig: Rig,
  name: string,
  addresses: readonly string[],
): Record<string, unknown> {
  return {
    cniVersion: "0.3.1",
    name,
    type: "macvlan",
    master: rig.macvlanMaster,
    mode: "bridge",
    ipam: { type: "static", addresses: addresses.map((address) => ({ address })) },
  };
}

/**
 * The value of one Prometheus sample in `/metrics` text: metric `name` whose labels include
 * every pair of `labels` (0 when absent).
 */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      have.set(pair[1]!, pair[2]!);
    }
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(match[3]);
  }
  return 0;
}
