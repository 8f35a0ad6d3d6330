import assert from "node:assert/strict";
import fc from "fast-check";
import { applyPlan, planPod } from "../lib/core/plan.ts";
import {
  attachmentKey,
  type Plan,
  type PodView,
  statusAttachmentId,
} from "../lib/core/plan_types.ts";
import { entrySatisfies } from "../lib/core/attachment_match.ts";
import type { NetworkSelectionElement } from "../lib/core/selection_element.ts";
import type { NetworkStatus } from "../lib/core/status.ts";

// Small pools, so that random lists collide often: shared networks, shared interface names.
const namespaces = ["default", "ns1"];
const networks = ["a", "b", "c"];
const interfaces = ["net1", "net2", "net3", "net4", "eth0", "x1"];
const ips = ["10.0.0.1", "10.0.0.2/24", "2001:db8::1", "2001:DB8::2/64"];
const macs = ["02:00:00:00:00:01", "02-00-00-00-00-02", "0A:00:00:00:00:03"];

const elementArb = fc.record({
  name: fc.constantFrom(...networks),
  namespace: fc.constantFrom(...namespaces),
  interface: fc.option(fc.constantFrom(...interfaces), { nil: undefined }),
  ips: fc.option(fc.subarray(ips, { minLength: 1 }), { nil: undefined }),
  mac: fc.option(fc.constantFrom(...macs), { nil: undefined }),
});

/** Elements tagged with their annotation index (in a field the planner does not read). */
const desiredArb = fc.array(elementArb, { maxLength: 7 }).map((list) =>
  list.map((element, index): NetworkSelectionElement => {
    const tagged: NetworkSelectionElement = { ...element, "ipam-claim-reference": `e${index}` };
    if (tagged.interface === undefined) delete tagged.interface;
    if (tagged.ips === undefined) delete tagged.ips;
    if (tagged.mac === undefined) delete tagged.mac;
    return tagged;
  })
);

const bareIp = (ip: string) => ip.split("/")[0]!.toLowerCase();

const entryArb: fc.Arbitrary<NetworkStatus> = fc.oneof(
  // An attachment as multus records it.
  {
    weight: 6,
    arbitrary: fc.record({
      name: fc.tuple(fc.constantFrom(...namespaces), fc.constantFrom(...networks)).map(([ns, n]) =>
        `${ns}/${n}`
      ),
      interface: fc.constantFrom(...interfaces),
      ips: fc.subarray(ips).map((list) => list.map(bareIp)),
      mac: fc.option(fc.constantFrom(...macs).map((m) => m.toLowerCase().replaceAll("-", ":")), {
        nil: undefined,
      }),
      dns: fc.constant({}),
    }),
  },
  // The cluster default network.
  {
    weight: 2,
    arbitrary: fc.record({
      name: fc.constantFrom("kindnet", "default/a"),
      interface: fc.constantFrom("eth0", "net1"),
      default: fc.constant(true),
      dns: fc.constant({}),
    }),
  },
  // Older multus: bare name.
  {
    weight: 1,
    arbitrary: fc.record({
      name: fc.constantFrom(...networks),
      interface: fc.constantFrom(...interfaces),
    }),
  },
  // Names this program cannot manage, and entries without an interface.
  {
    weight: 1,
    arbitrary: fc.record({
      name: fc.constantFrom("x/y/z", "", "/a", "ns1/"),
      interface: fc.constantFrom(...interfaces),
    }),
  },
  { weight: 1, arbitrary: fc.record({ name: fc.constantFrom("ns1/a", "default/b") }) },
).map((entry) => {
  const clean: NetworkStatus = { ...entry };
  for (const key of Object.keys(clean)) if (clean[key] === undefined) delete clean[key];
  return clean;
});

/** True one time in `n`. */
const sometimes = (n: number) => fc.integer({ min: 1, max: n }).map((k) => k === 1);

const podArb: fc.Arbitrary<PodView> = fc.record({
  namespace: fc.constantFrom(...namespaces),
  name: fc.constant("p"),
  uid: fc.constant("u"),
  hostNetwork: sometimes(10),
  deleting: sometimes(6),
});

const scenario = fc.record({
  pod: podArb,
  desired: desiredArb,
  current: fc.array(entryArb, { maxLength: 7 }),
});
const RUNS = { numRuns: 2000 };

const defaultInterfaces = (current: NetworkStatus[]) =>
  new Set(current.filter((e) => e.default === true).map((e) => e.interface));

Deno.test("property: applying the plan, then planning again, yields no operations", () => {
  fc.assert(
    fc.property(scenario, ({ pod, desired, current }) => {
      const plan = planPod(pod, desired, current);
      const after = applyPlan(current, plan);
      const again = planPod(pod, desired, after);
      assert.deepEqual(again.operations, [], JSON.stringify({ plan: plan.operations, after }));
    }),
    RUNS,
  );
});

