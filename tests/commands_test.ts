/**
 * The commands for people, without a cluster: their command lines and help, their own
 * permission list (through the launcher), the `--wait` verdict, and the `networks` view.
 */
import assert from "node:assert/strict";
import { UsageError } from "../lib/config/cli.ts";
import {
  COMMAND_NAMES,
  commandFlags,
  commandHelp,
  parseCommand,
  parseDuration,
  userKubeconfig,
} from "../lib/commands/command_line.ts";
import { changeVerdict, STALE_VERDICT_MS } from "../lib/commands/change_verdict.ts";
import type { NetworksCondition } from "../lib/core/networks_condition.ts";
import { networksTable, podNetworks } from "../lib/commands/pod_networks.ts";
import { runCommand } from "../lib/launch.ts";
import { commandGrants } from "../lib/process/permissions.ts";

const KUBECONFIG = `
apiVersion: v1
kind: Config
current-context: me
contexts: [{name: me, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "https://10.1.2.3:6443", certificate-authority: ca.crt}}]
users: [{name: u, user: {client-certificate: me.crt, client-key: me.key}}]
`;
const readFile = (path: string) =>
  path === "/home/me/.kube/config" ? Promise.resolve(KUBECONFIG) : Promise.reject(new Error(path));

Deno.test("command lines: flags, short flags, --wait with and without a timeout", () => {
  const a = parseCommand([
    "attach",
    "p",
    "o/nad@net1",
    "-n",
    "x",
    "--ips=10.0.0.1/24,10.0.0.2/24",
    "--wait",
  ]);
  assert.deepEqual(a.args, ["p", "o/nad@net1"]);
  assert.equal(a.namespace, "x");
  assert.deepEqual(a.ips, ["10.0.0.1/24", "10.0.0.2/24"]);
  assert.equal(a.waitMs, 60_000);
  assert.equal(parseCommand(["detach", "p", "net1", "--wait=90s"]).waitMs, 90_000);
  assert.equal(parseCommand(["networks", "p", "-o", "json"]).output, "json");
  assert.equal(parseCommand(["networks", "p", "-nfoo"]).namespace, "foo");
  assert.equal(parseDuration("500ms", "--wait"), 500);
  assert.equal(parseDuration("2m", "--wait"), 120_000);
  assert.equal(parseDuration("3", "--wait"), 3_000);
  assert.throws(() => parseDuration("soon", "--wait"), /not a duration: write it like 90s/);
  assert.throws(() => parseCommand(["attach", "p"]), /expected POD \[NAMESPACE\/\]NAD/);
  assert.throws(() => parseCommand(["detach", "p", "net1", "--wiat"]), /did you mean --wait/);
  assert.throws(() => parseCommand(["networks", "p", "-o", "yaml"]), UsageError);
  assert.equal(parseCommand(["attach", "--help"]).help, true);
});

Deno.test("every command's --help lists each of its flags", () => {
  for (const command of COMMAND_NAMES) {
    const help = commandHelp(command);
    for (const flag of commandFlags(command)) assert.match(help, new RegExp(`${flag}\\b`));
  }
  assert.match(commandHelp("attach"), /--ips/);
  assert.doesNotMatch(commandHelp("networks"), /--wait/);
});

Deno.test("the user's kubeconfig is found as kubectl finds it, never the agent's", () => {
  assert.equal(userKubeconfig({ kubeconfig: "/k" }, { KUBECONFIG: "/a:/b" }), "/k");
  assert.equal(userKubeconfig({}, { KUBECONFIG: ":/a:/b", HOME: "/h" }), "/a");
  assert.equal(userKubeconfig({}, { HOME: "/h" }), "/h/.kube/config");
  assert.throws(() => userKubeconfig({}, {}), /pass --kubeconfig/);
});

Deno.test("the commands' permission list: the kubeconfig, its files and API server, nothing else", async () => {
  const flags = await commandGrants(["attach", "p", "nad"], { HOME: "/home/me" }, readFile);
  assert.deepEqual(flags, [
    "--no-prompt",
    "--ignore-env",
    "--allow-env=KUBECONFIG,HOME",
    "--allow-read=/home/me/.kube/config,/home/me/.kube/ca.crt,/home/me/.kube/me.crt,/home/me/.kube/me.key",
    "--allow-net=10.1.2.3:6443",
  ]);
  assert.ok(!flags.some((f) => f.startsWith("--allow-write") || f.includes("unix:")));
  // The launcher gives a command exactly that list, and the agent its own.
  const argv = await runCommand(["detach", "p", "net1"], { env: { HOME: "/home/me" }, readFile });
  assert.deepEqual(argv.slice(0, 2), ["deno", "run"]);
  assert.deepEqual(argv.slice(2, 2 + flags.length), flags);
  assert.deepEqual(argv.slice(-3), ["detach", "p", "net1"]);
  const help = await runCommand(["attach", "--help"], { env: {}, readFile });
  assert.deepEqual(help.slice(2, 4), ["--no-prompt", "--ignore-env"]);
  assert.ok(!help.some((f) => f.startsWith("--allow-")));
});

