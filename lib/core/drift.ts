/**
 * Drift: an attachment network-status records that a CNI CHECK found missing or altered in the
 * pod (its link deleted, its master gone, its address removed). Pure: what to plan for the
 * drifted attachments of a pod when the agent repairs them.
 *
 * @module
 */
import { type AttachmentId, attachmentKey, type Plan, statusAttachmentId } from "./plan_types.ts";
import type { NetworkStatus } from "./status.ts";

/** One drifted attachment and what the check found. */
export interface Drift {
  /** The attachment. */
  id: AttachmentId;
  /** The check's error, as the plugin said it. */
  found: string;
  /**
   * The network-status text the check was made against. A pass acts on the drift only while
   * network-status still says the same: a pass that changed the pod meanwhile may have been
   * what the check saw.
   */
  seenIn?: string;
}

/**
 * `plan` with a repair for each of `drifts` that the pod still asks for and network-status
 * (`entries`) still records, and that the plan does not already change: a removal (reason
 * `drifted`, among the removals) and an add of the same element (reason `repair`, among the
 * adds), so the attachment is made again with the same request.
 */
export function withRepairs(
  plan: Plan,
  drifts: readonly Drift[],
  entries: readonly NetworkStatus[],
  podNamespace: string,
): Plan {
  if (drifts.length === 0) return plan;
  const touched = new Set(plan.operations.map((op) => op.id.interface));
  const removes = plan.operations.filter((op) => op.kind === "remove");
  const adds = plan.operations.filter((op) => op.kind === "add");
  for (const drift of drifts) {
    const key = attachmentKey(drift.id);
    if (touched.has(drift.id.interface)) continue;
    const desired = plan.desired.find((d) => attachmentKey(d.id) === key);
    const entry = entries.find((e) => {
      const id = statusAttachmentId(e, podNamespace);
      return id !== undefined && attachmentKey(id) === key;
    });
    if (!desired || !entry) continue;
    touched.add(drift.id.interface);
    removes.push({ kind: "remove", id: drift.id, entry, reason: "drifted" });
    adds.push({
      kind: "add",
      id: drift.id,
      element: desired.element,
      reason: "repair",
      found: drift.found,
    });
  }
  return { ...plan, operations: [...removes, ...adds] };
}
