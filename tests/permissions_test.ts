import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CONFIG_KEYS,
  CRI_SOCKET_CANDIDATES,
  DEFAULT_CONFIG_PATH,
  DEFAULTS,
  MULTUS_SOCKET_CANDIDATES,
} from "../lib/config/settings.ts";
import { loadConfig, type LoadedConfig } from "../lib/config/load.ts";
import { SERVICE_ACCOUNT_DIR } from "../lib/kube/kubeconfig.ts";
import {
  ALLOWED_ENV,
  ANY_API_SERVER,
  COMPILE_TARGETS,
  compileArgs,
  DEPLOY_GRANTS,
  type Grants,
  grantsFor,
  hostPort,
  kubeconfigGrants,
  permissionFlags,
  RUNTIME_DATA_FILES,
  UNREACHABLE_HOSTS,
} from "../lib/process/permissions.ts";
import { runDeno } from "./support/mod.ts";
import { CRASH_AT_ENV } from "./support/crashing_agent.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** The comma-separated list of `--allow-<name>=…`, or undefined when the flag is absent. */
function listOf(flags: readonly string[], name: string): string[] | undefined {
  const prefix = `--allow-${name}=`;
  const flag = flags.find((f) => f.startsWith(prefix));
  return flag === undefined ? undefined : flag.slice(prefix.length).split(",");
}

function assertScoped(flags: readonly string[]): void {
  for (const f of flags) {
    assert.ok(f !== "-A" && !f.startsWith("--allow-all"), f);
    if (f.startsWith("--allow-") && f !== "--allow-net") {
      assert.match(f, /^--allow-[a-z]+=[^,]+(,[^,]+)*$/, f);
    }
    assert.ok(!/^-[A-Za-z]$/.test(f), `short flag ${f}`);
    assert.ok(!f.startsWith("--allow-sys") && !f.startsWith("--allow-ffi"), f);
  }
  assert.ok(flags.includes("--no-prompt"));
  assert.ok(flags.includes("--ignore-env"));
}

Deno.test("the deployment flags are scoped: no -A, no bare grant but the network's, every list explicit", () => {
  const flags = permissionFlags(DEPLOY_GRANTS);
  assertScoped(flags);
  for (const bare of ["--allow-read", "--allow-write", "--allow-env", "--allow-run"]) {
    assert.ok(!flags.includes(bare), bare);
  }
  assert.equal(listOf(flags, "run"), undefined);
  // The API server is known only at run time (module doc): any host, but the metadata services.
  assert.ok(flags.includes("--allow-net"));
  assert.ok(flags.includes(`--deny-net=${UNREACHABLE_HOSTS.join(",")}`));
  assert.equal(listOf(flags, "net"), undefined);
});

