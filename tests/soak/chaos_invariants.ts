/**
 * The chaos soak's invariants, as pure comparisons of what the run asked for with what the
 * node shows: the pod's network-status, the links in its netns, its `NetworksReady`
 * condition, host-local's allocations, the host veths on a bridge, the agent's journal
 * files and the pods still terminating. Each returns the violations it finds, worded so that
 * a reader sees what differs.
 *
 * @module
 */
import type { Element, NetworkName } from "./chaos_plan.ts";
import type { PodMultusRequest } from "../support/mod.ts";

/** One non-default entry of a pod's network-status. */
export interface StatusEntryView {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
}

/** One link in a pod's netns other than `lo` and `eth0`. */
export interface LinkView {
  name: string;
  mac: string;
  /** Addresses without their prefix length. */
  ipv4: string[];
}

/** The `NetworksReady` condition, when the pod has it. */
export interface ConditionView {
  status: string;
  reason?: string;
  message?: string;
}

/** What the node shows of one live pod. */
export interface PodView {
  status: StatusEntryView[];
  links: LinkView[];
  condition?: ConditionView;
}

const bare = (ip: string) => ip.split("/")[0]!;
const ipv4Of = (ips: readonly string[] | undefined) =>
  (ips ?? []).map(bare).filter((ip) => ip.includes(".")).sort();
const same = (a: readonly string[], b: readonly string[]) =>
  JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

/**
 * Violations of one live pod: network-status must hold exactly the annotation's elements
 * (all of those whose NAD exists; one whose NAD is missing may be attached from before, and
 * the attachment it is to replace on its interface stays until the NAD exists; an attachment
 * whose own NAD is missing stays too, holding its interface, as multus needs the NAD to
 * release what it plugged),
 * with the `ips` and `mac` asked for; the netns must hold exactly the links network-status
 * names, with its addresses and MACs; the condition must be `True` when every element is
 * attached and `False`/`NetworkNotFound` when only elements of missing NADs are not.
 */
