import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type AttachmentKeyParts,
  type CniResult,
  formatNetworkStatus,
  isEntryOf,
  type NetworkStatus,
  parseNetworkStatus,
  StatusError,
  statusFromCniResult,
  withAttachment,
  withoutAttachment,
} from "../lib/core/status.ts";

// Written by hand in the layout of Go's json.MarshalIndent(entry, "", "    "), joined by ",".
const MULTUS_TEXT = `[{
    "name": "kindnet",
    "interface": "eth0",
    "ips": [
        "10.244.1.5"
    ],
    "mac": "aa:bb:cc:dd:ee:ff",
    "default": true,
    "dns": {},
    "gateway": [
        "10.244.1.1"
    ]
},{
    "name": "ns1/tenant-network",
    "interface": "net1",
    "ips": [
        "10.1.1.11",
        "2001:db8::11"
    ],
    "mac": "02:03:04:05:06:07",
    "mtu": 1400,
    "dns": {
        "nameservers": [
            "10.1.1.1"
        ],
        "domain": "example.org",
        "search": [
            "example.org"
        ],
        "options": [
            "ndots:2"
        ]
    },
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:00:01.0"
        }
    }
}]`;

const MULTUS_ENTRIES: NetworkStatus[] = [
  {
    name: "kindnet",
    interface: "eth0",
    ips: ["10.244.1.5"],
    mac: "aa:bb:cc:dd:ee:ff",
    default: true,
    dns: {},
    gateway: ["10.244.1.1"],
  },
  {
    name: "ns1/tenant-network",
    interface: "net1",
    ips: ["10.1.1.11", "2001:db8::11"],
    mac: "02:03:04:05:06:07",
    mtu: 1400,
    dns: {
      nameservers: ["10.1.1.1"],
      domain: "example.org",
      search: ["example.org"],
      options: ["ndots:2"],
    },
    "device-info": { type: "pci", version: "1.1.0", pci: { "pci-address": "0000:00:01.0" } },
  },
];

// --- formatting ---

Deno.test("format: no entries is []", () => {
  assert.equal(formatNetworkStatus([]), "[]");
});

Deno.test("format: byte-identical to multus' layout", () => {
  assert.equal(formatNetworkStatus(MULTUS_ENTRIES), MULTUS_TEXT);
});

Deno.test("format: parse then format gives back multus' exact text", () => {
  assert.equal(formatNetworkStatus(parseNetworkStatus(MULTUS_TEXT)), MULTUS_TEXT);
});

Deno.test("parse: multus' text gives its entries", () => {
  assert.deepEqual(parseNetworkStatus(MULTUS_TEXT), MULTUS_ENTRIES);
});

Deno.test("format: known keys in Go's struct order, unknown keys after in their own order", () => {
  const entry: NetworkStatus = {
    zeta: 1,
    gateway: ["10.0.0.1"],
    dns: {},
    "device-info": { type: "pci" },
    default: true,
    mtu: 9000,
    alpha: "a",
    mac: "02:00:00:00:00:01",
    ips: ["10.0.0.2"],
    interface: "eth0",
    name: "n",
  };
  assert.equal(
    formatNetworkStatus([entry]),
    `[{
    "name": "n",
    "interface": "eth0",
    "ips": [
        "10.0.0.2"
    ],
    "mac": "02:00:00:00:00:01",
    "mtu": 9000,
    "default": true,
    "dns": {},
    "device-info": {
        "type": "pci"
    },
    "gateway": [
        "10.0.0.1"
    ],
    "zeta": 1,
    "alpha": "a"
}]`,
  );
});

Deno.test("format: empty known values are left out as Go's omitempty does; dns is always written", () => {
  const entry: NetworkStatus = {
    name: "ns1/a",
    interface: "",
    ips: [],
    mac: "",
    mtu: 0,
    default: false,
    gateway: [],
  };
  assert.equal(formatNetworkStatus([entry]), `[{\n    "name": "ns1/a",\n    "dns": {}\n}]`);
});

