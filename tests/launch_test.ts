import assert from "node:assert/strict";
import { UsageError } from "../lib/config/cli.ts";
import { DEFAULT_CONFIG_PATH } from "../lib/config/settings.ts";
import { programHelp } from "../lib/commands/command_line.ts";
import { SERVICE_ACCOUNT_DIR } from "../lib/kube/kubeconfig.ts";
import {
  compileCommand,
  grantsForArgs,
  MAIN_PATH,
  PROJECT_ROOT,
  runCommand,
  shellQuote,
} from "../lib/launch.ts";
import {
  COMPILE_TARGETS,
  compileArgs,
  DEPLOY_GRANTS,
  LAUNCHER_FLAGS,
  permissionFlags,
  pluginCompileArgs,
  RUNTIME_FLAGS,
} from "../lib/process/permissions.ts";
import { runDeno } from "./support/mod.ts";

function files(map: Record<string, string>): (path: string) => Promise<string> {
  return (path) =>
    map[path] === undefined
      ? Promise.reject(new Deno.errors.NotFound(path))
      : Promise.resolve(map[path]!);
}

const KUBECONFIG = `
current-context: rig
contexts: [{ name: rig, context: { cluster: rig, user: admin } }]
clusters: [{ name: rig, cluster: { server: "https://127.0.0.1:16443", certificate-authority: ca.crt } }]
users: [{ name: admin, user: { client-certificate: admin.crt, client-key: admin.key } }]
`;

Deno.test("run: the controller gets its sockets, config, kubeconfig files and server", async () => {
  const args = ["--kubeconfig", "/rig/kubeconfig", "--node-name", "node-a"];
  const argv = await runCommand(args, {
    env: {},
    readFile: files({ "/rig/kubeconfig": KUBECONFIG }),
    exists: (p) => p === "/run/crio/crio.sock" || p === "/run/multus/multus.sock",
  });
  assert.deepEqual(argv.slice(0, 2), ["deno", "run"]);
  assert.deepEqual(argv.slice(-args.length - 1 - RUNTIME_FLAGS.length), [
    ...RUNTIME_FLAGS,
    MAIN_PATH,
    ...args,
  ]);
  const flags = argv.slice(2, -args.length - 1 - RUNTIME_FLAGS.length);
  assert.deepEqual(
    flags,
    permissionFlags({
      criSockets: ["/run/crio/crio.sock"],
      multusSockets: ["/run/multus/multus.sock"],
      stateDir: "/var/lib/dynamic-networks-controller",
      configFile: DEFAULT_CONFIG_PATH,
      kubeconfigFiles: ["/rig/kubeconfig", "/rig/ca.crt", "/rig/admin.crt", "/rig/admin.key"],
      apiServers: ["127.0.0.1:16443"],
      metricsAddress: "0.0.0.0:9091",
      run: [],
    }),
  );
  assert.ok(!flags.join(" ").includes(SERVICE_ACCOUNT_DIR));
});

Deno.test("run: in a cluster the controller gets the service address and the ServiceAccount", async () => {
  const env = {
    NODE_NAME: "node-a",
    KUBERNETES_SERVICE_HOST: "10.96.0.1",
    KUBERNETES_SERVICE_PORT: "443",
    DNC_METRICS_ADDRESS: "127.0.0.1:9300",
  };
  const grants = await grantsForArgs(["--cri-socket=/x/cri.sock"], {
    env,
    readFile: files({}),
    exists: () => false,
  });
  assert.deepEqual(grants.apiServers, ["10.96.0.1:443"]);
  assert.equal(grants.serviceAccountDir, SERVICE_ACCOUNT_DIR);
  assert.deepEqual(grants.criSockets, ["/x/cri.sock"]);
  assert.equal(grants.metricsAddress, "127.0.0.1:9300");
});

