/**
 * Two of the agent's own parts against the well-kept library that could stand in for each, as
 * the agent uses them, each measured in a process of its own with the agent's V8 flags:
 *
 * - the CRI codec (`lib/cri/codec.ts`) against protobufjs (its light build, over the same
 *   descriptor): RSS and load time of the part, and the time of one sandbox lookup's messages
 *   (encode a `ListPodSandboxRequest`, decode a `ListPodSandboxResponse` of the pod's two
 *   sandboxes, encode a `PodSandboxStatusRequest`, decode a verbose `PodSandboxStatusResponse`);
 * - the Prometheus registry (`lib/base/metrics.ts`, with the agent's own metrics declared by
 *   `lib/observe/controller_metrics.ts`) against prom-client behind the same declarations: RSS
 *   and load time, the time of a thousand observations like a busy minute's, and of one scrape.
 *
 * Usage: `deno run -A tests/bench/libraries.ts [runs]` prints one JSON line per part; the bench
 * (`bench.ts`) runs it with the others.
 *
 * @module
 */
import { ROOT, runProbe } from "./parts.ts";
import { round, summarize, type Summary } from "./stats.ts";

/** One part's figures over several processes (medians). */
export interface LibraryCost {
  label: string;
  runs: number;
  /** Loading the part (imports and set-up). */
  loadMs: number;
  /** VmRSS above the bare runtime's, after loading and one round of work. */
  extraMiB: number;
  /** The part's work, per round: a lookup's messages, or a thousand observations. */
  workUs: number;
  /** One scrape (metrics only). */
  renderUs?: number;
}

/** The messages one sandbox lookup exchanges, built and encoded once with our codec. */
const CRI_FIXTURE = `
const { criCodec } = await import("${ROOT}lib/cri/client.ts");
const info = JSON.stringify({ pid: 4242, runtimeSpec: { linux: { namespaces: [
  { type: "pid" }, { type: "ipc" }, { type: "uts" },
  { type: "network", path: "/var/run/netns/cni-0123456789abcdef" }] },
  annotations: Object.fromEntries(Array.from({ length: 30 }, (_, i) => ["io.kubernetes.a" + i, "v".repeat(40)])) } });
// As the agent lists them, by the pod's uid label: its sandbox, and one the kubelet replaced.
const sandboxes = Array.from({ length: 2 }, (_, i) => ({
  id: "f".repeat(60) + String(i).padStart(4, "0"),
  metadata: { name: "pod-" + i, uid: crypto.randomUUID(), namespace: "default", attempt: 0 },
  state: i === 0 ? 1 : 0,
  created_at: 1733500000000000000n + BigInt(i),
  labels: { "io.kubernetes.pod.name": "pod-" + i, "io.kubernetes.pod.namespace": "default",
    "io.kubernetes.pod.uid": "u" + i, app: "bench" },
  annotations: { "kubernetes.io/config.seen": "2026-12-07T00:00:00Z", "kubernetes.io/config.source": "api" },
  runtime_handler: "",
}));
const f = {};
f.listRequest = { filter: { label_selector: { "io.kubernetes.pod.uid": "u42" } } };
f.listBytes = criCodec.encode("ListPodSandboxResponse", { items: sandboxes });
f.statusRequest = { pod_sandbox_id: sandboxes[1].id, verbose: true };
f.statusBytes = criCodec.encode("PodSandboxStatusResponse", {
  status: { id: sandboxes[1].id, metadata: sandboxes[1].metadata, state: 0,
    created_at: 1733500000000000000n, network: { ip: "10.244.0.42", additional_ips: [] },
    linux: { namespaces: { options: { network: 0, pid: 1, ipc: 0, target_id: "" } } },
    labels: sandboxes[1].labels, annotations: sandboxes[1].annotations, runtime_handler: "" },
  info: { info },
});
`;