// Under the bare network grant, sockets stay exact: a unix socket is reached through its read
// and write grants, which name only the agent's own.
Deno.test("a process that may reach any API server still reaches only its own unix sockets, and no metadata service", async () => {
  const dir = await Deno.makeTempDir();
  const listeners: Deno.Listener[] = [];
  try {
    const criSock = `${dir}/cri.sock`;
    const otherSock = `${dir}/other.sock`;
    listeners.push(Deno.listen({ transport: "unix", path: criSock }));
    listeners.push(Deno.listen({ transport: "unix", path: otherSock }));
    const v4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const v6 = Deno.listen({ hostname: "::1", port: 0 });
    listeners.push(v4, v6);
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `
const [criSock, otherSock, v4Port, v6Port] = Deno.args;
const results: Record<string, string> = {};
async function attempt(name: string, fn: () => unknown) {
  try { await fn(); results[name] = "ok"; } catch (e) { results[name] = (e as Error).name; }
}
await attempt("unixGranted", async () => (await Deno.connect({ transport: "unix", path: criSock })).close());
await attempt("unixOther", async () => (await Deno.connect({ transport: "unix", path: otherSock })).close());
await attempt("tcpV4", async () => (await Deno.connect({ hostname: "127.0.0.1", port: Number(v4Port) })).close());
await attempt("tcpV6", async () => (await Deno.connect({ hostname: "::1", port: Number(v6Port) })).close());
await attempt("metadataV4", async () => (await Deno.connect({ hostname: "169.254.169.254", port: 80 })).close());
await attempt("metadataName", () => fetch("http://metadata.google.internal/computeMetadata/v1/"));
console.log(JSON.stringify(results));
`,
    );
    const flags = permissionFlags({
      criSockets: [criSock],
      multusSockets: [],
      apiServers: ANY_API_SERVER,
      metricsAddress: "",
    });
    const out = await runDeno([
      "run",
      "--no-config",
      ...flags,
      probe,
      criSock,
      otherSock,
      String(v4.addr.port),
      String(v6.addr.port),
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), {
      unixGranted: "ok",
      unixOther: "NotCapable",
      tcpV4: "ok",
      tcpV6: "ok",
      metadataV4: "NotCapable",
      metadataName: "NotCapable",
    });
  } finally {
    for (const l of listeners) l.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("each socket is granted read, write and unix: net on its exact path; only they and the state directory are written", () => {
  const exact = { ...DEPLOY_GRANTS, apiServers: ["10.96.0.1:443"] };
  for (const grants of [DEPLOY_GRANTS, exact]) {
    const flags = permissionFlags(grants);
    const sockets = [...grants.criSockets, ...grants.multusSockets];
    const read = listOf(flags, "read")!;
    for (const s of sockets) assert.ok(read.includes(s), s);
    assert.deepEqual(listOf(flags, "write")!.sort(), [...sockets, grants.stateDir].sort());
    assert.ok(read.includes(grants.stateDir!));
  }
  // With an exact API server the network list is exact too: the sockets and that address.
  const net = listOf(permissionFlags(exact), "net")!;
  assert.deepEqual(
    net.filter((n) => n.startsWith("unix:")).sort(),
    [...exact.criSockets, ...exact.multusSockets].map((s) => `unix:${s}`).sort(),
  );
  assert.ok(net.includes("10.96.0.1:443"));
});

Deno.test("the deployment grants match the program's defaults and the pod's mounts", () => {
  assert.equal(DEPLOY_GRANTS.configFile, DEFAULT_CONFIG_PATH);
  assert.equal(DEPLOY_GRANTS.metricsAddress, DEFAULTS.metricsAddress);
  assert.equal(DEPLOY_GRANTS.serviceAccountDir, SERVICE_ACCOUNT_DIR);
  assert.equal(DEPLOY_GRANTS.stateDir, DEFAULTS.stateDir);
  // Every granted socket is one that detection would try, so an empty ConfigMap still works.
  for (const s of DEPLOY_GRANTS.criSockets) assert.ok(CRI_SOCKET_CANDIDATES.includes(s), s);
  for (const s of DEPLOY_GRANTS.multusSockets) assert.ok(MULTUS_SOCKET_CANDIDATES.includes(s), s);
  const flags = permissionFlags(DEPLOY_GRANTS);
  assert.ok(listOf(flags, "read")!.includes(DEFAULT_CONFIG_PATH));
  assert.ok(listOf(flags, "read")!.includes(SERVICE_ACCOUNT_DIR));
  assert.ok(flags.includes("--allow-net"));
  assert.ok(
    listOf(permissionFlags({ ...DEPLOY_GRANTS, apiServers: [] }), "net")!.includes(
      DEFAULTS.metricsAddress,
    ),
  );
});

Deno.test("the ConfigMaps' sockets, the DaemonSet's --config and metrics port agree with the grants", async () => {
  const { load } = await import("js-yaml");
  // deno-lint-ignore no-explicit-any
  const configMap = load(await Deno.readTextFile(`${ROOT}deploy/base/config_map.yaml`)) as any;
  const base = JSON.parse(configMap.data["dynamic-networks-config.json"]);
  // deno-lint-ignore no-explicit-any
  const crio = load(await Deno.readTextFile(`${ROOT}deploy/crio/kustomization.yaml`)) as any;
  const crioPatch = crio.patches.find((p: { target: { kind: string } }) =>
    p.target.kind === "ConfigMap"
  );
  // deno-lint-ignore no-explicit-any
  const crioConfig = JSON.parse((load(crioPatch.patch) as any)[0].value);
  for (const cfg of [base, crioConfig]) {
    assert.ok(DEPLOY_GRANTS.criSockets.includes(cfg.criSocketPath), cfg.criSocketPath);
    assert.ok(DEPLOY_GRANTS.multusSockets.includes(cfg.multusSocketPath), cfg.multusSocketPath);
  }
  // deno-lint-ignore no-explicit-any
  const ds = load(await Deno.readTextFile(`${ROOT}deploy/base/daemon_set.yaml`)) as any;
  const container = ds.spec.template.spec.containers[0];
  assert.ok(container.args.includes(`--config=${DEFAULT_CONFIG_PATH}`), container.args);
  const port = Number(DEPLOY_GRANTS.metricsAddress.split(":").pop());
  assert.ok(container.ports.some((p: { containerPort: number }) => p.containerPort === port));
});

Deno.test("every environment variable a setting reads is granted", () => {
  const granted = (name: string) =>
    ALLOWED_ENV.some((g) => g.endsWith("*") ? name.startsWith(g.slice(0, -1)) : g === name);
  for (const spec of CONFIG_KEYS) assert.ok(granted(spec.env), spec.env);
  for (const name of ["DNC_CONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"]) {
    assert.ok(granted(name), name);
  }
  for (const name of ["HOME", "PATH", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "https_proxy"]) {
    assert.ok(!granted(name), name);
  }
  assert.deepEqual(listOf(permissionFlags(DEPLOY_GRANTS), "env"), [...ALLOWED_ENV]);
});

const pathArb = fc.array(fc.stringMatching(/^[a-z0-9._-]{1,8}$/), { minLength: 1, maxLength: 4 })
  .map((parts) => "/" + parts.join("/"));

Deno.test("for any grants, every --allow flag has a non-empty explicit list", () => {
  fc.assert(
    fc.property(
      fc.array(pathArb, { maxLength: 3 }),
      fc.array(pathArb, { maxLength: 3 }),
      fc.option(pathArb, { nil: undefined }),
      fc.array(fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })), { maxLength: 3 }),
      fc.boolean(),
      (cri, multus, configFile, servers, metrics) => {
        const grants: Grants = {
          criSockets: cri,
          multusSockets: multus,
          configFile,
          apiServers: servers.map(([h, p]) => `${h}:${p}`),
          metricsAddress: metrics ? "0.0.0.0:9091" : "",
        };
        const flags = permissionFlags(grants);
        assertScoped(flags);
        const sockets = [...cri, ...multus];
        if (sockets.length === 0) assert.equal(listOf(flags, "write"), undefined);
        for (const s of sockets) {
          assert.ok(listOf(flags, "write")!.includes(s));
          assert.ok(listOf(flags, "net")!.includes(`unix:${s}`));
        }
        for (const [h, p] of servers) assert.ok(listOf(flags, "net")!.includes(`${h}:${p}`));
      },
    ),
  );
});

