import assert from "node:assert/strict";
import { applyPlan, planPod } from "../lib/core/plan.ts";
import {
  attachmentKey,
  type Plan,
  type PodView,
  type RefusalCode,
  statusAttachmentId,
} from "../lib/core/plan_types.ts";
import { entrySatisfies } from "../lib/core/attachment_match.ts";
import { type NetworkSelectionElement } from "../lib/core/selection_element.ts";
import { parseNetworkSelection } from "../lib/core/selection.ts";
import type { NetworkStatus } from "../lib/core/status.ts";

const POD: PodView = {
  namespace: "default",
  name: "tiny-winy-pod",
  uid: "uid-1",
  hostNetwork: false,
  deleting: false,
};

/** One line per operation: `remove ns/net/if (reason)` or `add ns/net/if (reason)`. */
function lines(plan: Plan): string[] {
  return plan.operations.map((op) => `${op.kind} ${attachmentKey(op.id)} (${op.reason})`);
}

function entry(name: string, ifname: string, extra: Partial<NetworkStatus> = {}): NetworkStatus {
  return { name, interface: ifname, dns: {}, ...extra };
}

const clusterDefault = entry("kindnet", "eth0", { default: true, ips: ["10.244.1.5"] });

interface Case {
  name: string;
  pod?: Partial<PodView>;
  networks: string | undefined;
  current: NetworkStatus[];
  operations: string[];
  refusals?: { code: RefusalCode; elementIndex?: number; mentions?: string[] }[];
  /** Interfaces of the desired attachments, in annotation order. */
  desired?: string[];
}