Deno.test("format: dns keys in Go's order, empty ones left out, unknown ones kept", () => {
  const entry: NetworkStatus = {
    name: "ns1/a",
    dns: { options: [], extra: true, search: ["s"], domain: "", nameservers: ["1.1.1.1"] } as never,
  };
  assert.equal(
    formatNetworkStatus([entry]),
    `[{
    "name": "ns1/a",
    "dns": {
        "nameservers": [
            "1.1.1.1"
        ],
        "search": [
            "s"
        ],
        "extra": true
    }
}]`,
  );
});

Deno.test("format: escapes <, >, &, U+2028 and U+2029 as Go does", () => {
  const text = formatNetworkStatus([{ name: "ns1/a", note: "<b>&\u2028\u2029" }]);
  assert.ok(text.includes(String.raw`"note": "\u003cb\u003e\u0026\u2028\u2029"`), text);
  assert.deepEqual(parseNetworkStatus(text)[0]?.note, "<b>&\u2028\u2029");
});

Deno.test("format: an unknown __proto__ key stays an ordinary key", () => {
  const [parsed] = parseNetworkStatus('[{"name":"ns1/a","__proto__":{"x":1}}]');
  assert.ok(parsed);
  const entry = { ...parsed }; // a changed entry is formatted afresh
  const text = formatNetworkStatus([entry]);
  assert.ok(text.includes('"__proto__": {'), text);
  assert.deepEqual(parseNetworkStatus(text), [{ ...entry, dns: {} }]);
});

Deno.test("format: entries keep their order", () => {
  const entries = ["ns1/c", "ns1/a", "ns1/b"].map((name, i) => ({ name, interface: `net${i}` }));
  const names = parseNetworkStatus(formatNetworkStatus(entries)).map((e) => e.name);
  assert.deepEqual(names, ["ns1/c", "ns1/a", "ns1/b"]);
});

Deno.test("format: entries nobody changed are written back exactly as they were read", () => {
  // Another writer's entries: its own key order, no dns, a null field, an unknown key, spacing.
  const theirs = [
    `{"interface":"eth0","name":"kindnet","default":true,"ips":["10.244.0.5"],"mtu":null}`,
    `{ "name": "other/x", "interface": "x1", "vendor": {"b": 2, "a": 1} }`,
  ];
  const text = `[${theirs[0]}, ${theirs[1]}]`;
  const entries = parseNetworkStatus(text);
  const added = statusFromCniResult("ns1/a", {
    interfaces: [{ name: "net1", mac: "02:00:00:00:00:01", sandbox: "/proc/1/ns/net" }],
    ips: [{ address: "10.1.0.1/24" }],
  });
  const written = formatNetworkStatus(withAttachment(entries, added));
  assert.ok(written.startsWith(`[${theirs[0]},${theirs[1]},{\n    "name": "ns1/a",`), written);
  assert.equal(
    formatNetworkStatus(entries),
    `[${theirs.join(",")}]`,
    "nothing added, nothing reordered",
  );
  // Removing our entry again gives back their entries untouched.
  const removed = withoutAttachment(parseNetworkStatus(written), {
    namespace: "ns1",
    network: "a",
    interface: "net1",
  });
  assert.equal(formatNetworkStatus(removed), `[${theirs.join(",")}]`);
});

Deno.test("format: an entry replaced in place is written afresh in multus' format", () => {
  const entries = parseNetworkStatus(`[{"interface":"net1","name":"ns1/a","ips":["10.0.0.1"]}]`);
  const changed = withAttachment(entries, { name: "ns1/a", interface: "net1", ips: ["10.0.0.2"] });
  assert.equal(
    formatNetworkStatus(changed),
    `[{\n    "name": "ns1/a",\n    "interface": "net1",\n    "ips": [\n        "10.0.0.2"\n    ],\n    "dns": {}\n}]`,
  );
});

// --- parsing ---

