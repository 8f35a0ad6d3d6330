/**
 * NetworkAttachmentDefinitions: a cluster-wide cache, as upstream's lister, kept small by
 * storing only namespace, name, config and resourceVersion. The reconciler reads NADs from
 * it (its `NadSource` port, {@linkcode nadSource}), and its upserts re-queue the pods that wait
 * for a NAD (`reconcile/triggers.ts`).
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import { nadKey, type NetworkAttachmentDefinition } from "../core/nad.ts";
import { objectKey } from "../core/names.ts";
import type { NadSource } from "../reconcile/ports.ts";
import { KubeApiError, type KubeClient } from "./client.ts";
import { kubeListWatch } from "./list_watch.ts";
import { Reflector } from "./reflector.ts";
import { Watcher, type WatcherOptions } from "./watcher.ts";

/** The cluster-wide collection path of NADs. */
export const NADS_PATH = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions";

/** The REST path of one NAD. */
export function nadPath(namespace: string, name: string): string {
  return `/apis/k8s.cni.cncf.io/v1/namespaces/${
    encodeURIComponent(namespace)
  }/network-attachment-definitions/${encodeURIComponent(name)}`;
}

type RawNad = {
  metadata?: { name?: unknown; namespace?: unknown; resourceVersion?: unknown };
  spec?: { config?: unknown };
};

/** Reduces a NAD as sent by the API server to {@linkcode NetworkAttachmentDefinition}. */
export function slimNad(raw: unknown): NetworkAttachmentDefinition | undefined {
  const n = raw as RawNad | null;
  const name = n?.metadata?.name;
  const namespace = n?.metadata?.namespace;
  if (typeof name !== "string" || typeof namespace !== "string" || !name || !namespace) {
    return undefined;
  }
  const nad: NetworkAttachmentDefinition = {
    namespace,
    name,
    config: typeof n?.spec?.config === "string" ? n.spec.config : "",
  };
  if (typeof n?.metadata?.resourceVersion === "string") {
    nad.resourceVersion = n.metadata.resourceVersion;
  }
  return nad;
}

/** Settings of {@linkcode nadInformer} (tests shorten the timers). */
export type NadInformerOptions = Partial<
  Pick<
    WatcherOptions<NetworkAttachmentDefinition>,
    "inactivityMs" | "backoff" | "sleep" | "onError"
  >
>;

/** A cluster-wide cache of NADs, keyed by `namespace/name`. */
export function nadInformer(
  client: KubeClient,
  log: Logger,
  options: NadInformerOptions = {},
): Reflector<NetworkAttachmentDefinition> {
  const nlog = log.with({ resource: "network-attachment-definitions" });
  const watcher = new Watcher<NetworkAttachmentDefinition>(
    kubeListWatch(client, NADS_PATH, { transform: slimNad }),
    {
      ...options,
      name: "network-attachment-definitions",
      versionOf: (n) => n.resourceVersion,
      log: nlog,
    },
  );
  return new Reflector(watcher, {
    name: "network-attachment-definitions",
    keyOf: nadKey,
    versionOf: (n) => n.resourceVersion,
    log: nlog,
  });
}

/** Reads one NAD from the API server; undefined when it does not exist. */
export async function getNad(
  client: KubeClient,
  namespace: string,
  name: string,
  signal?: AbortSignal,
): Promise<NetworkAttachmentDefinition | undefined> {
  try {
    return slimNad(await client.json("GET", nadPath(namespace, name), { signal }));
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

/** The reconciler's {@linkcode NadSource}: the informer's cache. */
export function nadSource(informer: Reflector<NetworkAttachmentDefinition>): NadSource {
  return { get: (namespace, name) => informer.get(objectKey(namespace, name)) };
}
