/**
 * The pod condition the agent keeps on every pod that asks for networks,
 * {@linkcode NETWORKS_READY_CONDITION}: `True` once every element of the networks annotation
 * is attached as asked, `False` with a reason and the Event's words while one is not. It is
 * what `kubectl wait --for=condition=…` and a pod's `readinessGates` follow.
 *
 * Pure: the reconciler collects what a pass found, this module turns it into the condition,
 * and the status store writes it with network-status.
 *
 * @module
 */
import {
  DRIFTED_REASON,
  EventReason,
  failedAddingInterfacesMessage,
  failedRemovingInterfacesMessage,
  type InterfaceItem,
  INVALID_SELECTION_REASON,
  INVALID_STATUS_REASON,
  listSome,
} from "./event_messages.ts";

/** The condition's type: qualified with the project's own prefix, so it never meets another's. */
export const NETWORKS_READY_CONDITION = "dynamic-networks-controller.io/NetworksReady";

/** The condition's reasons. */
export const NetworksReadyReason = {
  /** Every element of the annotation is attached as asked (or none is asked for any more). */
  Attached: "Attached",
  /** The agent has work left that waits for the pod's sandbox. */
  Pending: "Pending",
  /** The agent is adding attachments the annotation asks for (and may be removing others). */
  Attaching: "Attaching",
  /** The agent is removing attachments the annotation no longer asks for. */
  Detaching: "Detaching",
  /** An element names a NetworkAttachmentDefinition that does not exist (yet). */
  NetworkNotFound: "NetworkNotFound",
  /** The annotation cannot be read, or an element of it cannot be honoured as written. */
  InvalidNetworkSelection: "InvalidNetworkSelection",
  /** The pod runs in the node's network namespace: nothing can be plugged into it. */
  InterfaceAddRejected: "InterfaceAddRejected",
  /** An attachment could not be added. */
  AttachFailed: "AttachFailed",
  /** An attachment could not be removed. */
  DetachFailed: "DetachFailed",
  /** A drift check found an attachment missing or altered, and repair is off. */
  Drifted: "Drifted",
} as const;
/** One of {@linkcode NetworksReadyReason}. */
export type NetworksReadyReason = typeof NetworksReadyReason[keyof typeof NetworksReadyReason];

/** The condition as the agent keeps it (the type is always {@linkcode NETWORKS_READY_CONDITION}). */
export interface NetworksCondition {
  /** `True` when every requested network is attached. */
  status: "True" | "False";
  /** Why, in one word. */
  reason: NetworksReadyReason;
  /** The interfaces, networks and errors concerned, in the words of the pod's Events. */
  message: string;
  /** When `status` last changed (RFC 3339); set by {@linkcode withTransition}. */
  lastTransitionTime?: string;
}

/** What one pass found about a pod's networks, for {@linkcode networksCondition}. */
export interface NetworksFindings {
  /** The pod's key, `namespace/name` (messages start with `pod [<key>]: `). */
  podKey: string;
  /** The attachments the annotation asks for, when it could be planned. */
  desired: readonly { interface: string; network: string }[];
  /** Pod-level problems (an invalid annotation, a host-network pod), as their Events say them. */
  notices?: readonly { reason: string; message: string }[];
  /** Elements the planner refused, one sentence each. */
  refusals?: readonly string[];
  /** Adds that failed (their `error` set). */
  addFailed?: readonly InterfaceItem[];
  /** Adds that wait for a NetworkAttachmentDefinition to exist. */
  missingNad?: readonly InterfaceItem[];
  /** Removals that failed. */
  removeFailed?: readonly InterfaceItem[];
  /** What the pass waits for before it can act (e.g. `a pod sandbox`), when it is blocked. */
  waitingFor?: string;
  /** The attachments the pass is about to add and remove, once it can act. */
  changing?: {
    attach: readonly { interface: string; network: string }[];
    detach: readonly { interface: string; network: string }[];
  };
}

/** True when `condition` says that work is under way or waited for, not that something failed. */
export function inProgress(condition: NetworksCondition | undefined): boolean {
  const reason = condition?.reason;
  return reason === NetworksReadyReason.Pending || reason === NetworksReadyReason.Attaching ||
    reason === NetworksReadyReason.Detaching;
}

/**
 * The condition `findings` call for. The reason is the gravest problem found (an unreadable
 * annotation, a host-network pod, a drifted attachment, a failed removal, a failed add, a refused element, a
 * missing NAD, then waiting, then work under way); the message holds the Event message of each problem, `; `
 * apart, so that it names every interface, network and error concerned.
 */
