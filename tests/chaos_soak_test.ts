/**
 * The chaos soak's own parts: its seeded script (a seed replays the same run, faults come in
 * even numbers of each kind) and its invariants (each catches what it is there to catch).
 */
import assert from "node:assert/strict";
import { SeededRandom, ShuffleBag } from "./soak/seeded_random.ts";
import {
  ChaosPlanner,
  type Element,
  FAULT_KINDS,
  multusNameable,
  NETWORKS,
  type RoundPlan,
} from "./soak/chaos_plan.ts";
import { sandboxNameClashes } from "../lib/core/multus_names.ts";
import {
  allocationViolations,
  faultsUnderway,
  journalViolations,
  platformLeak,
  type PodView,
  podViolations,
  terminatingViolations,
  unexplainedErrors,
} from "./soak/chaos_invariants.ts";

const OPTIONS = { pods: 20, faultsPerRound: 4, windowMs: 3_000 };

function script(seed: number, rounds: number): { initial: unknown; rounds: RoundPlan[] } {
  const planner = new ChaosPlanner(seed, OPTIONS);
  const initial = planner.initial();
  return { initial, rounds: Array.from({ length: rounds }, () => planner.round()) };
}

Deno.test("seeded random: a seed gives one sequence, another seed another", () => {
  const draw = (seed: number) => {
    const r = new SeededRandom(seed);
    return Array.from({ length: 20 }, () => r.int(1000));
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
  const r = new SeededRandom(3);
  for (let i = 0; i < 1000; i++) {
    const v = r.next();
    assert.ok(v >= 0 && v < 1, `${v} out of [0, 1)`);
  }
});

Deno.test("shuffle bag: distinct items in each deal, every item as often as the others", () => {
  const bag = new ShuffleBag(FAULT_KINDS, new SeededRandom(11));
  const counts = new Map<string, number>();
  for (let i = 0; i < 175; i++) {
    const dealt = bag.deal(4);
    assert.equal(new Set(dealt).size, 4, `deal ${i} repeats a kind: ${dealt}`);
    for (const k of dealt) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  for (const kind of FAULT_KINDS) {
    const n = counts.get(kind) ?? 0;
    assert.ok(n >= 99 && n <= 101, `${kind} dealt ${n} times in 700`);
  }
  assert.throws(() => bag.deal(FAULT_KINDS.length + 1), /cannot deal 8 distinct items from 7/);
});

Deno.test("chaos planner: a seed replays the same run; another seed makes another", () => {
  assert.deepEqual(script(42, 60), script(42, 60));
  assert.notDeepEqual(script(42, 60).rounds, script(43, 60).rounds);
});

Deno.test("chaos planner: what each round asks for can be done and checked", () => {
  const planner = new ChaosPlanner(5, OPTIONS);
  planner.initial();
  const addresses = new Set<string>();
  const kinds = new Set<string>();
  const edits = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const before = new Set(planner.pods.keys());
    const plan = planner.round();
    const touched = new Set(plan.steps.flatMap((s) => "pod" in s ? [s.pod] : []));
    for (const step of plan.steps) {
      assert.ok(step.atMs >= 0 && step.atMs < OPTIONS.windowMs);
      if (step.kind === "edit") edits.add(step.edit);
    }
    for (const fault of plan.faults) {
      kinds.add(fault.kind);
      if (fault.kind === "sandbox-kill") {
        const pod = planner.pods.get(fault.pod!);
        assert.ok(pod && before.has(fault.pod!), `round ${i}: sandbox-kill of ${fault.pod}`);
        assert.ok(!touched.has(fault.pod!), `round ${i}: ${fault.pod} is also edited`);
        assert.ok(!pod.elements.some((e) => e.name === "late"));
      }
    }
    assert.ok(Math.abs(planner.pods.size - OPTIONS.pods) <= 2, `${planner.pods.size} pods`);
    for (const pod of planner.pods.values()) {
      const named = pod.elements.flatMap((e) => e.interface ? [e.interface] : []);
      assert.equal(
        new Set(named).size,
        named.length,
        `${pod.name}: ${JSON.stringify(pod.elements)}`,
      );
      // multus can plug the list into a new sandbox: no name an unnamed element gets from it.
      pod.elements.forEach((e, i) => {
        if (e.interface === undefined) {
          assert.ok(!named.includes(`net${i + 1}`), `${pod.name}: ${JSON.stringify(pod.elements)}`);
        }
      });
      for (const e of pod.elements.filter((e) => e.name === "red")) {
        assert.equal(e.ips?.length, 1, `a red element asks for its address: ${JSON.stringify(e)}`);
      }
    }
    for (const step of plan.steps) {
      if (step.kind !== "edit") continue;
      for (const e of step.elements.filter((e) => e.ips)) addresses.add(`${step.pod}:${e.ips}`);
    }
  }
  assert.deepEqual([...kinds].sort(), [...FAULT_KINDS].sort());
  assert.deepEqual([...edits].sort(), ["clear", "nameless", "readdress", "replace", "swap"]);
  assert.ok(addresses.size > 50);
});

const VIEW: PodView = {
  status: [
    { name: "ns/blue", interface: "net1", ips: ["10.82.0.5"] },
    { name: "ns/red", interface: "net2", ips: ["10.84.0.9"], mac: "02:84:00:00:00:09" },
    { name: "ns/green", interface: "net3", ips: ["10.83.0.7"] },
  ],
  links: [
    { name: "net1", mac: "0a:00:00:00:00:01", ipv4: ["10.82.0.5"] },
    { name: "net2", mac: "02:84:00:00:00:09", ipv4: ["10.84.0.9"] },
    { name: "net3", mac: "0a:00:00:00:00:03", ipv4: ["10.83.0.7"] },
  ],
  condition: { status: "True", reason: "Attached" },
};
const ELEMENTS = [
  { name: "blue" as const, interface: "net1" },
  { name: "red" as const, interface: "net2", ips: ["10.84.0.9/16"], mac: "02:84:00:00:00:09" },
  { name: "green" as const },
];
const ALL = new Set(["blue", "green", "red", "amber", "late"] as const);

Deno.test("invariants: a pod that matches its annotation passes, nameless elements included", () => {
  assert.deepEqual(podViolations(ELEMENTS, "ns", ALL, VIEW), []);
  assert.deepEqual(podViolations([], "ns", ALL, { status: [], links: [] }), []);
});

Deno.test("invariants: each difference between annotation, status, netns and condition is named", () => {
  const missing = podViolations(ELEMENTS, "ns", ALL, {
    ...VIEW,
    status: VIEW.status.slice(1),
    links: VIEW.links.slice(1),
  });
  assert.match(
    missing.join("\n"),
    /net1 on blue is asked for, its NAD exists, network-status lacks it/,
  );

  const extra = podViolations(ELEMENTS.slice(0, 2), "ns", ALL, VIEW);
  assert.match(extra.join("\n"), /holds net3 on ns\/green, which the annotation does not ask for/);

  const staleIp = podViolations(
    [ELEMENTS[0]!, { ...ELEMENTS[1]!, ips: ["10.84.0.10/16"] }, ELEMENTS[2]!],
    "ns",
    ALL,
    VIEW,
  );
  assert.match(staleIp.join("\n"), /network-status says ips \["10.84.0.9"\]/);

  const noLink = podViolations(ELEMENTS, "ns", ALL, { ...VIEW, links: VIEW.links.slice(0, 2) });
  assert.match(noLink.join("\n"), /netns links \["net1","net2"\] != network-status interfaces/);

  const wrongAddress = podViolations(ELEMENTS, "ns", ALL, {
    ...VIEW,
    links: [VIEW.links[0]!, VIEW.links[1]!, { ...VIEW.links[2]!, ipv4: ["10.83.0.8"] }],
  });
  assert.match(wrongAddress.join("\n"), /net3: netns has \["10.83.0.8"\]/);

  const notReady = podViolations(ELEMENTS, "ns", ALL, {
    ...VIEW,
    condition: { status: "False", reason: "Attaching", message: "m" },
  });
  assert.match(notReady.join("\n"), /every element is attached, yet NetworksReady is False/);
});

Deno.test("invariants: an element whose NAD is missing may wait, and the condition must say so", () => {
  const elements = [...ELEMENTS, { name: "late" as const, interface: "net4" }];
  const noLate = new Set(["blue", "green", "red", "amber"] as const);
  assert.deepEqual(
    podViolations(elements, "ns", noLate, {
      ...VIEW,
      condition: { status: "False", reason: "NetworkNotFound" },
    }),
    [],
  );
  // The attachment a change to the missing network would replace stays meanwhile.
  assert.deepEqual(
    podViolations([ELEMENTS[0]!, ELEMENTS[1]!, { name: "late", interface: "net3" }], "ns", noLate, {
      ...VIEW,
      condition: { status: "False", reason: "NetworkNotFound" },
    }),
    [],
  );
  assert.match(
    podViolations(elements, "ns", noLate, VIEW).join("\n"),
    /an element waits for a NAD, yet NetworksReady is True/,
  );
  assert.match(
    podViolations(elements, "ns", ALL, {
      ...VIEW,
      condition: { status: "False", reason: "NetworkNotFound" },
    }).join("\n"),
    /net4 on late is asked for, its NAD exists/,
  );
});

Deno.test("invariants: addresses, terminating pods, journal files and error lines", () => {
  const a = (ip: string, owner: string, ifname = "net1") => ({
    network: "chaos-blue",
    ip,
    owner,
    ifname,
  });
  const expected = new Map([["s1", { pod: "p1", addresses: [a("10.82.0.1", "s1")] }]]);
  assert.deepEqual(allocationViolations([a("10.82.0.1", "s1")], expected, new Set()), []);
  assert.match(
    allocationViolations([a("10.82.0.1", "s1"), a("10.82.0.2", "gone")], expected, new Set())
      .join(),
    /host-local holds chaos-blue\/10.82.0.2 \(net1\) for sandbox gone/,
  );
  assert.deepEqual(
    allocationViolations([a("10.82.0.1", "s1"), a("10.82.0.2", "old")], expected, new Set(["old"])),
    [],
  );
  assert.match(
    allocationViolations([], expected, new Set()).join(),
    /pod p1: host-local holds \[\] for its sandbox/,
  );

  const deleted = [{ name: "p", uid: "u", deletedAt: 0, graceSeconds: 10 }];
  const present = new Map([["u", { finalizers: ["f"] }]]);
  assert.deepEqual(terminatingViolations(deleted, present, 100_000, 120_000, 60_000), []);
  assert.match(
    terminatingViolations(deleted, present, 200_000, 120_000, 60_000).join(),
    /pod p still terminating 200 s after its deletion .* finalizers \["f"\]/,
  );
  assert.deepEqual(terminatingViolations(deleted, new Map(), 10 ** 9, 120_000, 60_000), []);

  assert.deepEqual(journalViolations(["a"], new Set(["a"])), []);
  assert.match(journalViolations(["b"], new Set(["a"])).join(), /pod UID b/);

  const spans = [{ kind: "apiserver-restart", start: 1_000, end: 2_000 }];
  assert.deepEqual(
    unexplainedErrors([{ at: 1_500, text: "x" }, { at: 9_000, text: "y" }], spans, 1_000),
    [{ at: 9_000, text: "y" }],
  );
  const both = [...spans, { kind: "agent-kill", start: 2_500, end: 3_000 }, spans[0]!];
  assert.deepEqual(faultsUnderway({ at: 2_800, text: "z" }, both, 1_000), [
    "apiserver-restart",
    "agent-kill",
  ]);
});

Deno.test("invariants: only an address the agent never made and that no teardown DEL released is the platform's", () => {
  const eth0 = { network: "rig-cluster", ip: "10.240.0.9", owner: "s1", ifname: "eth0" };
  const net1 = { ...eth0, network: "chaos-blue", ifname: "net1" };
  let at = 0;
  const request = (
    command: "ADD" | "DEL",
    kind: "CNI" | "delegate",
    ifname: string,
    ok: boolean | undefined,
    finished = true,
  ) => {
    const startedAt = at++;
    return {
      command,
      kind,
      sandboxId: "s1",
      ifname,
      podUid: "u1",
      startedAt,
      ...(ok === undefined ? {} : { ok }),
      ...(finished && ok !== undefined ? { finishedAt: at++ } : {}),
    };
  };
  const del = (ok: boolean | undefined) => request("DEL", "CNI", "eth0", ok);
  const hotPlug = request("ADD", "delegate", "net1", true);
  // multus went away in the middle of the runtime's DEL, which was never sent again.
  assert.equal(platformLeak(eth0, [del(undefined)]), true);
  assert.equal(platformLeak(net1, [del(false)]), true);
  // Sent again and done: whatever is left is not explained.
  assert.equal(platformLeak(eth0, [del(undefined), del(true)]), false);
  // No teardown ever reached multus (the shim found no daemon): the platform's.
  assert.equal(platformLeak(eth0, []), true);
  // The teardown's plugin was killed (a multus restart); the runtime's next DEL found multus'
  // cache gone and released nothing, though it answered without an error: the platform's.
  const noCache = { ...del(true), withoutCache: true };
  assert.equal(platformLeak(eth0, [del(false), noCache]), true);
  // After a DEL that released, one that finds no cache is the normal second teardown.
  assert.equal(platformLeak(eth0, [del(true), { ...del(true), withoutCache: true }]), false);
  assert.equal(platformLeak({ ...eth0, owner: "s2" }, [del(false)]), true);
  // The agent made it: releasing it was the agent's job, whatever the runtime did.
  assert.equal(platformLeak(net1, [hotPlug, del(false)]), false);
  // The runtime's DEL ran while the sandbox's ADD went on: multus added after the release.
  const add = request("ADD", "CNI", "eth0", true, false);
  const racing = del(true);
  const addDone = { ...add, finishedAt: at++ };
  assert.equal(platformLeak(net1, [addDone, racing]), true);
  // The ADD had finished before the DEL started: nothing explains the address.
  const before = request("ADD", "CNI", "eth0", true);
  assert.equal(platformLeak(net1, [before, del(true)]), false);
});

Deno.test("chaos planner: a named element in the way of multus' name for an unnamed one moves", () => {
  assert.deepEqual(
    multusNameable([{ name: "blue", interface: "net2" }, { name: "amber" }, {
      name: "green",
      interface: "net4",
    }]),
    [{ name: "blue", interface: "net1" }, { name: "amber" }, { name: "green", interface: "net4" }],
  );
  const fine = [{ name: "blue" as const }, { name: "red" as const, interface: "net3" }];
  assert.deepEqual(multusNameable(fine), fine);
  // Whatever it is given, the agent finds no clash in what it returns.
  const random = new SeededRandom(7);
  for (let i = 0; i < 500; i++) {
    const list: Element[] = Array.from({ length: random.int(6) }, () => ({
      name: random.pick(NETWORKS),
      ...(random.chance(0.5) ? { interface: `net${1 + random.int(6)}` } : {}),
    }));
    const named = multusNameable(list).map((e) => ({ ...e, namespace: "ns" }));
    assert.deepEqual(sandboxNameClashes(named), [], JSON.stringify(list));
  }
});

Deno.test("invariants: an attachment whose NAD is gone stays and holds its interface; the condition says DetachFailed", () => {
  const noLate = new Set(["blue", "green", "red", "amber"] as const);
  const view: PodView = {
    status: [{ name: "ns/late", interface: "net3", ips: ["10.85.0.7"] }],
    links: [{ name: "net3", mac: "0a:00:00:00:00:03", ipv4: ["10.85.0.7"] }],
    condition: { status: "False", reason: "DetachFailed" },
  };
  assert.deepEqual(podViolations([{ name: "green", interface: "net3" }], "ns", noLate, view), []);
  assert.deepEqual(podViolations([], "ns", noLate, view), []);
  assert.match(
    podViolations([], "ns", noLate, { ...view, condition: { status: "True" } }).join(),
    /stays for want of its NAD, yet NetworksReady is True/,
  );
  // With its NAD back, it must go, and the element must come.
  assert.match(
    podViolations([{ name: "green", interface: "net3" }], "ns", ALL, view).join("\n"),
    /holds net3 on ns\/late, which the annotation does not ask for[^]*net3 on green is asked for/,
  );
});
