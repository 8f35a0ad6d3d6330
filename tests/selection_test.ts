import assert from "node:assert/strict";
import {
  interfaceNameProblem,
  type NetworkSelectionElement,
  SelectionError,
} from "../lib/core/selection_element.ts";
import { MAX_ANNOTATION_BYTES, parseNetworkSelection } from "../lib/core/selection.ts";

const POD_NS = "pod-ns";

function rejects(annotation: string, path: string, fragment: string) {
  let caught: unknown;
  try {
    parseNetworkSelection(annotation, POD_NS);
  } catch (err) {
    caught = err;
  }
  assert.ok(
    caught instanceof SelectionError,
    `expected a SelectionError for ${annotation.slice(0, 80)}`,
  );
  assert.equal(caught.path, path, caught.message);
  assert.ok(caught.message.startsWith(`${path}: `), caught.message);
  assert.ok(caught.message.includes(fragment), `${caught.message}\n  should include: ${fragment}`);
}

// --- upstream's parser cases (pkg/annotations/network-selection-elements_test.go) ---

const upstreamCases: {
  name: string;
  input: string | undefined;
  expected: NetworkSelectionElement[];
}[] = [
  // Upstream's raw parser rejects ""; its caller maps a missing or empty annotation to no networks.
  { name: "empty string means no networks", input: "", expected: [] },
  { name: "missing annotation means no networks", input: undefined, expected: [] },
  { name: "empty JSON list", input: "[]", expected: [] },
  { name: "single name", input: "tiny-net", expected: [{ name: "tiny-net", namespace: POD_NS }] },
  {
    name: "comma-separated names",
    input: "tiny-net,tiny-net-2",
    expected: [{ name: "tiny-net", namespace: POD_NS }, { name: "tiny-net-2", namespace: POD_NS }],
  },
  {
    name: "comma-separated names with interfaces",
    input: "tiny-net@eth1,tiny-net-2@eth2",
    expected: [
      { name: "tiny-net", namespace: POD_NS, interface: "eth1" },
      { name: "tiny-net-2", namespace: POD_NS, interface: "eth2" },
    ],
  },
  {
    name: "JSON list with interface",
    input: '[{"name":"tiny-net","namespace":"ns1","interface":"net1"}]',
    expected: [{ name: "tiny-net", namespace: "ns1", interface: "net1" }],
  },
  {
    name: "JSON list without interface",
    input: '[{"name":"tiny-net","namespace":"ns1"}]',
    expected: [{ name: "tiny-net", namespace: "ns1" }],
  },
  {
    name: "JSON list without namespace takes the pod's",
    input: '[{"name":"tiny-net","interface":"net1"}]',
    expected: [{ name: "tiny-net", namespace: POD_NS, interface: "net1" }],
  },
];

for (const c of upstreamCases) {
  Deno.test(`selection (upstream): ${c.name}`, () => {
    assert.deepEqual(parseNetworkSelection(c.input, POD_NS), c.expected);
  });
}

// --- accepted forms ---