Deno.test("parse: missing, empty or blank means no entries", () => {
  assert.deepEqual(parseNetworkStatus(undefined), []);
  assert.deepEqual(parseNetworkStatus(""), []);
  assert.deepEqual(parseNetworkStatus(" \n"), []);
  assert.deepEqual(parseNetworkStatus("[]"), []);
});

Deno.test("parse: unknown fields are kept, nested ones too", () => {
  const entries = parseNetworkStatus(
    '[{"name":"ns1/a","interface":"net1","owner":{"by":["x"]},"n":1}]',
  );
  assert.deepEqual(entries, [{ name: "ns1/a", interface: "net1", owner: { by: ["x"] }, n: 1 }]);
});

Deno.test("parse: null known fields count as not set", () => {
  const entries = parseNetworkStatus('[{"name":"ns1/a","interface":null,"ips":null,"dns":null}]');
  assert.deepEqual(entries, [{ name: "ns1/a" }]);
});

const badStatus: { name: string; text: string; path: string; fragment: string }[] = [
  { name: "invalid JSON", text: "[{", path: "network-status", fragment: "not valid JSON" },
  {
    name: "an object",
    text: '{"name":"a"}',
    path: "network-status",
    fragment: "an object, not a list",
  },
  {
    name: "a string entry",
    text: '[{"name":"a"},"b"]',
    path: "network-status[1]",
    fragment: "a string",
  },
  {
    name: "missing name",
    text: '[{"interface":"net1"}]',
    path: "network-status[0].name",
    fragment: "missing",
  },
  {
    name: "numeric name",
    text: '[{"name":5}]',
    path: "network-status[0].name",
    fragment: "a number",
  },
  {
    name: "ips as a string",
    text: '[{"name":"a"},{"name":"b","ips":"10.0.0.1"}]',
    path: "network-status[1].ips",
    fragment: "not a list of strings",
  },
  {
    name: "numeric ip",
    text: '[{"name":"a","ips":[1]}]',
    path: "network-status[0].ips",
    fragment: "not a list of strings",
  },
  {
    name: "fractional mtu",
    text: '[{"name":"a","mtu":1.5}]',
    path: "network-status[0].mtu",
    fragment: "not a whole number",
  },
  {
    name: "textual default",
    text: '[{"name":"a","default":"yes"}]',
    path: "network-status[0].default",
    fragment: "not true or false",
  },
  {
    name: "dns as a list",
    text: '[{"name":"a","dns":[]}]',
    path: "network-status[0].dns",
    fragment: "not an object",
  },
  {
    name: "dns nameservers as a string",
    text: '[{"name":"a","dns":{"nameservers":"1.1.1.1"}}]',
    path: "network-status[0].dns.nameservers",
    fragment: "not a list of strings",
  },
  {
    name: "numeric dns domain",
    text: '[{"name":"a","dns":{"domain":1}}]',
    path: "network-status[0].dns.domain",
    fragment: "not a string",
  },
  {
    name: "device-info as a string",
    text: '[{"name":"a","device-info":"pci"}]',
    path: "network-status[0].device-info",
    fragment: "not an object",
  },
  {
    name: "deep nesting",
    text: `[{"name":"a","x":${"[".repeat(50_000)}${"]".repeat(50_000)}}]`,
    path: "network-status",
    fragment: "nested deeper",
  },
];

for (const c of badStatus) {
  Deno.test(`parse rejects: ${c.name}`, () => {
    try {
      parseNetworkStatus(c.text);
      assert.fail("expected a StatusError");
    } catch (err) {
      assert.ok(err instanceof StatusError, String(err));
      assert.equal(err.path, c.path, err.message);
      assert.ok(err.message.startsWith(`${c.path}: `), err.message);
      assert.ok(err.message.includes(c.fragment), err.message);
    }
  });
}

// --- entries from CNI results (upstream's add-to-status cases and §2.5) ---

