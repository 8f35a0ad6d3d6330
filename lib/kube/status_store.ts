/**
 * Writes a pod's `k8s.v1.cni.cncf.io/network-status` annotation the way upstream does (and
 * its RBAC allows), with the agent's finalizer and its condition (`NETWORKS_READY_CONDITION`,
 * among `status.conditions`) in the same write: a fresh GET of the pod (or the pass's own fresh
 * read of it, when one is kept in `fresh_reads.ts`), then a PUT of the whole object to
 * `/api/v1/namespaces/{ns}/pods/{name}/status` (which keeps spec, deletionTimestamp and
 * ownerReferences as they are, and takes the rest of metadata). The pod the PUT answers is
 * kept in the same way, as the base of the pass's next write (the record that follows an
 * announcement). The resourceVersion of the base makes the PUT conditional, so a concurrent change is never overwritten: on 409 Conflict the pod is
 * read again and the caller's `mutate` applied again to what is there now. A pod that is gone,
 * or was replaced by another of the same name, is an outcome (`gone`), not an error: the
 * reconciler has nothing left to record for it.
 *
 * @module
 */
import { sleep } from "../base/backoff.ts";
import {
  type OwnedStatus,
  type StatusStore,
  type StatusUpdate,
  StatusWriteError,
  type StatusWriteFailure,
} from "../reconcile/ports.ts";
import { KubeApiError, type KubeClient } from "./client.ts";
import { NETWORK_STATUS_ANNOTATION, RELEASE_FINALIZER } from "../core/annotations.ts";
import {
  findNetworksCondition,
  sameCondition,
  setNetworksCondition,
} from "../core/networks_condition.ts";
import { podPath } from "./pods.ts";
import type { FreshPodReads } from "./fresh_reads.ts";

/** Options of {@linkcode updateNetworkStatus}. */
export interface StatusWriteOptions {
  /** Attempts before giving up on conflicts (default 5, as client-go's DefaultRetry). */
  maxAttempts?: number;
  /** Pause between attempts in ms (default 10, ±10 % jitter, as DefaultRetry). */
  retryDelayMs?: number;
  /** Aborts the write. */
  signal?: AbortSignal;
  /** Called for every PUT refused with 409 Conflict (whether or not it is retried). */
  onConflict?: () => void;
  /**
   * Fresh reads to start from: the first attempt uses the pod's kept read instead of a GET
   * when it leads to a write (a read that finds nothing to write, or another uid, is made
   * again, so that those outcomes always come from a read of the pod as it is now).
   */
  reads?: FreshPodReads;
}

/** The outcome of {@linkcode updateNetworkStatus}: the port's outcome, and how it went. */
export type StatusWriteResult = StatusUpdate & {
  /** GETs and PUTs made (for tests and metrics). */
  attempts: number;
  /** The pod's resourceVersion after the write (or as read, when nothing was written). */
  resourceVersion?: string;
};

type PodObject = {
  metadata?: {
    uid?: string;
    resourceVersion?: string;
    annotations?: Record<string, string> | null;
    finalizers?: string[] | null;
    deletionTimestamp?: string | null;
  };
  status?: { conditions?: Record<string, unknown>[] | null };
};

/**
 * Applies `mutate` to the pod's network-status annotation (undefined when absent), the
 * presence of the agent's finalizer and the agent's condition (`NETWORKS_READY_CONDITION`),
 * and writes the result when it differs; an undefined
 * annotation removes it. Other annotations, finalizers, conditions and fields are written back as read. Resolves to `gone` (nothing written) when
 * the pod does not exist or its uid is not `uid`. Throws a {@linkcode KubeApiError} when the
 * API refuses the write (409 after `maxAttempts`), and whatever `mutate` throws.
 */
export async function updateNetworkStatus(
  client: KubeClient,
  namespace: string,
  name: string,
  uid: string,
  mutate: (current: OwnedStatus) => OwnedStatus,
  options: StatusWriteOptions = {},
): Promise<StatusWriteResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  const delay = options.retryDelayMs ?? 10;
  const path = podPath(namespace, name);
  const write = async (pod: PodObject, attempt: number) => {
    const outcome = await writeOnto(client, path, pod, uid, mutate, options, attempt);
    // The pod as written is the base of the pass's next write (the record after an
    // announcement), as a fresh read would be.
    if (outcome.result === "written" && outcome.pod) {
      options.reads?.put(namespace, name, outcome.pod);
    }
    return outcome;
  };
  const kept = options.reads?.take(namespace, name) as PodObject | undefined;
  for (let attempt = 1;; attempt++) {
    let outcome = attempt === 1 && kept ? await write(kept, attempt) : undefined;
    // A kept read counts only when it leads to a PUT: another uid and nothing to write are
    // answered from a read of the pod as it is now.
    const decidedByRead = outcome?.result === "unchanged" ||
      (outcome?.result === "gone" && outcome.reason === "UidChanged");
    if (outcome === undefined || decidedByRead) {
      let pod: PodObject;
      try {
        pod = await client.json<PodObject>("GET", path, { signal: options.signal });
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 404) {
          return { result: "gone", reason: "NotFound", attempts: attempt };
        }
        throw err;
      }
      outcome = await write(pod, attempt);
    }
    if (outcome.result !== "conflict") return outcome;
    options.onConflict?.();
    if (attempt >= maxAttempts) throw outcome.error;
    await sleep(delay * (0.9 + 0.2 * Math.random()), options.signal);
  }
}

