/**
 * The `k8s.v1.cni.cncf.io/networks` annotation: the networks a pod asks for.
 *
 * Two forms are accepted, as multus and the original controller accept them:
 * - a JSON list of NetworkSelectionElement objects, e.g.
 *   `[{"name": "net-a", "namespace": "ns1", "interface": "net1", "ips": ["10.1.1.11/24"]}]`;
 * - a comma-separated short form of `[namespace/]name[@interface]` items, e.g. `ns1/net-a@net1, net-b`.
 *
 * Any bad element rejects the whole annotation with a {@linkcode SelectionError} that names the
 * element, the field and the fix, because acting on half of a list the user got wrong would plug
 * and unplug the wrong interfaces.
 *
 * @module
 */
import { isPlainObject, jsonDepth, jsonType } from "../base/json.ts";
import { parseCidr, parseIp, parseMac } from "./address.ts";
import { isDnsLabel, isNamespaceName, isObjectName } from "./names.ts";

/** Largest annotation accepted, in bytes: the API server's limit for all annotations together. */
export const MAX_ANNOTATION_BYTES = 256 * 1024;

/** Largest number of elements accepted in one annotation. */
export const MAX_ELEMENTS = 1000;

/** Deepest JSON nesting accepted (the list itself is level 1); real annotations use 4 or less. */
export const MAX_JSON_DEPTH = 32;

/** A port mapping request (`portMappings[]`), passed through for plugins that honour it. */
export interface PortMapping {
  /** Port on the node. */
  hostPort?: number;
  /** Port in the pod. */
  containerPort?: number;
  /** `tcp`, `udp` or `sctp`. */
  protocol?: string;
  /** Node address to bind. */
  hostIP?: string;
}

/** A bandwidth limit request (`bandwidth`), passed through for plugins that honour it. */
export interface BandwidthEntry {
  /** Ingress rate in bits per second. */
  ingressRate?: number;
  /** Ingress burst in bits. */
  ingressBurst?: number;
  /** Egress rate in bits per second. */
  egressRate?: number;
  /** Egress burst in bits. */
  egressBurst?: number;
}

/** One requested attachment: a NetworkAttachmentDefinition and how to attach it. */
export interface NetworkSelectionElement {
  /** Name of the NetworkAttachmentDefinition. */
  name: string;
  /** Namespace of the NetworkAttachmentDefinition; defaulted to the pod's namespace. */
  namespace: string;
  /** Interface name in the pod; absent when the element does not name one. */
  interface?: string;
  /** Requested addresses, each an IP or a CIDR; absent when none are requested. */
  ips?: string[];
  /** Requested MAC address, as written. */
  mac?: string;
  /** Extra CNI arguments for the delegate. */
  "cni-args"?: Record<string, unknown> | null;
  /** Gateways for default routes through this attachment. */
  "default-route"?: string[];
  /** Port mappings. */
  portMappings?: PortMapping[];
  /** Bandwidth limits. */
  bandwidth?: BandwidthEntry;
  /** Requested InfiniBand GUID, as written. */
  "infiniband-guid"?: string;
  /** Name of an IPAMClaim that holds this attachment's addresses. */
  "ipam-claim-reference"?: string;
}

/**
 * A networks annotation that cannot be used. `path` names the element and field
 * (`networks[2].mac`, or `networks` for the annotation as a whole) and `value` is the bad value.
 */
export class SelectionError extends Error {
  /** Where the problem is, e.g. `networks[2].mac`. */
  readonly path: string;
  /** The offending value. */
  readonly value: unknown;

  /** Builds the error; the message is `<path>: <problem>`. */
  constructor(path: string, value: unknown, problem: string) {
    super(`${path}: ${problem}`);
    this.name = "SelectionError";
    this.path = path;
    this.value = value;
  }
}

/** Quotes a value for an error message, shortening long ones so messages stay readable. */
function quote(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 64 ? `${text.slice(0, 60)}...${text.slice(-3)}` : text;
}

const DNS_LABEL_HINT =
  'use lowercase letters, digits and "-", starting and ending with a letter or digit';
const INTERFACE_HINT = 'interface names are 1 to 15 bytes without "/", ":" or whitespace';

/** The short form takes RFC 1123 labels of any length, as the original does. */
const isShortFormLabel = (text: string) => isDnsLabel(text, Infinity);

const utf8 = new TextEncoder();

/**
 * Why the kernel would refuse `name` as a network interface name (its `dev_valid_name` rule),
 * or undefined when it is acceptable: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
 */
