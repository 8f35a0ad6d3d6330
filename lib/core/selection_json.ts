/**
 * The JSON form of the networks annotation, one element at a time: every known key of
 * multus' NetworkSelectionElement, matched case-insensitively as Go's decoder matches them,
 * each value checked and any problem reported with its path (`networks[2].ips[0]`).
 *
 * @module
 */
import { isPlainObject, jsonType } from "../base/json.ts";
import { parseCidr, parseIp, parseMac } from "./address.ts";
import { isNamespaceName, isObjectName } from "./names.ts";
import {
  type BandwidthEntry,
  DNS_LABEL_HINT,
  INTERFACE_HINT,
  interfaceNameProblem,
  type NetworkSelectionElement,
  type PortMapping,
  quote,
  SelectionError,
} from "./selection_element.ts";

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

/** Parses element `value` of a JSON-form annotation of a pod in `podNamespace`; `path` names it. */
export function parseJsonElement(
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
