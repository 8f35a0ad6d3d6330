/**
 * The one list of Deno permission flags the controller runs with, and the smaller one of the
 * commands for people ({@linkcode commandGrants}). `deno task start` (through
 * `lib/launch.ts`), `deno task compile`, the Containerfile and the tests all take their flags
 * from {@linkcode permissionFlags}; nothing else spells a permission.
 *
 * The process may reach exactly:
 * - its two unix sockets (CRI runtime and multus): read, write and `unix:` net on each exact path;
 * - its state directory (the attachment journal): read and write;
 * - the API server (`host:port`), its config file, its kubeconfig (and the files that names) or
 *   its ServiceAccount directory;
 * - its metrics/health listen address;
 * - the environment variables it reads (everything else reads as unset, `--ignore-env`).
 *
 * In a cluster the API server is `$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the
 * ClusterIP of the `kubernetes` Service, which a binary compiled in advance cannot know: any
 * IPv4 or IPv6 address, private or public (GKE's Service network is 34.118.224.0/20), on any
 * port. Deno (2.9) matches `--allow-net` against the host as written in the URL and accepts
 * IPv4 CIDR ranges, but no IPv6 range in any spelling (`[fd00::]/8`, `fd00::/8`, `::/0` are all
 * refused), so no list can name every Service network. {@linkcode DEPLOY_GRANTS} therefore
 * grants the network without a list and denies what a compromised agent would reach first
 * ({@linkcode UNREACHABLE_HOSTS}: the cloud metadata services that hand out the node's
 * credentials). Everything else stays exact: its unix sockets are still reached only through
 * their read and write grants, and no file outside its grants can be read or written.
 * `deno compile --api-server <host:port>` bakes in one exact address instead.
 *
 * People's grants, {@linkcode PLUGIN_FLAGS}: the kubectl plugin (`kubectl hotplug networks|
 * attach|detach`, the binary `kubectl-hotplug`) is compiled once for every user, so its list
 * cannot name one kubeconfig as {@linkcode commandGrants} does for `deno task start`. It may
 * read any file (the kubeconfig is wherever `$KUBECONFIG` or `--kubeconfig` points, and names
 * CA, certificate, key and token files anywhere), connect to any host (any API server or
 * proxy), and run any program: kubeconfigs of EKS, GKE, AKS and OIDC logins get their
 * credentials from an exec plugin (`aws`, `gke-gcloud-auth-plugin`, `kubelogin`, …), whose
 * name and place are the user's. That last grant is the wide one: a program the plugin starts
 * runs outside Deno's sandbox, with all of the user's rights, exactly as it would under
 * kubectl. So the plugin confines its own code, not what it runs: it reads only the variables
 * in {@linkcode PLUGIN_ENV} (the commands' and those exec plugins read; every other reads as
 * unset), writes nowhere (no `--allow-write`; the commands also revoke the right at start), and
 * never prompts. It runs only when a person types it, with that person's rights; the agent's
 * binary keeps its own narrow list.
 *
 * @module
 */
import { CONFIG_KEYS, DEFAULT_CONFIG_PATH, DEFAULTS } from "../config/settings.ts";
import type { LoadedConfig } from "../config/load.ts";
import {
  COMMAND_ENV,
  KUBECTL_MODE,
  parseCommand,
  PLUGIN_NAME,
  userKubeconfig,
} from "../commands/command_line.ts";
import { SERVICE_ACCOUNT_DIR } from "../kube/kubeconfig.ts";

/** {@linkcode Grants.apiServers} for an API server known only at run time: any host and port. */
export const ANY_API_SERVER = "any";

/**
 * Hosts never reached, even under {@linkcode ANY_API_SERVER}: the cloud instance metadata
 * services (IPv4 link-local, where AWS, GCE, Azure and OpenStack serve it; AWS's IPv6
 * address; GCE's name), which hand out the node's cloud credentials.
 */
export const UNREACHABLE_HOSTS: readonly string[] = [
  "169.254.0.0/16",
  "[fd00:ec2::254]",
  "metadata.google.internal",
];

