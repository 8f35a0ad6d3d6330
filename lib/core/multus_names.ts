/**
 * The interface names multus gives a pod's networks whenever it makes a pod sandbox: at the
 * pod's creation, and again each time the kubelet replaces a dead sandbox. An element's own
 * `interface` is kept; one without gets `net<i>`, `i` being its place in multus' list of the
 * sandbox's networks, where the cluster network is 0 (so the annotation's first element is
 * `net1`). multus has no other rule: two elements that end with one name fail the whole
 * sandbox, and the pod cannot start again until its annotation changes.
 *
 * The agent names a hot-plugged element without `interface` the lowest free `netN` instead, so
 * an annotation that works in the running sandbox can still clash in the next one: these are
 * the clashes to tell people about. (A multus configured with `defaultNetworks` puts those
 * first and shifts every position; the names here assume none, multus' default.)
 *
 * @module
 */
import type { NetworkSelectionElement } from "./selection_element.ts";

/** An element without an interface name whose multus name another element asks for. */
export interface SandboxNameClash {
  /** Index of the element without `interface` in the annotation. */
  unnamed: number;
  /** The name multus gives it in a new sandbox, `net<unnamed + 1>`. */
  name: string;
  /** Index of the element whose `interface` is that name. */
  named: number;
}

/** The interface multus gives the element at `index` of the annotation in a new sandbox. */
export function multusInterfaceName(element: NetworkSelectionElement, index: number): string {
  return element.interface ?? `net${index + 1}`;
}

/** Every element without `interface` whose multus name an element names explicitly, in order. */
export function sandboxNameClashes(
  elements: readonly NetworkSelectionElement[],
): SandboxNameClash[] {
  const namedAt = new Map<string, number>();
  elements.forEach((element, index) => {
    if (element.interface !== undefined && !namedAt.has(element.interface)) {
      namedAt.set(element.interface, index);
    }
  });
  return elements.flatMap((element, index) => {
    if (element.interface !== undefined) return [];
    const name = multusInterfaceName(element, index);
    const named = namedAt.get(name);
    return named === undefined ? [] : [{ unnamed: index, name, named }];
  });
}

/**
 * One sentence per clash, naming both elements and the fix: `networks[2] (blue) names no
 * interface, so multus calls it net3 in a new sandbox, the name networks[0] (red) asks for`.
 */
export function describeSandboxNameClash(
  clash: SandboxNameClash,
  elements: readonly NetworkSelectionElement[],
): string {
  const label = (index: number) => `networks[${index}] (${elements[index]?.name ?? "?"})`;
  return `${
    label(clash.unnamed)
  } names no interface, so multus calls it ${clash.name} in a new sandbox, the name ${
    label(clash.named)
  } asks for: give networks[${clash.unnamed}] an "interface", or rename networks[${clash.named}]'s`;
}
