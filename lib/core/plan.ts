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
 * - A pod being deleted (or finished) gets no operations: its networks serve it until it
 *   stops, and what releases them then is not a plan of its annotations.
 * - Planning again from the state the plan produces yields no operations.
 *
 * What a plan is made of is in `plan_types.ts`; how asked and recorded attachments are compared
 * and paired, in `attachment_match.ts`.
 *
 * @module
 */
import { canonicalIp } from "./address.ts";
import { askedBy, entrySatisfies, heldBy, maximumMatching, meets } from "./attachment_match.ts";
import { objectKey } from "./names.ts";
import type { NetworkSelectionElement } from "./selection_element.ts";
import {
  type AddReason,
  type AttachmentId,
  attachmentKey,
  type DesiredAttachment,
  type Operation,
  type Plan,
  type PodView,
  type Refusal,
  type RemoveReason,
  statusAttachmentId,
} from "./plan_types.ts";
import { type NetworkStatus, withAttachment, withoutAttachment } from "./status.ts";

/** Every network namespace has it, and no network-status entry records it. */
const LOOPBACK = "lo";

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
 * What the phases of {@linkcode planPod} share while they plan one pod: what network-status
 * records, the interface names in use, the removes decided so far, the refusals, and the
 * attachment planned for each element of the annotation (undefined while unplanned or when
 * refused).
 */
interface Planning {
  pod: PodView;
  desired: readonly NetworkSelectionElement[];
  /** Interface names taken: by any status entry or any named element, and by new names given. */
  usedNames: Set<string>;
  /** Interface → the first entry holding it that must not be touched. */
  untouchable: Map<string, NetworkStatus>;
  /** Interface → the attachments we may manage that network-status records on it. */
  slots: Map<string, Slot>;
  removes: Removes;
  refusals: Refusal[];
  planned: (PlannedAttachment | undefined)[];
}

/** The removes of a plan: each attachment at most once, run in network-status order. */
class Removes {
  readonly #removes: { statusIndex: number; op: Operation }[] = [];
  readonly #keys = new Set<string>();

  /** Removes one recorded attachment, for `reason`. */
  remove(recorded: Recorded, reason: RemoveReason): void {
    const key = attachmentKey(recorded.id);
    if (this.#keys.has(key)) return;
    this.#keys.add(key);
    this.#removes.push({
      statusIndex: recorded.statusIndex,
      op: { kind: "remove", id: recorded.id, entry: recorded.entry, reason },
    });
  }

  /** Removes every distinct attachment recorded on the slot's interface. */
  removeSlot(slot: Slot, reason: RemoveReason): void {
    for (const recorded of slot.recorded) this.remove(recorded, reason);
  }

  /** The remove operations, in network-status order. */
  operations(): Operation[] {
    return this.#removes.sort((a, b) => a.statusIndex - b.statusIndex).map((r) => r.op);
  }
}

/**
 * Phase 1: what network-status records. Every interface it names is in use; entries this
 * program may not manage make their interface untouchable, and the others fill the slots.
 */
function readStatus(
  pod: PodView,
  desired: readonly NetworkSelectionElement[],
  current: NetworkStatus[],
): Planning {
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
  return {
    pod,
    desired,
    usedNames,
    untouchable,
    slots,
    removes: new Removes(),
    refusals: [],
    planned: new Array(desired.length),
  };
}

/** Why the interface `ifname` that element `index` names cannot be given to it, if so. */
function interfaceRefusal(p: Planning, ifname: string, index: number): Refusal | undefined {
  if (ifname === LOOPBACK) {
    return {
      code: "interface-in-use",
      elementIndex: index,
      message:
        `networks[${index}] asks for interface "lo", which is the pod's loopback device; choose another interface name`,
    };
  }
  const holder = p.untouchable.get(ifname);
  if (!holder) return undefined;
  const what = holder.default === true
    ? `the cluster default network "${holder.name}"`
    : `network-status entry "${String(holder.name)}", which cannot be managed`;
  return {
    code: "interface-in-use",
    elementIndex: index,
    message:
      `networks[${index}] asks for interface "${ifname}", which ${what} holds; choose another interface name`,
  };
}

/**
 * Phase 2: elements that name their interface. A contested name goes to the element whose
 * network already holds the interface, else to the first one; the others are refused, so
 * nothing in place is lost. The winner keeps the attachment when it gives what it asks for;
 * otherwise what holds the interface is removed and the winner added.
 */
