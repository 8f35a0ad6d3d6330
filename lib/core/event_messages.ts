/**
 * The texts of the controller's Kubernetes Events, byte for byte those of upstream
 * multus-dynamic-networks-controller (users and tests match on them), including the
 * attributes suffix rendered the way Go's `%v` renders a `[]string` and a
 * `*map[string]interface{}`. Failure messages also carry the error, after `: `. Also the
 * aggregated messages of a pass with several interfaces, the agent's own two reasons, and the
 * Event type.
 *
 * Pure functions, no I/O: the reconciler composes the texts, the Kubernetes side
 * (`kube/events.ts`) writes them.
 *
 * @module
 */
import { objectKey } from "./names.ts";

/** The event source component, as upstream. */
export const EVENT_COMPONENT = "pod-networks-updates";

/** The event reasons, as upstream. */
export const EventReason = {
  AddedInterface: "AddedInterface",
  FailedAddingInterface: "FailedAddingInterface",
  RemovedInterface: "RemovedInterface",
  FailedRemovingInterface: "FailedRemovingInterface",
  InterfaceAddRejected: "InterfaceAddRejected",
} as const;
/** One of {@linkcode EventReason}. */
export type EventReason = typeof EventReason[keyof typeof EventReason];

/** Reason recorded when the networks annotation cannot be parsed (an addition to upstream's). */
export const INVALID_SELECTION_REASON = "InvalidNetworkSelection";
/** Reason recorded when network-status cannot be parsed (an addition to upstream's). */
export const INVALID_STATUS_REASON = "InvalidNetworkStatus";
/**
 * Reason recorded when a change failed and the attachment it removed was put back (an
 * addition to upstream's).
 */
export const RESTORED_REASON = "RestoredInterface";
/**
 * Reason recorded when a drift check found an attachment missing or altered and repair is off
 * (an addition to upstream's).
 */
export const DRIFTED_REASON = "InterfaceDrifted";
/** Reason recorded when a drifted attachment was made again (an addition to upstream's). */
export const REPAIRED_REASON = "RepairedInterface";
/**
 * Reason recorded when a change leaves the networks annotation naming one interface twice for
 * multus in a new pod sandbox (an addition to upstream's; see `multus_names.ts`).
 */
export const NAME_CLASH_REASON = "SandboxInterfaceClash";

/** Event type, as core/v1. */
export type EventType = "Normal" | "Warning";

/** The attachment attributes upstream shows in add events. */
export interface InterfaceAttributes {
  /** Requested IPs (`ips`), e.g. `["10.1.1.11/24"]`. */
  ips?: readonly string[];
  /** Requested MAC (`mac`). */
  mac?: string;
  /** `cni-args`; undefined or null when absent (Go's nil). */
  cniArgs?: Record<string, unknown> | null;
}

function goFloat(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "+Inf" : "-Inf";
  if (n === 0) return Object.is(n, -0) ? "-0" : "0";
  // Go's %v of a float64 is %g with the shortest digits: exponent form when the decimal
  // exponent is < -4 or >= 6 (two exponent digits at least), plain decimals otherwise.
  const [mantissa, expText] = n.toExponential().split("e") as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 6) {
    const sign = exp < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return String(n);
}