/** What the controller may touch. Every path is exact; lists may be empty. */
export interface Grants {
  /** CRI runtime sockets (read, write and `unix:` net). */
  criSockets: readonly string[];
  /** multus daemon sockets (read, write and `unix:` net). */
  multusSockets: readonly string[];
  /** The attachment journal's directory (read and write). */
  stateDir?: string;
  /** The config file (read); granted even when it does not exist. */
  configFile?: string;
  /** The kubeconfig and the files it names (read). */
  kubeconfigFiles?: readonly string[];
  /** The ServiceAccount directory: token, ca.crt, namespace (read). */
  serviceAccountDir?: string;
  /**
   * API servers and proxies: `host:port`, `[ipv6]:port` or `ipv4/prefix:port` (net), or
   * {@linkcode ANY_API_SERVER}.
   */
  apiServers: readonly string[] | typeof ANY_API_SERVER;
  /** The `/metrics` `/healthz` `/readyz` listen address `host:port` (net); `""` for none. */
  metricsAddress: string;
  /** Programs run: only kubeconfig exec credential plugins. */
  run?: readonly string[];
}

/**
 * Environment variables the controller may read: the settings' variables (`NODE_NAME`,
 * `KUBECONFIG`, every `DNC_*`) and the in-cluster API server address.
 */
export const ALLOWED_ENV: readonly string[] = [
  ...new Set([
    ...CONFIG_KEYS.map((s) => s.env).filter((name) => !name.startsWith("DNC_")),
    "DNC_*",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
  ]),
];

/**
 * The grants baked into the image: the DaemonSet's mounts and ConfigMap (both CRI runtimes and
 * both multus socket layouts, so one image serves the containerd and CRI-O manifests and socket
 * detection), the in-cluster ServiceAccount, and any API server but the
 * {@linkcode UNREACHABLE_HOSTS} (see the module documentation).
 */
export const DEPLOY_GRANTS: Grants = {
  criSockets: ["/host/run/containerd/containerd.sock", "/host/run/crio/crio.sock"],
  multusSockets: ["/host/run/multus/multus.sock", "/host/run/multus/socket/multus.sock"],
  stateDir: DEFAULTS.stateDir,
  configFile: DEFAULT_CONFIG_PATH,
  serviceAccountDir: SERVICE_ACCOUNT_DIR,
  apiServers: ANY_API_SERVER,
  metricsAddress: DEFAULTS.metricsAddress,
};

/** Files the program reads at run time that are not modules; `deno compile` must embed them. */
export const RUNTIME_DATA_FILES: readonly string[] = [];

/**
 * V8 settings of the controller process (run and compile alike). Measured on the node rig
 * with 110 pods (`deno task bench`): a 1 MiB young generation (`--max-semi-space-size=1`)
 * cut the peak of a 110-pod burst from about 120 to 97 MiB and idle RSS by 3-5 MiB.
 * `--max-opt=1` (no optimizing compiler) took idle RSS after a burst from about 88 to 80 MiB.
 * `--lite-mode` (V8's interpreter only, lazily allocated feedback) then gave idle RSS with
 * 110 pods of 75.3, 75.6 and 78.0 MiB in three runs against 77.5 to 81.7 MiB (median 78.2)
 * in six runs without it, and kept it from stepping up during resyncs, for 5-37 % more
 * controller CPU in a burst and no change in hot-plug overhead. It also removes WebAssembly
 * from the process: nothing the controller runs needs it (its HTTP is Deno's `fetch`, its
 * gRPC and YAML are plain JS).
 */
export const RUNTIME_FLAGS: readonly string[] = [
  "--v8-flags=--max-semi-space-size=1,--max-opt=1,--lite-mode",
];

/** The flags the launcher (`lib/launch.ts`) itself runs with: it computes grants and spawns `deno`. */
export const LAUNCHER_FLAGS: readonly string[] = [
  "--no-prompt",
  "--allow-read",
  "--allow-env",
  "--allow-run=deno",
];

/** `deno compile --target` values for the image's architectures. */
export const COMPILE_TARGETS = {
  amd64: "x86_64-unknown-linux-gnu",
  arm64: "aarch64-unknown-linux-gnu",
} as const;

function checkPath(what: string, path: string): string {
  if (path === "" || path.includes(",") || path.includes("\0")) {
    throw new Error(
      `${what} ${
        JSON.stringify(path)
      } cannot be granted: a Deno permission list is comma-separated, so use a non-empty path without commas`,
    );
  }
  return path;
}

function checkSocket(path: string): string {
  checkPath("socket", path);
  if (!path.startsWith("/")) {
    throw new Error(
      `socket ${
        JSON.stringify(path)
      } is not absolute: Deno grants unix:<path> only for absolute paths; use the full path`,
    );
  }
  return path;
}

