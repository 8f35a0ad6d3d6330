/**
 * Bad input: over 100 000 generated networks annotations — valid ones with random byte-level
 * damage, lists with one bad element at a known index, damaged short forms, and hostile shapes
 * (deep nesting, oversized text, wrong JSON types). The parser must never throw anything but a
 * SelectionError, must come back (no hang), and every rejection names where the problem is:
 * `networks` for the annotation as a whole, `networks[i]…` for element i.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  MAX_ANNOTATION_BYTES,
  MAX_JSON_DEPTH,
  parseNetworkSelection,
} from "../lib/core/selection.ts";
import { type NetworkSelectionElement, SelectionError } from "../lib/core/selection_element.ts";

const POD_NS = "pod-ns";
const PATH = /^networks(\[\d+\](\.[-a-zA-Z]+(\[\d+\])?(\.[a-zA-Z]+)?)?)?$/;

/** Counts every input parsed by this file, to prove the total at the end. */
let inputs = 0;

function outcome(annotation: string): NetworkSelectionElement[] | SelectionError {
  inputs++;
  try {
    const elements = parseNetworkSelection(annotation, POD_NS);
    for (const e of elements) {
      assert.equal(typeof e.name, "string");
      assert.ok(e.name.length > 0);
      assert.equal(typeof e.namespace, "string");
    }
    return elements;
  } catch (err) {
    assert.ok(err instanceof SelectionError, `${String(err)} for ${annotation.slice(0, 200)}`);
    assert.match(err.path, PATH);
    assert.ok(err.message.startsWith(`${err.path}: `), err.message);
    assert.ok(err.message.length > err.path.length + 10, `no reason given: ${err.message}`);
    return err;
  }
}

const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?$/);
const ifname = fc.stringMatching(/^[a-z][a-z0-9]{0,9}$/);
const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 })
  .map((b) => b.map((x) => x.toString(16).padStart(2, "0")).join(":"));
const goodElement = fc.record({
  name: label,
  namespace: label,
  interface: ifname,
  ips: fc.array(fc.ipV4().map((ip) => `${ip}/24`), { minLength: 1, maxLength: 2 }),
  mac,
  "cni-args": fc.dictionary(
    fc.constantFrom("a", "b", "vlan"),
    fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.boolean(), fc.constant(null)),
    { maxKeys: 2 },
  ),
}, { requiredKeys: ["name"] });

/** Elements each of which must be rejected, whatever surrounds them. */
const badElement = fc.oneof(
  fc.constantFrom<unknown>(null, 5, "net-a", [], true),
  fc.record({ name: fc.oneof(fc.integer(), fc.constant(""), fc.constant("Bad_Name")) }),
  fc.record({ name: label, namespace: fc.constantFrom<unknown>("Bad_NS", 7, "a/b") }),
  fc.record({
    name: label,
    interface: fc.oneof(
      fc.stringMatching(/^[a-z]{16,40}$/),
      fc.constantFrom<unknown>("a/b", "a:b", "a b", ".", "..", 12, "ééééééééé"),
    ),
  }),
  fc.record({
    name: label,
    ips: fc.constantFrom<unknown>("10.0.0.1", ["300.1.1.1"], ["nope"], [5], {}),
  }),
  fc.record({ name: label, mac: fc.constantFrom<unknown>("zz:zz:zz:zz:zz:zz", 12, "00:11") }),
  fc.record({ name: label, "cni-args": fc.constantFrom<unknown>("x", 3, [1]) }),
  fc.record({ name: label, "default-route": fc.constantFrom<unknown>("10.0.0.1", ["x"]) }),
  fc.record({ name: label, portMappings: fc.constantFrom<unknown>({}, [1], [{ hostPort: "x" }]) }),
);

const DAMAGE = [...'[]{}",:@/\\ \n\t\u0000é0aZ-.'];
const damage = fc.array(
  fc.record({
    at: fc.nat(),
    op: fc.constantFrom("delete", "insert", "replace", "duplicate"),
    ch: fc.constantFrom(...DAMAGE),
  }),
  { minLength: 1, maxLength: 4 },
);

