/**
 * A pod as the domain sees it: the few fields a reconcile pass reads, whichever adapter
 * produced them (the informer's slimmed cache, a fresh read), and the facts derived from them.
 *
 * @module
 */
import { objectKey } from "./names.ts";
import type { NetworksCondition } from "./networks_condition.ts";

/** The parts of a Pod the reconciler reads. */
export interface PodSnapshot {
  /** Identity, version, deletion and the annotations the agent reads. */
  metadata: {
    /** `metadata.name`. */
    name: string;
    /** `metadata.namespace`. */
    namespace: string;
    /** `metadata.uid`: a pod re-created under the same name has another. */
    uid: string;
    /** `metadata.resourceVersion`, when known. */
    resourceVersion?: string;
    /** Set once the pod is being deleted. */
    deletionTimestamp?: string;
    /** The networks and network-status annotations (others may be absent). */
    annotations?: Record<string, string>;
    /** True when the agent's own finalizer (`RELEASE_FINALIZER`) is on the pod. */
    holdsFinalizer?: boolean;
  };
  /**
   * Where the pod runs, whether it has a network namespace of its own, and whether one of its
   * `readinessGates` is the agent's condition (`NETWORKS_READY_CONDITION`).
   */
  spec: { nodeName?: string; hostNetwork?: boolean; networksGate?: boolean };
  /**
   * The pod's phase (`Pending`, `Running`, `Succeeded`, `Failed`), and the agent's own
   * condition (`NETWORKS_READY_CONDITION`) when the pod has it.
   */
  status?: { phase?: string; networksCondition?: NetworksCondition };
}

/** The pod's key, `"<namespace>/<name>"`: its work-queue key and cache key. */
export function podKey(pod: Pick<PodSnapshot, "metadata">): string {
  return objectKey(pod.metadata.namespace, pod.metadata.name);
}

/** True when the pod's sandbox is gone or going: its attachments are to be released. */
export function isFinished(pod: PodSnapshot): boolean {
  const phase = pod.status?.phase;
  return pod.metadata.deletionTimestamp !== undefined || phase === "Succeeded" ||
    phase === "Failed";
}

/** True when a pass may act on the pod: it runs, or it is finished and has things to release. */
export function isActionable(pod: PodSnapshot): boolean {
  return isFinished(pod) || pod.status?.phase === "Running";
}
