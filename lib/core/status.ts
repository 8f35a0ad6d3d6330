/**
 * The `k8s.v1.cni.cncf.io/network-status` annotation: the attachments a pod has.
 *
 * Entries are read keeping every field, including ones this program does not know, and written
 * back in their original order in exactly the text format multus uses, so that other readers of
 * the annotation see no difference between our writes and multus' own.
 *
 * @module
 */
import { goEscape } from "../base/go_json.ts";
import { isPlainObject, jsonDepth, jsonType } from "../base/json.ts";
import { canonicalIp } from "./address.ts";
import type { CniResult, Dns } from "./cni_result.ts";
import { objectKey } from "./names.ts";

export type { CniResult, Dns } from "./cni_result.ts";

/** Deepest JSON nesting accepted in network-status (multus writes 4 levels at most). */
export const MAX_STATUS_DEPTH = 32;

/** One attachment as recorded in network-status. Unknown fields are kept as they are. */
export interface NetworkStatus {
  /** `"<namespace>/<nad>"` for attachments; the CNI config name for the cluster network. */
  name: string;
  /** Interface name in the pod. */
  interface?: string;
  /** Bare IP addresses. */
  ips?: string[];
  /** Hardware address. */
  mac?: string;
  /** MTU. */
  mtu?: number;
  /** True for the cluster default network, which is never touched. */
  default?: boolean;
  /** DNS settings from the CNI result. */
  dns?: Dns;
  /** Device details (PCI, vhost-user, ...) reported by device plugins. */
  "device-info"?: Record<string, unknown>;
  /** Gateways of the attachment's default routes. */
  gateway?: string[];
  /** Fields written by other tools; kept and written back unchanged. */
  [unknown: string]: unknown;
}

/** The identity of an attachment: NetworkAttachmentDefinition namespace and name, and interface. */
export interface AttachmentKeyParts {
  /** Namespace of the NetworkAttachmentDefinition. */
  namespace: string;
  /** Name of the NetworkAttachmentDefinition. */
  network: string;
  /** Interface name in the pod. */
  interface: string;
}

/** A network-status annotation that cannot be read; `path` names the entry and field. */
export class StatusError extends Error {
  /** Where the problem is, e.g. `network-status[1].ips`. */
  readonly path: string;