Deno.test("paths and hosts that cannot be granted are refused with a reason", () => {
  const base: Grants = { criSockets: [], multusSockets: [], apiServers: [], metricsAddress: "" };
  assert.throws(() => permissionFlags({ ...base, criSockets: ["/a,b.sock"] }), /comma/);
  assert.throws(() => permissionFlags({ ...base, multusSockets: ["run/m.sock"] }), /absolute/);
  assert.throws(() => permissionFlags({ ...base, apiServers: ["https://x"] }), /host:port/);
  assert.throws(() => permissionFlags({ ...base, configFile: "/etc/a,b.json" }), /comma/);
});

Deno.test("compileArgs: output, target, includes, the one permission list, main.ts", () => {
  for (const [arch, triple] of Object.entries(COMPILE_TARGETS)) {
    for (const target of [arch, triple]) {
      const args = compileArgs(target);
      assert.equal(args[0], "compile");
      assert.equal(args.at(-1), "main.ts");
      assert.equal(args[args.indexOf("--target") + 1], triple);
      assert.ok(args[args.indexOf("--output") + 1]!.length > 0);
      const flags = permissionFlags(DEPLOY_GRANTS);
      const at = args.indexOf(flags[0]!);
      assert.deepEqual(args.slice(at, at + flags.length), flags);
      for (const f of RUNTIME_DATA_FILES) {
        assert.ok(args.some((a, i) => a === "--include" && args[i + 1] === f), f);
      }
    }
  }
  const custom = compileArgs("amd64", { include: ["lib/x.json"], output: "out/bin" });
  assert.equal(custom[custom.indexOf("--include") + 1], "lib/x.json");
  assert.equal(custom[custom.indexOf("--output") + 1], "out/bin");
  assert.throws(() => compileArgs("s390x"), /amd64/);
});

Deno.test("every runtime data file exists", async () => {
  for (const f of RUNTIME_DATA_FILES) assert.ok((await Deno.stat(`${ROOT}${f}`)).isFile, f);
});

Deno.test("hostPort adds the scheme's default port", () => {
  assert.equal(hostPort(new URL("https://10.0.0.1")), "10.0.0.1:443");
  assert.equal(hostPort(new URL("http://proxy.local")), "proxy.local:80");
  assert.equal(hostPort(new URL("https://[fd00::1]:6443/x")), "[fd00::1]:6443");
});