export function podViolations(
  elements: readonly Element[],
  namespace: string,
  nads: ReadonlySet<NetworkName>,
  view: PodView,
): string[] {
  const problems: string[] = [];
  const network = (e: Element) => `${namespace}/${e.name}`;
  const describe = (e: Element) =>
    `${e.interface ?? "(unnamed)"} on ${e.name}${e.ips ? ` ips ${e.ips}` : ""}${
      e.mac ? ` mac ${e.mac}` : ""
    }`;
  const names = view.status.map((s) => s.interface ?? "");
  const duplicates = names.filter((n, i) => names.indexOf(n) !== i);
  if (duplicates.length > 0) {
    problems.push(`network-status names ${JSON.stringify(duplicates)} more than once`);
  }

  const unmatched = [...view.status];
  const take = (match: (s: StatusEntryView) => boolean) => {
    const i = unmatched.findIndex(match);
    return i < 0 ? undefined : unmatched.splice(i, 1)[0];
  };
  const namedInterfaces = new Set(elements.flatMap((e) => e.interface ? [e.interface] : []));
  let allAttached = true;
  /** Elements whose NAD exists that network-status lacks. */
  const missing: Element[] = [];
  const ordered = [
    ...elements.filter((e) => e.interface !== undefined),
    ...elements.filter((e) => e.interface === undefined),
  ];
  for (const element of ordered) {
    const entry = element.interface !== undefined
      ? take((s) => s.name === network(element) && s.interface === element.interface)
      : take((s) =>
        s.name === network(element) && !namedInterfaces.has(s.interface ?? "") &&
        (!element.ips || same(ipv4Of(s.ips), ipv4Of(element.ips)))
      );
    if (!entry) {
      allAttached = false;
      if (nads.has(element.name)) missing.push(element);
      continue;
    }
    if (element.ips && !same(ipv4Of(entry.ips), ipv4Of(element.ips))) {
      problems.push(`${describe(element)}: network-status says ips ${JSON.stringify(entry.ips)}`);
    }
    if (element.mac && entry.mac?.toLowerCase() !== element.mac.toLowerCase()) {
      problems.push(`${describe(element)}: network-status says mac ${entry.mac}`);
    }
  }
  // A change to a network whose NAD is missing keeps the attachment it would replace.
  const waitingInterfaces = new Set(
    elements.flatMap((e) => e.interface && !nads.has(e.name) ? [e.interface] : []),
  );
  // An attachment the agent did not make (multus plugged it into a new sandbox) is released
  // with its NAD's config: while that NAD is missing it stays, and holds its interface.
  const stuck = new Set<string>();
  for (const entry of unmatched) {
    if (waitingInterfaces.has(entry.interface ?? "")) continue;
    if (!nads.has(entry.name.slice(namespace.length + 1) as NetworkName)) {
      stuck.add(entry.interface ?? "");
      continue;
    }
    problems.push(
      `network-status holds ${entry.interface} on ${entry.name}, which the annotation does not ask for`,
    );
  }
  for (const element of missing) {
    if (element.interface !== undefined && stuck.has(element.interface)) continue;
    problems.push(`${describe(element)} is asked for, its NAD exists, network-status lacks it`);
  }

  const linkNames = view.links.map((l) => l.name);
  if (!same(linkNames, names)) {
    problems.push(
      `netns links ${JSON.stringify(linkNames.sort())} != network-status interfaces ${
        JSON.stringify([...names].sort())
      }`,
    );
  }
  for (const entry of view.status) {
    const link = view.links.find((l) => l.name === entry.interface);
    if (!link) continue;
    if (!same(link.ipv4, ipv4Of(entry.ips))) {
      problems.push(
        `${entry.interface}: netns has ${JSON.stringify(link.ipv4)}, network-status says ${
          JSON.stringify(entry.ips ?? [])
        }`,
      );
    }
    if (entry.mac && entry.mac.toLowerCase() !== link.mac.toLowerCase()) {
      problems.push(`${entry.interface}: netns MAC ${link.mac}, network-status says ${entry.mac}`);
    }
  }

  const c = view.condition;
  if (elements.length === 0 && stuck.size === 0) {
    if (c && c.status !== "True") {
      problems.push(
        `nothing is asked for, yet NetworksReady is ${c.status} (${c.reason}: ${c.message})`,
      );
    }
  } else if (problems.length === 0) {
    if (allAttached && stuck.size === 0) {
      if (c?.status !== "True") {
        problems.push(
          `every element is attached, yet NetworksReady is ${
            c ? `${c.status} (${c.reason}: ${c.message})` : "missing"
          }`,
        );
      }
    } else if (!allAttached) {
      const reasons = stuck.size > 0 ? ["NetworkNotFound", "DetachFailed"] : ["NetworkNotFound"];
      if (c?.status !== "False" || !reasons.includes(c.reason ?? "")) {
        problems.push(
          `an element waits for a NAD, yet NetworksReady is ${
            c ? `${c.status} (${c.reason}: ${c.message})` : "missing"
          }, not False (${reasons.join(" or ")})`,
        );
      }
    } else if (stuck.size > 0 && (c?.status !== "False" || c.reason !== "DetachFailed")) {
      problems.push(
        `an attachment the annotation dropped stays for want of its NAD, yet NetworksReady is ${
          c ? `${c.status} (${c.reason}: ${c.message})` : "missing"
        }, not False (DetachFailed)`,
      );
    }
  }
  return problems;
}

/** One host-local allocation file. */
export interface AllocationView {
  /** host-local's directory (the CNI network name). */
  network: string;
  ip: string;
  /** The container (sandbox) ID the file names. */
  owner: string;
  ifname: string;
}

/**
 * Violations of host-local's allocations: a live pod's ready sandbox holds exactly the
 * addresses its network-status shows on host-local networks (`expected`, by sandbox ID), and
 * nothing else holds any address unless it is a sandbox of a pod that still exists (`lingering`:
 * a dead sandbox the kubelet has yet to tear down, a terminating pod's).
 */
export function allocationViolations(
  allocations: readonly AllocationView[],
  expected: ReadonlyMap<string, { pod: string; addresses: readonly AllocationView[] }>,
  lingering: ReadonlySet<string>,
): string[] {
  const problems: string[] = [];
  const key = (a: AllocationView) => `${a.network}/${a.ip}@${a.ifname}`;
  for (const [sandbox, { pod, addresses }] of expected) {
    const held = allocations.filter((a) => a.owner === sandbox).map(key).sort();
    const want = addresses.map(key).sort();
    if (JSON.stringify(held) !== JSON.stringify(want)) {
      problems.push(
        `pod ${pod}: host-local holds ${
          JSON.stringify(held)
        } for its sandbox, network-status shows ${JSON.stringify(want)}`,
      );
    }
  }
  for (const a of allocations) {
    if (!expected.has(a.owner) && !lingering.has(a.owner)) {
      problems.push(
        `host-local holds ${a.network}/${a.ip} (${a.ifname}) for sandbox ${
          a.owner.slice(0, 13)
        }, which belongs to no pod that exists`,
      );
    }
  }
  return problems;
}