export function networksCondition(findings: NetworksFindings): NetworksCondition {
  const key = findings.podKey;
  const notices = findings.notices ?? [];
  const problems: { reason: NetworksReadyReason; message: string }[] = [];
  for (const n of notices) {
    if (n.reason === INVALID_SELECTION_REASON || n.reason === INVALID_STATUS_REASON) {
      problems.push({ reason: NetworksReadyReason.InvalidNetworkSelection, message: n.message });
    }
  }
  for (const n of notices) {
    if (n.reason === EventReason.InterfaceAddRejected) {
      problems.push({ reason: NetworksReadyReason.InterfaceAddRejected, message: n.message });
    }
  }
  for (const n of notices) {
    if (n.reason === DRIFTED_REASON) {
      problems.push({ reason: NetworksReadyReason.Drifted, message: n.message });
    }
  }
  if (findings.removeFailed?.length) {
    problems.push({
      reason: NetworksReadyReason.DetachFailed,
      message: failedRemovingInterfacesMessage(key, findings.removeFailed),
    });
  }
  if (findings.addFailed?.length) {
    problems.push({
      reason: NetworksReadyReason.AttachFailed,
      message: failedAddingInterfacesMessage(key, findings.addFailed, []),
    });
  }
  if (findings.refusals?.length) {
    problems.push({
      reason: NetworksReadyReason.InvalidNetworkSelection,
      message: failedAddingInterfacesMessage(key, [], [...new Set(findings.refusals)]),
    });
  }
  if (findings.missingNad?.length) {
    problems.push({
      reason: NetworksReadyReason.NetworkNotFound,
      message: failedAddingInterfacesMessage(key, findings.missingNad, []),
    });
  }
  if (problems.length === 0 && findings.waitingFor !== undefined) {
    problems.push({
      reason: NetworksReadyReason.Pending,
      message: `pod [${key}]: waiting for ${findings.waitingFor} to attach ${
        listSome(findings.desired.map((d) => `${d.interface} to network: ${d.network}`))
      }`,
    });
  }
  const changing = findings.changing;
  if (problems.length === 0 && changing && changing.attach.length + changing.detach.length > 0) {
    const parts = [
      ...changing.attach.map((d) => `attaching ${d.interface} to network: ${d.network}`),
      ...changing.detach.map((d) => `detaching ${d.interface} from network: ${d.network}`),
    ];
    problems.push({
      reason: changing.attach.length > 0
        ? NetworksReadyReason.Attaching
        : NetworksReadyReason.Detaching,
      message: `pod [${key}]: ${listSome(parts)}`,
    });
  }
  const [first] = problems;
  if (first) {
    return {
      status: "False",
      reason: first.reason,
      message: problems.map((p) => p.message).join("; "),
    };
  }
  const attached = findings.desired.map((d) => `${d.interface} to network: ${d.network}`);
  return {
    status: "True",
    reason: NetworksReadyReason.Attached,
    message: attached.length === 0
      ? `pod [${key}]: no networks requested`
      : `pod [${key}]: ${attached.length} of ${attached.length} networks attached: ${
        listSome(attached)
      }`,
  };
}

/**
 * True when the agent keeps the condition on a pod: it asks for networks (`annotation` holds
 * anything but an empty list), it has the condition already (it asked before; the condition
 * then says what became of that), or it waits for it (`gated`: one of its readiness gates is
 * the condition, which it must get to be Ready at all).
 */
export function keepsCondition(
  annotation: string | undefined,
  current: NetworksCondition | undefined,
  gated = false,
): boolean {
  if (current !== undefined || gated) return true;
  const text = annotation?.trim() ?? "";
  return text !== "" && !/^\[\s*\]$/.test(text);
}

/** True when `a` and `b` say the same (status, reason and message; times aside). */
export function sameCondition(
  a: NetworksCondition | undefined,
  b: NetworksCondition | undefined,
): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.status === b.status && a.reason === b.reason && a.message === b.message;
}

/**
 * `next` as it is to be written over `current`: its `lastTransitionTime` is `current`'s while
 * the status stays the same, else `now`. Returns `current` itself when nothing changes.
 */
export function withTransition(
  current: NetworksCondition | undefined,
  next: NetworksCondition,
  now: Date,
): NetworksCondition {
  if (current !== undefined && sameCondition(current, next)) return current;
  const kept = current !== undefined && current.status === next.status &&
    current.lastTransitionTime !== undefined;
  return {
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime: kept ? current.lastTransitionTime : rfc3339Seconds(now),
  };
}

/** `now` in RFC 3339 at whole seconds, as Kubernetes writes `metav1.Time`. */
export function rfc3339Seconds(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * True when `condition`'s message names interface `iface` (as a whole word): a `False`
 * condition that does is about that interface, one that does not is about others.
 */
export function conditionNames(condition: NetworksCondition, iface: string): boolean {
  return new RegExp(`(?<![\\w.-])${escapeRegExp(iface)}(?![\\w.-])`).test(condition.message);
}

const REASONS = new Set<string>(Object.values(NetworksReadyReason));

/**
 * The agent's condition among a pod's `status.conditions` as the API server sends them;
 * undefined when there is none, or when it is not one the agent could have written.
 */
export function findNetworksCondition(conditions: unknown): NetworksCondition | undefined {
  if (!Array.isArray(conditions)) return undefined;
  const raw = conditions.find((c) => c?.type === NETWORKS_READY_CONDITION);
  if (raw === undefined || (raw.status !== "True" && raw.status !== "False")) return undefined;
  const reason = typeof raw.reason === "string" && REASONS.has(raw.reason)
    ? raw.reason as NetworksReadyReason
    : undefined;
  if (reason === undefined) return undefined;
  const condition: NetworksCondition = {
    status: raw.status,
    reason,
    message: typeof raw.message === "string" ? raw.message : "",
  };
  if (typeof raw.lastTransitionTime === "string") {
    condition.lastTransitionTime = raw.lastTransitionTime;
  }
  return condition;
}

/**
 * `conditions` (a pod's `status.conditions`, left untouched) with the agent's condition set to
 * `condition`: in its place when it is there, else appended. Every other condition is kept
 * as it is, whoever owns it.
 */
export function setNetworksCondition(
  conditions: readonly Record<string, unknown>[] | undefined,
  condition: NetworksCondition,
): Record<string, unknown>[] {
  const entry = {
    type: NETWORKS_READY_CONDITION,
    status: condition.status,
    lastProbeTime: null,
    lastTransitionTime: condition.lastTransitionTime ?? null,
    reason: condition.reason,
    message: condition.message,
  };
  const list = [...(conditions ?? [])];
  const at = list.findIndex((c) => c?.type === NETWORKS_READY_CONDITION);
  if (at < 0) list.push(entry);
  else list[at] = entry;
  return list;
}
