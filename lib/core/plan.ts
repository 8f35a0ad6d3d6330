/**
 * The planner: a pure function from what a pod asks for (its networks annotation) and what it
 * has (its network-status) to the ordered operations that make the two agree.
 *
 * Rules, each one a contract the reconciler relies on:
 * - An attachment's identity is `namespace/network/interface`. Default entries, and entries this
 *   program cannot name, are never touched, nor is any interface they hold.
 * - Elements without an interface name take the interfaces of same-network entries not claimed by
 *   a named element; new ones get the lowest free `netN`.
 * - A changed `ips` or `mac`, or an interface name that moves to another network, is a remove
 *   followed by an add. Removes come first, in network-status order; adds follow in annotation order.
 * - Host-network pods get nothing; duplicate interface names are refused, never half-applied.
 * - A pod being deleted has all its attachments removed, so their addresses are released.
 * - Planning again from the state the plan produces yields no operations.
 *
 * @module
 */
import { canonicalIp, canonicalMac } from "./address.ts";
import { objectKey } from "./names.ts";
import type { NetworkSelectionElement } from "./selection.ts";
import {
  type AttachmentKeyParts,
  type NetworkStatus,
  splitNetworkName,
  withAttachment,
  withoutAttachment,
} from "./status.ts";

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
  /** True when the pod is being deleted or has finished: its attachments are to be released. */
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

/** Every network namespace has it, and no network-status entry records it. */
const LOOPBACK = "lo";

/** Why an attachment is removed. */
export type RemoveReason =
  /** No element of the networks annotation asks for it. */
  | "not-desired"
  /** Its element now asks for other `ips` or another `mac`; it is added again right after. */
  | "changed"
  /** Its interface name now belongs to another network. */
  | "interface-reassigned"
  /** The pod is going away; releasing the attachment frees its addresses. */
  | "pod-deleted";

/** Why an attachment is added. */
export type AddReason =
  /** The pod does not have it yet. */
  | "new"
  /** It replaces the pod's attachment on the same network with other `ips` or `mac`. */
  | "changed"
  /** It takes over an interface name that another network held. */
  | "interface-reassigned";

/** One step of a plan. Add elements always carry their interface name. */
export type Operation =
  | { kind: "remove"; id: AttachmentId; entry: NetworkStatus; reason: RemoveReason }
  | { kind: "add"; id: AttachmentId; element: NetworkSelectionElement; reason: AddReason };

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

/** Addresses in a comparable form: canonical bare IPs, sorted, without repeats. */
function ipKey(ips: readonly unknown[]): string {
  const bare = ips.filter((ip): ip is string => typeof ip === "string")
    .map((ip) => canonicalIp(ip) ?? ip);
  return [...new Set(bare)].sort().join(",");
}

/** A MAC in a comparable form; text that does not parse is compared lowercased. */
function macKey(mac: string): string {
  return canonicalMac(mac) ?? mac.toLowerCase();
}

/** What an element asks of its attachment, in comparable form; undefined parts ask nothing. */
interface Asked {
  ips?: string;
  mac?: string;
}

/** What a recorded attachment has, in comparable form. */
interface Held {
  ips: string;
  mac?: string;
}

function askedBy(element: NetworkSelectionElement): Asked {
  const request: Asked = {};
  if (element.ips && element.ips.length > 0) request.ips = ipKey(element.ips);
  if (element.mac) request.mac = macKey(element.mac);
  return request;
}

function heldBy(entry: NetworkStatus): Held {
  const record: Held = { ips: ipKey(Array.isArray(entry.ips) ? entry.ips : []) };
  if (typeof entry.mac === "string" && entry.mac !== "") record.mac = macKey(entry.mac);
  return record;
}

function meets(request: Asked, record: Held): boolean {
  return (request.ips === undefined || request.ips === record.ips) &&
    (request.mac === undefined || request.mac === record.mac);
}

/**
 * True when the recorded attachment gives what `element` asks for: the same set of IPs (when
 * it asks for any; prefixes ignored) and the same MAC (when it asks for one; any notation).
 */
export function entrySatisfies(element: NetworkSelectionElement, entry: NetworkStatus): boolean {
  return meets(askedBy(element), heldBy(entry));
}

/** A desired attachment and, when it must be added, why. */
interface PlannedAttachment extends DesiredAttachment {
  add?: AddReason;
}

/** A recorded attachment and where it stands in network-status. */
interface Recorded {
  id: AttachmentId;
  entry: NetworkStatus;
  statusIndex: number;
}

/** All recorded attachments on one interface name (more than one only in a damaged status). */
interface Slot {
  interface: string;
  recorded: Recorded[];
  claimed: boolean;
}

function sameNetwork(id: AttachmentId, element: NetworkSelectionElement): boolean {
  return id.namespace === element.namespace && id.network === element.name;
}

/**
 * A maximum matching between `left` and `right` items (Kuhn's augmenting paths, greedy start).
 * Returns, for each left index, the matched right index. Deterministic: earlier items first.
 */