Deno.test("from CNI result: interface, mac and mtu of the last sandbox interface", () => {
  const result: CniResult = {
    cniVersion: "1.0.0",
    interfaces: [
      { name: "br0", mac: "aa:aa:aa:aa:aa:aa" },
      { name: "net1", mac: "02:00:00:00:00:01", mtu: 1500, sandbox: "/var/run/netns/a" },
      { name: "veth1", mac: "bb:bb:bb:bb:bb:bb" },
      { name: "net2", mac: "02:00:00:00:00:02", mtu: 9000, sandbox: "/var/run/netns/a" },
    ],
  };
  assert.deepEqual(statusFromCniResult("ns1/a", result), {
    name: "ns1/a",
    interface: "net2",
    mac: "02:00:00:00:00:02",
    mtu: 9000,
    dns: {},
  });
});

Deno.test("from CNI result: a later sandbox interface without mac or mtu clears them", () => {
  const result: CniResult = {
    interfaces: [
      { name: "net1", mac: "02:00:00:00:00:01", mtu: 1500, sandbox: "/ns" },
      { name: "net2", sandbox: "/ns" },
    ],
  };
  assert.deepEqual(statusFromCniResult("ns1/a", result), {
    name: "ns1/a",
    interface: "net2",
    dns: {},
  });
});

Deno.test("from CNI result: every address, prefix stripped and written as Go does", () => {
  const result: CniResult = {
    interfaces: [{ name: "net1", sandbox: "/ns" }],
    ips: [
      { interface: 0, address: "10.1.1.11/24", gateway: "10.1.1.1" },
      { address: "2001:DB8:0:0:0:0:0:11/64" },
      { interface: 5, address: "::ffff:192.0.2.1/120" },
    ],
  };
  assert.deepEqual(statusFromCniResult("ns1/a", result).ips, [
    "10.1.1.11",
    "2001:db8::11",
    "192.0.2.1",
  ]);
});

Deno.test("from CNI result: gateways of default routes only", () => {
  const result: CniResult = {
    routes: [
      { dst: "0.0.0.0/0", gw: "10.1.1.1" },
      { dst: "10.2.0.0/16", gw: "10.1.1.2" },
      { dst: "::/0", gw: "2001:db8::1" },
      { dst: "0.0.0.0/0" }, // no gateway: nothing to record
      { dst: "" as string, gw: "10.1.1.3" },
    ],
  };
  assert.deepEqual(statusFromCniResult("ns1/a", result).gateway, [
    "10.1.1.1",
    "2001:db8::1",
    "10.1.1.3",
  ]);
});

Deno.test("from CNI result: dns copied, empty parts left out", () => {
  const result: CniResult = {
    dns: { nameservers: ["10.1.1.1"], domain: "example.org", search: [], options: ["ndots:2"] },
  };
  assert.deepEqual(statusFromCniResult("ns1/a", result).dns, {
    nameservers: ["10.1.1.1"],
    domain: "example.org",
    options: ["ndots:2"],
  });
});

Deno.test("from CNI result: an empty result still names the network and writes dns", () => {
  const entry = statusFromCniResult("ns1/a", {});
  assert.deepEqual(entry, { name: "ns1/a", dns: {} });
  assert.equal(formatNetworkStatus([entry]), `[{\n    "name": "ns1/a",\n    "dns": {}\n}]`);
});

Deno.test("from CNI result: upstream's add cases, formatted", () => {
  const existing = parseNetworkStatus(
    '[{"name":"default/tiny-net","interface":"net0","ips":["10.10.10.10"],"dns":{}}]',
  );
  const added = statusFromCniResult("default/tiny-net-2", {
    cniVersion: "1.0.0",
    interfaces: [{ name: "net1", mac: "02:03:04:05:06:07", sandbox: "/proc/1/ns/net" }],
    ips: [{ address: "192.168.2.12/24" }],
  });
  // The existing entry stays first, as it was written; the new one is appended with its
  // prefix stripped, in multus' format.
  assert.equal(
    formatNetworkStatus(withAttachment(existing, added)),
    `[{"name":"default/tiny-net","interface":"net0","ips":["10.10.10.10"],"dns":{}},{
    "name": "default/tiny-net-2",
    "interface": "net1",
    "ips": [
        "192.168.2.12"
    ],
    "mac": "02:03:04:05:06:07",
    "dns": {}
}]`,
  );
});