function checkHost(what: string, host: string): string {
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+(\/\d{1,2})?):\d{1,5}$/.test(host)) {
    throw new Error(
      `${what} ${
        JSON.stringify(host)
      } is not host:port: write it like 10.96.0.1:443, kubernetes.default.svc:443, [fd00::1]:443 or 10.0.0.0/8:443`,
    );
  }
  return host;
}

function list(flag: string, items: readonly string[]): string[] {
  const unique = [...new Set(items)];
  return unique.length === 0 ? [] : [`${flag}=${unique.join(",")}`];
}

/**
 * The Deno permission flags for `grants`: `--no-prompt --ignore-env --allow-env=… --allow-read=…
 * --allow-write=… --allow-net=… [--allow-run=…]`. Every `--allow-*` flag carries an explicit
 * list; a flag whose list would be empty is left out, never passed bare. The one exception is
 * {@linkcode ANY_API_SERVER}: a bare `--allow-net` with `--deny-net` of the
 * {@linkcode UNREACHABLE_HOSTS}. Throws when a path or host cannot be expressed as a grant.
 */
export function permissionFlags(grants: Grants): string[] {
  const sockets = [...grants.criSockets, ...grants.multusSockets].map(checkSocket);
  const writes = [
    ...sockets,
    ...(grants.stateDir ? [checkPath("state directory", grants.stateDir)] : []),
  ];
  const reads = [
    ...writes,
    ...(grants.configFile ? [checkPath("config file", grants.configFile)] : []),
    ...(grants.kubeconfigFiles ?? []).map((p) => checkPath("kubeconfig file", p)),
    ...(grants.serviceAccountDir
      ? [checkPath("ServiceAccount directory", grants.serviceAccountDir)]
      : []),
  ];
  const anyHost = grants.apiServers === ANY_API_SERVER;
  const net = anyHost ? [] : [
    ...sockets.map((s) => `unix:${s}`),
    ...(grants.apiServers as readonly string[]).map((h) => checkHost("API server", h)),
    ...(grants.metricsAddress ? [checkHost("metrics address", grants.metricsAddress)] : []),
  ];
  const run = (grants.run ?? []).map((p) => checkPath("program", p));
  return [
    "--no-prompt",
    "--ignore-env",
    ...list("--allow-env", ALLOWED_ENV),
    ...list("--allow-read", reads),
    ...list("--allow-write", writes),
    ...(anyHost
      ? ["--allow-net", ...list("--deny-net", UNREACHABLE_HOSTS)]
      : list("--allow-net", net)),
    ...list("--allow-run", run),
  ];
}

/**
 * The smaller list the commands for people (`networks`, `attach`, `detach`) run with: the
 * user's kubeconfig and the files it names, its API server, its exec credential plugin (and
 * then the variables it reads, {@linkcode EXEC_PLUGIN_ENV}), and the variables that find the
 * kubeconfig. No socket, no state directory, no config file, no listen address, and no write
 * anywhere.
 */
export async function commandGrants(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile?: (path: string) => Promise<string>,
): Promise<string[]> {
  const line = parseCommand(args);
  if (line.help) return ["--no-prompt", "--ignore-env"];
  const k = await kubeconfigGrants(userKubeconfig(line, env), readFile);
  return [
    "--no-prompt",
    "--ignore-env",
    ...list("--allow-env", k.run.length > 0 ? PLUGIN_ENV : COMMAND_ENV),
    ...list("--allow-read", k.files.map((p) => checkPath("kubeconfig file", p))),
    ...list("--allow-net", k.hosts.map((h) => checkHost("API server", h))),
    ...list("--allow-run", k.run.map((p) => checkPath("program", p))),
  ];
}

/**
 * Variables an exec credential plugin reads besides `HOME`, passed on to it because Deno hands
 * a child only the variables its parent may read: `PATH` (the plugins are scripts and call
 * other tools), proxies, and those of the plugins of EKS (`aws eks get-token`,
 * aws-iam-authenticator: `AWS_*`), GKE (gke-gcloud-auth-plugin: `CLOUDSDK_*`,
 * `GOOGLE_APPLICATION_CREDENTIALS`) and AKS (kubelogin: `AZURE_*`, `AAD_*`).
 */