const cases: Case[] = [
  { name: "nothing asked, nothing there", networks: undefined, current: [], operations: [] },
  {
    name: "a named attachment is added",
    networks: "net-a@net1",
    current: [],
    operations: ["add default/net-a/net1 (new)"],
    desired: ["net1"],
  },
  // Upstream's controller unit cases (pkg/controller/pod_test.go).
  {
    name: "upstream: add attachment",
    networks: "tiny-net@net0,tiny-net-2@net1",
    current: [entry("default/tiny-net", "net0")],
    operations: ["add default/tiny-net-2/net1 (new)"],
  },
  {
    name: "upstream: remove attachment",
    networks: "",
    current: [entry("default/tiny-net", "net0")],
    operations: ["remove default/tiny-net/net0 (not-desired)"],
  },
  {
    name: "upstream: host-network pod gets nothing and is told why",
    pod: { hostNetwork: true },
    networks: "tiny-net@net1",
    current: [],
    operations: [],
    refusals: [{ code: "host-network", mentions: ["default/tiny-winy-pod", "host network"] }],
    desired: [],
  },
  {
    name: "upstream: add with ips, mac and cni-args",
    networks:
      '[{"name":"tiny-net","interface":"net1","ips":["172.16.0.1"],"mac":"02:03:04:05:06:07",' +
      '"cni-args":{"foo":"bar"}}]',
    current: [],
    operations: ["add default/tiny-net/net1 (new)"],
  },
  {
    name: "upstream: remove one and add one, removes first",
    networks: "tiny-net-2@net1",
    current: [entry("default/tiny-net", "net0")],
    operations: ["remove default/tiny-net/net0 (not-desired)", "add default/tiny-net-2/net1 (new)"],
  },
  {
    name: "upstream: the default network entry is left alone",
    networks: "",
    current: [clusterDefault, entry("default/tiny-net", "net0")],
    operations: ["remove default/tiny-net/net0 (not-desired)"],
  },
  // Ours.
  {
    name: "host-network pod without networks is not refused",
    pod: { hostNetwork: true },
    networks: "",
    current: [],
    operations: [],
    refusals: [],
  },
  {
    name: "an attachment already there is left alone",
    networks: "ns1/a@net1",
    current: [clusterDefault, entry("ns1/a", "net1")],
    operations: [],
    desired: ["net1"],
  },
  {
    name: "identity includes the namespace",
    networks: "ns2/a@net1",
    current: [entry("ns1/a", "net1")],
    operations: [
      "remove ns1/a/net1 (interface-reassigned)",
      "add ns2/a/net1 (interface-reassigned)",
    ],
  },
  {
    name: "original #297: an interface name moving to another network is removed then added",
    networks: "nad-second@net1",
    current: [entry("default/nad-first", "net1")],
    operations: [
      "remove default/nad-first/net1 (interface-reassigned)",
      "add default/nad-second/net1 (interface-reassigned)",
    ],
  },
  {
    name: "original #297: two networks swapping interfaces",
    networks: "a@net2,b@net1",
    current: [entry("default/a", "net1"), entry("default/b", "net2")],
    operations: [
      "remove default/a/net1 (interface-reassigned)",
      "remove default/b/net2 (interface-reassigned)",
      "add default/a/net2 (interface-reassigned)",
      "add default/b/net1 (interface-reassigned)",
    ],
  },
  {
    name: "renaming an interface removes the old and adds the new",
    networks: "a@net2",
    current: [entry("default/a", "net1")],
    operations: ["remove default/a/net1 (not-desired)", "add default/a/net2 (new)"],
  },
  {
    name: "changed ips: remove then add",
    networks: '[{"name":"a","interface":"net1","ips":["10.1.1.12/24"]}]',
    current: [entry("default/a", "net1", { ips: ["10.1.1.11"] })],
    operations: ["remove default/a/net1 (changed)", "add default/a/net1 (changed)"],
  },
  {
    name: "an added ip is a change",
    networks: '[{"name":"a","interface":"net1","ips":["10.1.1.11/24","2001:db8::11/64"]}]',
    current: [entry("default/a", "net1", { ips: ["10.1.1.11"] })],
    operations: ["remove default/a/net1 (changed)", "add default/a/net1 (changed)"],
  },
  {
    name: "same ips in another order, notation and with prefixes: no change",
    networks: '[{"name":"a","interface":"net1","ips":["2001:DB8:0::11/64","10.1.1.11/24"]}]',
    current: [entry("default/a", "net1", { ips: ["10.1.1.11", "2001:db8::11"] })],
    operations: [],
  },
  {
    name: "no ips requested: whatever IPAM gave is fine",
    networks: "a@net1",
    current: [entry("default/a", "net1", { ips: ["10.1.1.11"], mac: "02:00:00:00:00:09" })],
    operations: [],
  },
  {
    name: "changed mac: remove then add",
    networks: '[{"name":"a","interface":"net1","mac":"02:00:00:00:00:02"}]',
    current: [entry("default/a", "net1", { mac: "02:00:00:00:00:01" })],
    operations: ["remove default/a/net1 (changed)", "add default/a/net1 (changed)"],
  },
  {
    name: "same mac in another case and notation: no change",
    networks: '[{"name":"a","interface":"net1","mac":"0A-00-00-00-00-0B"}]',
    current: [entry("default/a", "net1", { mac: "0a:00:00:00:00:0b" })],
    operations: [],
  },
  {
    name: "a mac requested but none recorded is a change",
    networks: '[{"name":"a","interface":"net1","mac":"02:00:00:00:00:02"}]',
    current: [entry("default/a", "net1")],
    operations: ["remove default/a/net1 (changed)", "add default/a/net1 (changed)"],
  },
  {
    name: "original #63: an unnamed element keeps the interface multus gave it",
    networks: "tenant",
    current: [clusterDefault, entry("default/tenant", "net1")],
    operations: [],
    desired: ["net1"],
  },
  {
    name: "original #63: unnamed elements match same-network entries by order",
    networks: "a,a,b",
    current: [entry("default/a", "net1"), entry("default/b", "net2"), entry("default/a", "net3")],
    operations: [],
    desired: ["net1", "net3", "net2"],
  },
  {
    name: "original #63: a new unnamed element gets the lowest free netN",
    networks: "a",
    current: [clusterDefault],
    operations: ["add default/a/net1 (new)"],
    desired: ["net1"],
  },
  {
    name: "original #63: netN skips names in the status and in the annotation",
    networks: "b@net1,c@net3,a,d",
    current: [clusterDefault, entry("default/b", "net1"), entry("x/y/z", "net2")],
    operations: [
      "add default/c/net3 (new)",
      "add default/a/net4 (new)",
      "add default/d/net5 (new)",
    ],
    desired: ["net1", "net3", "net4", "net5"],
  },
  {
    name: "original #63: one unnamed element fewer removes the extra attachment",
    networks: "a",
    current: [entry("default/a", "net1"), entry("default/a", "net2")],
    operations: ["remove default/a/net2 (not-desired)"],
    desired: ["net1"],
  },
  {
    name: "an unnamed element never takes an interface a named element claims",
    networks: "a@net1,a",
    current: [entry("default/a", "net1")],
    operations: ["add default/a/net2 (new)"],
    desired: ["net1", "net2"],
  },
  {
    name: "an unnamed element does not take another network's entry",
    networks: "a",
    current: [entry("default/b", "net1")],
    operations: ["remove default/b/net1 (not-desired)", "add default/a/net2 (new)"],
  },
  {
    name: "unnamed elements keep the attachment that already has their ips",
    networks: '[{"name":"a","ips":["10.0.0.2"]},{"name":"a"}]',
    current: [
      entry("default/a", "net1", { ips: ["10.0.0.1"] }),
      entry("default/a", "net2", { ips: ["10.0.0.2"] }),
    ],
    operations: [],
    desired: ["net2", "net1"],
  },
  {
    name: "an unnamed element with changed ips is re-added on the same interface",
    networks: '[{"name":"a","ips":["10.0.0.3/24"]}]',
    current: [entry("default/a", "net4", { ips: ["10.0.0.1"] })],
    operations: ["remove default/a/net4 (changed)", "add default/a/net4 (changed)"],
    desired: ["net4"],
  },
  {
    name: "duplicate interface: the later element is refused, the rest planned",
    networks: "a@net1,b@net1,c@net2",
    current: [],
    operations: ["add default/a/net1 (new)", "add default/c/net2 (new)"],
    refusals: [{
      code: "duplicate-interface",
      elementIndex: 1,
      mentions: ["networks[1]", "networks[0]", '"net1"'],
    }],
    desired: ["net1", "net2"],
  },
  {
    name: "duplicate interface never removes the attachment it collides with",
    networks: "a@net1,b@net1",
    current: [entry("default/b", "net1")],
    operations: [],
    refusals: [{
      code: "duplicate-interface",
      elementIndex: 0,
      mentions: ["networks[0]", "networks[1]"],
    }],
    desired: ["net1"],
  },
  {
    name: "the same element twice: the second is refused",
    networks: "a@net1,a@net1",
    current: [entry("default/a", "net1")],
    operations: [],
    refusals: [{ code: "duplicate-interface", elementIndex: 1 }],
  },
  {
    name: "three-way duplicate names every loser",
    networks: "a@net1,b@net1,c@net1",
    current: [],
    operations: ["add default/a/net1 (new)"],
    refusals: [
      { code: "duplicate-interface", elementIndex: 1 },
      { code: "duplicate-interface", elementIndex: 2 },
    ],
  },
  {
    name: "an interface held by the default network is refused",
    networks: '[{"name":"a","interface":"eth0"},{"name":"b","interface":"net1"}]',
    current: [clusterDefault],
    operations: ["add default/b/net1 (new)"],
    refusals: [{
      code: "interface-in-use",
      elementIndex: 0,
      mentions: ['"eth0"', "kindnet", "default network"],
    }],
    desired: ["net1"],
  },
  {
    name: "the loopback device is never asked of a plugin",
    networks: "a@lo,b@net1",
    current: [clusterDefault],
    operations: ["add default/b/net1 (new)"],
    refusals: [{ code: "interface-in-use", elementIndex: 0, mentions: ['"lo"', "loopback"] }],
    desired: ["net1"],
  },
  {
    name: "an interface held by an unreadable entry is refused and the entry kept",
    networks: "a@net2",
    current: [entry("x/y/z", "net2")],
    operations: [],
    refusals: [{ code: "interface-in-use", elementIndex: 0, mentions: ['"x/y/z"'] }],
  },
  {
    name: "a damaged entry sharing the default's interface is never removed",
    networks: "",
    current: [clusterDefault, entry("default/a", "eth0")],
    operations: [],
  },
  {
    name: "entries with names that cannot be read are never touched",
    networks: "",
    current: [entry("x/y/z", "net1"), entry("/a", "net2"), entry("a/", "net3"), entry("", "net4")],
    operations: [],
  },
  {
    name: "entries without an interface are never touched",
    networks: "",
    current: [{ name: "default/a", dns: {} }, { name: "default/b", interface: "", dns: {} }],
    operations: [],
  },
  {
    name: "bare names of older multus are read in the pod's namespace",
    networks: "a@net1",
    current: [entry("a", "net1"), entry("b", "net2")],
    operations: ["remove default/b/net2 (not-desired)"],
  },
  {
    name: "removes in network-status order, then adds in annotation order",
    networks: "z@net5,y@net4,x",
    current: [entry("default/c", "net3"), entry("default/a", "net1"), entry("default/b", "net2")],
    operations: [
      "remove default/c/net3 (not-desired)",
      "remove default/a/net1 (not-desired)",
      "remove default/b/net2 (not-desired)",
      "add default/z/net5 (new)",
      "add default/y/net4 (new)",
      // Names still in the status are skipped, so a failed remove cannot block the add.
      "add default/x/net6 (new)",
    ],
  },
  {
    name: "duplicated status entries yield one remove",
    networks: "",
    current: [entry("default/a", "net1"), entry("default/a", "net1")],
    operations: ["remove default/a/net1 (not-desired)"],
  },
  {
    name: "a deleting pod gets no operations: its networks serve it while it may still run",
    pod: { deleting: true },
    networks: "a@net1,c@net3",
    current: [clusterDefault, entry("default/a", "net1"), entry("default/b", "net2")],
    operations: [],
    desired: [],
  },
  {
    name: "a deleting host-network pod gets nothing",
    pod: { deleting: true, hostNetwork: true },
    networks: "",
    current: [],
    operations: [],
    refusals: [],
  },
];