export function interfaceNameProblem(name: string): string | undefined {
  const bytes = utf8.encode(name);
  if (bytes.length === 0) return "is empty";
  if (bytes.length > 15) return `is ${bytes.length} bytes long; the kernel allows at most 15`;
  if (name === "." || name === "..") return "is reserved by the kernel";
  for (const byte of bytes) {
    if (byte === 0x2f) return 'contains "/"';
    if (byte === 0x3a) return 'contains ":"';
    if (byte === 0) return "contains a NUL character";
    // The kernel's isspace() also counts byte 0xa0, which occurs inside some UTF-8 characters.
    if (byte === 0x20 || (byte >= 0x09 && byte <= 0x0d) || byte === 0xa0) {
      return "contains whitespace";
    }
  }
  return undefined;
}

/**
 * Parses the networks annotation of a pod in `podNamespace`. A missing, empty or blank
 * annotation means no networks. Throws {@linkcode SelectionError} naming the first problem.
 */
export function parseNetworkSelection(
  annotation: string | undefined,
  podNamespace: string,
): NetworkSelectionElement[] {
  if (annotation === undefined || annotation.trim() === "") return [];
  // Cheap bound first: a UTF-8 byte is at most one UTF-16 unit, at most three bytes per unit.
  if (
    annotation.length > MAX_ANNOTATION_BYTES ||
    utf8.encode(annotation).length > MAX_ANNOTATION_BYTES
  ) {
    throw new SelectionError(
      "networks",
      undefined,
      `the annotation is ${
        utf8.encode(annotation).length
      } bytes; at most ${MAX_ANNOTATION_BYTES} are accepted, so list fewer networks`,
    );
  }
  if (/[[{"]/.test(annotation)) return parseJsonForm(annotation, podNamespace);
  return parseShortForm(annotation, podNamespace);
}

function parseShortForm(annotation: string, podNamespace: string): NetworkSelectionElement[] {
  const items = annotation.split(",");
  if (items.length > MAX_ELEMENTS) {
    throw new SelectionError(
      "networks",
      undefined,
      `${items.length} elements listed; at most ${MAX_ELEMENTS} are accepted`,
    );
  }
  return items.map((raw, index) => parseShortItem(raw.trim(), index, podNamespace));
}

function parseShortItem(
  item: string,
  index: number,
  podNamespace: string,
): NetworkSelectionElement {
  const path = `networks[${index}]`;
  const form = "write [namespace/]name[@interface]";
  if (item === "") {
    throw new SelectionError(path, item, `empty element; remove the extra ","`);
  }
  const slashParts = item.split("/");
  if (slashParts.length > 2) {
    throw new SelectionError(path, item, `${quote(item)} has more than one "/"; ${form}`);
  }
  const nameAndInterface = slashParts[slashParts.length - 1]!;
  const atParts = nameAndInterface.split("@");
  if (atParts.length > 2) {
    throw new SelectionError(path, item, `${quote(item)} has more than one "@"; ${form}`);
  }
  const element: NetworkSelectionElement = { name: atParts[0]!, namespace: podNamespace };
  if (slashParts.length === 2) {
    const namespace = slashParts[0]!;
    if (!isShortFormLabel(namespace)) {
      throw new SelectionError(
        `${path}.namespace`,
        namespace,
        namespace === ""
          ? `empty namespace before "/" in ${quote(item)}; name the namespace or drop the "/"`
          : `${quote(namespace)} is not a valid namespace; ${DNS_LABEL_HINT}`,
      );
    }
    element.namespace = namespace;
  }
  if (!isShortFormLabel(element.name)) {
    throw new SelectionError(
      `${path}.name`,
      element.name,
      element.name === ""
        ? `no network name in ${quote(item)}; ${form}`
        : `${quote(element.name)} is not a valid network name; ${DNS_LABEL_HINT}`,
    );
  }
  if (atParts.length === 2) {
    const ifname = atParts[1]!;
    const kernelProblem = interfaceNameProblem(ifname);
    if (kernelProblem) {
      throw new SelectionError(
        `${path}.interface`,
        ifname,
        ifname === ""
          ? `empty interface name after "@" in ${quote(item)}; name the interface or drop the "@"`
          : `${quote(ifname)} ${kernelProblem}; ${INTERFACE_HINT}`,
      );
    }
    // The short form only takes RFC 1123 labels, as the original does; JSON takes any kernel name.
    if (!isShortFormLabel(ifname)) {
      throw new SelectionError(
        `${path}.interface`,
        ifname,
        `${
          quote(ifname)
        } is not allowed in the short form; ${DNS_LABEL_HINT}, or use the JSON form`,
      );
    }
    element.interface = ifname;
  }
  return element;
}

function parseJsonForm(annotation: string, podNamespace: string): NetworkSelectionElement[] {
  const example = 'such as [{"name": "net-a", "interface": "net1"}]';
  let parsed: unknown;
  try {
    parsed = JSON.parse(annotation);
  } catch (err) {
    throw new SelectionError(
      "networks",
      annotation,
      `not valid JSON (${
        (err as Error).message
      }); write a JSON list ${example}, or the short form net-a@net1`,
    );
  }
  if (!Array.isArray(parsed)) {
    throw new SelectionError(
      "networks",
      parsed,
      `${jsonType(parsed)} is not a list; write a JSON list ${example}`,
    );
  }
  if (parsed.length > MAX_ELEMENTS) {
    throw new SelectionError(
      "networks",
      undefined,
      `${parsed.length} elements listed; at most ${MAX_ELEMENTS} are accepted`,
    );
  }
  if (jsonDepth(parsed, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new SelectionError(
      "networks",
      undefined,
      `JSON nested deeper than ${MAX_JSON_DEPTH} levels; flatten the "cni-args" values`,
    );
  }
  return parsed.map((value, index) => parseJsonElement(value, `networks[${index}]`, podNamespace));
}

/** The element's keys, as written in JSON; Go's decoder matches them case-insensitively. */
const ELEMENT_KEYS = [
  "name",
  "namespace",
  "interface",
  "ips",
  "mac",
  "cni-args",
  "default-route",
  "portMappings",
  "bandwidth",
  "infiniband-guid",
  "ipam-claim-reference",
] as const;
type ElementKey = typeof ELEMENT_KEYS[number];

const PORT_MAPPING_KEYS = ["hostPort", "containerPort", "protocol", "hostIP"] as const;
const BANDWIDTH_KEYS = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"] as const;

/**
 * The fields of a JSON object keyed by the known key each one matches (exact or
 * case-insensitive, as Go's encoding/json does; later keys win). Unknown keys are dropped.
 */
function knownFields<K extends string>(
  object: Record<string, unknown>,
  keys: readonly K[],
): Map<K, unknown> {
  const byLowerCase = new Map(keys.map((key) => [key.toLowerCase(), key]));
  const fields = new Map<K, unknown>();
  for (const [key, value] of Object.entries(object)) {
    const known = byLowerCase.get(key.toLowerCase());
    if (known !== undefined) fields.set(known, value);
  }
  return fields;
}

function expectString(value: unknown, path: string, what: string): string {
  if (typeof value !== "string") {
    throw new SelectionError(
      path,
      value,
      `${quote(value)} is ${jsonType(value)}, not a string; write ${what} in quotes`,
    );
  }
  return value;
}

function expectList(value: unknown, path: string, what: string): unknown[] {
  if (!Array.isArray(value)) {
    throw new SelectionError(
      path,
      value,
      `${quote(value)} is ${jsonType(value)}, not a list; write ${what}`,
    );
  }
  return value;
}

function expectObject(value: unknown, path: string, what: string): Record<string, unknown> {
  if (!isPlainObject(value)) {
    throw new SelectionError(
      path,
      value,
      `${quote(value)} is ${jsonType(value)}, not an object; write ${what}`,
    );
  }
  return value;
}

function expectInteger(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new SelectionError(
      path,
      value,
      `${quote(value)} is not a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

const INT32_MAX = 2 ** 31 - 1;

function parseJsonElement(
  value: unknown,
  path: string,
  podNamespace: string,
): NetworkSelectionElement {
  const object = expectObject(value, path, '{"name": "<network>"} for each element');
  const fields = knownFields<ElementKey>(object, ELEMENT_KEYS);
  const field = (key: ElementKey) => {
    const v = fields.get(key);
    return v === null ? undefined : v; // null means "not set", as in Go
  };

  const rawName = field("name");
  if (rawName === undefined || rawName === "") {
    throw new SelectionError(
      `${path}.name`,
      rawName,
      "missing; every element needs the NetworkAttachmentDefinition's name",
    );
  }
  const name = expectString(rawName, `${path}.name`, "the network name");
  if (!isObjectName(name)) {
    throw new SelectionError(
      `${path}.name`,
      name,
      `${
        quote(name)
      } is not a NetworkAttachmentDefinition name; ${DNS_LABEL_HINT} ("." between parts)`,
    );
  }
  const element: NetworkSelectionElement = { name, namespace: podNamespace };

  const namespace = field("namespace");
  if (namespace !== undefined && namespace !== "") {
    element.namespace = expectString(namespace, `${path}.namespace`, "the namespace");
    if (!isNamespaceName(element.namespace)) {
      throw new SelectionError(
        `${path}.namespace`,
        namespace,
        `${quote(namespace)} is not a valid namespace; ${DNS_LABEL_HINT}`,
      );
    }
  }

  const ifname = field("interface");
  if (ifname !== undefined && ifname !== "") {
    const text = expectString(ifname, `${path}.interface`, "the interface name");
    const problem = interfaceNameProblem(text);
    if (problem) {
      throw new SelectionError(
        `${path}.interface`,
        text,
        `${quote(text)} ${problem}; ${INTERFACE_HINT}`,
      );
    }
    element.interface = text;
  }

  const ips = field("ips");
  if (ips !== undefined) {
    const list = expectList(ips, `${path}.ips`, 'a list such as ["10.1.1.11/24"]');
    const checked = list.map((ip, i) => {
      const ipPath = `${path}.ips[${i}]`;
      const text = expectString(ip, ipPath, "the address");
      const valid = text.includes("/") ? parseCidr(text) : parseIp(text);
      if (!valid) {
        throw new SelectionError(
          ipPath,
          text,
          `${quote(text)} is not an IP address or CIDR; write e.g. 10.1.1.11/24 or 2001:db8::11/64`,
        );
      }
      return text;
    });
    if (checked.length > 0) element.ips = checked;
  }

  const mac = field("mac");
  if (mac !== undefined && mac !== "") {
    const text = expectString(mac, `${path}.mac`, "the MAC address");
    if (!parseMac(text)) {
      throw new SelectionError(
        `${path}.mac`,
        text,
        `${quote(text)} is not a MAC address; use six hex pairs such as 02:00:00:00:00:01`,
      );
    }
    element.mac = text;
  }

  const guid = field("infiniband-guid");
  if (guid !== undefined && guid !== "") {
    const text = expectString(guid, `${path}.infiniband-guid`, "the GUID");
    if (!parseMac(text)) {
      throw new SelectionError(
        `${path}.infiniband-guid`,
        text,
        `${
          quote(text)
        } is not a hardware address; use eight hex pairs such as 02:00:00:00:00:00:00:01`,
      );
    }
    element["infiniband-guid"] = text;
  }

  if (fields.has("cni-args")) {
    const args = fields.get("cni-args");
    element["cni-args"] = args === null
      ? null
      : expectObject(args, `${path}.cni-args`, 'an object such as {"key": "value"}');
  }

  const routes = field("default-route");
  if (routes !== undefined) {
    const list = expectList(
      routes,
      `${path}.default-route`,
      'a list of gateways such as ["10.1.1.1"]',
    );
    element["default-route"] = list.map((gateway, i) => {
      const gatewayPath = `${path}.default-route[${i}]`;
      const text = expectString(gateway, gatewayPath, "the gateway address");
      if (!parseIp(text)) {
        throw new SelectionError(
          gatewayPath,
          text,
          `${quote(text)} is not an IP address; write a gateway such as 10.1.1.1 or 2001:db8::1`,
        );
      }
      return text;
    });
  }

  const ports = field("portMappings");
  if (ports !== undefined) {
    const list = expectList(
      ports,
      `${path}.portMappings`,
      'a list such as [{"hostPort": 8080, "containerPort": 80}]',
    );
    element.portMappings = list.map((entry, i) =>
      parsePortMapping(entry, `${path}.portMappings[${i}]`)
    );
  }

  const bandwidth = field("bandwidth");
  if (bandwidth !== undefined) {
    const bandwidthPath = `${path}.bandwidth`;
    const object = expectObject(
      bandwidth,
      bandwidthPath,
      'an object such as {"ingressRate": 1000000}',
    );
    const entry: BandwidthEntry = {};
    for (const [key, rate] of knownFields(object, BANDWIDTH_KEYS)) {
      if (rate === null) continue;
      entry[key] = expectInteger(
        rate,
        `${bandwidthPath}.${key}`,
        Number.MIN_SAFE_INTEGER,
        Number.MAX_SAFE_INTEGER,
      );
    }
    element.bandwidth = entry;
  }

  const claim = field("ipam-claim-reference");
  if (claim !== undefined && claim !== "") {
    element["ipam-claim-reference"] = expectString(
      claim,
      `${path}.ipam-claim-reference`,
      "the IPAMClaim name",
    );
  }
  return element;
}

function parsePortMapping(value: unknown, path: string): PortMapping {
  const object = expectObject(value, path, '{"hostPort": 8080, "containerPort": 80}');
  const mapping: PortMapping = {};
  for (const [key, field] of knownFields(object, PORT_MAPPING_KEYS)) {
    if (field === null) continue;
    if (key === "hostPort" || key === "containerPort") {
      mapping[key] = expectInteger(field, `${path}.${key}`, -(2 ** 31), INT32_MAX);
    } else {
      mapping[key] = expectString(field, `${path}.${key}`, `the ${key}`);
    }
  }
  return mapping;
}
