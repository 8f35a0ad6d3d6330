/**
 * The kubectl plugin (`kubectl hotplug …`) without a cluster: `main.ts kubectl` prints the
 * plugin's help and never starts the agent, each command's help and usage errors name
 * `kubectl hotplug`, people's grants are what the module documentation says (and a process
 * under them is refused a write and an unlisted variable), and `deno task compile` builds the
 * plugin with those grants and the baked-in `kubectl`. The plugin on the node rig, through the
 * real kubectl, is `tests/e2e_kubectl_plugin_test.ts`.
 */
import assert from "node:assert/strict";
import { main, type MainIo } from "../main.ts";
import { PROGRAM, UsageError, VERSION } from "../lib/config/cli.ts";
import {
  COMMAND_ENV,
  COMMAND_NAMES,
  commandHelp,
  KUBECTL_MODE,
  PLUGIN_NAME,
  PLUGIN_PROGRAM,
  pluginHelp,
} from "../lib/commands/command_line.ts";
import {
  AGENT_OUTPUT,
  commandGrants,
  COMPILE_TARGETS,
  compileArgs,
  DEPLOY_GRANTS,
  EXEC_PLUGIN_ENV,
  PLUGIN_ENV,
  PLUGIN_FLAGS,
  PLUGIN_OUTPUT,
  PLUGIN_SCRIPT_ARGS,
  pluginCompileArgs,
  RUNTIME_DATA_FILES,
} from "../lib/process/permissions.ts";
import { compileCommand, MAIN_PATH } from "../lib/launch.ts";
import { runDeno } from "./support/mod.ts";

function captureIo(): MainIo & { stdout: () => string; stderr: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    stdout: () => out.join(""),
    stderr: () => err.join(""),
  };
}

async function plugin(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await main([KUBECTL_MODE, ...args], io);
  return { code, out: io.stdout(), err: io.stderr() };
}

Deno.test("kubectl mode: alone or with --help it prints the plugin's help, not the agent's", async () => {
  for (const args of [[], ["--help"], ["-h"], ["help"]]) {
    const r = await plugin(...args);
    assert.equal(r.code, 0, args.join(" "));
    assert.equal(r.out, pluginHelp());
    assert.equal(r.err, "");
  }
  const help = pluginHelp();
  assert.match(help, /^Usage: kubectl hotplug <command>/);
  assert.match(help, /^ {2}kubectl hotplug networks POD$/m);
  assert.match(help, /^ {2}kubectl hotplug attach POD \[NAMESPACE\/\]NAD\[@INTERFACE\]$/m);
  assert.match(help, /^ {2}kubectl hotplug detach POD INTERFACE$/m);
  assert.match(help, /kubectl hotplug attach app macvlan-net@net1 --ips 10\.10\.0\.5\/24 --wait/);
  // Nothing of the agent: not its usage, no command under its name, none of its flags.
  assert.doesNotMatch(help, new RegExp(`${PROGRAM} (\\[flags\\]|networks|attach|detach)`));
  for (const flag of ["--node-name", "--cri-socket", "--state-dir", "--metrics-address"]) {
    assert.ok(!help.includes(flag), flag);
  }
  const version = await plugin("--version");
  assert.equal(version.code, 0);
  assert.equal(version.out.trim(), `${PLUGIN_PROGRAM} ${VERSION}`);
});

Deno.test("kubectl mode: each command's help and usage errors name kubectl hotplug", async () => {
  for (const command of COMMAND_NAMES) {
    const r = await plugin(command, "--help");
    assert.equal(r.code, 0);
    assert.equal(r.out, commandHelp(command, PLUGIN_PROGRAM));
    assert.ok(r.out.startsWith(`Usage: kubectl hotplug ${command} `), r.out);
    assert.ok(!r.out.includes(PROGRAM), r.out);
  }
  // The agent's own spelling is unchanged.
  assert.ok(commandHelp("attach").startsWith(`Usage: ${PROGRAM} attach `));

  const cases: [string[], RegExp][] = [
    [
      ["attach", "p"],
      /^kubectl hotplug: attach: expected POD .* \(see kubectl hotplug attach --help\)$/,
    ],
    [
      ["detach", "p", "net1", "--wiat"],
      /did you mean --wait\? \(see kubectl hotplug detach --help\)/,
    ],
    [["networks", "p", "-o", "yaml"], /^kubectl hotplug: networks: -o "yaml" is not a format/],
    [["atach", "p", "n"], /^kubectl hotplug: unknown command "atach": did you mean attach\?/],
    [["-n", "x", "networks", "p"], /^kubectl hotplug: -n: name the command first/],
    [["plug"], /unknown command "plug".*use networks, attach, detach; see kubectl hotplug --help/],
  ];
  for (const [args, expected] of cases) {
    const r = await plugin(...args);
    assert.equal(r.code, new UsageError("").exitCode, args.join(" "));
    assert.match(r.err.trim(), expected);
    assert.ok(!r.err.includes(PROGRAM), r.err);
    assert.equal(r.out, "");
  }
});