/** Renders a JSON value as Go's `%v` renders the matching `interface{}` value. */
export function goValue(value: unknown): string {
  if (value === null || value === undefined) return "<nil>";
  if (typeof value === "string") return value;
  if (typeof value === "number") return goFloat(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (Array.isArray(value)) return `[${value.map(goValue).join(" ")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
      .map(([k, v]) => `${k}:${goValue(v)}`);
    return `map[${entries.join(" ")}]`;
  }
  return String(value);
}

/**
 * Upstream's attributes suffix: empty, or `(ips: [a b], mac: m, cni-args: &map[k:v])` when
 * any of ips, mac or cni-args is set. It follows the network name without a space.
 */
export function attributesSuffix(attrs?: InterfaceAttributes): string {
  if (!attrs) return "";
  const ips = attrs.ips ?? [];
  const mac = attrs.mac ?? "";
  const hasArgs = attrs.cniArgs !== undefined && attrs.cniArgs !== null;
  if (ips.length === 0 && mac === "" && !hasArgs) return "";
  const args = hasArgs ? `&${goValue(attrs.cniArgs)}` : "<nil>";
  return `(ips: [${ips.join(" ")}], mac: ${mac}, cni-args: ${args})`;
}

function withError(message: string, error?: unknown): string {
  if (error === undefined || error === null || error === "") return message;
  const text = error instanceof Error ? error.message : String(error);
  return `${message}: ${text}`;
}

/** `pod [<ns/name>]: added interface <iface> to network: <net><attrs>` (Normal `AddedInterface`). */
export function addedInterfaceMessage(
  podKey: string,
  iface: string,
  network: string,
  attrs?: InterfaceAttributes,
): string {
  return `pod [${podKey}]: added interface ${iface} to network: ${network}${
    attributesSuffix(attrs)
  }`;
}

/**
 * `pod [<ns/name>]: failed adding interface <iface> to network: <net><attrs>: <error>`
 * (Warning `FailedAddingInterface`).
 */
export function failedAddingInterfaceMessage(
  podKey: string,
  iface: string,
  network: string,
  attrs?: InterfaceAttributes,
  error?: unknown,
): string {
  return withError(
    `pod [${podKey}]: failed adding interface ${iface} to network: ${network}${
      attributesSuffix(attrs)
    }`,
    error,
  );
}

/** `pod [<ns/name>]: removed interface <iface> from network: <net>` (Normal `RemovedInterface`). */
export function removedInterfaceMessage(podKey: string, iface: string, network: string): string {
  return `pod [${podKey}]: removed interface ${iface} from network: ${network}`;
}

/**
 * `pod [<ns/name>]: failed removing interface <iface> from network: <net>: <error>`
 * (Warning `FailedRemovingInterface`).
 */
export function failedRemovingInterfaceMessage(
  podKey: string,
  iface: string,
  network: string,
  error?: unknown,
): string {
  return withError(
    `pod [${podKey}]: failed removing interface ${iface} from network: ${network}`,
    error,
  );
}

/** `pod [<ns/name>]: will not add interface to host networked pod` (Warning `InterfaceAddRejected`). */
export function interfaceAddRejectedMessage(podKey: string): string {
  return `pod [${podKey}]: will not add interface to host networked pod`;
}

/**
 * `pod [<ns/name>]: annotation <name> is invalid, nothing was changed: <why>` (Warning
 * {@linkcode INVALID_SELECTION_REASON} or {@linkcode INVALID_STATUS_REASON}).
 */
export function invalidAnnotationMessage(
  podKey: string,
  annotation: string,
  problem: string,
): string {
  return `pod [${podKey}]: annotation ${annotation} is invalid, nothing was changed: ${problem}`;
}

/** How many items an aggregated message lists before it says how many more there are. */
export const LISTED_ITEMS = 8;

/** `a, b, c, … and 5 more`: at most {@linkcode LISTED_ITEMS} items, then their count. */
export function listSome(items: readonly string[], separator = ", "): string {
  if (items.length <= LISTED_ITEMS) return items.join(separator);
  return `${items.slice(0, LISTED_ITEMS).join(separator)}, … and ${
    items.length - LISTED_ITEMS
  } more`;
}

/** One interface of an aggregated Event. */
export interface InterfaceItem {
  /** Interface name in the pod. */
  iface: string;
  /** NetworkAttachmentDefinition name, as upstream's messages show it. */
  network: string;
  /** NetworkAttachmentDefinition namespace (log lines show `<namespace>/<network>`). */
  namespace: string;
  /** Requested attributes, for add events. */
  attrs?: InterfaceAttributes;
  /** Why it failed, for failure events. */
  error?: string;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** What stands for the interface's name in the error text a group of failures shares. */
export const INTERFACE_PLACEHOLDER = "<interface>";

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `error` with whole-word mentions of `iface` replaced by {@linkcode INTERFACE_PLACEHOLDER}. */
function withoutInterface(error: string, iface: string): string {
  if (iface === "") return error;
  const word = new RegExp(`(?<![\\w.-])${escapeRegExp(iface)}(?![\\w.-])`, "g");
  return error.replace(word, INTERFACE_PLACEHOLDER);
}

/** Failures of one network with the same error, up to the interface's own name in it. */
export interface FailureGroup {
  /** `<namespace>/<network>` */
  nadKey: string;
  /** The NAD's name. */
  network: string;
  /** The error; when several interfaces share it, their names read {@linkcode INTERFACE_PLACEHOLDER}. */
  error: string;
  /** The failed interfaces, in order. */
  items: InterfaceItem[];
}

/**
 * Groups failures by network and error, where errors that differ only in the interface name
 * they mention (multus and plugins name it) are the same: a thousand elements failing alike
 * are one group, whatever their names.
 */
export function groupFailures(items: readonly InterfaceItem[]): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const item of items) {
    const nadKey = objectKey(item.namespace, item.network);
    const error = item.error ?? "unknown error";
    const shared = withoutInterface(error, item.iface);
    const key = `${nadKey}\n${shared}`;
    const group = groups.get(key);
    if (group) {
      group.items.push(item);
      group.error = shared;
    } else {
      groups.set(key, { nadKey, network: item.network, error, items: [item] });
    }
  }
  return [...groups.values()];
}

/** Failures grouped by network and error: `network x: <error> (net1, net2)`. */
function failureGroups(items: readonly InterfaceItem[]): string {
  return groupFailures(items).map((g) =>
    `network ${g.network}: ${g.error} (${listSome(g.items.map((i) => i.iface))})`
  ).join("; ");
}

/**
 * The `AddedInterface` message of a pass: upstream's {@linkcode addedInterfaceMessage} for
 * one interface, `pod [<ns/name>]: added <n> interfaces: <if> to network: <net>, …` for more.
 */
export function addedInterfacesMessage(podKey: string, items: readonly InterfaceItem[]): string {
  if (items.length === 1) {
    const [one] = items as [InterfaceItem];
    return addedInterfaceMessage(podKey, one.iface, one.network, one.attrs);
  }
  const each = items.map((i) => `${i.iface} to network: ${i.network}${attributesSuffix(i.attrs)}`);
  return `pod [${podKey}]: added ${plural(items.length, "interface")}: ${listSome(each)}`;
}

/**
 * The `FailedAddingInterface` message of a pass: upstream's
 * {@linkcode failedAddingInterfaceMessage} for one failure, `pod [<ns/name>]: refused: <why>`
 * for one refusal, and for more `pod [<ns/name>]: <n> interfaces could not be added: network
 * <net>: <error> (<if>, …); <m> elements refused: <why>; …`.
 */
export function failedAddingInterfacesMessage(
  podKey: string,
  failures: readonly InterfaceItem[],
  refusals: readonly string[],
): string {
  if (failures.length === 1 && refusals.length === 0) {
    const [one] = failures as [InterfaceItem];
    return failedAddingInterfaceMessage(podKey, one.iface, one.network, one.attrs, one.error);
  }
  if (failures.length === 0 && refusals.length === 1) {
    return `pod [${podKey}]: refused: ${refusals[0]}`;
  }
  const parts: string[] = [];
  if (failures.length > 0) {
    parts.push(
      `${plural(failures.length, "interface")} could not be added: ${failureGroups(failures)}`,
    );
  }
  if (refusals.length > 0) {
    parts.push(`${plural(refusals.length, "element")} refused: ${listSome(refusals, "; ")}`);
  }
  return `pod [${podKey}]: ${parts.join("; ")}`;
}

/**
 * The `RemovedInterface` message of a pass: upstream's {@linkcode removedInterfaceMessage}
 * for one interface, `pod [<ns/name>]: removed <n> interfaces: <if> from network: <net>, …`.
 */
export function removedInterfacesMessage(podKey: string, items: readonly InterfaceItem[]): string {
  if (items.length === 1) {
    const [one] = items as [InterfaceItem];
    return removedInterfaceMessage(podKey, one.iface, one.network);
  }
  const each = items.map((i) => `${i.iface} from network: ${i.network}`);
  return `pod [${podKey}]: removed ${plural(items.length, "interface")}: ${listSome(each)}`;
}

/**
 * The `RestoredInterface` message of a pass: the attachments put back after the change that
 * removed them failed, `pod [<ns/name>]: put back interface <if> of network: <net> (the change
 * failed; it is retried)`, or `… put back <n> interfaces: <if> of network: <net>, …`.
 */
export function restoredInterfacesMessage(podKey: string, items: readonly InterfaceItem[]): string {
  const each = items.map((i) => `${i.iface} of network: ${i.network}`);
  const what = items.length === 1
    ? `interface ${each[0]}`
    : `${plural(items.length, "interface")}: ${listSome(each)}`;
  return `pod [${podKey}]: put back ${what} (the change failed; it is retried)`;
}

/**
 * The `InterfaceDrifted` message (repair off): each drifted interface, its network and what the
 * check found, then the fix.
 */
export function driftedInterfacesMessage(podKey: string, items: readonly InterfaceItem[]): string {
  const each = items.map((i) => `${i.iface} of network: ${i.network}: ${i.error ?? "drifted"}`);
  return `pod [${podKey}]: not as network-status records it (a CNI CHECK failed): ${
    listSome(each, "; ")
  }; repair is off (driftRepair: false): remove the element and add it back, or turn driftRepair on`;
}

/** The `RepairedInterface` message: each repaired interface, its network and what was found. */
export function repairedInterfacesMessage(podKey: string, items: readonly InterfaceItem[]): string {
  const each = items.map((i) =>
    `${i.iface} of network: ${i.network} (found: ${i.error ?? "drifted"})`
  );
  return `pod [${podKey}]: a CNI CHECK found ${
    items.length === 1 ? "an interface" : plural(items.length, "interface")
  } not as network-status records it; released and added again with the same request: ${
    listSome(each, "; ")
  }`;
}

/**
 * The `SandboxInterfaceClash` message: `pod [<ns/name>]: the networks annotation works in the
 * running sandbox, but multus would fail the next one (…): <each clash>`, the clashes `; `
 * apart, at most {@linkcode LISTED_ITEMS}.
 */
export function sandboxClashMessage(podKey: string, clashes: readonly string[]): string {
  return `pod [${podKey}]: the networks annotation works in the running sandbox, but multus would fail the next one (made when the kubelet replaces a dead sandbox) and the pod could not start again: ${
    listSome(clashes, "; ")
  }`;
}

/**
 * The `FailedRemovingInterface` message of a pass: upstream's
 * {@linkcode failedRemovingInterfaceMessage} for one failure, and for more
 * `pod [<ns/name>]: <n> interfaces could not be removed: network <net>: <error> (<if>, …)`.
 */
export function failedRemovingInterfacesMessage(
  podKey: string,
  failures: readonly InterfaceItem[],
): string {
  if (failures.length === 1) {
    const [one] = failures as [InterfaceItem];
    return failedRemovingInterfaceMessage(podKey, one.iface, one.network, one.error);
  }
  return `pod [${podKey}]: ${plural(failures.length, "interface")} could not be removed: ${
    failureGroups(failures)
  }`;
}