/** A pod the run deleted, as far as the invariants need it. */
export interface DeletedPod {
  name: string;
  uid: string;
  /** When the run asked for its deletion (ms since the epoch). */
  deletedAt: number;
  graceSeconds: number;
}

/**
 * Violations of pods the run deleted that still exist: none may outlast its grace period plus
 * the agent's give-up time (and `slackMs` for the kubelet's own work).
 */
export function terminatingViolations(
  deleted: readonly DeletedPod[],
  present: ReadonlyMap<string, { finalizers: string[] }>,
  now: number,
  giveUpMs: number,
  slackMs: number,
): string[] {
  const problems: string[] = [];
  for (const pod of deleted) {
    const still = present.get(pod.uid);
    if (!still) continue;
    const deadline = pod.deletedAt + pod.graceSeconds * 1000 + giveUpMs + slackMs;
    if (now > deadline) {
      problems.push(
        `pod ${pod.name} still terminating ${
          Math.round((now - pod.deletedAt) / 1000)
        } s after its deletion (grace ${pod.graceSeconds} s, give-up ${
          giveUpMs / 1000
        } s), finalizers ${JSON.stringify(still.finalizers)}`,
      );
    }
  }
  return problems;
}

/** Violations of the agent's journal: a file for a pod UID that no longer exists. */
export function journalViolations(
  journalUids: readonly string[],
  existingUids: ReadonlySet<string>,
): string[] {
  return journalUids.filter((uid) => !existingUids.has(uid)).map((uid) =>
    `the agent's journal still holds a file for pod UID ${uid}, which no longer exists`
  );
}

/** One error-level log line, with when it was written. */
export interface ErrorLine {
  at: number;
  text: string;
}

/** A fault's span: from its injection until the invariants held again after it. */
export interface FaultSpan {
  kind: string;
  start: number;
  end: number;
}

/**
 * Error-level lines that no injected fault explains: written outside every fault's span
 * (widened by `slackMs` on each side).
 */
export function unexplainedErrors(
  errors: readonly ErrorLine[],
  spans: readonly FaultSpan[],
  slackMs: number,
): ErrorLine[] {
  return errors.filter((e) => faultsUnderway(e, spans, slackMs).length === 0);
}

/** The kinds of the faults whose spans (widened by `slackMs`) hold `error`, each once. */
export function faultsUnderway(
  error: ErrorLine,
  spans: readonly FaultSpan[],
  slackMs: number,
): string[] {
  const kinds = spans.filter((s) => error.at >= s.start - slackMs && error.at <= s.end + slackMs)
    .map((s) => s.kind);
  return [...new Set(kinds)];
}

/**
 * Whether an address left behind is the platform's leak, not the agent's: the agent never made
 * it (no `/delegate` ADD of its sandbox and interface succeeded), and no release of the sandbox
 * by the runtime did its job: no CNI DEL of it reached multus (the shim found no multus: it
 * was restarting, and the runtime marked the sandbox stopped all the same), none succeeded
 * (after one whose plugin a multus restart killed, the runtime's next DEL finds multus' cache
 * gone and releases nothing, without an error), or the last one that did ran while the
 * sandbox's own CNI ADD was still going on (the runtime gave up on the ADD and cleaned up at
 * once; multus went on adding after the DEL). The caller
 * counts an address only once it has stayed a while, so a teardown under way is not taken for
 * one that never comes.
 */
export function platformLeak(
  allocation: AllocationView,
  requests: readonly PodMultusRequest[],
): boolean {
  const own = requests.filter((r) => r.sandboxId === allocation.owner);
  const agentMade = own.some((r) =>
    r.kind === "delegate" && r.command === "ADD" && r.ok === true &&
    r.ifname === allocation.ifname
  );
  if (agentMade) return false;
  const lastDone = own.filter((r) =>
    r.kind === "CNI" && r.command === "DEL" && r.ok === true && !r.withoutCache
  ).at(-1);
  if (lastDone === undefined) return true;
  return own.some((r) =>
    r.kind === "CNI" && r.command === "ADD" &&
    (r.finishedAt === undefined || r.finishedAt > lastDone.startedAt)
  );
}
