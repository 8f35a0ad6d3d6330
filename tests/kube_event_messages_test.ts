/**
 * Event texts: upstream's unit-test expectations (upstream.md §7.2) and the attributes
 * suffix as Go's fmt prints it (the expected strings were produced by Go 1.2x's
 * `fmt.Printf("(ips: %v, mac: %s, cni-args: %v)", ...)` on the same JSON).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  addedInterfaceMessage,
  attributesSuffix,
  EventReason,
  failedAddingInterfaceMessage,
  failedRemovingInterfaceMessage,
  goValue,
  interfaceAddRejectedMessage,
  removedInterfaceMessage,
} from "../lib/core/event_messages.ts";

Deno.test("event messages: upstream's add and remove texts", () => {
  assert.equal(
    addedInterfaceMessage("default/tiny-winy-pod", "net1", "tiny-net-2"),
    "pod [default/tiny-winy-pod]: added interface net1 to network: tiny-net-2",
  );
  assert.equal(
    removedInterfaceMessage("default/tiny-winy-pod", "net0", "tiny-net"),
    "pod [default/tiny-winy-pod]: removed interface net0 from network: tiny-net",
  );
  assert.equal(
    interfaceAddRejectedMessage("default/tiny-winy-pod"),
    "pod [default/tiny-winy-pod]: will not add interface to host networked pod",
  );
});

Deno.test("event messages: upstream's attributes suffix follows the network name without a space", () => {
  assert.equal(
    addedInterfaceMessage("default/tiny-winy-pod", "net1", "tiny-net-2", {
      ips: ["172.16.0.1"],
      mac: "02:03:04:05:06:07",
      cniArgs: { foo: "bar" },
    }),
    "pod [default/tiny-winy-pod]: added interface net1 to network: tiny-net-2(ips: [172.16.0.1], mac: 02:03:04:05:06:07, cni-args: &map[foo:bar])",
  );
});

Deno.test("event messages: failures carry the error after the upstream text", () => {
  assert.equal(
    failedAddingInterfaceMessage(
      "ns1/p",
      "net2",
      "macvlan1",
      { mac: "02:00:00:00:00:01" },
      new Error('plugin type="macvlan" failed (add): link not found'),
    ),
    'pod [ns1/p]: failed adding interface net2 to network: macvlan1(ips: [], mac: 02:00:00:00:00:01, cni-args: <nil>): plugin type="macvlan" failed (add): link not found',
  );
  assert.equal(
    failedRemovingInterfaceMessage("ns1/p", "net2", "macvlan1", "timeout after 30s"),
    "pod [ns1/p]: failed removing interface net2 from network: macvlan1: timeout after 30s",
  );
  assert.equal(
    failedRemovingInterfaceMessage("ns1/p", "net2", "macvlan1"),
    "pod [ns1/p]: failed removing interface net2 from network: macvlan1",
  );
});

Deno.test("event messages: the suffix matches Go's %v for nested cni-args", () => {
  const ips = ["10.1.1.11/24", "10.2.2.2"];
  const mac = "02:03:04:05:06:07";
  const cases: [string, string][] = [
    ['{"foo":"bar"}', "&map[foo:bar]"],
    [
      '{"b":1,"a":1000000,"c":123456,"d":0.0001,"e":0.00001,"f":1.5,"g":[1,"x",true,null],"h":{"z":1,"y":"q"},"i":-0.0,"j":1e21,"k":123456789,"l":-2.5e-7}',
      "&map[a:1e+06 b:1 c:123456 d:0.0001 e:1e-05 f:1.5 g:[1 x true <nil>] h:map[y:q z:1] i:-0 j:1e+21 k:1.23456789e+08 l:-2.5e-07]",
    ],
    ["{}", "&map[]"],
  ];
  for (const [json, go] of cases) {
    assert.equal(
      attributesSuffix({ ips, mac, cniArgs: JSON.parse(json) }),
      `(ips: [10.1.1.11/24 10.2.2.2], mac: 02:03:04:05:06:07, cni-args: ${go})`,
    );
  }
});

Deno.test("event messages: no suffix without ips, mac or cni-args; null cni-args is Go's nil", () => {
  assert.equal(attributesSuffix(undefined), "");
  assert.equal(attributesSuffix({}), "");
  assert.equal(attributesSuffix({ ips: [], mac: "", cniArgs: null }), "");
  assert.equal(
    attributesSuffix({ ips: ["10.0.0.1"] }),
    "(ips: [10.0.0.1], mac: , cni-args: <nil>)",
  );
});

Deno.test("event messages: map keys print sorted whatever the input order", () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), fc.string()), (dict) => {
      const shuffled = Object.fromEntries(Object.entries(dict).reverse());
      assert.equal(goValue(shuffled), goValue(dict));
      const keys = Object.keys(dict).sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
      assert.ok(goValue(dict).startsWith(`map[${keys[0] === undefined ? "]" : `${keys[0]}:`}`));
    }),
  );
});

Deno.test("event messages: the reasons are upstream's", () => {
  assert.deepEqual(Object.values(EventReason).sort(), [
    "AddedInterface",
    "FailedAddingInterface",
    "FailedRemovingInterface",
    "InterfaceAddRejected",
    "RemovedInterface",
  ]);
});