// --- editing entries (upstream's remove-from-status cases, plus ours) ---

const defaultEntry: NetworkStatus = { name: "kindnet", interface: "eth0", default: true, dns: {} };
const net1: NetworkStatus = { name: "ns1/a", interface: "net1", dns: {} };
const net2: NetworkStatus = { name: "ns1/b", interface: "net2", dns: {} };
const net3: NetworkStatus = { name: "ns2/a", interface: "net3", dns: {} };
const id = (namespace: string, network: string, ifname: string): AttachmentKeyParts => ({
  namespace,
  network,
  interface: ifname,
});

const removals: {
  name: string;
  entries: NetworkStatus[];
  remove: AttachmentKeyParts[];
  expected: NetworkStatus[];
}[] = [
  {
    name: "nothing to remove",
    entries: [defaultEntry, net1],
    remove: [],
    expected: [defaultEntry, net1],
  },
  { name: "from an empty status", entries: [], remove: [id("ns1", "a", "net1")], expected: [] },
  {
    name: "remove all attachments",
    entries: [net1, net2],
    remove: [id("ns1", "a", "net1"), id("ns1", "b", "net2")],
    expected: [],
  },
  {
    name: "non-matching interface",
    entries: [net1, net2],
    remove: [id("ns1", "a", "net9")],
    expected: [net1, net2],
  },
  {
    name: "non-matching namespace",
    entries: [net1, net3],
    remove: [id("ns3", "a", "net1")],
    expected: [net1, net3],
  },
  {
    name: "non-matching network",
    entries: [net1],
    remove: [id("ns1", "b", "net1")],
    expected: [net1],
  },
  {
    name: "remove one",
    entries: [net1, net2, net3],
    remove: [id("ns1", "b", "net2")],
    expected: [net1, net3],
  },
  {
    name: "remove several, order kept",
    entries: [net1, net2, net3],
    remove: [id("ns2", "a", "net3"), id("ns1", "a", "net1")],
    expected: [net2],
  },
  {
    name: "default entry survives even under its own name and interface",
    entries: [defaultEntry, net1],
    remove: [id("ns1", "a", "net1"), id("x", "kindnet", "eth0")],
    expected: [defaultEntry],
  },
  {
    name: "bare name of older multus matches by network and interface",
    entries: [{ name: "a", interface: "net1" }, net2],
    remove: [id("ns1", "a", "net1")],
    expected: [net2],
  },
  {
    name: "duplicated entries are all removed",
    entries: [net1, net2, { ...net1 }],
    remove: [id("ns1", "a", "net1")],
    expected: [net2],
  },
];

for (const c of removals) {
  Deno.test(`without attachment: ${c.name}`, () => {
    let entries = c.entries;
    for (const key of c.remove) entries = withoutAttachment(entries, key);
    assert.deepEqual(entries, c.expected);
  });
}

Deno.test("without attachment does not change its input", () => {
  const entries = [net1, net2];
  withoutAttachment(entries, id("ns1", "a", "net1"));
  assert.deepEqual(entries, [net1, net2]);
});

Deno.test("with attachment: appended when new", () => {
  assert.deepEqual(withAttachment([defaultEntry, net1], net2), [defaultEntry, net1, net2]);
});

Deno.test("with attachment: replaces the same attachment in place", () => {
  const updated: NetworkStatus = { ...net1, ips: ["10.0.0.9"] };
  assert.deepEqual(withAttachment([net1, net2], updated), [updated, net2]);
});

Deno.test("with attachment: replaces an older bare-name entry in place", () => {
  const bare: NetworkStatus = { name: "a", interface: "net1", legacy: true };
  assert.deepEqual(withAttachment([bare, net2], net1), [net1, net2]);
});

