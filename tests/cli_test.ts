import assert from "node:assert/strict";
import fc from "fast-check";
import {
  closest,
  editDistance,
  parseFlags,
  PROGRAM,
  UsageError,
  VERSION,
} from "../lib/config/cli.ts";
import { CONFIG_KEYS } from "../lib/config/settings.ts";
import { FLAG_SPECS } from "../lib/config/flags.ts";
import { programHelp } from "../lib/commands/command_line.ts";
import { MAIN_PATH, runCommand } from "../lib/launch.ts";
import { main, type MainIo } from "../main.ts";
import { runDeno } from "./support/mod.ts";

const SPECS = [
  { name: "node-name", kind: "value" },
  { name: "workers", kind: "value" },
  { name: "once", kind: "boolean" },
] as const;

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  assert.fail("expected a UsageError");
}

Deno.test("--flag value and --flag=value parse the same", () => {
  const a = parseFlags(["--node-name", "n1", "--workers", "3"], SPECS);
  const b = parseFlags(["--node-name=n1", "--workers=3"], SPECS);
  assert.deepEqual([...a], [...b]);
  assert.equal(a.get("node-name"), "n1");
  assert.equal(a.get("workers"), "3");
});

Deno.test("a single dash works like two, as in the original's manifest", () => {
  const flags = parseFlags(["-node-name=n1", "-once"], SPECS);
  assert.equal(flags.get("node-name"), "n1");
  assert.equal(flags.get("once"), true);
});

Deno.test("a value may contain = and the last of repeated flags wins", () => {
  const flags = parseFlags(["--node-name=a=b", "--workers=1", "--workers=2"], SPECS);
  assert.equal(flags.get("node-name"), "a=b");
  assert.equal(flags.get("workers"), "2");
});

Deno.test("switches: bare means true, =true/=false/=1/=0 are read, anything else is refused", () => {
  assert.equal(parseFlags(["--once"], SPECS).get("once"), true);
  assert.equal(parseFlags(["--once=false"], SPECS).get("once"), false);
  assert.equal(parseFlags(["--once=0"], SPECS).get("once"), false);
  assert.equal(parseFlags(["--once=1"], SPECS).get("once"), true);
  const err = usageError(() => parseFlags(["--once=maybe"], SPECS));
  assert.ok(err.message.includes('"maybe"') && err.message.includes("--once"), err.message);
  // A switch never swallows the next argument.
  const next = usageError(() => parseFlags(["--once", "false"], SPECS));
  assert.ok(next.message.includes('"false"'), next.message);
});

Deno.test("an unknown flag names itself and the closest known flag", () => {
  const err = usageError(() => parseFlags(["--node-nme", "n1"], SPECS));
  assert.equal(err.exitCode, 2);
  assert.ok(err.message.includes("unknown flag --node-nme"), err.message);
  assert.ok(err.message.includes("did you mean --node-name?"), err.message);
  const far = usageError(() => parseFlags(["--qqqqqqqqqq=1"], SPECS));
  assert.ok(far.message.includes("unknown flag --qqqqqqqqqq"), far.message);
  assert.ok(!far.message.includes("did you mean"), far.message);
});

Deno.test("a missing value is refused, naming the flag", () => {
  for (const args of [["--workers"], ["--workers", "--once"]]) {
    const err = usageError(() => parseFlags(args, SPECS));
    assert.ok(err.message.includes("--workers needs a value"), err.message);
  }
});

Deno.test("positional arguments are refused; -- ends the flags", () => {
  assert.ok(usageError(() => parseFlags(["n1"], SPECS)).message.includes('"n1"'));
  assert.ok(usageError(() => parseFlags(["--", "x"], SPECS)).message.includes('"x"'));
  assert.deepEqual([...parseFlags(["--once", "--"], SPECS)], [["once", true]]);
});

Deno.test("editDistance is a metric on random strings", () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.string(), (a, b, c) => {
      assert.equal(editDistance(a, a), 0);
      assert.equal(editDistance(a, b), editDistance(b, a));
      assert.ok(editDistance(a, c) <= editDistance(a, b) + editDistance(b, c));
      assert.ok(editDistance(a, b) <= Math.max(a.length, b.length));
      assert.ok(editDistance(a, b) >= Math.abs(a.length - b.length));
    }),
  );
});

Deno.test("closest finds every flag again from a one-letter typo", () => {
  const names = FLAG_SPECS.map((s) => s.name).filter((n) => n.length > 3);
  fc.assert(
    fc.property(
      fc.constantFrom(...names),
      fc.nat(),
      fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz"),
      (name, at, letter) => {
        const i = at % name.length;
        const typo = name.slice(0, i) + letter + name.slice(i + 1);
        const guess = closest(typo, names);
        assert.ok(guess !== undefined, typo);
        assert.ok(editDistance(typo, guess) <= editDistance(typo, name), `${typo} -> ${guess}`);
      },
    ),
  );
});