for (const c of cases) {
  Deno.test(`plan: ${c.name}`, () => {
    const pod = { ...POD, ...c.pod };
    const desired = parseNetworkSelection(c.networks, pod.namespace);
    const plan = planPod(pod, desired, c.current);
    assert.deepEqual(lines(plan), c.operations);
    if (c.refusals) {
      assert.deepEqual(
        plan.refusals.map((r) => ({ code: r.code, elementIndex: r.elementIndex })),
        c.refusals.map((r) => ({ code: r.code, elementIndex: r.elementIndex })),
      );
      c.refusals.forEach((expected, i) => {
        for (const text of expected.mentions ?? []) {
          assert.ok(
            plan.refusals[i]!.message.includes(text),
            `${plan.refusals[i]!.message} lacks ${text}`,
          );
        }
      });
    } else {
      assert.deepEqual(plan.refusals, []);
    }
    if (c.desired) assert.deepEqual(plan.desired.map((d) => d.id.interface), c.desired);
    // Every case converges: the state the plan leads to needs nothing more.
    const after = applyPlan(c.current, plan);
    assert.deepEqual(lines(planPod(pod, desired, after)), []);
  });
}

Deno.test("plan: add elements always carry their interface name", () => {
  const desired = parseNetworkSelection("a,b@net7,a", "default");
  const plan = planPod(POD, desired, []);
  for (const op of plan.operations) {
    assert.equal(op.kind, "add");
    if (op.kind === "add") assert.equal(op.element.interface, op.id.interface);
  }
  assert.deepEqual(plan.desired.map((d) => d.element.interface), ["net1", "net7", "net2"]);
});