const accepted: { name: string; input: string; expected: NetworkSelectionElement[] }[] = [
  { name: "blank annotation", input: "  \n\t ", expected: [] },
  {
    name: "short form with namespace, interface and spaces",
    input: " ns1/net-a@net1 ,  net-b@eth0,ns-2/net-c ",
    expected: [
      { name: "net-a", namespace: "ns1", interface: "net1" },
      { name: "net-b", namespace: POD_NS, interface: "eth0" },
      { name: "net-c", namespace: "ns-2" },
    ],
  },
  {
    name: "short form word null is a network name, as in the original",
    input: "null",
    expected: [{ name: "null", namespace: POD_NS }],
  },
  {
    name: "every field of an element",
    input: JSON.stringify([{
      name: "net-a",
      namespace: "ns1",
      interface: "net1",
      ips: ["10.1.1.11/24", "2001:db8::11"],
      mac: "02:03:04:05:06:07",
      "cni-args": { foo: "bar", nested: { n: 1 } },
      "default-route": ["10.1.1.1"],
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "0.0.0.0" }],
      bandwidth: { ingressRate: 1000, ingressBurst: 2000, egressRate: 3000, egressBurst: 4000 },
      "infiniband-guid": "00:00:00:00:00:00:00:01",
      "ipam-claim-reference": "claim-1",
    }]),
    expected: [{
      name: "net-a",
      namespace: "ns1",
      interface: "net1",
      ips: ["10.1.1.11/24", "2001:db8::11"],
      mac: "02:03:04:05:06:07",
      "cni-args": { foo: "bar", nested: { n: 1 } },
      "default-route": ["10.1.1.1"],
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "0.0.0.0" }],
      bandwidth: { ingressRate: 1000, ingressBurst: 2000, egressRate: 3000, egressBurst: 4000 },
      "infiniband-guid": "00:00:00:00:00:00:00:01",
      "ipam-claim-reference": "claim-1",
    }],
  },
  {
    name: "unknown keys are ignored",
    input: '[{"name":"a","deviceID":"0000:00:01.0","interfaceRequest":"x","extra":{"y":1}}]',
    expected: [{ name: "a", namespace: POD_NS }],
  },
  {
    name: "keys match case-insensitively, as Go's decoder does",
    input:
      '[{"Name":"a","NAMESPACE":"ns1","Interface":"net1","IPs":["10.0.0.1"],"portmappings":[{"HOSTPORT":1}]}]',
    expected: [{
      name: "a",
      namespace: "ns1",
      interface: "net1",
      ips: ["10.0.0.1"],
      portMappings: [{ hostPort: 1 }],
    }],
  },
  {
    name: "null and empty values mean not set; null cni-args is kept as null",
    input:
      '[{"name":"a","namespace":null,"interface":"","ips":null,"mac":"","cni-args":null,"bandwidth":null}]',
    expected: [{ name: "a", namespace: POD_NS, "cni-args": null }],
  },
  {
    name: "empty namespace takes the pod's",
    input: '[{"name":"a","namespace":""}]',
    expected: [{ name: "a", namespace: POD_NS }],
  },
  {
    name: "an empty ips list means none requested",
    input: '[{"name":"a","ips":[]}]',
    expected: [{ name: "a", namespace: POD_NS }],
  },
  {
    name: "JSON form takes any name the kernel takes",
    input:
      '[{"name":"a","interface":"eth_1"},{"name":"b","interface":"Eth0"},{"name":"c","interface":"eth0.10"}]',
    expected: [
      { name: "a", namespace: POD_NS, interface: "eth_1" },
      { name: "b", namespace: POD_NS, interface: "Eth0" },
      { name: "c", namespace: POD_NS, interface: "eth0.10" },
    ],
  },
  {
    name: "interface of exactly 15 bytes",
    input: '[{"name":"a","interface":"abcdefghijklmno"}]',
    expected: [{ name: "a", namespace: POD_NS, interface: "abcdefghijklmno" }],
  },
  {
    name: "NAD names may be RFC 1123 subdomains in JSON",
    input: '[{"name":"net.a-1"}]',
    expected: [{ name: "net.a-1", namespace: POD_NS }],
  },
];

for (const c of accepted) {
  Deno.test(`selection accepts: ${c.name}`, () => {
    assert.deepEqual(parseNetworkSelection(c.input, POD_NS), c.expected);
  });
}