export const EXEC_PLUGIN_ENV: readonly string[] = [
  "PATH",
  "HTTPS_PROXY",
  "https_proxy",
  "NO_PROXY",
  "no_proxy",
  "AWS_*",
  "CLOUDSDK_*",
  "GOOGLE_APPLICATION_CREDENTIALS",
  "AZURE_*",
  "AAD_*",
];

/**
 * The variables the kubectl plugin may read: the commands' ({@linkcode COMMAND_ENV}) and
 * {@linkcode EXEC_PLUGIN_ENV}.
 */
export const PLUGIN_ENV: readonly string[] = [...COMMAND_ENV, ...EXEC_PLUGIN_ENV];

/**
 * People's grants: the Deno flags of the kubectl plugin, baked into `dist/kubectl-hotplug` by
 * {@linkcode pluginCompileArgs} (see the module documentation for why each is as wide as it
 * is). Unrestricted `--allow-read`, `--allow-net` and `--allow-run`; `--allow-env` for
 * {@linkcode PLUGIN_ENV} only; no `--allow-write`; `--no-prompt`. No V8 setting: the
 * commands are short-lived.
 */
export const PLUGIN_FLAGS: readonly string[] = [
  "--no-prompt",
  "--ignore-env",
  `--allow-env=${PLUGIN_ENV.join(",")}`,
  "--allow-read",
  "--allow-net",
  "--allow-run",
];

/** The script arguments baked into the plugin binary after `main.ts`: the kubectl mode. */
export const PLUGIN_SCRIPT_ARGS: readonly string[] = [KUBECTL_MODE];

/** Where `deno task compile` writes the agent's binary. */
export const AGENT_OUTPUT = "dist/dynamic-networks-controller";

/** Where `deno task compile` writes the kubectl plugin's binary. */
export const PLUGIN_OUTPUT = `dist/${PLUGIN_NAME}`;

/** Options of {@linkcode compileArgs}. */
export interface CompileOptions {
  /** The output binary (default `dist/dynamic-networks-controller`). */
  output?: string;
  /** The grants to bake in (default {@linkcode DEPLOY_GRANTS}). */
  grants?: Grants;
  /** Data files to embed (default {@linkcode RUNTIME_DATA_FILES}). */
  include?: readonly string[];
}

/**
 * The full `deno compile` argument list (without the `deno` executable), relative to the
 * project root: output, target, embedded data files, the permission flags, `main.ts`.
 * `target` is a Rust target triple or one of the {@linkcode COMPILE_TARGETS} keys.
 */
export function compileArgs(target: string, options: CompileOptions = {}): string[] {
  return compileLine(
    target,
    options.output ?? AGENT_OUTPUT,
    options.include ?? RUNTIME_DATA_FILES,
    [...permissionFlags(options.grants ?? DEPLOY_GRANTS), ...RUNTIME_FLAGS],
    [],
  );
}

/**
 * The `deno compile` argument list of the kubectl plugin, like {@linkcode compileArgs}: the
 * same `main.ts` with people's grants ({@linkcode PLUGIN_FLAGS}) and the script argument
 * `kubectl` baked in after it ({@linkcode PLUGIN_SCRIPT_ARGS}; a compiled program's
 * `Deno.args` start with the arguments given after its script at compile time).
 */
export function pluginCompileArgs(
  target: string,
  options: Pick<CompileOptions, "output" | "include"> = {},
): string[] {
  return compileLine(
    target,
    options.output ?? PLUGIN_OUTPUT,
    options.include ?? RUNTIME_DATA_FILES,
    PLUGIN_FLAGS,
    PLUGIN_SCRIPT_ARGS,
  );
}

function compileLine(
  target: string,
  output: string,
  include: readonly string[],
  flags: readonly string[],
  scriptArgs: readonly string[],
): string[] {
  const triple = (COMPILE_TARGETS as Record<string, string>)[target] ?? target;
  if (!Object.values(COMPILE_TARGETS).includes(triple as never)) {
    throw new Error(
      `compile target ${JSON.stringify(target)} is not supported: use one of ${
        [...Object.keys(COMPILE_TARGETS), ...Object.values(COMPILE_TARGETS)].join(", ")
      }`,
    );
  }
  return [
    "compile",
    "--frozen",
    "--output",
    output,
    "--target",
    triple,
    ...include.flatMap((f) => ["--include", f]),
    ...flags,
    "main.ts",
    ...scriptArgs,
  ];
}