function maximumMatching(
  leftCount: number,
  rightCount: number,
  edge: (left: number, right: number) => boolean,
): (number | undefined)[] {
  const rightMatch: (number | undefined)[] = new Array(rightCount).fill(undefined);
  const leftMatch: (number | undefined)[] = new Array(leftCount).fill(undefined);
  for (let l = 0; l < leftCount; l++) {
    for (let r = 0; r < rightCount; r++) {
      if (rightMatch[r] === undefined && edge(l, r)) {
        rightMatch[r] = l;
        leftMatch[l] = r;
        break;
      }
    }
  }
  const augment = (l: number, seen: boolean[]): boolean => {
    for (let r = 0; r < rightCount; r++) {
      if (seen[r] || !edge(l, r)) continue;
      seen[r] = true;
      const holder = rightMatch[r];
      if (holder === undefined || augment(holder, seen)) {
        rightMatch[r] = l;
        leftMatch[l] = r;
        return true;
      }
    }
    return false;
  };
  for (let l = 0; l < leftCount; l++) {
    if (leftMatch[l] === undefined) augment(l, new Array(rightCount).fill(false));
  }
  return leftMatch;
}

/**
 * Plans one pod: the operations that turn `current` (its network-status entries) into
 * `desired` (its parsed networks annotation), plus what is refused and why. Pure and
 * deterministic; see the module documentation for the rules.
 */