const goodMacs = [
  "02:00:00:00:00:01",
  "02-00-00-00-00-01",
  "0200.0000.0001",
  "AA:BB:CC:DD:EE:FF",
  "02:00:00:00:00:00:00:01", // EUI-64
  "0200.0000.0000.0001",
  "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", // 20-byte IP over InfiniBand
  "0000.0000.fe80.0000.0000.0000.0200.5e10.0000.0001",
];
for (const mac of goodMacs) {
  Deno.test(`selection accepts MAC ${mac}`, () => {
    const [element] = parseNetworkSelection(JSON.stringify([{ name: "a", mac }]), POD_NS);
    assert.equal(element?.mac, mac);
    const [guid] = parseNetworkSelection(
      JSON.stringify([{ name: "a", "infiniband-guid": mac }]),
      POD_NS,
    );
    assert.equal(guid?.["infiniband-guid"], mac);
  });
}

const goodIps = [
  "10.1.1.11",
  "0.0.0.0",
  "255.255.255.255",
  "10.1.1.11/24",
  "10.1.1.0/0",
  "10.1.1.11/32",
  "2001:db8::11",
  "2001:DB8:0:0:0:0:0:11",
  "::",
  "::1",
  "1::",
  "1:2:3:4:5:6:7::",
  "::2:3:4:5:6:7:8",
  "::ffff:10.1.1.1",
  "64:ff9b::192.0.2.33/96",
  "1:2:3:4:5:6:1.2.3.4",
  "2001:db8::/128",
];
for (const ip of goodIps) {
  Deno.test(`selection accepts ip ${ip}`, () => {
    const [element] = parseNetworkSelection(JSON.stringify([{ name: "a", ips: [ip] }]), POD_NS);
    assert.deepEqual(element?.ips, [ip]);
  });
}

// --- rejections: every one names the element and the field ---