/**
 * One attempt: `mutate` applied to `pod` as read, and a PUT of the result when it changed
 * anything; a 409 Conflict is an outcome, for the caller to read the pod again.
 */
async function writeOnto(
  client: KubeClient,
  path: string,
  pod: PodObject,
  uid: string,
  mutate: (current: OwnedStatus) => OwnedStatus,
  options: StatusWriteOptions,
  attempt: number,
): Promise<
  (StatusWriteResult & { pod?: PodObject }) | { result: "conflict"; error: KubeApiError }
> {
  const meta = pod.metadata ??= {};
  if (meta.uid !== uid) return { result: "gone", reason: "UidChanged", attempts: attempt };
  const finalizers = meta.finalizers ?? [];
  const current: OwnedStatus = {
    networkStatus: meta.annotations?.[NETWORK_STATUS_ANNOTATION],
    finalizer: finalizers.includes(RELEASE_FINALIZER),
    deleting: typeof meta.deletionTimestamp === "string",
  };
  const condition = findNetworksCondition(pod.status?.conditions);
  if (condition !== undefined) current.condition = condition;
  const next = mutate(current);
  const conditionChanged = next.condition !== undefined &&
    !(sameCondition(next.condition, condition) &&
      next.condition.lastTransitionTime === condition?.lastTransitionTime);
  if (
    next.networkStatus === current.networkStatus && next.finalizer === current.finalizer &&
    !conditionChanged
  ) {
    return { result: "unchanged", attempts: attempt, resourceVersion: meta.resourceVersion };
  }
  if (conditionChanged) {
    const status = pod.status ??= {};
    status.conditions = setNetworksCondition(status.conditions ?? undefined, next.condition!);
  }
  if (next.networkStatus !== current.networkStatus) {
    const annotations = { ...(meta.annotations ?? {}) };
    if (next.networkStatus === undefined) delete annotations[NETWORK_STATUS_ANNOTATION];
    else annotations[NETWORK_STATUS_ANNOTATION] = next.networkStatus;
    meta.annotations = annotations;
  }
  if (next.finalizer !== current.finalizer) {
    meta.finalizers = next.finalizer
      ? [...finalizers, RELEASE_FINALIZER]
      : finalizers.filter((f) => f !== RELEASE_FINALIZER);
  }
  try {
    const written = await client.json<PodObject>("PUT", `${path}/status`, {
      body: pod,
      signal: options.signal,
    });
    return {
      result: "written",
      attempts: attempt,
      resourceVersion: written.metadata?.resourceVersion,
      pod: written,
    };
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) {
      return { result: "gone", reason: "NotFound", attempts: attempt };
    }
    if (err instanceof KubeApiError && err.status === 409) {
      return { result: "conflict", error: err };
    }
    throw err;
  }
}

/** The reconciler's {@linkcode StatusStore} on the API server. */
export class KubeStatusStore implements StatusStore {
  readonly #client: KubeClient;
  readonly #options: StatusWriteOptions;

  /** A store writing through `client`; `options` apply to every update. */
  constructor(client: KubeClient, options: StatusWriteOptions = {}) {
    this.#client = client;
    this.#options = options;
  }

  /** {@inheritDoc StatusStore.update} */
  async update(
    namespace: string,
    name: string,
    uid: string,
    mutate: (current: OwnedStatus) => OwnedStatus,
  ): Promise<StatusUpdate> {
    let written;
    try {
      written = await updateNetworkStatus(
        this.#client,
        namespace,
        name,
        uid,
        mutate,
        this.#options,
      );
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      throw new StatusWriteError(err.message, writeFailure(err.status), { cause: err });
    }
    return written.result === "gone"
      ? { result: "gone", reason: written.reason }
      : { result: written.result };
  }
}

/**
 * What an HTTP status refusing a status write calls for: a conflict is a race the next pass
 * wins; 400, 401, 403 and 422 (bad credentials, missing RBAC, an admission policy's denial)
 * stay until an operator acts; anything else (429, 5xx) passes.
 */
function writeFailure(status: number): StatusWriteFailure {
  if (status === 409) return "conflict";
  return [400, 401, 403, 422].includes(status) ? "refused" : "unavailable";
}
