import assert from "node:assert/strict";
import { multusActivity, multusRequests, releases } from "./support/multus_log.ts";

const UID = "2ff742c8-b588-4408-a049-6bc21ff1d3d4";
const OTHER = "7d1c0e55-0b7e-4c41-9d0c-8f1f2b2a9e10";
const T = "2026-12-07T04:08:32Z";

function request(command: string, phase: string, kind: string, ifname: string, uid: string) {
  const args = `K8S_POD_NAMESPACE=crowd;K8S_POD_NAME=p;K8S_POD_UID=${uid}`;
  const start = `${command} ${phase} ${kind} request ContainerID:"5b9d331c" ` +
    `Netns:"/run/netns/x" IfName:"${ifname}" Args:"${args}" Path:""`;
  return phase === "finished" ? `${start}, result: "", err: <nil>` : start;
}

function plugin(verb: string, ifname: string, uid: string) {
  return `${verb}: crowd:p:${uid}:green(green):${ifname} {"cniVersion":"0.3.1"}`;
}

Deno.test("multus log: one message a line is read in order", () => {
  const log = [
    `${T} [verbose] ${request("DEL", "starting", "Delegate", "net1", UID)}`,
    `${T} [verbose] ${plugin("Del", "net1", UID)}`,
    `${T} [verbose] ${request("DEL", "finished", "Delegate", "net1", UID)}`,
    `${T} [verbose] ${request("DEL", "starting", "CNI", "eth0", UID)}`,
    `${T} [verbose] ${plugin("Del", "net0", UID)}`,
    `${T} [verbose] ${request("DEL", "finished", "CNI", "eth0", UID)}`,
  ].join("\n") + "\n";
  assert.deepEqual(releases(multusActivity(log, UID)), { agent: ["net1"], teardown: ["net0"] });
});

Deno.test("multus log: lines whose pieces interleave (header, message, newline written apart) are all read", () => {
  // Two goroutines logging at once: the second's header and message land before the first's
  // message, on one text line, and the first's finished line shares a line with another's.
  const log = `${T} [verbose] ${request("DEL", "starting", "Delegate", "net1", UID)}\n` +
    `${T} [verbose] ${T} [verbose] ${request("DEL", "starting", "Delegate", "net2", OTHER)}` +
    `${request("DEL", "finished", "Delegate", "net1", UID)}\n\n` +
    `${T} [verbose] ${request("DEL", "finished", "Delegate", "net2", OTHER)}\n`;
  const activity = multusActivity(log, UID);
  assert.deepEqual(
    activity.requests.map((r) => [r.command, r.kind, r.ifname, r.ok]),
    [["DEL", "delegate", "net1", true]],
  );
  assert.deepEqual(
    multusActivity(log, OTHER).requests.map((r) => r.ok),
    [true],
  );
});

Deno.test("multus log: a finished request with an error is not ok", () => {
  const log = `${T} [verbose] ${request("DEL", "starting", "Delegate", "net1", UID)}\n` +
    `${T} [verbose] ${
      request("DEL", "starting", "Delegate", "net1", UID).replace("DEL starting", "DEL finished")
    }, result: "", err: pod not found during Multus GetPod\n`;
  assert.deepEqual(multusActivity(log, UID).requests.map((r) => r.ok), [false]);
});

Deno.test("multus log: a sandbox torn down twice counts each released interface once", () => {
  const teardown = (ifnames: string[]) => [
    `${T} [verbose] ${request("DEL", "starting", "CNI", "eth0", UID)}`,
    ...ifnames.map((i) => `${T} [verbose] ${plugin("Del", i, UID)}`),
    `${T} [verbose] ${request("DEL", "finished", "CNI", "eth0", UID)}`,
  ];
  const log = [...teardown(["net0", "eth0"]), ...teardown(["net1", "net0", "eth0"])].join("\n");
  assert.deepEqual(releases(multusActivity(log, UID)), {
    agent: [],
    teardown: ["eth0", "net0", "net1"],
  });
});

Deno.test("multus log: a runtime DEL that finds no cache of its sandbox is marked, the others not", () => {
  const id = "bedeb457666742f2ce94e6887d7df553294bcec8e84f4e694c441f4c7666c47c";
  const line = (phase: string, end = "") =>
    `${T} [verbose] DEL ${phase} CNI request ContainerID:"${id}" Netns:"" IfName:"eth0" ` +
    `Args:"IgnoreUnknown=1;K8S_POD_UID=${UID}" Path:""${end}`;
  const log = [
    line("starting"),
    `${T} [verbose] ${plugin("Del", "eth0", UID)}`,
    line("finished", ', result: "", err: DelegateDel: "bridge": signal: terminated'),
    line("starting"),
    `${T} [error] Multus: failed to get the cached delegates file: open /var/lib/cni/multus/${id}: no such file or directory, cannot properly delete`,
    line("finished", ', result: "", err: <nil>'),
  ].join("\n") + "\n";
  assert.deepEqual(
    multusRequests(log).map((r) => [r.ok, r.withoutCache ?? false]),
    [[false, false], [true, true]],
  );
});
