/** Edits of the networks annotation by the commands: the form and every other element kept. */
import assert from "node:assert/strict";
import {
  assignedInterfaces,
  EditError,
  withElement,
  withoutInterface,
} from "../lib/commands/selection_edit.ts";
import { parseNetworkSelection } from "../lib/core/selection.ts";
import { SelectionError } from "../lib/core/selection_element.ts";
import type { NetworkStatus } from "../lib/core/status.ts";

const cluster: NetworkStatus = { name: "cluster", interface: "eth0", default: true, dns: {} };
const pod = (status: NetworkStatus[] = [cluster]) => ({ namespace: "ns", name: "p", status });

Deno.test("attach keeps the short form and every element as written", () => {
  const text = "a@net1, other/b";
  const out = withElement(text, { name: "c", interface: "net5" }, pod());
  assert.deepEqual(out, { text: "a@net1,other/b,c@net5", form: "short", converted: false });
  const ns = withElement("a", { name: "c", namespace: "x" }, pod());
  assert.equal(ns.text, "a,x/c");
});

Deno.test("attach keeps the JSON form, unknown fields and order", () => {
  const text = '[{"name":"a","interface":"net1","x-extra":{"k":1}},{"name":"b","namespace":"o"}]';
  const out = withElement(text, { name: "c", interface: "net7", ips: ["10.1.1.1/24"] }, pod());
  assert.equal(out.form, "json");
  assert.deepEqual(JSON.parse(out.text!), [
    { name: "a", interface: "net1", "x-extra": { k: 1 } },
    { name: "b", namespace: "o" },
    { name: "c", interface: "net7", ips: ["10.1.1.1/24"] },
  ]);
});

Deno.test("a short list becomes JSON only for an element it cannot hold; an empty one starts JSON", () => {
  const out = withElement("a@net1,o/b", { name: "c", mac: "02:00:00:00:00:09" }, pod());
  assert.equal(out.converted, true);
  assert.deepEqual(JSON.parse(out.text!), [
    { name: "a", interface: "net1" },
    { name: "b", namespace: "o" },
    { name: "c", mac: "02:00:00:00:00:09" },
  ]);
  assert.equal(withElement(undefined, { name: "c" }, pod()).text, '[{"name":"c"}]');
  assert.equal(withElement("[]", { name: "c" }, pod()).text, '[{"name":"c"}]');
});

Deno.test("attach refuses a taken interface name, naming the element that has it", () => {
  assert.throws(
    () => withElement("a@net1", { name: "b", interface: "net1" }, pod()),
    (err) => err instanceof EditError && /element 0 .*\(a@net1\)/.test(err.message),
  );
  // An element without a name holds the netN the agent gave it (read from network-status).
  const status = [cluster, { name: "ns/a", interface: "net1", dns: {} }];
  assert.throws(
    () => withElement("a", { name: "b", interface: "net1" }, pod(status)),
    EditError,
  );
  assert.throws(
    () => withElement("a", { name: "b", interface: "eth0" }, pod()),
    (err) => err instanceof EditError && /cluster network/.test(err.message),
  );
  assert.throws(() => withElement('[{"name":', { name: "b" }, pod()), SelectionError);
});

Deno.test("detach removes the element that holds the interface, by name or by the agent's netN", () => {
  assert.deepEqual(withoutInterface("a@net1,o/b@net2", "net1", pod()), {
    text: "o/b@net2",
    form: "short",
    converted: false,
    removed: "a@net1",
  });
  const status = [
    cluster,
    { name: "ns/a", interface: "net1", dns: {} },
    { name: "ns/a", interface: "net2", dns: {} },
  ];
  const json = '[{"name":"a"},{"name":"a","x":1}]';
  const out = withoutInterface(json, "net2", pod(status));
  assert.equal(out.text, '[{"name":"a"}]');
  assert.equal(out.removed, "a@net2");
  const last = withoutInterface("a@net1", "net1", pod());
  assert.equal(last.text, undefined);
  assert.throws(
    () => withoutInterface("a@net1", "net9", pod()),
    (err) => err instanceof EditError && /its interfaces are net1/.test(err.message),
  );
  assert.throws(
    () => withoutInterface("a@net1", "eth0", pod()),
    (err) => err instanceof EditError && /cluster network/.test(err.message),
  );
});

Deno.test("assignedInterfaces names new elements as the agent will", () => {
  const elements = parseNetworkSelection("a@net1,b,c", "ns");
  assert.deepEqual(assignedInterfaces(pod(), elements), ["net1", "net2", "net3"]);
  const dup = parseNetworkSelection("a@net1,b@net1", "ns");
  // The agent keeps the first of two elements that ask for one name, and refuses the other.
  assert.deepEqual(assignedInterfaces(pod(), dup), ["net1", undefined]);
});