Deno.test("run: help, version and unusable command lines get no grants at all", async () => {
  for (const args of [["--help"], ["--version"], ["--bogus"], ["positional"]]) {
    const g = await grantsForArgs(args, { env: {}, readFile: files({}), exists: () => true });
    const flags = permissionFlags(g);
    assert.ok(!flags.some((f) => f.startsWith("--allow-read")), `${args}: ${flags}`);
    assert.ok(!flags.some((f) => f.startsWith("--allow-net")), `${args}: ${flags}`);
  }
});

Deno.test("run: a configuration the program will refuse gets only its config file", async () => {
  const g = await grantsForArgs(["--config", "/c.json"], {
    env: { NODE_NAME: "n" },
    readFile: files({ "/c.json": '{"workers": "many"}' }),
    exists: () => true,
  });
  assert.equal(g.configFile, "/c.json");
  assert.deepEqual([...g.criSockets, ...g.multusSockets, ...g.apiServers], []);
});

Deno.test("compile: defaults to the host's architecture and the deployment grants", () => {
  const { print, argv } = compileCommand(["--print"]);
  assert.equal(print, true);
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
  assert.deepEqual(argv, ["deno", ...compileArgs(arch)]);
});

Deno.test("compile: --target, --output and --api-server", () => {
  const { print, argv } = compileCommand([
    "--target=arm64",
    "--output",
    "out/x",
    "--api-server",
    "10.96.0.1:443",
  ]);
  assert.equal(print, false);
  assert.deepEqual(
    argv,
    [
      "deno",
      ...compileArgs(COMPILE_TARGETS.arm64, {
        output: "out/x",
        grants: { ...DEPLOY_GRANTS, apiServers: ["10.96.0.1:443"] },
      }),
    ],
  );
  assert.throws(() => compileCommand(["--bogus"]), UsageError);
  assert.throws(() => compileCommand(["--target"]), UsageError);
});

Deno.test("shellQuote leaves plain words alone and quotes the rest", () => {
  assert.equal(shellQuote(["a", "--x=1,2", "it's", "a b"]), `a --x=1,2 'it'\\''s' 'a b'`);
});

Deno.test("deno.json's start and compile tasks run the launcher with LAUNCHER_FLAGS", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${PROJECT_ROOT}/deno.json`)).tasks;
  const launcher = `deno run ${LAUNCHER_FLAGS.join(" ")} lib/launch.ts`;
  assert.equal(tasks.start, `${launcher} run`);
  assert.equal(tasks.compile, `${launcher} compile`);
  for (const f of LAUNCHER_FLAGS) assert.ok(f !== "-A" && !f.startsWith("--allow-all"), f);
});

async function task(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await runDeno(["task", "--quiet", ...args], { cwd: PROJECT_ROOT, env });
}

Deno.test("deno task start -- --help prints the help and exits 0", async () => {
  const r = await task(["start", "--", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, programHelp());
});

Deno.test("deno task start passes the controller's exit code on", async () => {
  const r = await task(["start", "--", "--node-nmae", "x"]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes("did you mean --node-name?"), r.stderr);
});

Deno.test("deno task start --print shows the command the launcher computes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kc = `${dir}/kubeconfig`;
    await Deno.writeTextFile(kc, KUBECONFIG);
    const args = ["--kubeconfig", kc, "--node-name", "node-a", "--cri-socket", `${dir}/c.sock`];
    const r = await task(["start", "--print", "--", ...args]);
    assert.equal(r.code, 0, r.stderr);
    const expected = await runCommand(args, { env: Deno.env.toObject() });
    assert.equal(r.stdout.trim(), shellQuote(expected));
    assert.ok(r.stdout.includes(`${dir}/ca.crt`) && r.stdout.includes("127.0.0.1:16443"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task compile --print prints the deno compile command with the one list", async () => {
  const r = await task(["compile", "--print", "--target", "amd64"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout.trim(),
    [
      shellQuote(["deno", ...compileArgs("amd64")]),
      shellQuote(["deno", ...pluginCompileArgs("amd64")]),
    ].join("\n"),
  );
});