function planNamed(p: Planning): void {
  const contenders = new Map<string, number[]>();
  p.desired.forEach((element, index) => {
    if (element.interface === undefined) return;
    p.usedNames.add(element.interface);
    const list = contenders.get(element.interface) ?? [];
    list.push(index);
    contenders.set(element.interface, list);
  });
  for (const [ifname, indices] of contenders) {
    const slot = p.slots.get(ifname);
    const winner = indices.find((i) =>
      slot?.recorded.some((recorded) =>
        sameNetwork(recorded.id, p.desired[i]!)
      )
    ) ?? indices[0]!;
    for (const index of indices) {
      if (index === winner) continue;
      p.refusals.push({
        code: "duplicate-interface",
        elementIndex: index,
        message:
          `networks[${index}] and networks[${winner}] both ask for interface "${ifname}"; networks[${index}] is ignored until each element has its own interface name`,
      });
    }
    const refusal = interfaceRefusal(p, ifname, winner);
    if (refusal) {
      p.refusals.push(refusal);
      continue;
    }
    const element = p.desired[winner]!;
    const item: PlannedAttachment = {
      id: { namespace: element.namespace, network: element.name, interface: ifname },
      element,
    };
    p.planned[winner] = item;
    if (!slot) {
      item.add = "new";
      continue;
    }
    slot.claimed = true;
    const same = slot.recorded.find((recorded) => sameNetwork(recorded.id, element));
    if (same) {
      if (entrySatisfies(element, same.entry)) continue;
      p.removes.remove(same, "changed");
      item.add = "changed";
    } else {
      p.removes.removeSlot(slot, "interface-reassigned");
      item.add = "interface-reassigned";
    }
  }
}

/**
 * Phase 3: elements without an interface name, one network at a time in annotation order:
 * first every recorded attachment that already gives what an element asks for is kept (a
 * maximum matching), then the rest are reused by order (removed and added again). Returns the
 * elements left without an attachment to reuse, which need a new name.
 */
function planUnnamed(p: Planning): number[] {
  const unnamedByNetwork = new Map<string, number[]>();
  p.desired.forEach((element, index) => {
    if (element.interface !== undefined) return;
    const key = objectKey(element.namespace, element.name);
    const list = unnamedByNetwork.get(key) ?? [];
    list.push(index);
    unnamedByNetwork.set(key, list);
  });
  const needName: number[] = [];
  for (const indices of unnamedByNetwork.values()) {
    const sample = p.desired[indices[0]!]!;
    const candidates: { slot: Slot; recorded: Recorded }[] = [];
    for (const slot of p.slots.values()) {
      if (slot.claimed) continue;
      const recorded = slot.recorded.find((r) => sameNetwork(r.id, sample));
      if (recorded) candidates.push({ slot, recorded });
    }
    const requests = indices.map((index) => askedBy(p.desired[index]!));
    const records = candidates.map((candidate) => heldBy(candidate.recorded.entry));
    const match = maximumMatching(
      indices.length,
      candidates.length,
      (l, r) => meets(requests[l]!, records[r]!),
    );
    const free = candidates.filter((_, r) => !match.includes(r));
    indices.forEach((index, l) => {
      const element = p.desired[index]!;
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
      p.planned[index] = item;
      if (matched === undefined) {
        p.removes.remove(candidate.recorded, "changed");
        item.add = "changed";
      }
    });
  }
  return needName;
}

/** Phase 4: the elements `indices`, in annotation order, get the lowest free `netN` each. */
function nameNew(p: Planning, indices: number[]): void {
  let next = 1;
  for (const index of [...indices].sort((a, b) => a - b)) {
    while (p.usedNames.has(`net${next}`)) next++;
    const ifname = `net${next}`;
    p.usedNames.add(ifname);
    const element = p.desired[index]!;
    p.planned[index] = {
      id: { namespace: element.namespace, network: element.name, interface: ifname },
      element: { ...element, interface: ifname },
      add: "new",
    };
  }
}

/** Phase 5: the plan: removes (every unclaimed slot too), then adds in annotation order. */
function assemble(p: Planning): Plan {
  for (const slot of p.slots.values()) {
    if (!slot.claimed) p.removes.removeSlot(slot, "not-desired");
  }
  const operations: Operation[] = p.removes.operations();
  const desired: DesiredAttachment[] = [];
  for (const item of p.planned) {
    if (!item) continue; // refused
    desired.push({ id: item.id, element: item.element });
    if (item.add) {
      operations.push({ kind: "add", id: item.id, element: item.element, reason: item.add });
    }
  }
  const refusals = [...p.refusals].sort((a, b) => (a.elementIndex ?? -1) - (b.elementIndex ?? -1));
  return { operations, refusals, desired };
}

/**
 * Plans one pod: the operations that turn `current` (its network-status entries) into
 * `desired` (its parsed networks annotation), plus what is refused and why. Pure and
 * deterministic; see the module documentation for the rules, and the phases above for how.
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
  // A finished pod keeps every attachment while it may run; the agent's own are released from
  // its journal once it has stopped (`reconcile/deletion.ts`), those multus made by multus.
  if (pod.deleting) return { operations: [], refusals: [], desired: [] };
  const p = readStatus(pod, desired, current);
  planNamed(p);
  nameNew(p, planUnnamed(p));
  return assemble(p);
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