Deno.test("plan: add operations carry the element's requests", () => {
  const desired = parseNetworkSelection(
    '[{"name":"a","namespace":"ns1","ips":["10.0.0.1/24"],"mac":"02:00:00:00:00:01","cni-args":{"k":"v"}}]',
    "default",
  );
  const [op] = planPod(POD, desired, []).operations;
  assert.ok(op && op.kind === "add");
  assert.deepEqual(op.element, { ...desired[0], interface: "net1" });
  assert.deepEqual(op.id, { namespace: "ns1", network: "a", interface: "net1" });
});

Deno.test("plan: remove operations carry the recorded entry", () => {
  const recorded = entry("default/a", "net1", { ips: ["10.0.0.1"], extra: "kept" });
  const [op] = planPod(POD, [], [recorded]).operations;
  assert.ok(op && op.kind === "remove");
  assert.deepEqual(op.entry, recorded);
});

Deno.test("plan: does not change its inputs and is deterministic", () => {
  const desired = parseNetworkSelection("a,b@net1", "default");
  const current = [clusterDefault, entry("default/a", "net2"), entry("default/z", "net1")];
  const snapshot = structuredClone({ desired, current });
  const first = planPod(POD, desired, current);
  const second = planPod(POD, desired, current);
  assert.deepEqual(first, second);
  assert.deepEqual({ desired, current }, snapshot);
});

