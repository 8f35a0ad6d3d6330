/**
 * What the hot-plug path costs outside the agent, measured on the same rig beside it: the
 * parts any controller pays, so that the agent's figures can be read against them.
 *
 * - multus alone: `/delegate` called directly (the agent's own client, the pod's sandbox), from
 *   the call to the link up in the pod's netns (`ip monitor`) and to the call's answer;
 * - the CRI sandbox lookup alone (the agent's own client);
 * - the watch: from a pod edit's response to the edit's event in a watch of this process;
 * - the API server's own time per request (its `apiserver_request_duration_seconds`, which
 *   leaves out the client and the wire) beside the client's, for the pod read and for three
 *   ways to write the same annotation with the same resourceVersion precondition: the agent's
 *   PUT of pods/status, a JSON merge patch and a strategic merge patch of pods/status;
 * - a process's first API request against its second (a process of its own with the agent's
 *   V8 flags and client): the first TLS connection initialises the runtime's TLS and crypto.
 *
 * @module
 */
import type { Rig, RigPod } from "../rig/mod.ts";
import { CriClient } from "../../lib/cri/client.ts";
import { MultusClient } from "../../lib/multus/client.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { Logger } from "../../lib/base/log.ts";
import { delegateConfig, type NetworkAttachmentDefinition } from "../../lib/core/nad.ts";
import { NetnsMonitor } from "./netns_monitor.ts";
import { ROOT, runProbe } from "./parts.ts";
import type { PodWatch } from "./pod_watch.ts";
import { Scrape } from "./prom.ts";
import { summarize, type Summary } from "./stats.ts";
import { sleep } from "./bench_support.ts";

/** One way of reaching the API server, timed on both ends. */
export interface ApiFloor {
  /** As the client saw it (request sent → body read), in ms. */
  client: Summary;
  /** The API server's own mean time for these requests, in ms (from its histogram). */
  serverMeanMs: number;
  /** Requests the histogram counted (other clients' requests of the same kind included). */
  serverCount: number;
}

/** What the floors phase measured. */
export interface FloorsResult {
  /** multus `/delegate` ADD called directly: call → link up in the netns. */
  delegateLinkUpMs: Summary;
  /** The same ADD call, to its answer. */
  delegateAddMs: Summary;
  /** A DEL of it, to its answer. */
  delegateDelMs: Summary;
  /** The CRI sandbox lookup (ListPodSandbox of a sandbox seen ready). */
  criLookupMs: Summary;
  /** A pod edit's response → its event in this process's watch. */
  watchDeliveryMs: Summary;
  /** GET of the pod. */
  get: ApiFloor;
  /** PUT of pods/status with one annotation changed (the agent's write). */
  put: ApiFloor;
  /** The same change as a JSON merge patch of pods/status. */
  mergePatch: ApiFloor;
  /** The same change as a strategic merge patch of pods/status. */
  strategicPatch: ApiFloor;
  /** A new process's first API request (a new client, its first TLS connection). */
  firstRequestMs: Summary;
  /** The same process's second request, on the connection the first opened. */
  secondRequestMs: Summary;
}

const FLOOR_IFNAME = "fl1";
/** An annotation of the bench's own, so that no controller acts on the writes. */
const PROBE_ANNOTATION = "bench.dynamic-networks-controller.io/probe";

type Pod = { metadata: { resourceVersion: string; annotations?: Record<string, string> } };

/** The API server's request-duration sum and count for pods, by `VERB/subresource`. */
async function serverTimes(
  kube: KubeClient,
): Promise<Map<string, { sum: number; count: number }>> {
  const res = await kube.request("GET", "/metrics");
  const text = await res.text();
  if (!res.ok) throw new Error(`API server /metrics answered ${res.status}: ${text}`);
  const out = new Map<string, { sum: number; count: number }>();
  for (const s of new Scrape(text).samples) {
    const kind = s.name === "apiserver_request_duration_seconds_sum"
      ? "sum"
      : s.name === "apiserver_request_duration_seconds_count"
      ? "count"
      : undefined;
    if (!kind || s.labels.resource !== "pods" || s.labels.scope !== "resource") continue;
    const key = `${s.labels.verb}/${s.labels.subresource ?? ""}`;
    const entry = out.get(key) ?? { sum: 0, count: 0 };
    entry[kind] += s.value;
    out.set(key, entry);
  }
  return out;
}

/**
 * Runs `request` `n` times and times it on the client and, through the API server's
 * histogram of `VERB/subresource` `kind`, on the server.
 */
async function timedRequests(
  kube: KubeClient,
  kind: string,
  n: number,
  request: (i: number) => Promise<void>,
): Promise<ApiFloor> {
  const before = (await serverTimes(kube)).get(kind) ?? { sum: 0, count: 0 };
  const client: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await request(i);
    client.push(performance.now() - t);
  }
  const after = (await serverTimes(kube)).get(kind) ?? { sum: 0, count: 0 };
  const count = after.count - before.count;
  return {
    client: summarize(client),
    serverMeanMs: count > 0 ? (1000 * (after.sum - before.sum)) / count : NaN,
    serverCount: count,
  };
}

/** A process's first and second request through the agent's API client, in ms. */
function firstRequests(kubeconfig: string): Promise<{ first: number; second: number }> {
  return runProbe(
    [
      `import { KubeClient } from ${JSON.stringify(`${ROOT}lib/kube/client.ts`)};`,
      `import { Logger } from ${JSON.stringify(`${ROOT}lib/base/log.ts`)};`,
      "const log = new Logger({ level: 'error', sink: () => {} });",
      `const kube = await KubeClient.create({ kubeconfig: ${JSON.stringify(kubeconfig)} }, log);`,
      "const t0 = performance.now();",
      "await kube.json('GET', '/version');",
      "const t1 = performance.now();",
      "await kube.json('GET', '/version');",
      "console.log(JSON.stringify({ first: t1 - t0, second: performance.now() - t1 }));",
      "kube.close();",
    ].join("\n"),
    "first requests",
  );
}