Deno.test("a kubeconfig grants its server, proxy, the files it names, and exec plugins", async () => {
  const kubeconfig = `
apiVersion: v1
kind: Config
current-context: dev
contexts:
  - name: other
    context: { cluster: far, user: u2 }
  - name: dev
    context: { cluster: near, user: me }
clusters:
  - name: far
    cluster: { server: "https://203.0.113.9:443" }
  - name: near
    cluster:
      server: "https://127.0.0.1:16443"
      certificate-authority: pki/ca.crt
      proxy-url: "http://proxy.local:3128"
users:
  - name: u2
    user: { token: x }
  - name: me
    user:
      client-certificate: /abs/client.crt
      client-key: pki/client.key
      token-file: tok
      exec: { command: kubelogin, apiVersion: client.authentication.k8s.io/v1 }
`;
  const got = await kubeconfigGrants("/home/u/.kube/config", (p) => {
    assert.equal(p, "/home/u/.kube/config");
    return Promise.resolve(kubeconfig);
  });
  assert.deepEqual(got.hosts, ["127.0.0.1:16443", "proxy.local:3128"]);
  assert.deepEqual(got.files.sort(), [
    "/abs/client.crt",
    "/home/u/.kube/config",
    "/home/u/.kube/pki/ca.crt",
    "/home/u/.kube/pki/client.key",
    "/home/u/.kube/tok",
  ]);
  assert.deepEqual(got.run, ["kubelogin"]);
});

Deno.test("a kubeconfig without a usable current context is refused", async () => {
  const text = "current-context: nope\ncontexts: []\nclusters: []\nusers: []\n";
  await assert.rejects(
    () => kubeconfigGrants("/k", () => Promise.resolve(text)),
    /current-context/,
  );
  await assert.rejects(
    () => kubeconfigGrants("/k", () => Promise.reject(new Error("gone"))),
    /\/k/,
  );
});

function loaded(args: string[], env: Record<string, string>): LoadedConfig {
  return loadConfig({
    args,
    env: { NODE_NAME: "n", ...env },
    readFile: () => {
      throw new Deno.errors.NotFound("none");
    },
    exists: () => false,
  });
}

Deno.test("grantsFor in a cluster: the service host and port, and the ServiceAccount directory", async () => {
  for (const [host, expected] of [["10.96.0.1", "10.96.0.1:443"], ["fd00::1", "[fd00::1]:443"]]) {
    const env = { KUBERNETES_SERVICE_HOST: host!, KUBERNETES_SERVICE_PORT: "443" };
    const g = await grantsFor(loaded(["--cri-socket=/c.sock"], env), { env });
    assert.deepEqual(g.apiServers, [expected]);
    assert.equal(g.serviceAccountDir, SERVICE_ACCOUNT_DIR);
    assert.deepEqual(g.criSockets, ["/c.sock"]);
    assert.equal(g.configFile, DEFAULT_CONFIG_PATH);
    assert.equal(g.kubeconfigFiles, undefined);
  }
});

