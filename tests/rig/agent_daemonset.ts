/**
 * The agent deployed as it ships: `deploy/base` through the rig's overlay
 * (`tests/rig/deploy/`) on a containerd node, `deploy/crio` through `tests/rig/deploy/crio/` on
 * a CRI-O node, with the image of `agent_image.ts` imported into the node's runtime.
 * Each run writes a kustomization of its own on top of the overlay: the image's tag, the
 * hostPaths of the run's runtime socket, multus socket and journal directories, the API server
 * as an IPv6 single-stack cluster would name it (an IPv6 address and a port other than 443,
 * {@linkcode Rig.ipv6ApiEndpoint}) and a free metrics port (the pod shares the node's network).
 *
 * @module
 */
import { AGENT_IMAGE_NAME, type AgentImage, packAgentImage } from "./agent_image.ts";
import { freePort } from "./ports.ts";
import { type Rig, rigCacheDir } from "./mod.ts";
import { waitFor } from "./daemon.ts";

/** The rig's overlay of the product's manifests for each runtime. */
const OVERLAYS = {
  containerd: decodeURIComponent(new URL("./deploy", import.meta.url).pathname),
  crio: decodeURIComponent(new URL("./deploy/crio", import.meta.url).pathname),
} as const;
/** The image the product's DaemonSet names. */
const PRODUCT_IMAGE = "ghcr.io/dynamic-networks-controller/dynamic-networks-controller";
/** The DaemonSet's namespace and name, from `deploy/base`. */
export const AGENT_NAMESPACE = "kube-system";
/** The DaemonSet's name, from `deploy/base`. */
export const AGENT_DAEMONSET = "dynamic-networks-controller-ds";

/** The agent's DaemonSet on a rig. */
export interface AgentDeployment {
  /** The directory of the run's kustomization (`kubectl apply -k` / `delete -k` it). */
  dir: string;
  /** The image the pods run. */
  image: AgentImage;
  /** The agent's metrics and probe port on the node. */
  metricsPort: number;
}

/** `to` relative to the directory `from` (both absolute): kustomize refuses absolute bases. */
function relativePath(from: string, to: string): string {
  const a = from.split("/").filter(Boolean);
  const b = to.split("/").filter(Boolean);
  let common = 0;
  while (common < a.length && common < b.length && a[common] === b[common]) common++;
  return [...a.slice(common).map(() => ".."), ...b.slice(common)].join("/") || ".";
}

/** The run's kustomization in `dir`, on top of the rig's overlay. */
export function runKustomization(
  rig: Rig,
  dir: string,
  image: AgentImage,
  metricsPort: number,
): string {
  // As in an IPv6 single-stack cluster whose API server port is not 443: the image's
  // grants must reach it as it is.
  const api = rig.ipv6ApiEndpoint();
  const criDir = rig.criSocket.replace(/\/[^/]+$/, "");
  const env = [
    { name: "KUBERNETES_SERVICE_HOST", value: api.host },
    { name: "KUBERNETES_SERVICE_PORT", value: `${api.port}` },
    // The kubelet probes the pod's IP, which on the host network is the node IP.
    { name: "DNC_METRICS_ADDRESS", value: `${rig.nodeIp}:${metricsPort}` },
  ];
  const ops = [
    ...env.map((value) => ({ op: "add", path: "/spec/template/spec/containers/0/env/-", value })),
    {
      op: "replace",
      path: "/spec/template/spec/containers/0/ports/0/containerPort",
      value: metricsPort,
    },
    { op: "replace", path: "/spec/template/spec/volumes/1/hostPath/path", value: criDir },
    {
      op: "replace",
      path: "/spec/template/spec/volumes/2/hostPath/path",
      value: rig.multusSocketDir,
    },
    {
      op: "replace",
      path: "/spec/template/spec/volumes/3/hostPath/path",
      value: rig.agentStateDir,
    },
  ];
  // JSON is YAML: the file needs no YAML writer.
  return JSON.stringify(
    {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      resources: [relativePath(dir, OVERLAYS[rig.runtime])],
      images: [{
        name: PRODUCT_IMAGE,
        newName: AGENT_IMAGE_NAME,
        newTag: image.ref.slice(image.ref.lastIndexOf(":") + 1),
      }],
      patches: [{
        target: { kind: "DaemonSet", name: AGENT_DAEMONSET },
        patch: JSON.stringify(ops),
      }],
    },
    null,
    2,
  );
}

/**
 * Packs (or reuses) the agent image, imports it into the rig's runtime and applies the
 * DaemonSet of the runtime's overlay with `kubectl apply -k`. Resolves once the apply is accepted; wait for the pod
 * with {@linkcode waitAgentReady}.
 */
export async function deployAgent(rig: Rig, cacheDir = rigCacheDir()): Promise<AgentDeployment> {
  const image = await packAgentImage(cacheDir);
  await rig.importImage(image.tar, image.ref);
  const metricsPort = freePort();
  const dir = `${rig.dir}/agent-deploy`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/kustomization.yaml`,
    runKustomization(rig, dir, image, metricsPort),
  );
  const applied = await rig.kubectl("apply", "-k", dir);
  if (applied.code !== 0) {
    throw new Error(`kubectl apply -k ${dir} failed:\n${applied.stderr}${applied.stdout}`);
  }
  return { dir, image, metricsPort };
}

/** The parts of an agent pod the rig reads. */
export interface AgentPod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: {
      restartCount: number;
      ready: boolean;
      state?: { terminated?: { exitCode: number; reason?: string } };
      lastState?: { terminated?: { exitCode: number; reason?: string } };
    }[];
  };
}

/** The DaemonSet's pods (those not yet gone). */
export async function agentPods(rig: Rig): Promise<AgentPod[]> {
  const list = await rig.api.request<{ items: AgentPod[] }>(
    "GET",
    `/api/v1/namespaces/${AGENT_NAMESPACE}/pods`,
    undefined,
    { query: { labelSelector: "name=dynamic-networks-controller" } },
  );
  return list.items;
}

/** Waits for one agent pod, not being deleted and not `except`, to be Ready; resolves with it. */
export async function waitAgentReady(
  rig: Rig,
  options: { except?: string; timeoutMs?: number } = {},
): Promise<AgentPod> {
  return await waitFor(
    "an agent pod to be Ready",
    async () => {
      const pods = await agentPods(rig);
      return pods.find((p) =>
        p.metadata.uid !== options.except && !p.metadata.deletionTimestamp &&
        p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      );
    },
    options.timeoutMs ?? 120_000,
    250,
  );
}

/**
 * The PIDs of the processes in an agent pod's container (the controller),
 * found by the pod's UID in their cgroup paths.
 */
export function agentProcesses(pod: AgentPod): { pid: number; cmdline: string }[] {
  const uid = pod.metadata.uid.replaceAll("-", "_");
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cgroup = Deno.readTextFileSync(`/proc/${entry.name}/cgroup`);
      if (!cgroup.includes(pod.metadata.uid) && !cgroup.includes(uid)) continue;
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes("/app/")) found.push({ pid: Number(entry.name), cmdline });
    } catch {
      // exited meanwhile
    }
  }
  return found;
}