Deno.test("property: no operation touches a default entry or an interface it holds", () => {
  fc.assert(
    fc.property(scenario, ({ pod, desired, current }) => {
      const plan = planPod(pod, desired, current);
      const held = defaultInterfaces(current);
      for (const op of plan.operations) {
        assert.ok(
          !held.has(op.id.interface),
          `${op.kind} ${attachmentKey(op.id)} hits a default interface`,
        );
        if (op.kind === "remove") assert.notEqual(op.entry.default, true);
      }
      const defaults = current.filter((e) => e.default === true);
      assert.deepEqual(applyPlan(current, plan).filter((e) => e.default === true), defaults);
    }),
    RUNS,
  );
});

Deno.test("property: removes precede adds, and adds follow annotation order", () => {
  fc.assert(
    fc.property(scenario, ({ pod, desired, current }) => {
      const plan = planPod(pod, desired, current);
      const kinds = plan.operations.map((op) => op.kind).join(",");
      assert.ok(!/add,remove/.test(kinds), kinds);
      const addIndices = plan.operations.flatMap((op) =>
        op.kind === "add" ? [Number(op.element["ipam-claim-reference"]!.slice(1))] : []
      );
      assert.deepEqual(addIndices, [...addIndices].sort((x, y) => x - y));
    }),
    RUNS,
  );
});

Deno.test("property: removes follow network-status order and never repeat", () => {
  fc.assert(
    fc.property(scenario, ({ pod, desired, current }) => {
      const plan = planPod(pod, desired, current);
      const removed = plan.operations.flatMap((op) => op.kind === "remove" ? [op] : []);
      const positions = removed.map((op) => current.indexOf(op.entry));
      assert.ok(
        positions.every((p) => p >= 0),
        "a remove names an entry that is not in the status",
      );
      assert.deepEqual(positions, [...positions].sort((x, y) => x - y));
      const keys = removed.map((op) => attachmentKey(op.id));
      assert.equal(new Set(keys).size, keys.length);
    }),
    RUNS,
  );
});

Deno.test("property: no two desired attachments share an interface", () => {
  fc.assert(
    fc.property(scenario, ({ pod, desired, current }) => {
      const plan = planPod(pod, desired, current);
      const names = plan.desired.map((d) => d.id.interface);
      assert.equal(new Set(names).size, names.length, names.join(","));
      for (const name of names) assert.ok(!defaultInterfaces(current).has(name));
      for (const d of plan.desired) assert.equal(d.element.interface, d.id.interface);
    }),
    RUNS,
  );
});

Deno.test("property: every element is either desired or refused, never both", () => {
  fc.assert(
    fc.property(scenario, ({ pod, desired, current }) => {
      const plan: Plan = planPod(pod, desired, current);
      if (pod.hostNetwork || pod.deleting) {
        assert.deepEqual(plan.desired, []);
        assert.deepEqual(plan.operations, []);
        return;
      }
      const planned = plan.desired.map((d) => Number(d.element["ipam-claim-reference"]!.slice(1)));
      const refused = plan.refusals.map((r) => r.elementIndex!);
      assert.deepEqual([...planned, ...refused].sort((x, y) => x - y), desired.map((_, i) => i));
    }),
    RUNS,
  );
});

Deno.test("property: planning is deterministic and leaves its inputs alone", () => {
  fc.assert(
    fc.property(scenario, ({ pod, desired, current }) => {
      const before = structuredClone({ desired, current });
      const first = planPod(pod, desired, current);
      assert.deepEqual(planPod(pod, desired, current), first);
      assert.deepEqual({ desired, current }, before);
    }),
    RUNS,
  );
});

Deno.test("property: the settled state records exactly the desired attachments", () => {
  fc.assert(
    fc.property(scenario, ({ pod, desired, current }) => {
      const plan = planPod(pod, desired, current);
      if (pod.hostNetwork || pod.deleting) {
        // A host-network pod's "sandbox" is the node's namespace: acting there could delete the
        // node's own links. A finished pod keeps what it has while it may still run.
        assert.deepEqual(plan.operations, []);
        return;
      }
      const settled = applyPlan(current, plan);
      // Interfaces the planner must leave alone: held by default or unreadable entries.
      const untouchable = new Set(
        current.filter((e) => !statusAttachmentId(e, pod.namespace)).map((e) => e.interface),
      );
      const wanted = new Map(plan.desired.map((d) => [attachmentKey(d.id), d]));
      const wantedInterfaces = new Set(plan.desired.map((d) => d.id.interface));
      for (const entry of settled) {
        const id = statusAttachmentId(entry, pod.namespace);
        if (!id || untouchable.has(id.interface)) continue;
        // Left over only when a damaged status records two networks on one desired interface.
        assert.ok(
          wanted.has(attachmentKey(id)) || wantedInterfaces.has(id.interface),
          `${attachmentKey(id)} is recorded but not desired`,
        );
      }
      for (const [key, d] of wanted) {
        const recorded = settled.filter((e) => {
          const id = statusAttachmentId(e, pod.namespace);
          return id !== undefined && attachmentKey(id) === key;
        });
        assert.ok(
          recorded.some((e) => entrySatisfies(d.element, e)),
          `${key} is desired but not recorded`,
        );
      }
    }),
    RUNS,
  );
});