/** How one lookup's messages go through each codec, and how long loading it takes. */
const CODECS: Record<string, { load: string; lookup: string }> = {
  "CRI codec: our own (lib/cri/codec.ts)": {
    load: `const { criCodec: codec } = await import("${ROOT}lib/cri/client.ts");`,
    lookup: `
      codec.encode("ListPodSandboxRequest", f.listRequest);
      codec.decode("ListPodSandboxResponse", f.listBytes);
      codec.encode("PodSandboxStatusRequest", f.statusRequest);
      codec.decode("PodSandboxStatusResponse", f.statusBytes);`,
  },
  "CRI codec: protobufjs light, same descriptor": {
    load: `
      const { default: protobuf } = await import("npm:protobufjs@7.6.6/light.js");
      const { CRI_DESCRIPTOR } = await import("${ROOT}lib/cri/descriptor.ts");
      const root = protobuf.Root.fromJSON(CRI_DESCRIPTOR);
      const t = (n) => root.lookupType("runtime.v1." + n);
      const types = Object.fromEntries(["ListPodSandboxRequest", "ListPodSandboxResponse",
        "PodSandboxStatusRequest", "PodSandboxStatusResponse"].map((n) => [n, t(n)]));
      const asObject = { longs: String, enums: String, defaults: true };`,
    lookup: `
      types.ListPodSandboxRequest.encode(types.ListPodSandboxRequest.fromObject(f.listRequest)).finish();
      types.ListPodSandboxResponse.toObject(types.ListPodSandboxResponse.decode(f.listBytes), asObject);
      types.PodSandboxStatusRequest.encode(types.PodSandboxStatusRequest.fromObject(f.statusRequest)).finish();
      types.PodSandboxStatusResponse.toObject(types.PodSandboxStatusResponse.decode(f.statusBytes), asObject);`,
  },
};

/** A busy minute's observations, through `ControllerMetrics`' own methods. */
const METRIC_WORK = `
  for (let i = 0; i < 1000; i++) {
    m.apiRequest(i % 3 ? "GET" : "PUT", "/api/v1/namespaces/ns/pods/p" + (i % 110) + "/status", i % 50 ? 200 : 409, 0.004 + (i % 7) / 1000);
    if (i % 4 === 0) m.criDuration(i % 8 ? "ListPodSandbox" : "PodSandboxStatus", 0.002);
    if (i % 5 === 0) m.delegateDuration(i % 2 ? "ADD" : "DEL", 0.018);
    if (i % 5 === 0) m.attachmentOperation(i % 2 ? "add" : "remove", i % 20 !== 0);
    if (i % 10 === 0) m.hotplugCompleted("add", 0.04);
    if (i % 10 === 0) m.statusWrite(true);
    if (i % 25 === 0) m.eventRecorded(i % 50 ? "AddedInterface" : "RemovedInterface");
  }`;

/** prom-client behind the registry interface `ControllerMetrics` declares its metrics in. */
const PROM_CLIENT_REGISTRY = `
  const client = (await import("prom-client")).default;
  const withLabels = (labels) => labels ?? {};
  class PromRegistry {
    constructor() { this.r = new client.Registry(); this.collectors = []; }
    counter(o) { const c = new client.Counter({ name: o.name, help: o.help, labelNames: o.labelNames ?? [], registers: [this.r] });
      return { inc: (l, n = 1) => c.inc(withLabels(l), n), get: () => 0 }; }
    gauge(o) { const g = new client.Gauge({ name: o.name, help: o.help, labelNames: o.labelNames ?? [], registers: [this.r] });
      return { set: (l, v) => g.set(withLabels(l), v), inc: (l, n = 1) => g.inc(withLabels(l), n), dec: (l, n = 1) => g.dec(withLabels(l), n), get: () => 0 }; }
    histogram(o) { const h = new client.Histogram({ name: o.name, help: o.help, labelNames: o.labelNames ?? [], buckets: o.buckets ? [...o.buckets] : undefined, registers: [this.r] });
      return { observe: (l, v) => h.observe(withLabels(l), v) }; }
    onCollect(f) { this.collectors.push(f); }
    get() { return undefined; }
    async render() { for (const f of this.collectors) f(); return await this.r.metrics(); }
  }`;

