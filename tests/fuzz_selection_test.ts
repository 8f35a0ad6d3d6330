import assert from "node:assert/strict";
import fc from "fast-check";
import { type NetworkSelectionElement, SelectionError } from "../lib/core/selection_element.ts";
import { parseNetworkSelection } from "../lib/core/selection.ts";

const POD_NS = "pod-ns";

/** Parses, and checks that any failure is a SelectionError naming the annotation or an element. */
function parseOrExplain(annotation: string): NetworkSelectionElement[] | SelectionError {
  try {
    const elements = parseNetworkSelection(annotation, POD_NS);
    for (const element of elements) {
      assert.equal(typeof element.name, "string");
      assert.ok(element.name.length > 0);
      assert.equal(typeof element.namespace, "string");
    }
    return elements;
  } catch (err) {
    assert.ok(
      err instanceof SelectionError,
      `unexpected ${String(err)} for ${JSON.stringify(annotation)}`,
    );
    assert.match(err.path, /^networks(\[\d+\](\.[-a-zA-Z]+(\[\d+\])?(\.[a-zA-Z]+)?)?)?$/);
    assert.ok(err.message.startsWith(`${err.path}: `));
    return err;
  }
}

const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?$/);
const kernelName = fc.stringMatching(/^[a-zA-Z0-9_.-]{1,15}$/).filter((s) =>
  s !== "." && s !== ".."
);
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 })
  .map((bytes) => bytes.map((b) => b.toString(16).padStart(2, "0")).join(":"));

const validElement = fc.record({
  name: label,
  namespace: label,
  interface: kernelName,
  ips: fc.array(fc.oneof(ipv4, ipv6, ipv4.map((ip) => `${ip}/24`), ipv6.map((ip) => `${ip}/64`)), {
    minLength: 1,
    maxLength: 3,
  }),
  mac,
  "cni-args": fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })),
}, { requiredKeys: ["name", "namespace"] });

Deno.test("fuzz: arbitrary text is parsed or rejected with a path, never anything else", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 80 }), (text) => {
      parseOrExplain(text);
    }),
    { numRuns: 20_000 },
  );
});

Deno.test("fuzz: arbitrary JSON is parsed or rejected with a path", () => {
  fc.assert(
    fc.property(fc.json({ maxDepth: 4 }), (text) => {
      parseOrExplain(text);
    }),
    { numRuns: 10_000 },
  );
});

Deno.test("fuzz: lists of almost-elements are parsed or rejected naming the element", () => {
  const almost = fc.dictionary(
    fc.constantFrom(
      "name",
      "namespace",
      "interface",
      "ips",
      "mac",
      "cni-args",
      "default-route",
      "portMappings",
      "bandwidth",
      "Name",
      "x",
    ),
    fc.jsonValue({ maxDepth: 2 }),
  );
  fc.assert(
    fc.property(fc.array(almost, { maxLength: 4 }), (list) => {
      const result = parseOrExplain(JSON.stringify(list));
      if (result instanceof SelectionError && result.path !== "networks") {
        const index = Number(/^networks\[(\d+)\]/.exec(result.path)?.[1]);
        assert.ok(index < list.length, result.message);
      }
    }),
    { numRuns: 10_000 },
  );
});

Deno.test("fuzz: valid JSON elements come back as written", () => {
  fc.assert(
    fc.property(fc.array(validElement, { maxLength: 5 }), (elements) => {
      const text = JSON.stringify(elements);
      // Compared with plain objects: the generated ones have no prototype.
      assert.deepEqual(parseNetworkSelection(text, POD_NS), JSON.parse(text));
    }),
    { numRuns: 3_000 },
  );
});

Deno.test("fuzz: valid short forms come back as written", () => {
  const item = fc.record({
    namespace: fc.option(label, { nil: undefined }),
    name: label,
    ifname: fc.option(label, { nil: undefined }),
  })
    .filter((i) => i.ifname === undefined || i.ifname.length <= 15);
  fc.assert(
    fc.property(fc.array(item, { minLength: 1, maxLength: 6 }), (items) => {
      const text = items.map((i) =>
        `${i.namespace ? `${i.namespace}/` : ""}${i.name}${i.ifname ? `@${i.ifname}` : ""}`
      )
        .join(" , ");
      const expected = items.map((i) => {
        const element: NetworkSelectionElement = { name: i.name, namespace: i.namespace ?? POD_NS };
        if (i.ifname) element.interface = i.ifname;
        return element;
      });
      assert.deepEqual(parseNetworkSelection(text, POD_NS), expected);
    }),
    { numRuns: 3_000 },
  );
});