export function planPod(
  pod: PodView,
  desired: NetworkSelectionElement[],
  current: NetworkStatus[],
): Plan {
  if (pod.hostNetwork) {
    // Multus never attaches networks to host-network pods, so there is nothing to remove either.
    const refusals: Refusal[] = desired.length === 0 ? [] : [{
      code: "host-network",
      message:
        `pod ${pod.namespace}/${pod.name} uses the host network; remove hostNetwork or the networks annotation`,
    }];
    return { operations: [], refusals, desired: [] };
  }

  // Interfaces held by entries that must not be touched, and the attachments we may manage.
  const usedNames = new Set<string>();
  const untouchable = new Map<string, NetworkStatus>();
  const slots = new Map<string, Slot>();
  current.forEach((entry, statusIndex) => {
    const ifname = typeof entry.interface === "string" ? entry.interface : "";
    if (ifname !== "") usedNames.add(ifname);
    const id = statusAttachmentId(entry, pod.namespace);
    if (!id) {
      if (ifname !== "" && !untouchable.has(ifname)) untouchable.set(ifname, entry);
      return;
    }
    let slot = slots.get(id.interface);
    if (!slot) {
      slot = { interface: id.interface, recorded: [], claimed: false };
      slots.set(id.interface, slot);
    }
    slot.recorded.push({ id, entry, statusIndex });
  });
  for (const name of untouchable.keys()) slots.delete(name);

  const removes: { statusIndex: number; op: Operation }[] = [];
  const removedKeys = new Set<string>();
  const remove = (recorded: Recorded, reason: RemoveReason) => {
    const key = attachmentKey(recorded.id);
    if (removedKeys.has(key)) return;
    removedKeys.add(key);
    removes.push({
      statusIndex: recorded.statusIndex,
      op: { kind: "remove", id: recorded.id, entry: recorded.entry, reason },
    });
  };
  /** Every distinct attachment recorded on the slot's interface. */
  const removeSlot = (slot: Slot, reason: RemoveReason) => {
    for (const recorded of slot.recorded) remove(recorded, reason);
  };
  const sortedRemoves = () =>
    removes.sort((a, b) => a.statusIndex - b.statusIndex).map((r) => r.op);

  if (pod.deleting) {
    for (const slot of slots.values()) removeSlot(slot, "pod-deleted");
    return { operations: sortedRemoves(), refusals: [], desired: [] };
  }

  const refusals: Refusal[] = [];
  const planned: (PlannedAttachment | undefined)[] = new Array(desired.length);

  // Named elements. Contested names go to the element whose network already holds the
  // interface, else to the first one; the others are refused, so nothing in place is lost.
  const contenders = new Map<string, number[]>();
  desired.forEach((element, index) => {
    if (element.interface === undefined) return;
    usedNames.add(element.interface);
    const list = contenders.get(element.interface) ?? [];
    list.push(index);
    contenders.set(element.interface, list);
  });
  for (const [ifname, indices] of contenders) {
    const slot = slots.get(ifname);
    const winner = indices.find((i) =>
      slot?.recorded.some((recorded) =>
        sameNetwork(recorded.id, desired[i]!)
      )
    ) ?? indices[0]!;
    for (const index of indices) {
      if (index === winner) continue;
      refusals.push({
        code: "duplicate-interface",
        elementIndex: index,
        message:
          `networks[${index}] and networks[${winner}] both ask for interface "${ifname}"; networks[${index}] is ignored until each element has its own interface name`,
      });
    }
    const element = desired[winner]!;
    const holder = untouchable.get(ifname);
    if (ifname === LOOPBACK) {
      refusals.push({
        code: "interface-in-use",
        elementIndex: winner,
        message:
          `networks[${winner}] asks for interface "lo", which is the pod's loopback device; choose another interface name`,
      });
      continue;
    }
    if (holder) {
      const what = holder.default === true
        ? `the cluster default network "${holder.name}"`
        : `network-status entry "${String(holder.name)}", which cannot be managed`;
      refusals.push({
        code: "interface-in-use",
        elementIndex: winner,
        message:
          `networks[${winner}] asks for interface "${ifname}", which ${what} holds; choose another interface name`,
      });
      continue;
    }
    const item: PlannedAttachment = {
      id: { namespace: element.namespace, network: element.name, interface: ifname },
      element,
    };
    planned[winner] = item;
    if (!slot) {
      item.add = "new";
      continue;
    }
    slot.claimed = true;
    const same = slot.recorded.find((recorded) => sameNetwork(recorded.id, element));
    if (same) {
      if (entrySatisfies(element, same.entry)) continue;
      remove(same, "changed");
      item.add = "changed";
    } else {
      removeSlot(slot, "interface-reassigned");
      item.add = "interface-reassigned";
    }
  }

  // Unnamed elements, one network at a time in annotation order: first keep every recorded
  // attachment that already gives what an element asks for, then reuse the rest by order.
  const unnamedByNetwork = new Map<string, number[]>();
  desired.forEach((element, index) => {
    if (element.interface !== undefined) return;
    const key = objectKey(element.namespace, element.name);
    const list = unnamedByNetwork.get(key) ?? [];
    list.push(index);
    unnamedByNetwork.set(key, list);
  });
  const needName: number[] = [];
  for (const indices of unnamedByNetwork.values()) {
    const sample = desired[indices[0]!]!;
    const candidates: { slot: Slot; recorded: Recorded }[] = [];
    for (const slot of slots.values()) {
      if (slot.claimed) continue;
      const recorded = slot.recorded.find((r) => sameNetwork(r.id, sample));
      if (recorded) candidates.push({ slot, recorded });
    }
    const requests = indices.map((index) => askedBy(desired[index]!));
    const records = candidates.map((candidate) => heldBy(candidate.recorded.entry));
    const match = maximumMatching(
      indices.length,
      candidates.length,
      (l, r) => meets(requests[l]!, records[r]!),
    );
    const free = candidates.filter((_, r) => !match.includes(r));
    indices.forEach((index, l) => {
      const element = desired[index]!;
      const matched = match[l];
      const candidate = matched !== undefined ? candidates[matched]! : free.shift();
      if (!candidate) {
        needName.push(index);
        return;
      }
      candidate.slot.claimed = true;
      const ifname = candidate.slot.interface;
      const item: PlannedAttachment = {
        id: { namespace: element.namespace, network: element.name, interface: ifname },
        element: { ...element, interface: ifname },
      };
      planned[index] = item;
      if (matched === undefined) {
        remove(candidate.recorded, "changed");
        item.add = "changed";
      }
    });
  }
  needName.sort((a, b) => a - b);
  let next = 1;
  for (const index of needName) {
    while (usedNames.has(`net${next}`)) next++;
    const ifname = `net${next}`;
    usedNames.add(ifname);
    const element = desired[index]!;
    planned[index] = {
      id: { namespace: element.namespace, network: element.name, interface: ifname },
      element: { ...element, interface: ifname },
      add: "new",
    };
  }

  for (const slot of slots.values()) {
    if (!slot.claimed) removeSlot(slot, "not-desired");
  }

  const operations: Operation[] = sortedRemoves();
  const desiredOut: DesiredAttachment[] = [];
  for (const item of planned) {
    if (!item) continue; // refused
    desiredOut.push({ id: item.id, element: item.element });
    if (item.add) {
      operations.push({ kind: "add", id: item.id, element: item.element, reason: item.add });
    }
  }
  refusals.sort((a, b) => (a.elementIndex ?? -1) - (b.elementIndex ?? -1));
  return { operations, refusals, desired: desiredOut };
}

/**
 * The network-status entries that result when every operation of `plan` succeeds and every
 * plugin gives exactly what was asked: removes drop their entries, adds record the element's
 * identity, bare IPs and MAC. Useful for `--dry-run` output and for checking plans.
 */
export function applyPlan(current: NetworkStatus[], plan: Plan): NetworkStatus[] {
  let entries = current;
  for (const op of plan.operations) {
    if (op.kind === "remove") {
      entries = withoutAttachment(entries, op.id);
      continue;
    }
    const entry: NetworkStatus = {
      name: objectKey(op.id.namespace, op.id.network),
      interface: op.id.interface,
    };
    if (op.element.ips && op.element.ips.length > 0) {
      entry.ips = op.element.ips.map((ip) => canonicalIp(ip) ?? ip);
    }
    if (op.element.mac) entry.mac = op.element.mac;
    entry.dns = {};
    entries = withAttachment(entries, entry);
  }
  return entries;
}