function captureIo(): MainIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

Deno.test("main --help prints the help and returns 0", async () => {
  const io = captureIo();
  assert.equal(await main(["--help"], io), 0);
  assert.equal(io.stdout.join(""), programHelp());
  assert.deepEqual(io.stderr, []);
});

Deno.test("main --version prints the version and returns 0", async () => {
  const io = captureIo();
  assert.equal(await main(["--version"], io), 0);
  assert.equal(io.stdout.join(""), `${PROGRAM} ${VERSION}`);
});

Deno.test("main returns 2 for an unusable command line and 1 for a bad configuration", async () => {
  const usage = captureIo();
  assert.equal(await main(["--node-nam", "x"], usage), 2);
  assert.ok(usage.stderr.join("\n").includes("--node-nam"));
  const bad = captureIo();
  assert.equal(await main(["--config", "/nonexistent/dnc/config.json"], bad), 1);
  assert.ok(bad.stderr.join("\n").includes("/nonexistent/dnc/config.json"));
});

// The program run as it is deployed: `deno run` with exactly the permission flags that
// `deno task start` computes from lib/process/permissions.ts for the same arguments.
async function runMain(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string; argv: string[] }> {
  const argv = await runCommand(args, { env });
  assert.equal(argv[0], "deno");
  assert.ok(!argv.includes("-A") && !argv.includes("--allow-all"));
  return { ...await runDeno(argv.slice(1), { env }), argv };
}

Deno.test("deno run <permission flags> main.ts --help exits 0 and lists every key", async () => {
  const r = await runMain(["--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, programHelp());
  for (const spec of CONFIG_KEYS) {
    assert.ok(r.stdout.includes(`--${spec.flag}`), spec.flag);
    assert.ok(r.stdout.includes(spec.key), spec.key);
  }
});

Deno.test("plain deno run main.ts --help needs no permission at all", async () => {
  // --help must not load the controller's modules: grpc-js reads GRPC_* at import time.
  const out = await runDeno(["run", "--no-prompt", MAIN_PATH, "--help"]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, programHelp());
});

Deno.test("deno run <permission flags> main.ts --config bad.json exits 1 naming the key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = `${dir}/bad.json`;
    await Deno.writeTextFile(bad, JSON.stringify({ workers: "many" }));
    const r = await runMain(["--config", bad], { NODE_NAME: "node-a" });
    assert.equal(r.code, 1, r.stderr);
    assert.ok(
      r.argv.some((a) => a.startsWith("--allow-read=") && a.includes(bad)),
      r.argv.join(" "),
    );
    assert.ok(r.stderr.includes('"workers": "many"'), r.stderr);
    assert.ok(r.stderr.includes(bad), r.stderr);
    assert.equal(r.stdout, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno run <permission flags> main.ts with an unknown flag exits 2", async () => {
  const r = await runMain(["--dry-rn"]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes("unknown flag --dry-rn"), r.stderr);
  assert.ok(r.stderr.includes("did you mean --dry-run?"), r.stderr);
});

Deno.test("under the same flags the configuration loads from file, environment and flags", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/good.json`;
    await Deno.writeTextFile(
      good,
      JSON.stringify({ criSocketPath: `${dir}/cri.sock`, multusSocketPath: `${dir}/m.sock` }),
    );
    // A stand-in entry point that loads the configuration the way main.ts does and prints it,
    // run with exactly the flags the launcher computes for main.ts.
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `import { describeOrigin, loadConfig, readEnvironment } from ${
        JSON.stringify(new URL("../lib/config/load.ts", import.meta.url).href)
      };
const { config, origins } = loadConfig({ args: Deno.args, env: readEnvironment() });
const from = Object.fromEntries(Object.entries(origins).map(([k, o]) => [k, describeOrigin(o)]));
console.log(JSON.stringify({ config, origins: from }));
`,
    );
    const args = ["--config", good, "--workers=3"];
    const env = { NODE_NAME: "node-a", DNC_LOG_LEVEL: "debug", HOME: "/nowhere-else" };
    const argv = await runCommand(args, { env });
    const at = argv.indexOf(MAIN_PATH);
    assert.ok(at > 0);
    const out = await runDeno([
      "run",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      ...argv.slice(2, at),
      probe,
      ...argv.slice(at + 1),
    ], { env });
    assert.equal(out.code, 0, out.stderr);
    const { config, origins } = JSON.parse(out.stdout);
    assert.equal(config.nodeName, "node-a");
    assert.equal(config.workers, 3);
    assert.equal(config.logLevel, "debug");
    assert.equal(config.criSocketPath, `${dir}/cri.sock`);
    assert.equal(origins.workers, "flag --workers");
    assert.equal(origins.logLevel, "environment DNC_LOG_LEVEL");
    assert.equal(origins.criSocketPath, `config ${good}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