// --- helpers ---

const ids: {
  name: string;
  entry: NetworkStatus;
  podNamespace?: string;
  expected: string | undefined;
}[] = [
  { name: "namespaced name", entry: entry("ns1/a", "net1"), expected: "ns1/a/net1" },
  { name: "default entry", entry: clusterDefault, expected: undefined },
  { name: "bare name without pod namespace", entry: entry("a", "net1"), expected: undefined },
  {
    name: "bare name with pod namespace",
    entry: entry("a", "net1"),
    podNamespace: "p",
    expected: "p/a/net1",
  },
  { name: "three parts", entry: entry("a/b/c", "net1"), podNamespace: "p", expected: undefined },
  {
    name: "empty namespace part",
    entry: entry("/b", "net1"),
    podNamespace: "p",
    expected: undefined,
  },
  { name: "empty name", entry: entry("", "net1"), podNamespace: "p", expected: undefined },
  { name: "no interface", entry: { name: "ns1/a" }, expected: undefined },
  { name: "empty interface", entry: entry("ns1/a", ""), expected: undefined },
  {
    name: "default false counts as an attachment",
    entry: entry("ns1/a", "net1", { default: false }),
    expected: "ns1/a/net1",
  },
];
for (const c of ids) {
  Deno.test(`status attachment id: ${c.name}`, () => {
    const id = statusAttachmentId(c.entry, c.podNamespace);
    assert.equal(id && attachmentKey(id), c.expected);
  });
}

const satisfaction: {
  name: string;
  element: Partial<NetworkSelectionElement>;
  entry: NetworkStatus;
  ok: boolean;
}[] = [
  {
    name: "asks nothing",
    element: {},
    entry: entry("ns/a", "net1", { ips: ["1.1.1.1"] }),
    ok: true,
  },
  {
    name: "same ip",
    element: { ips: ["1.1.1.1/8"] },
    entry: entry("ns/a", "net1", { ips: ["1.1.1.1"] }),
    ok: true,
  },
  {
    name: "other ip",
    element: { ips: ["1.1.1.2"] },
    entry: entry("ns/a", "net1", { ips: ["1.1.1.1"] }),
    ok: false,
  },
  { name: "ip missing", element: { ips: ["1.1.1.1"] }, entry: entry("ns/a", "net1"), ok: false },
  {
    name: "extra recorded ip",
    element: { ips: ["1.1.1.1"] },
    entry: entry("ns/a", "net1", { ips: ["1.1.1.1", "2.2.2.2"] }),
    ok: false,
  },
  {
    name: "ipv6 notation",
    element: { ips: ["2001:0db8::0001"] },
    entry: entry("ns/a", "n", { ips: ["2001:db8::1"] }),
    ok: true,
  },
  {
    name: "same mac",
    element: { mac: "AA:BB:CC:DD:EE:FF" },
    entry: entry("ns/a", "n", { mac: "aa:bb:cc:dd:ee:ff" }),
    ok: true,
  },
  {
    name: "other mac",
    element: { mac: "aa:bb:cc:dd:ee:fe" },
    entry: entry("ns/a", "n", { mac: "aa:bb:cc:dd:ee:ff" }),
    ok: false,
  },
  {
    name: "mac missing",
    element: { mac: "aa:bb:cc:dd:ee:fe" },
    entry: entry("ns/a", "n"),
    ok: false,
  },
];
for (const c of satisfaction) {
  Deno.test(`entry satisfies: ${c.name}`, () => {
    assert.equal(entrySatisfies({ name: "a", namespace: "ns", ...c.element }, c.entry), c.ok);
  });
}

Deno.test("apply plan: removes drop entries, adds append the element's identity, ips and mac", () => {
  const current = [clusterDefault, entry("default/a", "net1"), entry("default/b", "net2")];
  const desired = parseNetworkSelection(
    '[{"name":"b","interface":"net2"},{"name":"c","ips":["10.0.0.5/24"],"mac":"02:00:00:00:00:05"}]',
    "default",
  );
  assert.deepEqual(applyPlan(current, planPod(POD, desired, current)), [
    clusterDefault,
    entry("default/b", "net2"),
    { name: "default/c", interface: "net3", ips: ["10.0.0.5"], mac: "02:00:00:00:00:05", dns: {} },
  ]);
});