  /** Builds the error; the message is `<path>: <problem>`. */
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`);
    this.name = "StatusError";
    this.path = path;
  }
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

const FIX = "repair or remove the annotation; the next reconcile writes it again";

/** Checks the known fields' types, dropping known fields that are null (as Go's decoder does). */
function checkEntry(value: unknown, path: string): NetworkStatus {
  if (!isPlainObject(value)) {
    throw new StatusError(path, `entry is ${jsonType(value)}, not an object; ${FIX}`);
  }
  const entry = { ...value };
  const expect = (key: string, ok: (v: unknown) => boolean, wanted: string) => {
    if (!(key in entry)) return;
    if (entry[key] === null) {
      delete entry[key];
      return;
    }
    if (!ok(entry[key])) {
      throw new StatusError(
        `${path}.${key}`,
        `${JSON.stringify(entry[key])?.slice(0, 64)} is ${
          jsonType(entry[key])
        }, not ${wanted}; ${FIX}`,
      );
    }
  };
  if (typeof entry.name !== "string") {
    throw new StatusError(
      `${path}.name`,
      `${
        entry.name === undefined ? "missing" : `is ${jsonType(entry.name)}`
      }; every entry needs a name string; ${FIX}`,
    );
  }
  expect("interface", (v) => typeof v === "string", "a string");
  expect("ips", isStringList, "a list of strings");
  expect("mac", (v) => typeof v === "string", "a string");
  expect("mtu", (v) => typeof v === "number" && Number.isInteger(v), "a whole number");
  expect("default", (v) => typeof v === "boolean", "true or false");
  expect("dns", isPlainObject, "an object");
  expect("device-info", isPlainObject, "an object");
  expect("gateway", isStringList, "a list of strings");
  if (isPlainObject(entry.dns)) {
    const dns = entry.dns;
    for (const key of ["nameservers", "search", "options"]) {
      if (dns[key] !== undefined && dns[key] !== null && !isStringList(dns[key])) {
        throw new StatusError(
          `${path}.dns.${key}`,
          `is ${jsonType(dns[key])}, not a list of strings; ${FIX}`,
        );
      }
    }
    if (dns.domain !== undefined && dns.domain !== null && typeof dns.domain !== "string") {
      throw new StatusError(
        `${path}.dns.domain`,
        `is ${jsonType(dns.domain)}, not a string; ${FIX}`,
      );
    }
  }
  return entry as NetworkStatus;
}

/**
 * The text each parsed entry had in its annotation. {@linkcode formatNetworkStatus} writes an
 * entry that is still the very object {@linkcode parseNetworkStatus} returned back as that
 * text, so entries this program does not change (other writers' among them) keep their keys,
 * their order and their values exactly; any changed entry is a new object.
 */
const sourceText = new WeakMap<NetworkStatus, string>();

/**
 * The text of each element of a JSON array, in order. `text` must be valid JSON whose top
 * level is an array.
 */
function arrayElementTexts(text: string): string[] {
  const elements: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      if (depth === 1 && start < 0) start = i;
    } else if (c === "[" || c === "{") {
      if (depth === 1 && start < 0) start = i;
      depth++;
    } else if (c === "]" || c === "}") {
      depth--;
      if (depth === 0) {
        if (start >= 0) elements.push(text.slice(start, i).trimEnd());
        break;
      }
    } else if (c === "," && depth === 1) {
      elements.push(text.slice(start, i).trimEnd());
      start = -1;
    } else if (depth === 1 && start < 0 && !/\s/.test(c!)) {
      start = i;
    }
  }
  return elements;
}

/**
 * Parses network-status. Missing, empty or blank means no entries. Entries keep their order and
 * every field. Throws {@linkcode StatusError} naming the entry and field when it cannot be read.
 */
export function parseNetworkStatus(annotation: string | undefined): NetworkStatus[] {
  if (annotation === undefined || annotation.trim() === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(annotation);
  } catch (err) {
    throw new StatusError("network-status", `not valid JSON (${(err as Error).message}); ${FIX}`);
  }
  if (!Array.isArray(parsed)) {
    throw new StatusError("network-status", `is ${jsonType(parsed)}, not a list; ${FIX}`);
  }
  if (jsonDepth(parsed, MAX_STATUS_DEPTH) > MAX_STATUS_DEPTH) {
    throw new StatusError(
      "network-status",
      `nested deeper than ${MAX_STATUS_DEPTH} levels; ${FIX}`,
    );
  }
  const entries = parsed.map((entry, index) => checkEntry(entry, `network-status[${index}]`));
  const texts = arrayElementTexts(annotation);
  if (texts.length === entries.length) {
    entries.forEach((entry, index) => sourceText.set(entry, texts[index]!));
  }
  return entries;
}

/** Keys written in Go's struct order; the rest follow in their own order. */
const ENTRY_KEYS = [
  "name",
  "interface",
  "ips",
  "mac",
  "mtu",
  "default",
  "dns",
  "device-info",
  "gateway",
];
const DNS_KEYS = ["nameservers", "domain", "search", "options"];

/** True when Go's `omitempty` would leave the value out. */
function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === "" || value === 0 || value === false ||
    (Array.isArray(value) && value.length === 0);
}

/** Orders `source` like Go would encode its struct: known keys first (empty ones left out). */
function ordered(source: Record<string, unknown>, known: string[], always: string[]) {
  // A null prototype keeps an unknown "__proto__" key an ordinary key.
  const out: Record<string, unknown> = Object.create(null);
  for (const key of known) {
    if (always.includes(key) || !isEmpty(source[key])) out[key] = source[key];
  }
  for (const [key, value] of Object.entries(source)) {
    if (!known.includes(key) && value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Formats entries as multus writes network-status: entries joined by `,` inside `[` `]` (`[]`
 * when there are none). An entry as parsed by {@linkcode parseNetworkStatus} is written back as
 * the text it was read from. Any other entry is JSON indented by four spaces, its known keys in
 * the order of multus' Go struct with empty ones left out and `dns` always present, unknown
 * keys after them.
 */
export function formatNetworkStatus(entries: NetworkStatus[]): string {
  const parts = entries.map((entry) => {
    const source = sourceText.get(entry);
    if (source !== undefined) return source;
    const dns = isPlainObject(entry.dns) ? ordered(entry.dns, DNS_KEYS, []) : {};
    const value = ordered({ ...entry, name: entry.name ?? "", dns }, ENTRY_KEYS, ["name", "dns"]);
    return goEscape(JSON.stringify(value, null, 4));
  });
  return `[${parts.join(",")}]`;
}

/** True for a route to everywhere: no destination, or destination address 0.0.0.0 or `::`. */
function isDefaultRoute(dst: string | undefined): boolean {
  if (dst === undefined || dst === "") return true;
  const address = canonicalIp(dst);
  return address === "0.0.0.0" || address === "::";
}

/**
 * Builds the network-status entry for a successful ADD, as multus' CreateNetworkStatus does:
 * interface, mac and mtu from the last interface inside the sandbox; every assigned address
 * without its prefix; the gateways of default routes (routes without a gateway are skipped);
 * DNS copied. `networkName` is `"<namespace>/<nad>"`.
 */
export function statusFromCniResult(networkName: string, result: CniResult): NetworkStatus {
  const entry: NetworkStatus = { name: networkName };
  for (const iface of result.interfaces ?? []) {
    if (!iface?.sandbox) continue;
    entry.interface = iface.name;
    if (iface.mac) entry.mac = iface.mac;
    else delete entry.mac;
    if (iface.mtu) entry.mtu = iface.mtu;
    else delete entry.mtu;
  }
  const ips = (result.ips ?? [])
    .filter((ip) => typeof ip?.address === "string")
    .map((ip) => canonicalIp(ip.address) ?? ip.address.split("/")[0]!);
  if (ips.length > 0) entry.ips = ips;
  const gateways = (result.routes ?? [])
    .filter((route) =>
      typeof route?.gw === "string" && route.gw !== "" && isDefaultRoute(route.dst)
    )
    .map((route) => canonicalIp(route.gw!) ?? route.gw!);
  const dns: Dns = {};
  const source = result.dns ?? {};
  if (source.nameservers?.length) dns.nameservers = [...source.nameservers];
  if (source.domain) dns.domain = source.domain;
  if (source.search?.length) dns.search = [...source.search];
  if (source.options?.length) dns.options = [...source.options];
  entry.dns = dns;
  if (gateways.length > 0) entry.gateway = gateways;
  return entry;
}

/**
 * Splits a status entry name into NAD namespace and name. `"ns/name"` gives both; a bare
 * `"name"` (written by older multus for the pod's own namespace) gives only `network`.
 * Undefined when the name has more than one `/` or an empty part.
 */
export function splitNetworkName(
  name: string,
): { namespace?: string; network: string } | undefined {
  const parts = name.split("/");
  if (parts.some((part) => part === "")) return undefined;
  if (parts.length === 1) return { network: parts[0]! };
  if (parts.length === 2) return { namespace: parts[0]!, network: parts[1]! };
  return undefined;
}

/** True when two entry names denote the same network; a bare name matches any namespace. */
function sameNetwork(a: string, b: string): boolean {
  if (a === b) return true;
  const left = splitNetworkName(a);
  const right = splitNetworkName(b);
  if (!left || !right || left.network !== right.network) return false;
  return left.namespace === undefined || right.namespace === undefined;
}

/**
 * True when `entry` records the attachment `key`. Default entries never match. A bare entry
 * name matches `key` by network name alone: interface names are unique within a pod.
 */
export function isEntryOf(entry: NetworkStatus, key: AttachmentKeyParts): boolean {
  return entry.default !== true && entry.interface === key.interface &&
    typeof entry.name === "string" &&
    sameNetwork(entry.name, objectKey(key.namespace, key.network));
}

/** The entries without those recording `key`; order is kept and default entries are never dropped. */
export function withoutAttachment(
  entries: NetworkStatus[],
  key: AttachmentKeyParts,
): NetworkStatus[] {
  return entries.filter((entry) => !isEntryOf(entry, key));
}

/**
 * The entries with `entry` recorded: it replaces, in place, the first non-default entry of the
 * same network and interface; otherwise it is appended. Default entries are never replaced.
 */
export function withAttachment(entries: NetworkStatus[], entry: NetworkStatus): NetworkStatus[] {
  const index = entries.findIndex((existing) =>
    existing.default !== true && entry.default !== true &&
    existing.interface !== undefined && existing.interface === entry.interface &&
    sameNetwork(existing.name, entry.name)
  );
  if (index < 0) return [...entries, entry];
  return entries.map((existing, i) => i === index ? entry : existing);
}
