/**
 * What the commands for people do on the API server: read a pod, write its networks
 * annotation with optimistic concurrency, and look a NetworkAttachmentDefinition up. The
 * write is a JSON merge patch that carries the resourceVersion the edit was made from, so a
 * concurrent change of the pod (someone else's edit of the annotation, the agent's status
 * write) makes it fail with 409 Conflict instead of being lost; the pod is then read again
 * and the edit made again on what is there now.
 *
 * @module
 */
import { sleep } from "../base/backoff.ts";
import { NETWORKS_ANNOTATION } from "../core/annotations.ts";
import { KubeApiError, type KubeClient } from "../kube/client.ts";
import { nadPath } from "../kube/nads.ts";
import { getPod, podPath } from "../kube/pods.ts";

/** A pod as the API server sends it (the fields the commands read). */
export interface PodObject {
  /** Identity, version and annotations. */
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    deletionTimestamp?: string;
    annotations?: Record<string, string> | null;
  };
  /** Where it runs. */
  spec?: { nodeName?: string; hostNetwork?: boolean; readinessGates?: unknown[] };
  /** Its phase and conditions. */
  status?: { phase?: string; conditions?: Record<string, unknown>[] };
}

/** The pod `namespace/name` does not exist. */
export class PodNotFoundError extends Error {
  /** The missing pod's error. */
  constructor(namespace: string, name: string) {
    super(
      `pod ${name} not found in namespace ${namespace}: check the name, or pass its namespace with -n`,
    );
    this.name = "PodNotFoundError";
  }
}

/** Reads pod `namespace/name`; throws {@linkcode PodNotFoundError} when there is none. */
export async function readPod(
  client: KubeClient,
  namespace: string,
  name: string,
  signal?: AbortSignal,
): Promise<PodObject> {
  const pod = await getPod(client, namespace, name, signal);
  if (!pod) throw new PodNotFoundError(namespace, name);
  return pod as PodObject;
}

/** What an edit of the annotation decides, given the pod as it is now. */
export type AnnotationEdit = (pod: PodObject) => { text: string | undefined } | "unchanged";

/** The outcome of {@linkcode editNetworksAnnotation}. */
export interface EditResult {
  /** The pod as the edit was made from. */
  before: PodObject;
  /** The pod as the API server answered the write (or as read, when nothing was written). */
  after: PodObject;
  /** Writes refused with 409 Conflict and made again. */
  conflicts: number;
  /** False when the edit left the annotation as it was. */
  written: boolean;
}

/** Options of {@linkcode editNetworksAnnotation}. */
export interface EditOptions {
  /** Attempts before giving up on conflicts (default 10). */
  maxAttempts?: number;
}

/**
 * Reads pod `namespace/name`, applies `edit` to it and writes the networks annotation it
 * returns (undefined removes it) with the resourceVersion read; on 409 Conflict, reads and
 * edits again. Throws {@linkcode PodNotFoundError}, whatever `edit` throws, and a
 * {@linkcode KubeApiError} for any other refusal.
 */
export async function editNetworksAnnotation(
  client: KubeClient,
  namespace: string,
  name: string,
  edit: AnnotationEdit,
  options: EditOptions = {},
): Promise<EditResult> {
  const maxAttempts = options.maxAttempts ?? 10;
  let conflicts = 0;
  for (let attempt = 1;; attempt++) {
    const before = await readPod(client, namespace, name);
    const decision = edit(before);
    if (decision === "unchanged") return { before, after: before, conflicts, written: false };
    const patch = {
      metadata: {
        resourceVersion: before.metadata?.resourceVersion,
        annotations: { [NETWORKS_ANNOTATION]: decision.text ?? null },
      },
    };
    try {
      const after = await client.json<PodObject>("PATCH", podPath(namespace, name), {
        body: patch,
        contentType: "application/merge-patch+json",
      });
      return { before, after, conflicts, written: true };
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) {
        throw new PodNotFoundError(namespace, name);
      }
      if (!(err instanceof KubeApiError) || err.status !== 409 || attempt >= maxAttempts) {
        throw err;
      }
      conflicts++;
    }
    await sleep(5 + Math.random() * 20 * attempt);
  }
}

/**
 * Whether NetworkAttachmentDefinition `namespace/name` exists: `true`, `false`, or
 * `undefined` when the API server does not let the caller look (403).
 */
export async function nadExists(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<boolean | undefined> {
  try {
    await client.json("GET", nadPath(namespace, name));
    return true;
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return false;
    if (err instanceof KubeApiError && err.status === 403) return undefined;
    throw err;
  }
}