Deno.test("with attachment: never replaces a default entry", () => {
  const sameInterface: NetworkStatus = { name: "kindnet", interface: "eth0" };
  assert.deepEqual(withAttachment([defaultEntry], sameInterface), [defaultEntry, sameInterface]);
});

Deno.test("with attachment: another network on the same interface is appended", () => {
  const other: NetworkStatus = { name: "ns1/z", interface: "net1" };
  assert.deepEqual(withAttachment([net1], other), [net1, other]);
});

Deno.test("is entry of: identity is namespace, network and interface", () => {
  assert.equal(isEntryOf(net1, id("ns1", "a", "net1")), true);
  assert.equal(isEntryOf(net1, id("ns2", "a", "net1")), false);
  assert.equal(isEntryOf(net1, id("ns1", "b", "net1")), false);
  assert.equal(isEntryOf(net1, id("ns1", "a", "net2")), false);
  assert.equal(isEntryOf(defaultEntry, id("ns1", "kindnet", "eth0")), false);
  assert.equal(isEntryOf({ name: "x/y/z", interface: "net1" }, id("x", "y", "net1")), false);
});

// --- properties ---

const statusEntryArb: fc.Arbitrary<NetworkStatus> = fc.record({
  name: fc.constantFrom("kindnet", "ns1/a", "ns1/b", "a", "x/y/z"),
  interface: fc.constantFrom("eth0", "net1", "net2", ""),
  ips: fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 2 }),
  mac: fc.constantFrom("", "02:00:00:00:00:01"),
  mtu: fc.constantFrom(0, 1500),
  default: fc.boolean(),
  dns: fc.record({
    nameservers: fc.array(fc.ipV4(), { maxLength: 2 }),
    domain: fc.constantFrom("", "example.org"),
  }),
  "device-info": fc.record({ type: fc.constantFrom("pci", "vdpa"), version: fc.constant("1.1.0") }),
  gateway: fc.array(fc.ipV4(), { maxLength: 1 }),
  // Unknown fields written by other tools, including text Go escapes.
  note: fc.string({ maxLength: 8 }),
  owner: fc.jsonValue({ maxDepth: 2 }),
}, { requiredKeys: ["name"] }).map((entry) => JSON.parse(JSON.stringify(entry)));

Deno.test("property: formatting is a fixpoint of parsing", () => {
  fc.assert(
    fc.property(fc.array(statusEntryArb, { maxLength: 4 }), (entries) => {
      const text = formatNetworkStatus(entries);
      const reread = parseNetworkStatus(text);
      assert.equal(reread.length, entries.length);
      assert.equal(formatNetworkStatus(reread), text);
      reread.forEach((entry, i) => {
        assert.equal(entry.name, entries[i]!.name);
        assert.deepEqual(entry.note, entries[i]!.note);
        assert.deepEqual(entry.owner, entries[i]!.owner);
      });
    }),
    { numRuns: 1000 },
  );
});

Deno.test("property: edits keep order and never drop or replace default entries", () => {
  const keyArb = fc.record({
    namespace: fc.constantFrom("ns1", "kindnet"),
    network: fc.constantFrom("a", "b", "kindnet"),
    interface: fc.constantFrom("eth0", "net1", "net2"),
  });
  fc.assert(
    fc.property(
      fc.array(statusEntryArb, { maxLength: 5 }),
      keyArb,
      statusEntryArb,
      (entries, key, added) => {
        const defaults = entries.filter((e) => e.default === true);
        const removed = withoutAttachment(entries, key);
        assert.deepEqual(removed.filter((e) => e.default === true), defaults);
        assert.deepEqual(removed, entries.filter((e) => removed.includes(e)), "order changed");
        const withAdded = withAttachment(entries, added);
        assert.ok(withAdded.includes(added));
        for (const d of defaults) assert.ok(withAdded.includes(d), "a default entry was replaced");
        assert.ok(withAdded.length === entries.length || withAdded.length === entries.length + 1);
      },
    ),
    { numRuns: 2000 },
  );
});