const rejected: { name: string; input: string; path: string; fragment: string }[] = [
  { name: "two slashes", input: "a/b/c", path: "networks[0]", fragment: 'more than one "/"' },
  { name: "two at signs", input: "net-a@x@y", path: "networks[0]", fragment: 'more than one "@"' },
  { name: "uppercase name", input: "net-a,Net-B", path: "networks[1].name", fragment: '"Net-B"' },
  {
    name: "name ending in dash",
    input: "net-",
    path: "networks[0].name",
    fragment: "not a valid network name",
  },
  {
    name: "bad namespace",
    input: "NS/net",
    path: "networks[0].namespace",
    fragment: "not a valid namespace",
  },
  {
    name: "empty namespace",
    input: "/net",
    path: "networks[0].namespace",
    fragment: "empty namespace",
  },
  { name: "empty name", input: "ns/", path: "networks[0].name", fragment: "no network name" },
  {
    name: "empty name before @",
    input: "@net1",
    path: "networks[0].name",
    fragment: "no network name",
  },
  {
    name: "empty interface",
    input: "net@",
    path: "networks[0].interface",
    fragment: "empty interface",
  },
  {
    name: "underscore interface in short form",
    input: "net@eth_1",
    path: "networks[0].interface",
    fragment: "not allowed in the short form",
  },
  {
    name: "dotted interface in short form",
    input: "a, b@eth0.10",
    path: "networks[1].interface",
    fragment: "not allowed in the short form",
  },
  {
    name: "16-byte interface in short form",
    input: "net@abcdefghijklmnop",
    path: "networks[0].interface",
    fragment: "16 bytes long",
  },
  { name: "empty element", input: "a,,b", path: "networks[1]", fragment: "empty element" },
  { name: "trailing comma", input: "a,", path: "networks[1]", fragment: "empty element" },
  { name: "space inside a name", input: "net a", path: "networks[0].name", fragment: '"net a"' },
  { name: "invalid JSON", input: '[{"name":', path: "networks", fragment: "not valid JSON" },
  {
    name: "trailing garbage",
    input: '[{"name":"a"}] x',
    path: "networks",
    fragment: "not valid JSON",
  },
  {
    name: "bare object",
    input: '{"name":"a"}',
    path: "networks",
    fragment: "an object is not a list",
  },
  { name: "bare string", input: '"net-a"', path: "networks", fragment: "a string is not a list" },
  {
    name: "number element",
    input: "[1]",
    path: "networks[0]",
    fragment: "a number, not an object",
  },
  {
    name: "null element",
    input: '[{"name":"a"},null]',
    path: "networks[1]",
    fragment: "null, not an object",
  },
  { name: "list element", input: "[[]]", path: "networks[0]", fragment: "a list, not an object" },
  { name: "missing name", input: "[{}]", path: "networks[0].name", fragment: "missing" },
  {
    name: "numeric name",
    input: '[{"name":5}]',
    path: "networks[0].name",
    fragment: "a number, not a string",
  },
  {
    name: "name with slash",
    input: '[{"name":"a/b"}]',
    path: "networks[0].name",
    fragment: '"a/b"',
  },
  {
    name: "bad namespace in JSON",
    input: '[{"name":"a","namespace":"Bad_ns"}]',
    path: "networks[0].namespace",
    fragment: '"Bad_ns"',
  },
  {
    name: "numeric namespace",
    input: '[{"name":"a","namespace":1}]',
    path: "networks[0].namespace",
    fragment: "not a string",
  },
  {
    name: "numeric interface",
    input: '[{"name":"a","interface":5}]',
    path: "networks[0].interface",
    fragment: "not a string",
  },
  {
    name: "interface .",
    input: '[{"name":"a","interface":"."}]',
    path: "networks[0].interface",
    fragment: "reserved",
  },
  {
    name: "interface ..",
    input: '[{"name":"a","interface":".."}]',
    path: "networks[0].interface",
    fragment: "reserved",
  },
  {
    name: "interface with slash",
    input: '[{"name":"a","interface":"a/b"}]',
    path: "networks[0].interface",
    fragment: 'contains "/"',
  },
  {
    name: "interface with colon",
    input: '[{"name":"a","interface":"eth0:1"}]',
    path: "networks[0].interface",
    fragment: 'contains ":"',
  },
  {
    name: "interface with space",
    input: '[{"name":"a","interface":"net 1"}]',
    path: "networks[0].interface",
    fragment: "whitespace",
  },
  {
    name: "interface with tab",
    input: '[{"name":"a","interface":"net\\t1"}]',
    path: "networks[0].interface",
    fragment: "whitespace",
  },
  {
    name: "16-byte interface in JSON",
    input: '[{"name":"a","interface":"abcdefghijklmnop"}]',
    path: "networks[0].interface",
    fragment: "16 bytes long; the kernel allows at most 15",
  },
  {
    name: "interface under 15 characters but over 15 bytes",
    input: '[{"name":"a","interface":"ééééééééé"}]',
    path: "networks[0].interface",
    fragment: "18 bytes long",
  },
  {
    // "à" is C3 A0 in UTF-8, and the kernel's isspace() counts byte 0xA0.
    name: "interface holding byte 0xA0",
    input: '[{"name":"a","interface":"netà"}]',
    path: "networks[0].interface",
    fragment: "whitespace",
  },
  {
    name: "the third element's MAC, as in the error format",
    input: '[{"name":"a"},{"name":"b"},{"name":"c","mac":"zz"}]',
    path: "networks[2].mac",
    fragment: '"zz" is not a MAC address; use six hex pairs such as 02:00:00:00:00:01',
  },
  {
    name: "numeric MAC",
    input: '[{"name":"a","mac":5}]',
    path: "networks[0].mac",
    fragment: "not a string",
  },
  {
    name: "five-byte MAC",
    input: '[{"name":"a","mac":"02:00:00:00:00"}]',
    path: "networks[0].mac",
    fragment: "not a MAC",
  },
  {
    name: "seven-byte MAC",
    input: '[{"name":"a","mac":"02:00:00:00:00:00:01"}]',
    path: "networks[0].mac",
    fragment: "not a MAC",
  },
  {
    name: "non-hex MAC",
    input: '[{"name":"a","mac":"02:00:00:00:00:0g"}]',
    path: "networks[0].mac",
    fragment: "not a MAC",
  },
  {
    name: "mixed MAC separators",
    input: '[{"name":"a","mac":"02:00-00:00:00:01"}]',
    path: "networks[0].mac",
    fragment: "not a MAC",
  },
  {
    name: "short dotted MAC group",
    input: '[{"name":"a","mac":"0200.0000.001"}]',
    path: "networks[0].mac",
    fragment: "not a MAC",
  },
  {
    name: "single-digit MAC groups",
    input: '[{"name":"a","mac":"2:0:0:0:0:1"}]',
    path: "networks[0].mac",
    fragment: "not a MAC",
  },
  {
    name: "bad InfiniBand GUID",
    input: '[{"name":"a","infiniband-guid":"xyz"}]',
    path: "networks[0].infiniband-guid",
    fragment: "not a hardware address",
  },
  {
    name: "ips as a string",
    input: '[{"name":"a","ips":"10.0.0.1"}]',
    path: "networks[0].ips",
    fragment: "a string, not a list",
  },
  {
    name: "numeric ip",
    input: '[{"name":"a","ips":["10.0.0.1",5]}]',
    path: "networks[0].ips[1]",
    fragment: "not a string",
  },
  {
    name: "cni-args as a list",
    input: '[{"name":"a","cni-args":["x"]}]',
    path: "networks[0].cni-args",
    fragment: "a list, not an object",
  },
  {
    name: "default-route with a non-address",
    input: '[{"name":"a","default-route":["nope"]}]',
    path: "networks[0].default-route[0]",
    fragment: '"nope" is not an IP address',
  },
  {
    name: "default-route with a CIDR",
    input: '[{"name":"a","default-route":["10.0.0.1/24"]}]',
    path: "networks[0].default-route[0]",
    fragment: "not an IP address",
  },
  {
    name: "fractional port",
    input: '[{"name":"a","portMappings":[{"hostPort":1.5}]}]',
    path: "networks[0].portMappings[0].hostPort",
    fragment: "not a whole number",
  },
  {
    name: "port beyond int32",
    input: '[{"name":"a","portMappings":[{"containerPort":2147483648}]}]',
    path: "networks[0].portMappings[0].containerPort",
    fragment: "not a whole number",
  },
  {
    name: "null port mapping",
    input: '[{"name":"a","portMappings":[null]}]',
    path: "networks[0].portMappings[0]",
    fragment: "null, not an object",
  },
  {
    name: "textual bandwidth",
    input: '[{"name":"a","bandwidth":{"ingressRate":"fast"}}]',
    path: "networks[0].bandwidth.ingressRate",
    fragment: "not a whole number",
  },
  {
    name: "numeric claim reference",
    input: '[{"name":"a","ipam-claim-reference":1}]',
    path: "networks[0].ipam-claim-reference",
    fragment: "not a string",
  },
];