function applyDamage(text: string, edits: { at: number; op: string; ch: string }[]): string {
  let out = text;
  for (const { at, op, ch } of edits) {
    const i = out.length === 0 ? 0 : at % (out.length + 1);
    if (op === "delete") out = out.slice(0, i) + out.slice(i + 1);
    else if (op === "insert") out = out.slice(0, i) + ch + out.slice(i);
    else if (op === "replace") out = out.slice(0, i) + ch + out.slice(i + 1);
    else out = out.slice(0, i) + out.slice(i, i + 8) + out.slice(i);
  }
  return out;
}

Deno.test("fuzz: damaged JSON annotations are parsed or rejected with a path (50 000)", () => {
  fc.assert(
    fc.property(fc.array(goodElement, { maxLength: 4 }), damage, (elements, edits) => {
      outcome(applyDamage(JSON.stringify(elements), edits));
    }),
    { numRuns: 50_000 },
  );
});

Deno.test("fuzz: one bad element among good ones is rejected naming its index (25 000)", () => {
  fc.assert(
    fc.property(
      fc.array(goodElement, { maxLength: 4 }),
      badElement,
      fc.nat(),
      (good, bad, where) => {
        const index = where % (good.length + 1);
        const list: unknown[] = [...good];
        list.splice(index, 0, bad);
        const result = outcome(JSON.stringify(list));
        assert.ok(result instanceof SelectionError, `accepted ${JSON.stringify(bad)}`);
        assert.ok(
          result.path.startsWith(`networks[${index}]`),
          `${result.path} does not name element ${index} (${JSON.stringify(bad)})`,
        );
      },
    ),
    { numRuns: 25_000 },
  );
});

Deno.test("fuzz: damaged short forms are parsed or rejected with a path (25 000)", () => {
  const item = fc.tuple(
    fc.option(label, { nil: undefined }),
    label,
    fc.option(ifname, { nil: undefined }),
  )
    .map(([ns, name, iface]) => `${ns ? `${ns}/` : ""}${name}${iface ? `@${iface}` : ""}`);
  fc.assert(
    fc.property(fc.array(item, { minLength: 1, maxLength: 5 }), damage, (items, edits) => {
      outcome(applyDamage(items.join(","), edits));
    }),
    { numRuns: 25_000 },
  );
});

Deno.test("fuzz: hostile shapes (deep nesting, oversized text, wrong types) are rejected at the top", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: MAX_JSON_DEPTH + 1, max: 100_000 }),
      fc.boolean(),
      (depth, obj) => {
        const open = obj ? '[{"name":"a","cni-args":' : "[";
        const text = obj
          ? open + '{"a":'.repeat(depth) + "1" + "}".repeat(depth) + "}]"
          : "[".repeat(depth) + "]".repeat(depth);
        const result = outcome(text);
        assert.ok(result instanceof SelectionError);
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4096 }),
      fc.constantFrom("a", "é", "[", " "),
      (extra, ch) => {
        const text = ch.repeat(MAX_ANNOTATION_BYTES + extra);
        const result = outcome(text);
        if (ch !== " ") {
          assert.ok(result instanceof SelectionError);
          assert.equal(result.path, "networks");
        }
      },
    ),
    { numRuns: 60 },
  );
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 3 }).filter((v) => !Array.isArray(v)), (value) => {
      const text = JSON.stringify(value);
      if (typeof value === "string" && !/[[{"]/.test(text)) return;
      const result = outcome(text);
      if (value !== null && typeof value === "object") {
        // A JSON object is neither grammar; it is refused as a whole.
        assert.ok(result instanceof SelectionError);
      }
    }),
    { numRuns: 2_000 },
  );
});

Deno.test("fuzz: the generated inputs total at least 100 000", () => {
  assert.ok(inputs >= 100_000, `only ${inputs} inputs were parsed`);
});