Deno.test("kubectl mode under no permission at all: the help prints, the agent never starts", async () => {
  // The agent would need its sockets, config and API server; the plugin's help needs nothing.
  for (const args of [[KUBECTL_MODE], [KUBECTL_MODE, "--help"]]) {
    const out = await runDeno(["run", "--no-prompt", MAIN_PATH, ...args]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, pluginHelp());
  }
  const attach = await runDeno(["run", "--no-prompt", MAIN_PATH, KUBECTL_MODE, "attach", "--help"]);
  assert.equal(attach.code, 0, attach.stderr);
  assert.equal(attach.stdout, commandHelp("attach", PLUGIN_PROGRAM));
});

Deno.test("people's grants: read, net and run unrestricted, the listed variables, no write", () => {
  assert.deepEqual(PLUGIN_FLAGS, [
    "--no-prompt",
    "--ignore-env",
    `--allow-env=${[...COMMAND_ENV, ...EXEC_PLUGIN_ENV].join(",")}`,
    "--allow-read",
    "--allow-net",
    "--allow-run",
  ]);
  assert.deepEqual(COMMAND_ENV, ["KUBECONFIG", "HOME"]);
  assert.deepEqual(PLUGIN_ENV.slice(0, 2), ["KUBECONFIG", "HOME"]);
  assert.ok(PLUGIN_ENV.includes("PATH"));
  for (const f of PLUGIN_FLAGS) {
    assert.ok(!f.startsWith("--allow-write") && !f.startsWith("--allow-all") && f !== "-A", f);
    assert.ok(!f.startsWith("--allow-sys") && !f.startsWith("--allow-ffi"), f);
    assert.ok(!/^--allow-env$/.test(f), "the environment is never granted whole");
  }
});

Deno.test("a process under people's grants reads any file, reaches any host and runs programs, but is refused a write and unlisted variables", async () => {
  const dir = await Deno.makeTempDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const file = `${dir}/kubeconfig-anywhere`;
    await Deno.writeTextFile(file, "x");
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `
import { spawn } from "node:child_process";
const [file, port, dir] = Deno.args;
const results: Record<string, string> = {};
async function attempt(name: string, fn: () => unknown) {
  try { await fn(); results[name] = "ok"; } catch (e) { results[name] = (e as Error).name; }
}
await attempt("read", () => Deno.readTextFile(file));
await attempt("readEtc", () => Deno.readTextFile("/etc/hostname"));
await attempt("write", () => Deno.writeTextFile(dir + "/written", "x"));
await attempt("overwrite", () => Deno.writeTextFile(file, "y"));
await attempt("mkdir", () => Deno.mkdir(dir + "/made"));
await attempt("tcp", async () => (await Deno.connect({ hostname: "127.0.0.1", port: Number(port) })).close());
await attempt("run", () => new Deno.Command("true").output());
await attempt("sys", () => Deno.hostname());
results.visible = Object.keys(Deno.env.toObject()).filter((k) => !k.startsWith("AWS_") || k === "AWS_PROFILE").sort().join(",");
results.kubeconfig = String(Deno.env.get("KUBECONFIG"));
results.secret = String(Deno.env.get("SECRET_TOKEN"));
results.aws = String(Deno.env.get("AWS_PROFILE"));
// What an exec credential plugin started as client-node starts it (node:child_process' spawn)
// is handed: the variables this process may read, and no other.
results.child = await new Promise<string>((resolve) => {
  let text = "";
  const c = spawn("sh", ["-c", 'echo "$AWS_PROFILE/$SECRET_TOKEN/$KUBECONFIG"']);
  c.stdout.on("data", (d) => text += String(d));
  c.on("close", () => resolve(text.trim()));
});
console.log(JSON.stringify(results));
`,
    );
    const out = await runDeno(
      ["run", "--no-config", ...PLUGIN_FLAGS, probe, file, String(listener.addr.port), dir],
      {
        env: {
          KUBECONFIG: file,
          SECRET_TOKEN: "s3cret",
          AWS_PROFILE: "prod",
          HOME: dir,
          PATH: "/usr/bin:/bin",
        },
        clearEnv: true,
      },
    );
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), {
      read: "ok",
      readEtc: "ok",
      write: "NotCapable",
      overwrite: "NotCapable",
      mkdir: "NotCapable",
      tcp: "ok",
      run: "ok",
      sys: "NotCapable",
      visible: "AWS_PROFILE,HOME,KUBECONFIG,PATH",
      kubeconfig: file,
      secret: "undefined",
      aws: "prod",
      child: `prod//${file}`,
    });
    assert.equal(await Deno.readTextFile(file), "x", "the file was not overwritten");
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task start: a kubeconfig with an exec plugin also passes it the plugin's variables", async () => {
  const kubeconfig = `
apiVersion: v1
kind: Config
current-context: me
contexts: [{name: me, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "https://eks.example:443"}}]
users: [{name: u, user: {exec: {command: aws, apiVersion: client.authentication.k8s.io/v1beta1}}}]
`;
  const flags = await commandGrants(
    ["networks", "p", "--kubeconfig", "/k"],
    {},
    (p) => p === "/k" ? Promise.resolve(kubeconfig) : Promise.reject(new Error(p)),
  );
  assert.ok(flags.includes(`--allow-env=${PLUGIN_ENV.join(",")}`), flags.join(" "));
  assert.ok(flags.includes("--allow-run=aws"), flags.join(" "));
});