const failed = (reason: string, message: string): NetworksCondition => ({
  status: "False",
  reason: reason as NetworksCondition["reason"],
  message,
});
const ready: NetworksCondition = { status: "True", reason: "Attached", message: "ok" };

Deno.test("--wait: done once network-status records the change and the condition is there", () => {
  const change = {
    kind: "attach" as const,
    interface: "net2",
    network: "ns/b",
    conditionBefore: ready,
  };
  // Right after the edit the condition still says True about the annotation as it was.
  assert.equal(changeVerdict(change, [], ready, 10).state, "waiting");
  const entry = { name: "ns/b", interface: "net2", ips: ["10.0.0.2"] };
  const done = changeVerdict(change, [entry], ready, 10);
  assert.deepEqual(done, { state: "done", entry });
  const others = failed(
    "AttachFailed",
    "pod [ns/p]: failed adding interface net3 to network: c: x",
  );
  assert.deepEqual(changeVerdict(change, [entry], others, 10), { state: "done", entry, others });
  const detach = { kind: "detach" as const, interface: "net2", network: "ns/b" };
  assert.equal(changeVerdict(detach, [entry], ready, 10).state, "waiting");
  assert.equal(changeVerdict(detach, [], ready, 10).state, "done");
  assert.equal(changeVerdict(detach, [], undefined, 10).state, "waiting");
});

Deno.test("--wait: fails on a False that names the interface, once it is news", () => {
  const notFound = failed(
    "NetworkNotFound",
    "pod [ns/p]: failed adding interface net2 to network: b: NetworkAttachmentDefinition ns/b not found",
  );
  const change = {
    kind: "attach" as const,
    interface: "net2",
    network: "ns/b",
    conditionBefore: ready,
  };
  assert.deepEqual(changeVerdict(change, [], notFound, 50), {
    state: "failed",
    condition: notFound,
  });
  assert.equal(
    changeVerdict(change, [], failed("Pending", "waiting for net2"), 50).state,
    "waiting",
  );
  assert.equal(
    changeVerdict(change, [], failed("AttachFailed", "net3 broke"), 50).state,
    "waiting",
  );
  // The same verdict as before the edit is given a pass's time to be said again.
  const again = { ...change, conditionBefore: notFound };
  assert.equal(changeVerdict(again, [], notFound, 50).state, "waiting");
  assert.equal(changeVerdict(again, [], notFound, STALE_VERDICT_MS).state, "failed");
});

Deno.test("networks: desired and actual side by side, with the last error of each interface", () => {
  const status = JSON.stringify([
    { name: "cluster", interface: "eth0", ips: ["10.0.0.5"], default: true },
    { name: "ns/a", interface: "net1", ips: ["10.1.0.5"], mac: "02:00:00:00:00:01" },
    { name: "ns/old", interface: "net9" },
  ]);
  const condition = failed(
    "NetworkNotFound",
    "pod [ns/p]: failed adding interface net2 to network: b: NetworkAttachmentDefinition ns/b not found; create it",
  );
  const view = podNetworks("ns", "p", "a@net1,b", status, condition);
  assert.deepEqual(view.rows.map((r) => [r.interface, r.network, r.state, r.desired]), [
    ["net1", "ns/a", "attached", true],
    ["net2", "ns/b", "failed", true],
    ["eth0", "cluster", "default", false],
    ["net9", "ns/old", "detaching", false],
  ]);
  assert.match(view.rows[1]!.error, /NetworkAttachmentDefinition ns\/b not found/);
  const table = networksTable(view);
  assert.match(table.split("\n")[0]!, /^INTERFACE\s+NETWORK\s+STATE\s+IPS\s+MAC\s+LAST ERROR$/);
  assert.match(table, /net1\s+ns\/a\s+attached\s+10\.1\.0\.5\s+02:00:00:00:00:01\s+<none>/);
  const broken = podNetworks("ns", "p", "[{", status);
  assert.match(broken.problem!, /networks annotation cannot be read/);
  assert.equal(broken.rows.length, 3);
});

Deno.test("main runs a command for a word that names one: its help, and a usage error exits 2", async () => {
  const { main } = await import("../main.ts");
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
  assert.equal(await main(["detach", "--help"], io), 0);
  assert.match(out.join(""), /^Usage: dynamic-networks-controller detach POD INTERFACE/);
  assert.equal(await main(["attach", "only-a-pod"], io), 2);
  assert.match(
    err.join(""),
    /attach: expected POD \[NAMESPACE\/\]NAD\[@INTERFACE\], got "only-a-pod"/,
  );
});
