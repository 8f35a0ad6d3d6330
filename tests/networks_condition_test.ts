/** The agent's pod condition: its computation, its transition time and its place among the pod's conditions. */
import assert from "node:assert/strict";
import {
  conditionNames,
  findNetworksCondition,
  keepsCondition,
  NETWORKS_READY_CONDITION,
  networksCondition,
  setNetworksCondition,
  withTransition,
} from "../lib/core/networks_condition.ts";
import { failedAddingInterfaceMessage } from "../lib/core/event_messages.ts";

const desired = [{ interface: "net1", network: "a" }, { interface: "net2", network: "b" }];

Deno.test("the gravest problem gives the reason; the message names every problem", () => {
  const c = networksCondition({
    podKey: "ns/p",
    desired,
    addFailed: [{ iface: "net1", network: "a", namespace: "ns", error: "boom" }],
    missingNad: [{ iface: "net2", network: "b", namespace: "ns", error: "not found" }],
    removeFailed: [{ iface: "net3", network: "c", namespace: "ns", error: "stuck" }],
  });
  assert.equal(c.status, "False");
  assert.equal(c.reason, "DetachFailed");
  assert.equal(
    c.message,
    "pod [ns/p]: failed removing interface net3 from network: c: stuck; " +
      `${failedAddingInterfaceMessage("ns/p", "net1", "a", undefined, "boom")}; ` +
      "pod [ns/p]: failed adding interface net2 to network: b: not found",
  );
  assert.ok(conditionNames(c, "net1") && conditionNames(c, "net3"));
  assert.ok(!conditionNames(c, "net"));
  assert.ok(!conditionNames(c, "net4"));
});

Deno.test("an unreadable annotation outranks everything; waiting only counts without problems", () => {
  const invalid = networksCondition({
    podKey: "ns/p",
    desired: [],
    notices: [{ reason: "InvalidNetworkSelection", message: "bad json" }],
    waitingFor: "the pod sandbox",
  });
  assert.deepEqual([invalid.status, invalid.reason, invalid.message], [
    "False",
    "InvalidNetworkSelection",
    "bad json",
  ]);
  const host = networksCondition({
    podKey: "ns/p",
    desired,
    notices: [{ reason: "InterfaceAddRejected", message: "host" }],
  });
  assert.equal(host.reason, "InterfaceAddRejected");
  const pending = networksCondition({ podKey: "ns/p", desired, waitingFor: "the pod sandbox" });
  assert.equal(pending.reason, "Pending");
  assert.equal(
    pending.message,
    "pod [ns/p]: waiting for the pod sandbox to attach net1 to network: a, net2 to network: b",
  );
  const ready = networksCondition({ podKey: "ns/p", desired });
  assert.deepEqual([ready.status, ready.reason], ["True", "Attached"]);
  assert.equal(
    ready.message,
    "pod [ns/p]: 2 of 2 networks attached: net1 to network: a, net2 to network: b",
  );
});

Deno.test("only pods that asked for networks, or had the condition, keep it", () => {
  assert.equal(keepsCondition(undefined, undefined), false);
  assert.equal(keepsCondition("", undefined), false);
  assert.equal(keepsCondition(" [ ] ", undefined), false);
  assert.equal(keepsCondition("a@net1", undefined), true);
  assert.equal(keepsCondition('[{"name":"a"}]', undefined), true);
  assert.equal(
    keepsCondition(undefined, { status: "True", reason: "Attached", message: "" }),
    true,
  );
});

Deno.test("lastTransitionTime moves only when the status does", () => {
  const t0 = new Date("2026-01-01T00:00:00.123Z");
  const t1 = new Date("2026-01-01T00:01:00Z");
  const first = withTransition(undefined, { status: "False", reason: "Pending", message: "m" }, t0);
  assert.equal(first.lastTransitionTime, "2026-01-01T00:00:00Z");
  assert.equal(withTransition(first, { ...first, lastTransitionTime: "x" }, t1), first);
  const other = withTransition(first, {
    status: "False",
    reason: "AttachFailed",
    message: "n",
  }, t1);
  assert.equal(other.lastTransitionTime, first.lastTransitionTime);
  assert.equal(other.reason, "AttachFailed");
  const ready = withTransition(other, { status: "True", reason: "Attached", message: "" }, t1);
  assert.equal(ready.lastTransitionTime, "2026-01-01T00:01:00Z");
});

Deno.test("the condition is found and set among the kubelet's conditions, which stay as they are", () => {
  const kubelet = [
    { type: "Ready", status: "False", lastTransitionTime: "2026-01-01T00:00:00Z" },
    { type: "PodScheduled", status: "True" },
  ];
  assert.equal(findNetworksCondition(kubelet), undefined);
  assert.equal(findNetworksCondition(undefined), undefined);
  const set = setNetworksCondition(kubelet, {
    status: "True",
    reason: "Attached",
    message: "ok",
    lastTransitionTime: "2026-01-01T00:00:01Z",
  });
  assert.deepEqual(set.slice(0, 2), kubelet);
  assert.equal(set.length, 3);
  assert.deepEqual(findNetworksCondition(set), {
    status: "True",
    reason: "Attached",
    message: "ok",
    lastTransitionTime: "2026-01-01T00:00:01Z",
  });
  const again = setNetworksCondition(set, { status: "False", reason: "Pending", message: "w" });
  assert.equal(again.length, 3);
  assert.equal(again[2]!.type, NETWORKS_READY_CONDITION);
  assert.equal(again[2]!.status, "False");
  // One the agent could not have written is not taken for its own.
  assert.equal(
    findNetworksCondition([{ type: NETWORKS_READY_CONDITION, status: "True", reason: "Other" }]),
    undefined,
  );
});
