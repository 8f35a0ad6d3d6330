import assert from "node:assert/strict";
import fc from "fast-check";
import {
  delegateConfig,
  NadConfigError,
  type NetworkAttachmentDefinition,
} from "../lib/core/nad.ts";
import { goMarshal } from "../lib/base/go_json.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const nad = (config: string, name = "tenant-network"): NetworkAttachmentDefinition => ({
  namespace: "ns1",
  name,
  config,
});

Deno.test("nad: a config with a name is sent byte for byte, whitespace and key order kept", () => {
  const config = `{
    "cniVersion": "0.3.0",
    "name": "my-macvlan",
    "type": "macvlan",   "master": "eth1",
    "mode": "bridge"
  }`;
  const out = delegateConfig(nad(config));
  assert.deepEqual(out, new TextEncoder().encode(config));
});

Deno.test("nad: a missing name is injected from metadata.name; keys sorted and compact as Go writes", () => {
  const out = delegateConfig(nad(`{"type": "macvlan", "cniVersion": "0.3.0", "master": "eth1",
    "ipam": {"type": "static", "addresses": [{"address": "10.1.1.11/24"}]}}`));
  assert.equal(
    text(out),
    '{"cniVersion":"0.3.0","ipam":{"addresses":[{"address":"10.1.1.11/24"}],"type":"static"},' +
      '"master":"eth1","name":"tenant-network","type":"macvlan"}',
  );
});

Deno.test("nad: an empty name is replaced by metadata.name", () => {
  const out = delegateConfig(nad(`{"name": "", "type": "bridge"}`, "br-net"));
  assert.equal(text(out), '{"name":"br-net","type":"bridge"}');
});

Deno.test("nad: injection into a conflist keeps plugins in order and escapes like Go", () => {
  const out = delegateConfig(
    nad(
      `{"plugins": [{"type": "macvlan"}, {"type": "tuning", "note": "a<b&c>d"}], "cniVersion": "1.0.0"}`,
    ),
  );
  assert.equal(
    text(out),
    '{"cniVersion":"1.0.0","name":"tenant-network","plugins":[{"type":"macvlan"},' +
      '{"note":"a\\u003cb\\u0026c\\u003ed","type":"tuning"}]}',
  );
});

Deno.test("nad: empty spec.config names the NAD and says the config must be inline", () => {
  for (const config of ["", "  \n"]) {
    assert.throws(() => delegateConfig(nad(config)), (e: unknown) => {
      assert.ok(e instanceof NadConfigError);
      assert.match(e.message, /ns1\/tenant-network has an empty spec\.config/);
      assert.match(e.message, /the delegate API needs the CNI configuration inline/);
      return true;
    });
  }
});

Deno.test("nad: invalid JSON names the NAD and carries the JSON error", () => {
  assert.throws(() => delegateConfig(nad(`{"type": "macvlan",`)), (e: unknown) => {
    assert.ok(e instanceof NadConfigError);
    assert.match(e.message, /ns1\/tenant-network has a spec\.config that is not valid JSON \(/);
    assert.ok(e.cause instanceof SyntaxError);
    return true;
  });
});

Deno.test("nad: JSON that is not an object is refused with its kind", () => {
  for (
    const [config, kind] of [["[]", "an array"], ["null", "null"], ['"macvlan"', "a string"], [
      "3",
      "a number",
    ]]
  ) {
    assert.throws(() => delegateConfig(nad(config as string)), (e: unknown) => {
      assert.ok(e instanceof NadConfigError);
      assert.ok(e.message.includes(`is ${kind}, not a JSON object`), e.message);
      assert.ok(e.message.includes("ns1/tenant-network"));
      return true;
    });
  }
});

Deno.test("nad: property — result is the original bytes when named, else the object plus the name", () => {
  const json = fc.dictionary(
    fc.string({ maxLength: 6 }).filter((k) => k !== "name"),
    fc.jsonValue({ maxDepth: 2 }),
    { maxKeys: 5 },
  );
  fc.assert(
    fc.property(json, fc.option(fc.string({ minLength: 1, maxLength: 8 })), (obj, name) => {
      const source = JSON.stringify(name === null ? obj : { ...obj, name }, null, 1);
      const out = text(delegateConfig(nad(source, "meta-name")));
      if (name !== null) {
        assert.equal(out, source);
      } else {
        assert.deepEqual(
          JSON.parse(out),
          JSON.parse(JSON.stringify({ ...obj, name: "meta-name" })),
        );
        assert.equal(out, goMarshal(JSON.parse(out)));
      }
    }),
  );
});

Deno.test('nad: a "__proto__" key survives name injection as an ordinary key', () => {
  const out = delegateConfig(nad(`{"type": "x", "__proto__": {"a": 1}}`, "n"));
  assert.equal(text(out), '{"__proto__":{"a":1},"name":"n","type":"x"}');
});