/** multus' `/delegate` ADD and DEL of one more interface, and the CRI lookup, `n` times each. */
async function delegateFloors(
  cri: CriClient,
  multusSocket: string,
  pod: RigPod,
  nad: NetworkAttachmentDefinition,
  n: number,
) {
  const multus = new MultusClient(multusSocket, { timeoutMs: 30_000 });
  const sandbox = await cri.findSandbox(pod.uid);
  if (!sandbox?.ready) throw new Error(`floors: pod ${pod.name} has no ready sandbox`);
  const monitor = await NetnsMonitor.start(sandbox.netnsPath);
  const linkUp: number[] = [];
  const add: number[] = [];
  const del: number[] = [];
  const lookup: number[] = [];
  try {
    const request = {
      containerId: sandbox.id,
      netns: sandbox.netnsPath,
      ifname: FLOOR_IFNAME,
      podNamespace: pod.namespace,
      podName: pod.name,
      podUid: pod.uid,
      config: delegateConfig(nad),
    };
    for (let i = 0; i < n; i++) {
      let t = performance.now();
      await cri.findSandbox(pod.uid);
      lookup.push(performance.now() - t);
      const up = monitor.until(FLOOR_IFNAME, true, 30_000);
      t = performance.now();
      await multus.delegate({ command: "ADD", ...request });
      add.push(performance.now() - t);
      linkUp.push(await up - t);
      await sleep(50);
      t = performance.now();
      await multus.delegate({ command: "DEL", ...request });
      del.push(performance.now() - t);
      await sleep(50);
    }
  } finally {
    await monitor.stop();
  }
  return {
    delegateLinkUpMs: summarize(linkUp),
    delegateAddMs: summarize(add),
    delegateDelMs: summarize(del),
    criLookupMs: summarize(lookup),
  };
}

/** From a pod edit's response to its event in `watch`, `n` times; the probe annotation removed. */
async function watchFloor(watch: PodWatch, pod: RigPod, n: number): Promise<Summary> {
  const delivery: number[] = [];
  for (let i = 0; i < n; i++) {
    const value = `watch-${i}`;
    const seen = watch.until(pod.name, (p) => p.metadata.annotations?.[PROBE_ANNOTATION] === value);
    const sent = await watch.annotate(pod.name, { [PROBE_ANNOTATION]: value });
    delivery.push(await seen - sent);
  }
  await watch.annotate(pod.name, { [PROBE_ANNOTATION]: null });
  return summarize(delivery);
}

/** The pod read and the three forms of the status write, `n` times each; the probe removed. */
async function apiFloors(kube: KubeClient, pod: RigPod, n: number) {
  const path = `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`;
  let current = await kube.json<Pod>("GET", path);
  const get = await timedRequests(kube, "GET/", n, async () => {
    current = await kube.json<Pod>("GET", path);
  });
  // Each write changes an annotation no one else writes, from the version the last one left.
  const probe = (i: number, how: string) => `[{"bench":"${how}","i":${i}}]`;
  const key = `${PROBE_ANNOTATION}-status`;
  const put = await timedRequests(kube, "PUT/status", n, async (i) => {
    current.metadata.annotations = { ...current.metadata.annotations, [key]: probe(i, "put") };
    current = await kube.json<Pod>("PUT", `${path}/status`, { body: current });
  });
  const patch = (contentType: string, how: string) => async (i: number) => {
    current = await kube.json<Pod>("PATCH", `${path}/status`, {
      body: {
        metadata: {
          resourceVersion: current.metadata.resourceVersion,
          annotations: { [key]: probe(i, how) },
        },
      },
      contentType,
    });
  };
  const merge = patch("application/merge-patch+json", "merge");
  const mergePatch = await timedRequests(kube, "PATCH/status", n, merge);
  const strategic = patch("application/strategic-merge-patch+json", "strategic");
  const strategicPatch = await timedRequests(kube, "PATCH/status", n, strategic);
  await kube.json("PATCH", `${path}/status`, {
    body: { metadata: { annotations: { [key]: null } } },
    contentType: "application/merge-patch+json",
  });
  return { get, put, mergePatch, strategicPatch };
}

/**
 * Measures the floors on `pod`, which no controller is changing meanwhile, with the CNI
 * configuration the agent sends for `nad`. Leaves the pod as it found it (no extra link, the
 * probe annotations removed).
 */
export async function floorsPhase(
  rig: Rig,
  watch: PodWatch,
  pod: RigPod,
  nad: NetworkAttachmentDefinition,
  n: number,
): Promise<FloorsResult> {
  const cri = new CriClient(rig.criSocket, { timeoutMs: 10_000 });
  const kube = await KubeClient.create(
    { kubeconfig: rig.kubeconfig },
    new Logger({ level: "error", sink: () => {} }),
  );
  try {
    const delegate = await delegateFloors(cri, rig.multusSocket, pod, nad, n);
    const watchDeliveryMs = await watchFloor(watch, pod, n);
    const api = await apiFloors(kube, pod, n);
    const first: number[] = [];
    const second: number[] = [];
    for (let i = 0; i < Math.min(n, 5); i++) {
      const r = await firstRequests(rig.kubeconfig);
      first.push(r.first);
      second.push(r.second);
    }
    return {
      ...delegate,
      watchDeliveryMs,
      ...api,
      firstRequestMs: summarize(first),
      secondRequestMs: summarize(second),
    };
  } finally {
    cri.close();
    kube.close();
  }
}
