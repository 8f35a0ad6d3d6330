/**
 * The README cannot drift from the code: its configuration table is the one
 * `referenceMarkdown()` renders, its metrics table names exactly the metrics the controller
 * declares, its events table every reason the controller records, and every `deno task` it
 * tells a reader to run exists.
 */
import assert from "node:assert/strict";
import { referenceMarkdown } from "../lib/config/help.ts";
import { COMMAND_NAMES, commandFlags, commandHelp } from "../lib/commands/command_line.ts";
import { NETWORKS_READY_CONDITION, NetworksReadyReason } from "../lib/core/networks_condition.ts";
import { ControllerMetrics } from "../lib/observe/controller_metrics.ts";
import {
  DRIFTED_REASON,
  EventReason,
  INVALID_SELECTION_REASON,
  INVALID_STATUS_REASON,
  NAME_CLASH_REASON,
  REPAIRED_REASON,
  RESTORED_REASON,
} from "../lib/core/event_messages.ts";
import { runDeno } from "./support/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const readme = await Deno.readTextFile(`${ROOT}README.md`);

/** `text` formatted as `deno fmt` formats Markdown in this project. */
async function formatMarkdown(text: string): Promise<string> {
  const out = await runDeno(["fmt", "--ext", "md", "-"], { cwd: ROOT, stdin: text });
  assert.equal(out.code, 0, out.stderr);
  return out.stdout;
}

/** The lines of the README section whose heading is `title`. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.notEqual(start, -1, `README has no "## ${title}" section`);
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

/** The first cell of each body row of the Markdown tables in `text`, without backticks. */
function firstCells(text: string): string[] {
  return text.split("\n").filter((l) => l.startsWith("| `")).map((l) =>
    l.split("|")[1]!.trim().replace(/`/g, "")
  );
}

Deno.test("README: the configuration table is the current referenceMarkdown()", async () => {
  const table = (await formatMarkdown(referenceMarkdown())).trim();
  assert.ok(table.split("\n").length > 10);
  assert.ok(
    section("Configuration").includes(table),
    "README.md's configuration table is out of date: paste the output of\n" +
      `deno eval 'import {referenceMarkdown} from "./lib/config/help.ts"; console.log(referenceMarkdown())'\n` +
      "into the Configuration section and run deno fmt README.md",
  );
});

Deno.test("README: the metrics table lists exactly the controller's metrics", async () => {
  const source = await Deno.readTextFile(`${ROOT}lib/observe/controller_metrics.ts`);
  const declared = [...source.matchAll(/^\s+name: "([a-z_]+)",$/gm)].map((m) => m[1]!).sort();
  assert.ok(declared.length > 20, declared.join());
  const registry = new ControllerMetrics().registry;
  for (const name of declared) assert.ok(registry.get(name), `${name} is not registered`);
  const documented = firstCells(section("Metrics and probes")).filter((c) => !c.startsWith("/"))
    .sort();
  assert.deepEqual(documented, declared);
});

Deno.test("README: the events table lists every reason the controller records", () => {
  const reasons = [
    ...Object.values(EventReason),
    INVALID_SELECTION_REASON,
    INVALID_STATUS_REASON,
    RESTORED_REASON,
    REPAIRED_REASON,
    DRIFTED_REASON,
    NAME_CLASH_REASON,
  ];
  assert.deepEqual(firstCells(section("Events")).sort(), reasons.sort());
});

Deno.test("README: every deno task it mentions exists", async () => {
  const tasks = Object.keys(JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks);
  const mentioned = [...readme.matchAll(/deno(?:@[\d.]+)? task ([a-z-]+)/g)].map((m) => m[1]!);
  assert.ok(mentioned.includes("demo") && mentioned.includes("test"), mentioned.join());
  for (const task of mentioned) assert.ok(tasks.includes(task), `deno task ${task}`);
});

Deno.test("README: the kustomizations and files it names exist", async () => {
  for (
    const path of readme.matchAll(
      /\b(deploy\/(?:base|crio)|tests\/rig\/README\.md|Containerfile|lib\/[a-z_]+\.ts)\b/g,
    )
  ) {
    await Deno.stat(`${ROOT}${path[1]}`);
  }
});

Deno.test("README: From the command line names every flag of every command's --help", () => {
  const text = section("From the command line");
  for (const command of COMMAND_NAMES) {
    assert.match(text, new RegExp(`\`${command} POD`), `README does not show ${command}`);
    for (const flag of commandFlags(command)) {
      assert.ok(text.includes(flag), `README's From the command line omits ${command} ${flag}`);
      assert.ok(commandHelp(command).includes(flag));
    }
  }
});

Deno.test("README: Waiting for networks names the condition and exactly its reasons", () => {
  const text = section("Waiting for networks");
  assert.ok(text.includes(NETWORKS_READY_CONDITION));
  const reasons = text.split("\n").filter((l) => /^\| `(True|False)`/.test(l)).map((l) =>
    l.split("|")[2]!.trim().replace(/`/g, "")
  );
  assert.deepEqual(reasons.sort(), Object.values(NetworksReadyReason).sort());
});