for (const c of rejected) {
  Deno.test(`selection rejects: ${c.name}`, () => rejects(c.input, c.path, c.fragment));
}

const badIps = [
  "10.0.0.256",
  "10.0.0",
  "10.0.0.1.1",
  "010.0.0.1",
  "10.0.0.1/33",
  "10.0.0.1/",
  "10.0.0.1/a",
  "10.0.0.1/24/1",
  "::1/129",
  "1::2::3",
  "1:2:3:4:5:6:7:8:9",
  "1:2:3:4:5:6:7:8::",
  "::1:2:3:4:5:6:7:8",
  "1:2:3:4:5:6:7",
  "12345::",
  "::ffff:1.2.3",
  "1.2.3.4::",
  "1:2:3:4:5:6:7:1.2.3.4",
  "fe80::1%eth0",
  " 10.0.0.1",
  "10.0.0.1 ",
  ":1::",
  "1:",
  "",
  "localhost",
];
for (const ip of badIps) {
  Deno.test(`selection rejects ip ${JSON.stringify(ip)}`, () =>
    rejects(
      JSON.stringify([{ name: "a", ips: ["10.9.9.9", ip] }]),
      "networks[0].ips[1]",
      "not an IP address or CIDR",
    ));
}

// --- hostile input ---

Deno.test("selection rejects an annotation over the size limit without parsing it", () => {
  const huge = "a,".repeat(MAX_ANNOTATION_BYTES / 2) + "a";
  rejects(huge, "networks", `at most ${MAX_ANNOTATION_BYTES}`);
});