Deno.test("pluginCompileArgs: people's grants, then main.ts and the baked-in kubectl", () => {
  assert.deepEqual(PLUGIN_SCRIPT_ARGS, [KUBECTL_MODE]);
  assert.equal(PLUGIN_OUTPUT, `dist/${PLUGIN_NAME}`);
  for (const [arch, triple] of Object.entries(COMPILE_TARGETS)) {
    for (const target of [arch, triple]) {
      const args = pluginCompileArgs(target);
      assert.deepEqual(args.slice(0, 6), [
        "compile",
        "--frozen",
        "--output",
        PLUGIN_OUTPUT,
        "--target",
        triple,
      ]);
      assert.deepEqual(args.slice(-2), ["main.ts", "kubectl"]);
      const flags = args.slice(6, -2).filter((f, i, all) =>
        f !== "--include" && all[i - 1] !== "--include"
      );
      assert.deepEqual(flags, [...PLUGIN_FLAGS], "exactly people's grants, no V8 setting");
      for (const f of RUNTIME_DATA_FILES) {
        assert.ok(args.some((a, i) => a === "--include" && args[i + 1] === f), f);
      }
    }
  }
  assert.equal(pluginCompileArgs("amd64", { output: "out/k" })[3], "out/k");
  assert.throws(() => pluginCompileArgs("s390x"), /not supported: use one of/);
  // The agent's binary keeps its own list and takes no script argument.
  assert.equal(compileArgs("amd64").at(-1), "main.ts");
  assert.equal(compileArgs("amd64")[3], AGENT_OUTPUT);
});

Deno.test("deno task compile builds the agent and the plugin; --only and --plugin-output", () => {
  const both = compileCommand(["--target", "arm64"]);
  assert.deepEqual(both.commands, [
    ["deno", ...compileArgs("arm64")],
    ["deno", ...pluginCompileArgs("arm64")],
  ]);
  assert.deepEqual(both.argv, both.commands[0]);
  const servers = compileCommand(["--api-server", "10.96.0.1:443", "--plugin-output=bin/k"]);
  assert.deepEqual(
    servers.commands[0]!.slice(1),
    compileArgs(hostArch(), { grants: { ...DEPLOY_GRANTS, apiServers: ["10.96.0.1:443"] } }),
  );
  assert.deepEqual(
    servers.commands[1]!.slice(1),
    pluginCompileArgs(hostArch(), { output: "bin/k" }),
  );
  const agent = compileCommand(["--only", "agent", "--output", "/out/a"]);
  assert.deepEqual(agent.commands, [["deno", ...compileArgs(hostArch(), { output: "/out/a" })]]);
  const only = compileCommand(["--only=plugin"]);
  assert.deepEqual(only.commands, [["deno", ...pluginCompileArgs(hostArch())]]);
  assert.throws(() => compileCommand(["--only", "both"]), /--only "both" names no binary/);
  assert.throws(() => compileCommand(["--plugin-output"]), UsageError);
});

function hostArch(): string {
  return Deno.build.arch === "aarch64" ? "arm64" : "amd64";
}
