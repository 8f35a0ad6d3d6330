/**
 * The `k8s.v1.cni.cncf.io/networks` annotation: the networks a pod asks for.
 *
 * Two forms are accepted, as multus and the original controller accept them:
 * - a JSON list of NetworkSelectionElement objects, e.g.
 *   `[{"name": "net-a", "namespace": "ns1", "interface": "net1", "ips": ["10.1.1.11/24"]}]`;
 * - a comma-separated short form of `[namespace/]name[@interface]` items, e.g. `ns1/net-a@net1, net-b`.
 *
 * Any bad element rejects the whole annotation with a `SelectionError` (`selection_element.ts`) that names the
 * element, the field and the fix, because acting on half of a list the user got wrong would plug
 * and unplug the wrong interfaces.
 *
 * @module
 */
import { jsonDepth, jsonType } from "../base/json.ts";
import { isDnsLabel } from "./names.ts";
import {
  DNS_LABEL_HINT,
  INTERFACE_HINT,
  interfaceNameProblem,
  type NetworkSelectionElement,
  quote,
  SelectionError,
} from "./selection_element.ts";
import { parseJsonElement } from "./selection_json.ts";

const utf8 = new TextEncoder();

/** Largest annotation accepted, in bytes: the API server's limit for all annotations together. */
export const MAX_ANNOTATION_BYTES = 256 * 1024;

/** Largest number of elements accepted in one annotation. */
export const MAX_ELEMENTS = 1000;

/** Deepest JSON nesting accepted (the list itself is level 1); real annotations use 4 or less. */
export const MAX_JSON_DEPTH = 32;

/** The short form takes RFC 1123 labels of any length, as the original does. */
const isShortFormLabel = (text: string) => isDnsLabel(text, Infinity);

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
