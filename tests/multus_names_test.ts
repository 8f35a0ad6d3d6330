import assert from "node:assert/strict";
import {
  describeSandboxNameClash,
  multusInterfaceName,
  sandboxNameClashes,
} from "../lib/core/multus_names.ts";
import type { NetworkSelectionElement } from "../lib/core/selection_element.ts";

const el = (name: string, iface?: string): NetworkSelectionElement => ({
  name,
  namespace: "ns",
  ...(iface === undefined ? {} : { interface: iface }),
});

Deno.test("multus names: an element keeps its interface, one without is net<position>, 1-based", () => {
  assert.equal(multusInterfaceName(el("a", "eth7"), 0), "eth7");
  assert.equal(multusInterfaceName(el("a"), 0), "net1");
  assert.equal(multusInterfaceName(el("a"), 4), "net5");
});

Deno.test("multus names: an explicit name taking an unnamed element's position name clashes", () => {
  const elements = [el("red", "net3"), el("blue"), el("green")];
  assert.deepEqual(sandboxNameClashes(elements), [{ unnamed: 2, name: "net3", named: 0 }]);
  assert.equal(
    describeSandboxNameClash(sandboxNameClashes(elements)[0]!, elements),
    'networks[2] (green) names no interface, so multus calls it net3 in a new sandbox, the name networks[0] (red) asks for: give networks[2] an "interface", or rename networks[0]\'s',
  );
});

Deno.test("multus names: lists multus can plug into a new sandbox have no clash", () => {
  // All unnamed; all named; an element naming its own position's name; names past the list.
  for (
    const elements of [
      [],
      [el("a"), el("a"), el("b")],
      [el("a", "net2"), el("b", "net1")],
      [el("a"), el("b", "net2")],
      [el("a"), el("b", "net9"), el("c", "eth1")],
    ]
  ) {
    assert.deepEqual(sandboxNameClashes(elements), [], JSON.stringify(elements));
  }
});

Deno.test("multus names: every unnamed element in the way is named, each once, in order", () => {
  const elements = [el("a", "net4"), el("b", "net2"), el("c"), el("d")];
  assert.deepEqual(sandboxNameClashes(elements), [{ unnamed: 3, name: "net4", named: 0 }]);
  const both = [el("a", "net3"), el("b"), el("c"), el("d", "net2")];
  assert.deepEqual(sandboxNameClashes(both), [
    { unnamed: 1, name: "net2", named: 3 },
    { unnamed: 2, name: "net3", named: 0 },
  ]);
});