/** What {@linkcode grantsFor} needs besides the configuration; injectable for tests. */
export interface GrantsForOptions {
  /** The environment (for the in-cluster API server address). */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads a file as text (the kubeconfig). */
  readFile?: (path: string) => Promise<string>;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/** `host:port` of a URL, with the scheme's default port when none is written. */
export function hostPort(url: URL): string {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return `${url.hostname}:${port}`;
}

// deno-lint-ignore no-explicit-any
type Yaml = any;

function named(items: unknown, name: unknown, field: string): Yaml {
  if (!Array.isArray(items)) return undefined;
  return items.find((i: Yaml) => i?.name === name)?.[field];
}

/**
 * What a kubeconfig needs granted: the API server and proxy `host:port` of its current
 * context, the files it names (CA, client certificate and key, token file; relative paths
 * resolve against the kubeconfig's directory, as kubectl does), and exec credential plugins.
 */
export async function kubeconfigGrants(
  path: string,
  readFile: (path: string) => Promise<string> = (p) => Deno.readTextFile(p),
): Promise<{ files: string[]; hosts: string[]; run: string[] }> {
  let text: string;
  try {
    text = await readFile(path);
  } catch (err) {
    throw new Error(`cannot read kubeconfig ${path}: pass an existing file with --kubeconfig`, {
      cause: err,
    });
  }
  const { load } = await import("js-yaml");
  let doc: Yaml;
  try {
    doc = load(text);
  } catch (err) {
    throw new Error(`kubeconfig ${path} is not valid YAML: fix the file`, { cause: err });
  }
  const context = named(doc?.contexts, doc?.["current-context"], "context");
  const cluster = named(doc?.clusters, context?.cluster, "cluster");
  const user = named(doc?.users, context?.user, "user");
  if (typeof cluster?.server !== "string") {
    throw new Error(
      `kubeconfig ${path}: the current context ${
        JSON.stringify(doc?.["current-context"])
      } names no cluster with a server: set current-context and its cluster's server`,
    );
  }
  const root = dirname(path);
  const resolve = (f: unknown) =>
    typeof f === "string" && f !== "" ? (f.startsWith("/") ? f : `${root}/${f}`) : undefined;
  const files = [path];
  for (
    const f of [
      cluster["certificate-authority"],
      user?.["client-certificate"],
      user?.["client-key"],
      user?.["token-file"],
      user?.tokenFile,
    ]
  ) {
    const p = resolve(f);
    if (p !== undefined) files.push(p);
  }
  const hosts: string[] = [];
  for (const [what, raw] of [["server", cluster.server], ["proxy-url", cluster["proxy-url"]]]) {
    if (typeof raw !== "string" || raw === "") continue;
    try {
      hosts.push(hostPort(new URL(raw)));
    } catch (err) {
      throw new Error(`kubeconfig ${path}: ${what} ${JSON.stringify(raw)} is not a URL`, {
        cause: err,
      });
    }
  }
  const command = user?.exec?.command;
  return { files, hosts, run: typeof command === "string" && command !== "" ? [command] : [] };
}

/**
 * The grants for running with `loaded` on this machine: its exact sockets, config file,
 * kubeconfig (or ServiceAccount directory and in-cluster API server) and metrics address.
 * The launcher passes the result to {@linkcode permissionFlags}.
 */
export async function grantsFor(loaded: LoadedConfig, options: GrantsForOptions): Promise<Grants> {
  const { config } = loaded;
  const grants: Grants = {
    criSockets: [config.criSocketPath],
    multusSockets: [config.multusSocketPath],
    stateDir: config.stateDir,
    configFile: loaded.configPath,
    apiServers: [],
    metricsAddress: config.metricsAddress,
  };
  if (config.kubeconfig !== "") {
    const k = await kubeconfigGrants(config.kubeconfig, options.readFile);
    return { ...grants, kubeconfigFiles: k.files, apiServers: k.hosts, run: k.run };
  }
  const host = options.env.KUBERNETES_SERVICE_HOST;
  const port = options.env.KUBERNETES_SERVICE_PORT;
  const apiServers = host && port ? [`${host.includes(":") ? `[${host}]` : host}:${port}`] : [];
  return { ...grants, serviceAccountDir: SERVICE_ACCOUNT_DIR, apiServers };
}
