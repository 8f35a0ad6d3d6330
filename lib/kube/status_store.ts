/**
 * Writes a pod's `k8s.v1.cni.cncf.io/network-status` annotation the way upstream does (and
 * its RBAC allows), with the agent's finalizer and its condition (`NETWORKS_READY_CONDITION`,
 * among `status.conditions`) in the same write: from the base the pass gives (its fresh read,
 * or the pod its last write answered; `pod_base.ts`), else from a GET of the pod, a PUT of the
 * whole object to `/api/v1/namespaces/{ns}/pods/{name}/status` (which keeps spec,
 * deletionTimestamp and ownerReferences as they are, and takes the rest of metadata). The pod
 * the PUT answers is the base of the pass's next write (the record that follows an
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
  type StatusBase,
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
import { PodBase } from "./pod_base.ts";

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
}

/** The outcome of {@linkcode updateNetworkStatus}: the port's outcome, and how it went. */
export type StatusWriteResult = StatusUpdate & {
  /** GETs and PUTs made (for tests and metrics). */
  attempts: number;
  /** The pod's resourceVersion after the write (or as read, when nothing was written). */
  resourceVersion?: string;
  /** The pod as written: the base of the next write. */
  base?: PodBase;
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
 * annotation removes it. Other annotations, finalizers, conditions and fields are written back
 * as read. Starts from `base` when given, else from a GET. Resolves to `gone` (nothing written)
 * when the pod does not exist or its uid is not `uid`. Throws a {@linkcode KubeApiError} when
 * the API refuses the write (409 after `maxAttempts`), and whatever `mutate` throws.
 */
export async function updateNetworkStatus(
  client: KubeClient,
  namespace: string,
  name: string,
  uid: string,
  mutate: (current: OwnedStatus) => OwnedStatus,
  options: StatusWriteOptions = {},
  base?: PodBase,
): Promise<StatusWriteResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  const delay = options.retryDelayMs ?? 10;
  const path = podPath(namespace, name);
  const write = (pod: PodObject, attempt: number) =>
    writeOnto(client, path, pod, uid, mutate, options, attempt);
  // A copy: the attempt writes its changes into the object it starts from.
  const kept = base ? structuredClone(base.object) as PodObject : undefined;
  for (let attempt = 1;; attempt++) {
    let outcome = attempt === 1 && kept ? await write(kept, attempt) : undefined;
    // A base counts only when it leads to a PUT: another uid and nothing to write are
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
): Promise<StatusWriteResult | { result: "conflict"; error: KubeApiError }> {
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
      base: new PodBase(written as Record<string, unknown>),
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
    base?: StatusBase,
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
        // A base from elsewhere (none is) names a version only: the write starts from a read.
        base instanceof PodBase ? base : undefined,
      );
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      throw new StatusWriteError(err.message, writeFailure(err.status), { cause: err });
    }
    if (written.result === "gone") return { result: "gone", reason: written.reason };
    if (written.result === "unchanged") return { result: "unchanged" };
    return written.base ? { result: "written", base: written.base } : { result: "written" };
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
