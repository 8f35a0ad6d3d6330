/**
 * Writes a pod's `k8s.v1.cni.cncf.io/network-status` annotation the way upstream does (and
 * its RBAC allows): a fresh GET of the pod, then a PUT of the whole object to
 * `/api/v1/namespaces/{ns}/pods/{name}/status`. The resourceVersion from the GET makes the
 * PUT conditional, so a concurrent change is never overwritten: on 409 Conflict the pod is
 * read again and the caller's `mutate` applied again to what is there now.
 *
 * @module
 */
import { sleep } from "../base/backoff.ts";
import { KubeApiError, type KubeClient } from "./client.ts";
import { NETWORK_STATUS_ANNOTATION } from "../core/annotations.ts";
import { podPath } from "./pods.ts";

/** Options of {@linkcode updateNetworkStatus}. */
export interface StatusWriteOptions {
  /** Attempts before giving up on conflicts (default 5, as client-go's DefaultRetry). */
  maxAttempts?: number;
  /** Pause between attempts in ms (default 10, ±10 % jitter, as DefaultRetry). */
  retryDelayMs?: number;
  /** Aborts the write. */
  signal?: AbortSignal;
  /** Called between the GET and the PUT of every attempt; tests use it to cause conflicts. */
  beforeWrite?: (attempt: number) => Promise<void> | void;
  /** Called for every PUT refused with 409 Conflict (whether or not it is retried). */
  onConflict?: () => void;
}

/** The outcome of {@linkcode updateNetworkStatus}. */
export interface StatusWriteResult {
  /** True when a PUT was accepted; false when `mutate` left the annotation as it was. */
  written: boolean;
  /** GETs and PUTs made (for tests and metrics). */
  attempts: number;
  /** The pod's resourceVersion after the write (or as read, when nothing was written). */
  resourceVersion?: string;
}

/** The pod is gone or was replaced by another pod of the same name: stop working on it. */
export class PodReplacedError extends Error {
  /** `NotFound` when the pod is gone, `UidChanged` when a new pod took its name. */
  readonly reason: "NotFound" | "UidChanged";
  /** Describes what happened to pod `namespace/name` with uid `uid`. */
  constructor(namespace: string, name: string, uid: string, found?: string) {
    super(
      found === undefined
        ? `pod ${namespace}/${name} (uid ${uid}) no longer exists: its network-status is not written`
        : `pod ${namespace}/${name} now has uid ${found}, not ${uid}: it was re-created, so the old pod's network-status is not written`,
    );
    this.name = "PodReplacedError";
    this.reason = found === undefined ? "NotFound" : "UidChanged";
  }
}

type PodObject = {
  metadata?: {
    uid?: string;
    resourceVersion?: string;
    annotations?: Record<string, string> | null;
  };
};

/**
 * Applies `mutate` to the pod's current network-status annotation (undefined when absent)
 * and writes the result when it differs; returning undefined removes the annotation. Other
 * annotations and fields are written back as read. Throws {@linkcode PodReplacedError} when
 * the pod is gone or its uid is not `uid`, a {@linkcode KubeApiError} when the API refuses
 * the write (409 after `maxAttempts`), and whatever `mutate` throws.
 */
export async function updateNetworkStatus(
  client: KubeClient,
  namespace: string,
  name: string,
  uid: string,
  mutate: (current: string | undefined) => string | undefined,
  options: StatusWriteOptions = {},
): Promise<StatusWriteResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  const delay = options.retryDelayMs ?? 10;
  const path = podPath(namespace, name);
  for (let attempt = 1;; attempt++) {
    let pod: PodObject;
    try {
      pod = await client.json<PodObject>("GET", path, { signal: options.signal });
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) {
        throw new PodReplacedError(namespace, name, uid);
      }
      throw err;
    }
    const meta = pod.metadata ??= {};
    if (meta.uid !== uid) throw new PodReplacedError(namespace, name, uid, meta.uid ?? "");
    const current = meta.annotations?.[NETWORK_STATUS_ANNOTATION];
    const next = mutate(current);
    if (next === current) {
      return { written: false, attempts: attempt, resourceVersion: meta.resourceVersion };
    }
    const annotations = { ...(meta.annotations ?? {}) };
    if (next === undefined) delete annotations[NETWORK_STATUS_ANNOTATION];
    else annotations[NETWORK_STATUS_ANNOTATION] = next;
    meta.annotations = annotations;
    await options.beforeWrite?.(attempt);
    try {
      const written = await client.json<PodObject>("PUT", `${path}/status`, {
        body: pod,
        signal: options.signal,
      });
      return {
        written: true,
        attempts: attempt,
        resourceVersion: written.metadata?.resourceVersion,
      };
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) {
        throw new PodReplacedError(namespace, name, uid);
      }
      if (!(err instanceof KubeApiError) || err.status !== 409) throw err;
      options.onConflict?.();
      if (attempt >= maxAttempts) throw err;
    }
    await sleep(delay * (0.9 + 0.2 * Math.random()), options.signal);
  }
}
