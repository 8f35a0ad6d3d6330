/**
 * Edits of the networks annotation as people make them: one element added, or the element
 * that holds one interface removed. The annotation keeps its form (the short
 * `[namespace/]name[@interface]` list or the JSON list): every other element is kept exactly
 * as written, unknown JSON fields included. Only an element the short form cannot express
 * (one with `ips` or `mac`) turns a short list into a JSON one.
 *
 * Pure: the command reads the pod and writes the text with optimistic concurrency.
 *
 * @module
 */
import { objectKey } from "../core/names.ts";
import { planPod } from "../core/plan.ts";
import { parseNetworkSelection } from "../core/selection.ts";
import type { NetworkSelectionElement } from "../core/selection_element.ts";
import type { NetworkStatus } from "../core/status.ts";

/** The element a person adds. */
export interface NewElement {
  /** The NetworkAttachmentDefinition's name. */
  name: string;
  /** Its namespace, when given (else the pod's). */
  namespace?: string;
  /** The interface name in the pod, when given (else the agent picks the lowest free `netN`). */
  interface?: string;
  /** Requested addresses. */
  ips?: string[];
  /** Requested MAC address. */
  mac?: string;
}

/** An edit that cannot be made as asked; the message names the value and the fix. */
export class EditError extends Error {
  /** An edit error with `message`. */
  constructor(message: string) {
    super(message);
    this.name = "EditError";
  }
}

/** The annotation after an edit. */
export interface EditedAnnotation {
  /** The new text; undefined when no element is left (the annotation is then removed). */
  text: string | undefined;
  /** The form written. */
  form: "short" | "json";
  /** True when a short list had to become a JSON one. */
  converted: boolean;
}

/** The pod an edit is for: its namespace and its network-status entries. */
export interface EditedPod {
  /** The pod's namespace (the default namespace of its networks). */
  namespace: string;
  /** The pod's name. */
  name: string;
  /** The pod's network-status entries. */
  status: readonly NetworkStatus[];
}