Deno.test("grantsFor with a kubeconfig: no ServiceAccount, the kubeconfig's server", async () => {
  const text =
    "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: 'https://kube.test:6443'}}]\nusers: [{name: u, user: {token: t}}]\n";
  const g = await grantsFor(loaded(["--kubeconfig", "/kc"], {}), {
    env: { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" },
    readFile: () => Promise.resolve(text),
  });
  assert.deepEqual(g.apiServers, ["kube.test:6443"]);
  assert.equal(g.serviceAccountDir, undefined);
  assert.deepEqual(g.kubeconfigFiles, ["/kc"]);
});

// The sandbox really holds: a program run with the flags reaches what is granted and is
// refused everything else.
Deno.test("a process under the flags reaches its grants and nothing else", async () => {
  const dir = await Deno.makeTempDir();
  const listeners: Deno.Listener[] = [];
  try {
    const criSock = `${dir}/cri.sock`;
    const otherSock = `${dir}/other.sock`;
    listeners.push(Deno.listen({ transport: "unix", path: criSock }));
    listeners.push(Deno.listen({ transport: "unix", path: otherSock }));
    const api = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    listeners.push(api, other);
    const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const metricsPort = free.addr.port;
    free.close();
    const config = `${dir}/config.json`;
    const secret = `${dir}/secret.txt`;
    await Deno.writeTextFile(config, "{}");
    await Deno.writeTextFile(secret, "s");
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `
const [criSock, otherSock, apiPort, otherPort, metricsPort, config, secret] = Deno.args;
const results: Record<string, string> = {};
async function attempt(name: string, fn: () => unknown) {
  try { await fn(); results[name] = "ok"; } catch (e) { results[name] = (e as Error).name; }
}
await attempt("readConfig", () => Deno.readTextFile(config));
await attempt("readSecret", () => Deno.readTextFile(secret));
await attempt("writeConfig", () => Deno.writeTextFile(config, "{}"));
await attempt("unixGranted", async () => (await Deno.connect({ transport: "unix", path: criSock })).close());
await attempt("unixOther", async () => (await Deno.connect({ transport: "unix", path: otherSock })).close());
await attempt("tcpApi", async () => (await Deno.connect({ hostname: "127.0.0.1", port: Number(apiPort) })).close());
await attempt("tcpOther", async () => (await Deno.connect({ hostname: "127.0.0.1", port: Number(otherPort) })).close());
await attempt("listenMetrics", () => Deno.listen({ hostname: "127.0.0.1", port: Number(metricsPort) }).close());
await attempt("run", () => new Deno.Command("true").output());
await attempt("sys", () => Deno.hostname());
results.home = String(Deno.env.get("HOME"));
results.node = String(Deno.env.get("NODE_NAME"));
console.log(JSON.stringify(results));
`,
    );
    const flags = permissionFlags({
      criSockets: [criSock],
      multusSockets: [`${dir}/multus.sock`],
      configFile: config,
      apiServers: [`127.0.0.1:${api.addr.port}`],
      metricsAddress: `127.0.0.1:${metricsPort}`,
    });
    const out = await runDeno([
      "run",
      "--no-config",
      ...flags,
      probe,
      criSock,
      otherSock,
      String(api.addr.port),
      String(other.addr.port),
      String(metricsPort),
      config,
      secret,
    ], { env: { NODE_NAME: "node-a", HOME: "/root" } });
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    assert.deepEqual(r, {
      readConfig: "ok",
      readSecret: "NotCapable",
      writeConfig: "NotCapable",
      unixGranted: "ok",
      unixOther: "NotCapable",
      tcpApi: "ok",
      tcpOther: "NotCapable",
      listenMetrics: "ok",
      run: "NotCapable",
      sys: "NotCapable",
      home: "undefined",
      node: "node-a",
    });
  } finally {
    for (const l of listeners) l.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Deno accepts the deployment flags: any Service network on any port, never a cloud metadata service", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `const out: Record<string, string> = {};
for (const host of Deno.args) out[host] = (await Deno.permissions.query({ name: "net", host })).state;
console.log(JSON.stringify(out));
`,
    );
    const hosts = {
      "10.96.0.1:443": "granted", // kubeadm
      "10.43.0.1:443": "granted", // k3s
      "172.20.0.1:443": "granted", // EKS
      "172.30.0.1:443": "granted", // OpenShift
      "34.118.224.1:443": "granted", // GKE
      "10.96.0.1:6443": "granted",
      "[fd00:10:96::1]:443": "granted", // IPv6 single-stack
      "[2001:db8:96::1]:8443": "granted",
      "kubernetes.default.svc:443": "granted",
      "0.0.0.0:9091": "granted",
      "169.254.169.254:80": "denied", // AWS, GCE, Azure, OpenStack metadata
      "169.254.170.2:80": "denied", // ECS task credentials
      "[fd00:ec2::254]:80": "denied", // AWS over IPv6
      "metadata.google.internal:80": "denied",
    };
    const out = await runDeno([
      "run",
      "--no-config",
      ...permissionFlags(DEPLOY_GRANTS),
      probe,
      ...Object.keys(hosts),
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), hosts);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the shipped grants cannot read the variable that arms a crash in the tests", async () => {
  const granted = (name: string) =>
    ALLOWED_ENV.some((g) => g.endsWith("*") ? name.startsWith(g.slice(0, -1)) : g === name);
  assert.ok(!granted(CRASH_AT_ENV), `${CRASH_AT_ENV} is granted: ${ALLOWED_ENV.join(",")}`);
  const dir = await Deno.makeTempDir();
  try {
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `console.log(JSON.stringify([Deno.env.get("${CRASH_AT_ENV}") ?? "unset", Deno.env.get("DNC_WORKERS")]));`,
    );
    const out = await runDeno(
      ["run", "--no-config", ...permissionFlags(DEPLOY_GRANTS), probe],
      { env: { [CRASH_AT_ENV]: "after-delegate:add", DNC_WORKERS: "3" }, clearEnv: true },
    );
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), ["unset", "3"], "a setting's variable still reads");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