const REGISTRIES: Record<string, { load: string }> = {
  "metrics registry: our own (lib/base/metrics.ts)": {
    load: `
      const { ControllerMetrics } = await import("${ROOT}lib/observe/controller_metrics.ts");
      const m = new ControllerMetrics({ version: "bench" });
      const render = async () => m.registry.render();`,
  },
  "metrics registry: prom-client, same declarations": {
    load: `
      ${PROM_CLIENT_REGISTRY}
      const { ControllerMetrics } = await import("${ROOT}lib/observe/controller_metrics.ts");
      const registry = new PromRegistry();
      const m = new ControllerMetrics({ version: "bench", registry });
      const render = async () => await registry.render();`,
  },
};

function rssMiB(): string {
  return 'Number(/^VmRSS:\\s+(\\d+)/m.exec(Deno.readTextFileSync("/proc/self/status"))[1]) / 1024';
}

function codecProbe(label: string): string {
  const c = CODECS[label]!;
  return `
    ${CRI_FIXTURE}
    const t0 = performance.now();
    ${c.load}
    const loadMs = performance.now() - t0;
    for (let i = 0; i < 200; i++) { ${c.lookup} }
    const n = 2000;
    const t1 = performance.now();
    for (let i = 0; i < n; i++) { ${c.lookup} }
    const workUs = (performance.now() - t1) * 1000 / n;
    await new Promise((r) => setTimeout(r, 200));
    console.log(JSON.stringify({ loadMs, workUs, rss: ${rssMiB()} }));`;
}

function registryProbe(label: string): string {
  const r = REGISTRIES[label]!;
  return `
    const t0 = performance.now();
    ${r.load}
    const loadMs = performance.now() - t0;
    ${METRIC_WORK}
    await render();
    const t1 = performance.now();
    const rounds = 20;
    for (let round = 0; round < rounds; round++) { ${METRIC_WORK} }
    const workUs = (performance.now() - t1) * 1000 / rounds;
    const t2 = performance.now();
    for (let i = 0; i < 50; i++) await render();
    const renderUs = (performance.now() - t2) * 1000 / 50;
    await new Promise((r) => setTimeout(r, 200));
    console.log(JSON.stringify({ loadMs, workUs, renderUs, rss: ${rssMiB()} }));`;
}

const BARE = `
  await new Promise((r) => setTimeout(r, 200));
  console.log(JSON.stringify({ rss: ${rssMiB()} }));`;

/**
 * The CRI codecs' fixture is built with our codec, so our codec is loaded in every codec
 * probe: a codec's RSS is counted above a process that only builds the fixture, which makes
 * ours cost about nothing there; its load time is measured in `parts.ts` (the CRI client).
 */
const CRI_BARE = `
  ${CRI_FIXTURE}
  void f;
  ${BARE}`;

/** Measures each part `runs` times, interleaved so that a busy moment hits all alike. */
export async function libraryCosts(runs = 5): Promise<LibraryCost[]> {
  const probes: { label: string; source: string; bare: string }[] = [
    ...Object.keys(CODECS).map((label) => ({ label, source: codecProbe(label), bare: CRI_BARE })),
    ...Object.keys(REGISTRIES).map((label) => ({
      label,
      source: registryProbe(label),
      bare: BARE,
    })),
  ];
  type Sample = { loadMs: number; workUs: number; renderUs?: number; rss: number };
  const samples = probes.map(() => [] as (Sample & { bare: number })[]);
  for (let r = 0; r < runs; r++) {
    for (const [i, p] of probes.entries()) {
      const bare = await runProbe<{ rss: number }>(p.bare, `${p.label}: bare`);
      const s = await runProbe<Sample>(p.source, p.label);
      samples[i]!.push({ ...s, bare: bare.rss });
    }
  }
  const med = (v: number[]): number => (summarize(v) as Summary).median;
  return probes.map((p, i) => {
    const list = samples[i]!;
    const cost: LibraryCost = {
      label: p.label,
      runs,
      loadMs: round(med(list.map((s) => s.loadMs)), 1),
      extraMiB: round(med(list.map((s) => s.rss - s.bare)), 1),
      workUs: round(med(list.map((s) => s.workUs)), 1),
    };
    if (list[0]!.renderUs !== undefined) {
      cost.renderUs = round(med(list.map((s) => s.renderUs!)), 1);
    }
    return cost;
  });
}

if (import.meta.main) {
  for (const c of await libraryCosts(Number(Deno.args[0] ?? 3))) console.log(JSON.stringify(c));
}
