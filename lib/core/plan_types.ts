/**
 * The planner's vocabulary: an attachment's identity, the operations of a plan and why each is
 * there, what the planner refuses, and the plan itself (see `plan.ts` for the planner).
 *
 * @module
 */
import type { NetworkSelectionElement } from "./selection_element.ts";
import { type AttachmentKeyParts, type NetworkStatus, splitNetworkName } from "./status.ts";

/** What the planner needs to know about a pod. */
export interface PodView {
  /** The pod's namespace: the default namespace of its networks. */
  namespace: string;
  /** The pod's name. */
  name: string;
  /** The pod's UID. */
  uid: string;
  /** True for `spec.hostNetwork` pods, which cannot take attachments. */
  hostNetwork: boolean;
  /** True when the pod is being deleted or has finished: it gets no operations. */
  deleting: boolean;
}

/** The identity of an attachment: NetworkAttachmentDefinition namespace and name, and interface. */
export type AttachmentId = AttachmentKeyParts;

/** The text key of an attachment: `"<namespace>/<network>/<interface>"`. */
export function attachmentKey(id: AttachmentId): string {
  return `${id.namespace}/${id.network}/${id.interface}`;
}

/**
 * The attachment a network-status entry records, or undefined when it is not one this program
 * may manage: default entries, entries without an interface, and names that are not
 * `"<namespace>/<nad>"`. A bare `"<nad>"` name (older multus) is read as being in `podNamespace`
 * when one is given.
 */
export function statusAttachmentId(
  entry: NetworkStatus,
  podNamespace?: string,
): AttachmentId | undefined {
  if (entry.default === true) return undefined;
  if (typeof entry.interface !== "string" || entry.interface === "") return undefined;
  if (typeof entry.name !== "string") return undefined;
  const parts = splitNetworkName(entry.name);
  const namespace = parts?.namespace ?? podNamespace;
  if (!parts || namespace === undefined) return undefined;
  return { namespace, network: parts.network, interface: entry.interface };
}

/** Why an attachment is removed. */
export type RemoveReason =
  /** No element of the networks annotation asks for it. */
  | "not-desired"
  /** Its element now asks for other `ips` or another `mac`; it is added again right after. */
  | "changed"
  /** Its interface name now belongs to another network. */
  | "interface-reassigned"
  /** The pod has stopped; the agent releases the attachment it made, freeing its addresses. */
  | "pod-deleted"
  /**
   * A drift check found it missing or altered in the pod; it is added again right after with
   * the same request. Best effort: a failed release does not hold back the add.
   */
  | "drifted";

/** Why an attachment is added. */
export type AddReason =
  /** The pod does not have it yet. */
  | "new"
  /** It replaces the pod's attachment on the same network with other `ips` or `mac`. */
  | "changed"
  /** It takes over an interface name that another network held. */
  | "interface-reassigned"
  /**
   * Not planned: the attachment a change removed is put back, with the request that made it,
   * because the attachment replacing it could not be added.
   */
  | "restored"
  /** A drift check found it missing or altered in the pod: it is added again as asked. */
  | "repair";

/** One step of a plan. Add elements always carry their interface name. */
export type Operation =
  | { kind: "remove"; id: AttachmentId; entry: NetworkStatus; reason: RemoveReason }
  | {
    kind: "add";
    id: AttachmentId;
    element: NetworkSelectionElement;
    reason: AddReason;
    /** For a repair: what the drift check found. */
    found?: string;
  };

/** Kinds of requests the planner refuses. */
export type RefusalCode =
  /** The pod uses the node's network namespace. */
  | "host-network"
  /** Two elements name the same interface. */
  | "duplicate-interface"
  /** The interface name is held by an entry that must not be touched (e.g. the default network). */
  | "interface-in-use";

/** A request the planner will not carry out, and why. */
export interface Refusal {
  /** What kind of refusal. */
  code: RefusalCode;
  /** A sentence naming the element, the problem and the fix. */
  message: string;
  /** Index of the refused element in the networks annotation, when one element is refused. */
  elementIndex?: number;
}

/** An attachment the pod should have, with the interface name it has or will get. */
export interface DesiredAttachment {
  /** Its identity. */
  id: AttachmentId;
  /** The element asking for it, `interface` filled in. */
  element: NetworkSelectionElement;
}

/** The outcome of planning one pod. */
export interface Plan {
  /** Operations in the order they must run: removes first, then adds. */
  operations: Operation[];
  /** Requests not carried out. */
  refusals: Refusal[];
  /** Every attachment the pod should have once the plan is applied, in annotation order. */
  desired: DesiredAttachment[];
}
