/**
 * The side effects more than one step of a pass needs: delegate calls (timed for the
 * metrics) and the network-status write. The pass
 * (`reconciler.ts`), one operation (`operation.ts`) and the crash recovery (`recovery.ts`) all
 * act through one {@linkcode Effects}.
 *
 * @module
 */
import { errorText, type Logger } from "../base/log.ts";
import type { CniResult } from "../core/cni_result.ts";
import { type NetworksCondition, withTransition } from "../core/networks_condition.ts";
import { podKey, type PodSnapshot } from "../core/pod.ts";
import { formatNetworkStatus, type NetworkStatus, parseNetworkStatus } from "../core/status.ts";
import { ReconcileError } from "./outcome.ts";
import {
  type DelegateRequest,
  type ReconcilerDeps,
  type StatusBase,
  StatusWriteError,
} from "./ports.ts";

/** What one status write changes, and what it starts from. */
export interface StatusChange {
  /** Network-status as it should be, from the entries as they are; undefined leaves it. */
  record?: (entries: NetworkStatus[]) => NetworkStatus[];
  /** Whether the agent's finalizer should be on the pod; undefined leaves it. */
  finalizer?: boolean;
  /** The agent's condition; undefined leaves it. */
  condition?: NetworksCondition;
  /** The pod as the pass last read or wrote it; undefined: the write reads it first. */
  base?: StatusBase;
}

/** What a step of a pass that acts through its {@linkcode Effects} works with. */
export interface EffectsContext {
  /** The reconciler's ports and settings. */
  deps: ReconcilerDeps;
  /** Delegate calls and status writes. */
  effects: Effects;
  /** The pass's logger (its lines carry the pod's key). */
  log: Logger;
}

/**
 * What became of {@linkcode Effects.writeStatus}: written (or nothing to write); the pod gone;
 * or the pod being deleted without the agent's finalizer, which cannot be added any more.
 */
export type WriteOutcome = "written" | "gone" | "terminating";

/** The pass's effects on the world, over the reconciler's ports. */
export class Effects {
  readonly #deps: ReconcilerDeps;
  readonly #wrote: (key: string, text: string) => void;

  /**
   * Effects over `deps`; `wrote` learns every network-status text just before it is written,
   * so that its echo from the watch is never taken for a change made by someone else.
   */
  constructor(deps: ReconcilerDeps, wrote: (key: string, text: string) => void) {
    this.#deps = deps;
    this.#wrote = wrote;
  }

  /** One delegate call, its duration reported to the observer. Throws what the call throws. */
  async delegate(request: DelegateRequest): Promise<CniResult | undefined> {
    const started = performance.now();
    try {
      return await this.#deps.delegator.delegate(request);
    } finally {
      this.#deps.observer?.delegateDuration?.(
        request.command,
        (performance.now() - started) / 1000,
      );
    }
  }

  /**
   * Writes `change` to `pod` in one update: network-status through `change.record`
   * (undefined leaves it as it is), the finalizer when `change.finalizer` says whether it
   * should be there, and the agent's condition when `change.condition` is set (undefined
   * leaves either as it is), starting from `change.base` when given. The condition keeps its
   * `lastTransitionTime` while its status stays the same.
   *
   * Resolves to `written` (also when nothing needed writing), with the pod as written when
   * known (the base of a next write); to `gone` when the pod was deleted or replaced meanwhile
   * (there is nothing left to record and nothing to retry); to `terminating` when the
   * finalizer was to be added to a pod whose deletion has begun, which the API server refuses:
   * the rest is written without it. Any other failure throws a {@linkcode ReconcileError}
   * (`conflict` when the pod kept changing under the write, else `status-write`), so the pass
   * is retried; only a write refused for a reason an operator must fix is logged at `error`.
   */
  async writeStatus(
    pod: PodSnapshot,
    log: Logger,
    change: StatusChange,
  ): Promise<{ outcome: WriteOutcome; base?: StatusBase }> {
    const { record: mutate, finalizer, condition } = change;
    const key = podKey(pod);
    const now = this.#deps.now ?? Date.now;
    let tooLate = false;
    let update;
    try {
      update = await this.#deps.status.update(
        pod.metadata.namespace,
        pod.metadata.name,
        pod.metadata.uid,
        (current) => {
          tooLate = finalizer === true && !current.finalizer && current.deleting === true;
          const keep = tooLate ? false : finalizer ?? current.finalizer;
          const owned = condition
            ? { condition: withTransition(current.condition, condition, new Date(now())) }
            : {};
          // The finalizer alone: network-status is left as it is, readable or not.
          if (!mutate) return { networkStatus: current.networkStatus, finalizer: keep, ...owned };
          const entries = parseNetworkStatus(current.networkStatus);
          const text = formatNetworkStatus(mutate(entries));
          const same = text === formatNetworkStatus(entries);
          if (!same) this.#wrote(key, text);
          return { networkStatus: same ? current.networkStatus : text, finalizer: keep, ...owned };
        },
        change.base,
      );
    } catch (err) {
      this.#deps.observer?.statusWrite?.(false);
      const failure = err instanceof StatusWriteError ? err.failure : "unavailable";
      if (failure === "refused") {
        log.error(
          "the API server refused to write the pod's status; until an operator fixes the cause, its networks cannot be recorded",
          { err },
        );
      } else {
        log.debug("writing the pod's status failed; the pass is retried", { failure, err });
      }
      throw new ReconcileError(key, [{
        kind: failure === "conflict" ? "conflict" : "status-write",
        text: `network-status write failed: ${errorText(err)}`,
      }]);
    }
    if (update.result === "gone") {
      log.info("pod gone before its network-status was written; nothing to record", {
        reason: update.reason,
      });
      return { outcome: "gone" };
    }
    this.#deps.observer?.statusWrite?.(true);
    const base = update.result === "written" ? update.base : change.base;
    return { outcome: tooLate ? "terminating" : "written", ...(base ? { base } : {}) };
  }
}
