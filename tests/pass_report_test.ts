import assert from "node:assert/strict";
import { PassReport } from "../lib/reconcile/pass_report.ts";
import { Logger } from "../lib/base/log.ts";

interface Recorded {
  type: string;
  reason: string;
  message: string;
}

function setup() {
  const events: Recorded[] = [];
  const lines: Record<string, unknown>[] = [];
  const log = new Logger({ level: "info", sink: (line) => lines.push(JSON.parse(line)) });
  const report = new PassReport("ns1/p", log.with({ pod: "ns1/p" }));
  report.about({ namespace: "ns1", name: "p", uid: "u1" });
  const flush = () =>
    report.flush({
      record: (_pod, type, reason, message) => events.push({ type, reason, message }),
    });
  return { report, events, lines, flush };
}

const missing = (i: number, network = "x") => ({
  iface: `net${i}`,
  network,
  namespace: "ns1",
  error: `NetworkAttachmentDefinition ns1/${network} not found; create it`,
});

Deno.test("one failure keeps upstream's message and log line", () => {
  const { report, events, lines, flush } = setup();
  report.addFailed(missing(1));
  flush();
  assert.deepEqual(events, [{
    type: "Warning",
    reason: "FailedAddingInterface",
    message:
      "pod [ns1/p]: failed adding interface net1 to network: x: NetworkAttachmentDefinition ns1/x not found; create it",
  }]);
  assert.deepEqual(lines.map((l) => [l.msg, l.interfaceName, l.network]), [
    ["adding interface failed", "net1", "ns1/x"],
  ]);
});

Deno.test("a thousand elements failing alike give one Event and one log line", () => {
  const { report, events, lines, flush } = setup();
  for (let i = 1; i <= 1000; i++) report.addFailed(missing(i));
  flush();
  assert.equal(events.length, 1);
  assert.equal(
    events[0]!.message,
    "pod [ns1/p]: 1000 interfaces could not be added: network x: NetworkAttachmentDefinition ns1/x not found; create it (net1, net2, net3, net4, net5, net6, net7, net8, … and 992 more)",
  );
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.msg, "adding interfaces failed");
  assert.equal(lines[0]!.count, 1000);
});

Deno.test("failures and refusals share one FailedAddingInterface Event, grouped by cause", () => {
  const { report, events, flush } = setup();
  report.addFailed(missing(1, "x"));
  report.addFailed(missing(2, "y"));
  report.addFailed(missing(3, "x"));
  report.planned({
    refusals: ["networks[4] is bad; fix it", "networks[4] is bad; fix it"],
    notices: [],
  });
  flush();
  assert.deepEqual(events.map((e) => e.reason), ["FailedAddingInterface"]);
  assert.equal(
    events[0]!.message,
    "pod [ns1/p]: 3 interfaces could not be added: network x: NetworkAttachmentDefinition ns1/x not found; create it (net1, net3); network y: NetworkAttachmentDefinition ns1/y not found; create it (net2); 1 element refused: networks[4] is bad; fix it",
  );
});

Deno.test("a later plan in the pass replaces the problems of an earlier one", () => {
  const { report, events, flush } = setup();
  report.planned({
    refusals: [],
    notices: [{
      reason: "InvalidNetworkSelection",
      type: "Warning",
      message: "stale",
      summary: "cannot plan",
    }],
  });
  report.planned({ refusals: ["networks[0] refused"], notices: [] });
  flush();
  assert.deepEqual(events.map((e) => `${e.reason}: ${e.message}`), [
    "FailedAddingInterface: pod [ns1/p]: refused: networks[0] refused",
  ]);
});

Deno.test("successes are one Event per reason, one log line per interface", () => {
  const { report, events, lines, flush } = setup();
  report.removed({ iface: "net1", network: "a", namespace: "ns1" });
  report.added({ iface: "net1", network: "b", namespace: "ns1", attrs: { ips: ["10.0.0.1/24"] } });
  report.added({ iface: "net2", network: "b", namespace: "ns1" });
  flush();
  assert.deepEqual(events, [
    {
      type: "Normal",
      reason: "RemovedInterface",
      message: "pod [ns1/p]: removed interface net1 from network: a",
    },
    {
      type: "Normal",
      reason: "AddedInterface",
      message:
        "pod [ns1/p]: added 2 interfaces: net1 to network: b(ips: [10.0.0.1/24], mac: , cni-args: <nil>), net2 to network: b",
    },
  ]);
  assert.deepEqual(lines.map((l) => `${l.msg} ${l.interfaceName} ${l.network}`), [
    "removed interface net1 ns1/a",
    "added interface net1 ns1/b",
    "added interface net2 ns1/b",
  ]);
});

Deno.test("several failed removals are one Event", () => {
  const { report, events, flush } = setup();
  report.removeFailed({ ...missing(1), error: "plugin crashed" });
  report.removeFailed({ ...missing(2), error: "plugin crashed" });
  flush();
  assert.deepEqual(events.map((e) => e.message), [
    "pod [ns1/p]: 2 interfaces could not be removed: network x: plugin crashed (net1, net2)",
  ]);
});

Deno.test("errors that differ only in the interface name they mention are one failure", () => {
  const { report, events, lines, flush } = setup();
  for (const iface of ["f0", "f1", "f10"]) {
    report.addFailed({
      iface,
      network: "fail",
      namespace: "ns1",
      error: `[ns1/p/u1:fail]: error adding container to network "fail": plugin type="x" ` +
        `name="fail" failed (add): IfName=${iface}: always fails`,
    });
  }
  flush();
  assert.equal(lines.length, 1, JSON.stringify(lines));
  assert.equal(lines[0]!.count, 3);
  assert.match(String(lines[0]!.err), /IfName=<interface>: always fails$/);
  assert.equal(
    events[0]!.message,
    'pod [ns1/p]: 3 interfaces could not be added: network fail: [ns1/p/u1:fail]: error adding container to network "fail": plugin type="x" name="fail" failed (add): IfName=<interface>: always fails (f0, f1, f10)',
  );
});

Deno.test("an interface name inside another word is not taken for the interface", () => {
  const { report, lines, flush } = setup();
  report.addFailed({ iface: "n1", network: "x", namespace: "ns1", error: "bad net1 on n1" });
  report.addFailed({ iface: "n2", network: "x", namespace: "ns1", error: "bad net1 on n2" });
  flush();
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.err, "bad net1 on <interface>");
});
