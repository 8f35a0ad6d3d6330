/**
 * The checks behind `/healthz` and `/readyz` (served by `http.ts`): liveness is "no reconcile
 * has been running far beyond every call's time limit"; readiness is "both caches synced, the
 * CRI runtime and multus answer". The socket probes are slow, so each runs at most once per
 * {@linkcode PROBE_TTL_MS} and its last answer is reused meanwhile.
 *
 * @module
 */
import { errorText } from "../base/log.ts";
import type { HealthChecks } from "./http.ts";

/** How long a cached socket probe result stays valid for `/readyz`, in ms. */
export const PROBE_TTL_MS = 5_000;

/** What the checks look at. */
export interface HealthSources {
  /** True once the pod cache is filled. */
  podsSynced: () => boolean;
  /** True once the NAD cache is filled. */
  nadsSynced: () => boolean;
  /** Resolves when the CRI runtime answers (its `Version` call). */
  criAnswers: () => Promise<unknown>;
  /** Resolves to true when multus answers its health check. */
  multusHealthy: () => Promise<boolean>;
  /** multus' socket, named in the failure reason. */
  multusSocketPath: string;
  /** How long the oldest reconcile in flight has been running, in ms. */
  longestRunningMs: () => number;
  /** A reconcile running longer than this, in ms, means the loop is wedged. */
  wedgedAfterMs: number;
  /** Monotonic clock in ms (default `Date.now`); injectable for tests. */
  now?: () => number;
}

/** A check whose (slow) probe runs at most once per `ttlMs`: undefined when it passed. */
function cachedProbe(
  probe: () => Promise<void>,
  ttlMs: number,
  now: () => number,
): () => Promise<string | undefined> {
  let checkedAt = -Infinity;
  let last: string | undefined = "not checked yet";
  return async () => {
    if (now() - checkedAt < ttlMs) return last;
    try {
      await probe();
      last = undefined;
    } catch (err) {
      last = errorText(err);
    }
    checkedAt = now();
    return last;
  };
}

/** The controller's liveness and readiness checks over `sources`. */
export function healthChecks(sources: HealthSources): HealthChecks {
  const now = sources.now ?? Date.now;
  const criReachable = cachedProbe(
    async () => {
      await sources.criAnswers();
    },
    PROBE_TTL_MS,
    now,
  );
  const multusReachable = cachedProbe(
    async () => {
      if (!await sources.multusHealthy()) {
        throw new Error(`multus at ${sources.multusSocketPath} is unhealthy`);
      }
    },
    PROBE_TTL_MS,
    now,
  );
  return {
    live: () => {
      const longest = sources.longestRunningMs();
      return longest > sources.wedgedAfterMs
        ? { ok: false, reasons: [`a reconcile has been running for ${longest} ms`] }
        : { ok: true, reasons: [] };
    },
    ready: async () => {
      const reasons: string[] = [];
      if (!sources.podsSynced()) reasons.push("pod cache not synced");
      if (!sources.nadsSynced()) reasons.push("NetworkAttachmentDefinition cache not synced");
      const criProblem = await criReachable();
      if (criProblem) reasons.push(`CRI: ${criProblem}`);
      const multusProblem = await multusReachable();
      if (multusProblem) reasons.push(`multus: ${multusProblem}`);
      return { ok: reasons.length === 0, reasons };
    },
  };
}
