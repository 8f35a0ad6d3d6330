/**
 * Pods: the node-scoped informer, a fresh read, and the reconciler's {@linkcode PodSource}
 * over both.
 *
 * The informer lists and watches `/api/v1/pods` with the field selector
 * `spec.nodeName=<node>` only (not `status.phase=Running` as upstream: a pod that is still
 * Pending or already finished must be seen too). Each pod is reduced at ingestion to the few
 * fields the controller reads, which keeps a node's cache to a few hundred bytes per pod.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import {
  NETWORK_STATUS_ANNOTATION,
  NETWORKS_ANNOTATION,
  RELEASE_FINALIZER,
} from "../core/annotations.ts";
import { findNetworksCondition, NETWORKS_READY_CONDITION } from "../core/networks_condition.ts";
import type { PodSnapshot } from "../core/pod.ts";
import type { FreshPod, PodSource } from "../reconcile/ports.ts";
import { KubeApiError, type KubeClient } from "./client.ts";
import { PodBase } from "./pod_base.ts";
import { kubeListWatch } from "./list_watch.ts";
import { Reflector } from "./reflector.ts";
import { Watcher, type WatcherOptions } from "./watcher.ts";

/** The annotations kept in the cache; all others are dropped at ingestion. */
export const CACHED_ANNOTATIONS: readonly string[] = [
  NETWORKS_ANNOTATION,
  NETWORK_STATUS_ANNOTATION,
];

/** The cached shape of a pod: what the reconciler reads, and the generation. */
export interface Pod extends PodSnapshot {
  /** The snapshot's metadata, with only the cached annotations and the generation. */
  metadata: PodSnapshot["metadata"] & {
    /** Only {@linkcode CACHED_ANNOTATIONS}; absent when the pod has none of them. */
    annotations?: Record<string, string>;
    generation?: number;
  };
}

type RawPod = {
  metadata?: {
    name?: unknown;
    namespace?: unknown;
    uid?: unknown;
    resourceVersion?: unknown;
    deletionTimestamp?: unknown;
    annotations?: Record<string, unknown>;
    generation?: unknown;
    finalizers?: unknown;
  };
  spec?: { nodeName?: unknown; hostNetwork?: unknown; readinessGates?: unknown };
  status?: { phase?: unknown; conditions?: unknown };
};

const str = (v: unknown): string | undefined => typeof v === "string" ? v : undefined;

/**
 * Reduces a pod as sent by the API server to {@linkcode Pod}; undefined when it lacks a
 * name, namespace or uid. The result shares no object with the input.
 */
export function slimPod(raw: unknown): Pod | undefined {
  const p = raw as RawPod | null;
  const m = p?.metadata;
  const name = str(m?.name);
  const namespace = str(m?.namespace);
  const uid = str(m?.uid);
  if (!name || !namespace || !uid) return undefined;
  const metadata: Pod["metadata"] = { name, namespace, uid };
  const rv = str(m?.resourceVersion);
  if (rv !== undefined) metadata.resourceVersion = rv;
  const deletion = str(m?.deletionTimestamp);
  if (deletion !== undefined) metadata.deletionTimestamp = deletion;
  if (typeof m?.generation === "number") metadata.generation = m.generation;
  if (Array.isArray(m?.finalizers) && m.finalizers.includes(RELEASE_FINALIZER)) {
    metadata.holdsFinalizer = true;
  }
  if (m?.annotations) {
    for (const key of CACHED_ANNOTATIONS) {
      const v = m.annotations[key];
      if (typeof v === "string") (metadata.annotations ??= {})[key] = v;
    }
  }
  const spec: Pod["spec"] = {};
  const nodeName = str(p?.spec?.nodeName);
  if (nodeName !== undefined) spec.nodeName = nodeName;
  if (p?.spec?.hostNetwork === true) spec.hostNetwork = true;
  const gates = p?.spec?.readinessGates;
  if (
    Array.isArray(gates) && gates.some((g) => g?.conditionType === NETWORKS_READY_CONDITION)
  ) {
    spec.networksGate = true;
  }
  const pod: Pod = { metadata, spec };
  const phase = str(p?.status?.phase);
  if (phase !== undefined) pod.status = { phase };
  const condition = findNetworksCondition(p?.status?.conditions);
  if (condition !== undefined) (pod.status ??= {}).networksCondition = condition;
  return pod;
}

/** Settings of {@linkcode podInformer} (tests shorten the timers). */
export type PodInformerOptions = Partial<
  Pick<WatcherOptions<Pod>, "inactivityMs" | "backoff" | "sleep" | "onError">
>;

/** A cache of the pods scheduled to `nodeName`, kept current by list+watch. */
export function podInformer(
  client: KubeClient,
  nodeName: string,
  log: Logger,
  options: PodInformerOptions = {},
): Reflector<Pod> {
  if (nodeName === "") {
    throw new Error("node name is empty: set NODE_NAME (from spec.nodeName) or pass --node-name");
  }
  const transport = kubeListWatch(client, "/api/v1/pods", {
    fieldSelector: `spec.nodeName=${nodeName}`,
    transform: slimPod,
  });
  const plog = log.with({ resource: "pods" });
  const watcher = new Watcher<Pod>(transport, {
    ...options,
    name: "pods",
    versionOf: (p) => p.metadata.resourceVersion,
    log: plog,
  });
  return new Reflector(watcher, { name: "pods", log: plog });
}

/** The full pod `namespace/name` as the API server has it now, or undefined when it is gone. */
export async function getPod(
  client: KubeClient,
  namespace: string,
  name: string,
  signal?: AbortSignal,
): Promise<Record<string, unknown> | undefined> {
  try {
    return await client.json<Record<string, unknown>>("GET", podPath(namespace, name), { signal });
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

/** The REST path of a pod. */
export function podPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
}

/**
 * The reconciler's {@linkcode PodSource}: the informer's cache, and a fresh GET, slimmed alike;
 * a fresh read also carries the whole object, as the base of the pass's status write.
 */
export function podSource(client: KubeClient, informer: Reflector<Pod>): PodSource {
  return {
    cached: (key) => informer.get(key),
    fetch: async (namespace, name): Promise<FreshPod | undefined> => {
      const object = await getPod(client, namespace, name);
      const pod = slimPod(object);
      return object && pod ? { pod, base: new PodBase(object) } : undefined;
    },
  };
}