function isJsonForm(text: string | undefined): boolean {
  return text !== undefined && /[[{"]/.test(text);
}

function isEmpty(text: string | undefined): boolean {
  return text === undefined || text.trim() === "" || /^\s*\[\s*\]\s*$/.test(text);
}

function describe(e: NetworkSelectionElement, podNamespace: string): string {
  const name = e.namespace === podNamespace ? e.name : objectKey(e.namespace, e.name);
  return e.interface ? `${name}@${e.interface}` : name;
}

/**
 * The interface each element of `elements` gets (by index; undefined for an element the
 * agent refuses), as the agent names them: the element's own, or the `netN` it matched or
 * will get.
 */
export function assignedInterfaces(
  pod: EditedPod,
  elements: NetworkSelectionElement[],
): (string | undefined)[] {
  const plan = planPod(
    { namespace: pod.namespace, name: pod.name, uid: "", hostNetwork: false, deleting: false },
    elements,
    [...pod.status],
  );
  const refused = new Set(plan.refusals.flatMap((r) => r.elementIndex ?? []));
  const names: (string | undefined)[] = [];
  let next = 0;
  for (let i = 0; i < elements.length; i++) {
    if (refused.has(i)) {
      names.push(undefined);
      continue;
    }
    names.push(plan.desired[next++]?.id.interface);
  }
  return names;
}

function jsonList(text: string | undefined): unknown[] {
  if (isEmpty(text)) return [];
  const parsed = JSON.parse(text!);
  return Array.isArray(parsed) ? parsed : [parsed];
}

function shortItems(text: string | undefined): string[] {
  return isEmpty(text) ? [] : text!.split(",").map((s) => s.trim());
}

function jsonElement(e: NewElement | NetworkSelectionElement, podNamespace: string) {
  const out: Record<string, unknown> = { name: e.name };
  if (e.namespace !== undefined && e.namespace !== podNamespace) out.namespace = e.namespace;
  if (e.interface !== undefined) out.interface = e.interface;
  if (e.ips !== undefined && e.ips.length > 0) out.ips = e.ips;
  if (e.mac !== undefined) out.mac = e.mac;
  return out;
}

/**
 * `annotation` (the networks annotation's text, undefined when absent) with `element` added
 * at its end. Throws a `SelectionError` when the annotation is already invalid (it is not
 * rewritten on a guess), and an {@linkcode EditError} when the interface name is taken: by
 * another element, or by an interface the pod has that the agent does not manage (its
 * cluster network).
 */
export function withElement(
  annotation: string | undefined,
  element: NewElement,
  pod: EditedPod,
): EditedAnnotation {
  const elements = parseNetworkSelection(annotation, pod.namespace);
  const iface = element.interface;
  if (iface !== undefined) {
    const names = assignedInterfaces(pod, elements);
    const holder = elements.findIndex((e, i) => (e.interface ?? names[i]) === iface);
    if (holder >= 0) {
      throw new EditError(
        `interface ${iface} is already asked for by element ${holder} of the networks annotation (${
          describe(elements[holder]!, pod.namespace)
        }): name another interface with ${element.name}@<interface>, or detach ${iface} first`,
      );
    }
    const taken = pod.status.find((s) => s.interface === iface && s.default === true);
    if (taken) {
      throw new EditError(
        `interface ${iface} is the pod's cluster network (${taken.name}), which multus attached at its creation: name another interface with ${element.name}@<interface>`,
      );
    }
  }
  const needsJson = (element.ips?.length ?? 0) > 0 || element.mac !== undefined;
  if (isJsonForm(annotation) || isEmpty(annotation)) {
    const list = jsonList(annotation);
    list.push(jsonElement(element, pod.namespace));
    return { text: JSON.stringify(list), form: "json", converted: false };
  }
  if (needsJson) {
    const list = elements.map((e) => jsonElement(e, pod.namespace));
    list.push(jsonElement(element, pod.namespace));
    return { text: JSON.stringify(list), form: "json", converted: true };
  }
  const ns = element.namespace !== undefined ? `${element.namespace}/` : "";
  const item = `${ns}${element.name}${iface !== undefined ? `@${iface}` : ""}`;
  return { text: [...shortItems(annotation), item].join(","), form: "short", converted: false };
}

/** The annotation after a removal, and the element removed. */
export interface RemovedElement extends EditedAnnotation {
  /** The removed element, as `[namespace/]name[@interface]`. */
  removed: string;
}

/**
 * `annotation` without the element that holds interface `iface`: the one that names it, or
 * the one without a name the agent gave it to (read from network-status, as the agent
 * matches them). Throws an {@linkcode EditError} naming the interfaces there are when no
 * element holds `iface`.
 */
export function withoutInterface(
  annotation: string | undefined,
  iface: string,
  pod: EditedPod,
): RemovedElement {
  const elements = parseNetworkSelection(annotation, pod.namespace);
  const names = assignedInterfaces(pod, elements);
  const index = elements.findIndex((e) => e.interface === iface) >= 0
    ? elements.findIndex((e) => e.interface === iface)
    : names.indexOf(iface);
  if (index < 0) {
    const cluster = pod.status.find((s) => s.interface === iface && s.default === true);
    if (cluster) {
      throw new EditError(
        `interface ${iface} is the pod's cluster network (${cluster.name}), which multus attached at its creation; it cannot be detached`,
      );
    }
    const listed = names.filter((n): n is string => n !== undefined);
    throw new EditError(
      `no element of the networks annotation of pod ${
        objectKey(pod.namespace, pod.name)
      } holds interface ${iface}: ${
        listed.length === 0 ? "it asks for no network" : `its interfaces are ${listed.join(", ")}`
      }; name one of those`,
    );
  }
  const removed = describe({ ...elements[index]!, interface: names[index] }, pod.namespace);
  if (elements.length === 1) {
    return { text: undefined, form: formOf(annotation), converted: false, removed };
  }
  if (isJsonForm(annotation)) {
    const list = jsonList(annotation);
    list.splice(index, 1);
    return { text: JSON.stringify(list), form: "json", converted: false, removed };
  }
  const items = shortItems(annotation);
  items.splice(index, 1);
  return { text: items.join(","), form: "short", converted: false, removed };
}

function formOf(annotation: string | undefined): "short" | "json" {
  return isJsonForm(annotation) ? "json" : "short";
}