Deno.test("selection counts the size in UTF-8 bytes", () => {
  // 100 000 three-byte characters: under the limit in UTF-16 units, over it in bytes.
  const huge = `[{"name":"a","cni-args":{"x":"${"€".repeat(100_000)}"}}]`;
  assert.ok(huge.length < MAX_ANNOTATION_BYTES);
  rejects(huge, "networks", "bytes");
});

Deno.test("selection rejects more than 1000 short-form elements", () => {
  rejects(Array(1001).fill("a").join(","), "networks", "1001 elements");
});

Deno.test("selection rejects more than 1000 JSON elements", () => {
  rejects(JSON.stringify(Array(1001).fill({ name: "a" })), "networks", "1001 elements");
});

Deno.test("selection accepts exactly 1000 elements", () => {
  assert.equal(parseNetworkSelection(Array(1000).fill("a").join(","), POD_NS).length, 1000);
});

Deno.test("selection rejects deeply nested JSON without crashing", () => {
  rejects("[".repeat(100_000) + "]".repeat(100_000), "networks", "nested deeper");
  const deepArgs = `[{"name":"a","cni-args":${'{"x":'.repeat(40)}1${"}".repeat(40)}}]`;
  rejects(deepArgs, "networks", "nested deeper");
});

Deno.test("selection rejects unbalanced deep nesting as invalid JSON", () => {
  rejects("[".repeat(200_000), "networks", "not valid JSON");
});

Deno.test("selection error carries the bad value", () => {
  try {
    parseNetworkSelection('[{"name":"a","mac":"zz"}]', POD_NS);
    assert.fail("expected a SelectionError");
  } catch (err) {
    assert.ok(err instanceof SelectionError);
    assert.equal(err.value, "zz");
    assert.equal(err.name, "SelectionError");
  }
});

Deno.test("selection error quotes long values shortened", () => {
  const long = "x".repeat(5000);
  try {
    parseNetworkSelection(JSON.stringify([{ name: "a", mac: long }]), POD_NS);
    assert.fail("expected a SelectionError");
  } catch (err) {
    assert.ok(err instanceof SelectionError);
    assert.ok(err.message.length < 200, err.message);
    assert.equal(err.value, long);
  }
});

// --- the kernel's interface name rule on its own ---

const interfaceNames: [string, string | undefined][] = [
  ["net1", undefined],
  ["a", undefined],
  ["eth0.100", undefined],
  ["Ünïcode", undefined],
  ["abcdefghijklmno", undefined],
  ["", "is empty"],
  ["abcdefghijklmnop", "is 16 bytes long; the kernel allows at most 15"],
  [".", "is reserved by the kernel"],
  ["..", "is reserved by the kernel"],
  ["...", undefined],
  ["a/b", 'contains "/"'],
  ["a:b", 'contains ":"'],
  ["a\u0000b", "contains a NUL character"],
  ["a b", "contains whitespace"],
  ["a\nb", "contains whitespace"],
  ["a\u000bb", "contains whitespace"],
  ["a\u00a0b", "contains whitespace"],
];
for (const [name, problem] of interfaceNames) {
  Deno.test(`interface name ${JSON.stringify(name)}: ${problem ?? "valid"}`, () => {
    assert.equal(interfaceNameProblem(name), problem);
  });
}
