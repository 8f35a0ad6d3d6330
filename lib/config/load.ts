/**
 * The controller's configuration: one table of settings ({@linkcode CONFIG_KEYS}) drives the
 * JSON config file, the environment variables, the command-line flags, `--help` and the README
 * reference. Values are validated with a zod schema ({@linkcode ConfigSchema}).
 *
 * Precedence: flags > environment > config file > defaults. The config file keeps the original
 * controller's keys (`criSocketPath`, `multusSocketPath`), so its ConfigMap works unchanged.
 * When no source sets a socket path, the first existing candidate socket is used
 * ({@linkcode CRI_SOCKET_CANDIDATES}, {@linkcode MULTUS_SOCKET_CANDIDATES}); only paths the
 * process may read are looked at, so a sandboxed process never trips over its permissions.
 *
 * @module
 */
import { z } from "zod";
import {
  closest,
  type FlagSpec,
  type HelpEntry,
  type ParsedFlags,
  parseFlags,
  renderHelp,
  renderReference,
} from "./cli.ts";
import { jsonType } from "../base/json.ts";
import { LOG_LEVELS, type LogFormat } from "../base/log.ts";
import { isDnsSubdomain, isNamespaceName } from "../core/names.ts";

/** Where the DaemonSet mounts the ConfigMap's file; read when no `--config` is given. */
export const DEFAULT_CONFIG_PATH = "/etc/dynamic-networks-controller/dynamic-networks-config.json";

/** The environment variable that names the config file (the `--config` flag wins over it). */
export const CONFIG_PATH_ENV = "DNC_CONFIG";

/** The CRI socket used when none is configured and none is found (the original's default). */
export const DEFAULT_CRI_SOCKET = "/run/containerd/containerd.sock";

/** The multus socket used when none is configured and none is found (the original's default). */
export const DEFAULT_MULTUS_SOCKET = "/var/run/multus-cni/multus.sock";

/** Where the attachment journal lives when `stateDir` is not set (a hostPath in the DaemonSet). */
export const DEFAULT_STATE_DIR = "/var/lib/dynamic-networks-controller";

/** CRI runtime sockets tried, in order, when `criSocketPath` is not set anywhere. */
export const CRI_SOCKET_CANDIDATES: readonly string[] = [
  "/run/containerd/containerd.sock",
  "/run/crio/crio.sock",
  "/host/run/containerd/containerd.sock",
  "/host/run/crio/crio.sock",
];

/** multus daemon sockets tried, in order, when `multusSocketPath` is not set anywhere. */
export const MULTUS_SOCKET_CANDIDATES: readonly string[] = [
  "/run/multus/multus.sock",
  "/run/multus/socket/multus.sock",
  "/host/run/multus/multus.sock",
  "/host/run/multus/socket/multus.sock",
  "/var/run/multus-cni/multus.sock",
];

/** The accepted log formats. */
export const LOG_FORMATS = ["json", "text"] as const satisfies readonly LogFormat[];

/** True for `host:port` (host: IPv4, `[IPv6]` or a DNS name; port 1–65535) or `""` (off). */
export function isListenAddress(s: string): boolean {
  if (s === "") return true;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  if (!m) return false;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535;
}

const absolutePath = z.string().regex(/^\/[^\0]*$/);

/** The schema of a complete, validated configuration. */
export const ConfigSchema = z.strictObject({
  nodeName: z.string().refine((name) => isDnsSubdomain(name, 63)),
  kubeconfig: z.string().regex(/^[^\0]*$/),
  criSocketPath: absolutePath,
  multusSocketPath: absolutePath,
  stateDir: absolutePath.refine((p) => !p.includes(","), "no commas"),
  workers: z.int().min(1).max(256),
  criTimeoutMs: z.int().min(1).max(600_000),
  delegateTimeoutMs: z.int().min(1).max(3_600_000),
  resyncPeriodSeconds: z.int().min(0).max(86_400),
  retryBaseDelayMs: z.int().min(1).max(3_600_000),
  retryMaxDelayMs: z.int().min(1).max(86_400_000),
  shutdownTimeoutSeconds: z.int().min(0).max(3_600),
  metricsAddress: z.string().refine(isListenAddress),
  logLevel: z.enum(LOG_LEVELS),
  logFormat: z.enum(LOG_FORMATS),
  namespaceIsolation: z.boolean(),
  allowedNadNamespaces: z.array(z.string().refine(isNamespaceName)),
  dryRun: z.boolean(),
  once: z.boolean(),
});

/** A complete, validated configuration. */
export type Config = z.infer<typeof ConfigSchema>;

/** A configuration key (a key of the JSON config file). */
export type ConfigKey = keyof Config;

/** How a raw string from a flag or the environment becomes a value. */
export type ValueKind = "string" | "integer" | "boolean" | "list";

/** Everything known about one setting: its flag, variable, default and documentation. */
export interface ConfigKeySpec {
  /** The config file key. */
  key: ConfigKey;
  /** The command-line flag, without dashes. */
  flag: string;
  /** The environment variable. */
  env: string;
  /** How raw strings are read. */
  kind: ValueKind;
  /** The placeholder shown in help (`<path>`); empty for a switch. */
  placeholder: string;
  /** The default value; undefined when there is none (required) or it is detected. */
  default: unknown;
  /** The default as shown to a reader. */
  defaultText: string;
  /** What the setting does. */
  description: string;
  /** What a valid value looks like, completing "… is not ___". */
  expected: string;
  /** How to fix a bad value. */
  fix: string;
  /** Whether an empty string means "not set" (the original treats empty socket paths so). */
  emptyIsUnset: boolean;
}

type SpecBody = Omit<ConfigKeySpec, "key" | "env" | "default" | "emptyIsUnset"> & {
  env?: string;
  emptyIsUnset?: boolean;
};

const SPECS = {
  nodeName: {
    flag: "node-name",
    env: "NODE_NAME",
    kind: "string",
    placeholder: "<name>",
    defaultText: "none (required)",
    description:
      "Name of the node this agent serves; only pods scheduled there are handled. The DaemonSet sets NODE_NAME from spec.nodeName.",
    expected: "a node name (a lowercase RFC 1123 DNS subdomain)",
    fix: "set the node's name as `kubectl get nodes` shows it",
    emptyIsUnset: true,
  },
  kubeconfig: {
    flag: "kubeconfig",
    env: "KUBECONFIG",
    kind: "string",
    placeholder: "<path>",
    defaultText: '"" (in-cluster ServiceAccount)',
    description:
      "kubeconfig file to reach the API server with; empty to use the pod's ServiceAccount.",
    expected: "a file path, or empty for the in-cluster configuration",
    fix: "set the path of a kubeconfig file",
  },
  criSocketPath: {
    flag: "cri-socket",
    kind: "string",
    placeholder: "<path>",
    defaultText: `first existing of ${
      CRI_SOCKET_CANDIDATES.join(", ")
    }; else ${DEFAULT_CRI_SOCKET}`,
    description: "Unix socket of the CRI runtime (containerd or CRI-O).",
    expected: "an absolute path",
    fix: `set the socket's full path, such as ${DEFAULT_CRI_SOCKET}`,
    emptyIsUnset: true,
  },
  multusSocketPath: {
    flag: "multus-socket",
    kind: "string",
    placeholder: "<path>",
    defaultText: `first existing of ${
      MULTUS_SOCKET_CANDIDATES.join(", ")
    }; else ${DEFAULT_MULTUS_SOCKET}`,
    description: "Unix socket of the multus thick daemon's API (POST /delegate).",
    expected: "an absolute path",
    fix: "set the socket's full path, such as /run/multus/multus.sock",
    emptyIsUnset: true,
  },
  stateDir: {
    flag: "state-dir",
    kind: "string",
    placeholder: "<path>",
    defaultText: DEFAULT_STATE_DIR,
    description:
      "Node-local directory where each ADD is journaled until network-status records it, so that one cut short by a crash or a timeout is released later. Must persist across restarts of the agent (a hostPath).",
    expected: "an absolute path without commas",
    fix: `set a directory's full path, such as ${DEFAULT_STATE_DIR}`,
    emptyIsUnset: true,
  },
  workers: {
    flag: "workers",
    kind: "integer",
    placeholder: "<n>",
    defaultText: "8",
    description: "Pods reconciled at the same time; one pod's operations always run one at a time.",
    expected: "an integer from 1 to 256",
    fix: "set a number such as 8",
  },
  criTimeoutMs: {
    flag: "cri-timeout-ms",
    kind: "integer",
    placeholder: "<ms>",
    defaultText: "5000",
    description: "Deadline of each CRI call (sandbox lookup), in milliseconds.",
    expected: "an integer from 1 to 600000 (milliseconds)",
    fix: "set a number such as 5000",
  },
  delegateTimeoutMs: {
    flag: "delegate-timeout-ms",
    kind: "integer",
    placeholder: "<ms>",
    defaultText: "60000",
    description:
      "Deadline of each multus /delegate call (one CNI ADD or DEL), in milliseconds. Generous on purpose: multus keeps running a plugin after its caller gives up, so a retry that comes too early races the first attempt.",
    expected: "an integer from 1 to 3600000 (milliseconds)",
    fix: "set a number such as 60000",
  },
  resyncPeriodSeconds: {
    flag: "resync-period-seconds",
    kind: "integer",
    placeholder: "<s>",
    defaultText: "300",
    description: "Every pod is reconciled again this often, even without a change; 0 turns it off.",
    expected: "an integer from 0 to 86400 (seconds)",
    fix: "set a number such as 300, or 0 to turn periodic resync off",
  },
  retryBaseDelayMs: {
    flag: "retry-base-delay-ms",
    kind: "integer",
    placeholder: "<ms>",
    defaultText: "100",
    description:
      "First retry delay after a failed reconcile; it doubles (with jitter) on each failure.",
    expected: "an integer from 1 to 3600000 (milliseconds)",
    fix: "set a number such as 100",
  },
  retryMaxDelayMs: {
    flag: "retry-max-delay-ms",
    kind: "integer",
    placeholder: "<ms>",
    defaultText: "60000",
    description: "Cap of the retry delay; retries never stop, they only slow down to this.",
    expected: "an integer from 1 to 86400000 (milliseconds)",
    fix: "set a number such as 60000",
  },
  shutdownTimeoutSeconds: {
    flag: "shutdown-timeout-seconds",
    kind: "integer",
    placeholder: "<s>",
    defaultText: "8",
    description:
      "On SIGTERM or SIGINT, in-flight work may finish for this long; keep it below the pod's terminationGracePeriodSeconds (10).",
    expected: "an integer from 0 to 3600 (seconds)",
    fix: "set a number such as 8",
  },
  metricsAddress: {
    flag: "metrics-address",
    kind: "string",
    placeholder: "<host:port>",
    defaultText: "0.0.0.0:9091",
    description:
      'Address serving /metrics, /healthz and /readyz; "" turns the endpoints off. 9091 keeps clear of Prometheus (9090), node-exporter (9100) and the kubelet (10248/10250).',
    expected: 'host:port (such as 0.0.0.0:9091 or [::]:9091), or "" for off',
    fix: "set an address such as 0.0.0.0:9091",
  },
  logLevel: {
    flag: "log-level",
    kind: "string",
    placeholder: "<level>",
    defaultText: "info",
    description: `Least important log lines written: ${LOG_LEVELS.join(", ")}.`,
    expected: `one of ${LOG_LEVELS.join(", ")}`,
    fix: "set info, or debug for more detail",
  },
  logFormat: {
    flag: "log-format",
    kind: "string",
    placeholder: "<format>",
    defaultText: "json",
    description: "json (klog-style structured lines) or text (for a terminal).",
    expected: `one of ${LOG_FORMATS.join(", ")}`,
    fix: "set json or text",
  },
  namespaceIsolation: {
    flag: "namespace-isolation",
    kind: "boolean",
    placeholder: "",
    defaultText: "false",
    description:
      "Like multus's namespaceIsolation: a pod may attach only NetworkAttachmentDefinitions of its own namespace or of allowedNadNamespaces.",
    expected: "true or false",
    fix: "set true or false",
  },
  allowedNadNamespaces: {
    flag: "allowed-nad-namespaces",
    kind: "list",
    placeholder: "<ns,...>",
    defaultText: "default",
    description:
      "With namespace isolation, namespaces whose NetworkAttachmentDefinitions every pod may use (multus's globalNamespaces). Comma-separated in a flag or variable; a JSON list or a comma-separated string in the file.",
    expected: "a list of namespace names",
    fix: 'set namespace names such as ["default"]',
  },
  dryRun: {
    flag: "dry-run",
    kind: "boolean",
    placeholder: "",
    defaultText: "false",
    description:
      "Print each pod's plan and act on nothing (no CNI call, no status write, no event).",
    expected: "true or false",
    fix: "set true or false",
  },
  once: {
    flag: "once",
    kind: "boolean",
    placeholder: "",
    defaultText: "false",
    description: "Reconcile every pod on the node once, then exit.",
    expected: "true or false",
    fix: "set true or false",
  },
} as const satisfies Record<ConfigKey, SpecBody>;

/** The defaults; `nodeName` has none and the sockets are detected first. */
export const DEFAULTS: Config = {
  nodeName: "",
  kubeconfig: "",
  criSocketPath: DEFAULT_CRI_SOCKET,
  multusSocketPath: DEFAULT_MULTUS_SOCKET,
  stateDir: DEFAULT_STATE_DIR,
  workers: 8,
  criTimeoutMs: 5_000,
  delegateTimeoutMs: 60_000,
  resyncPeriodSeconds: 300,
  retryBaseDelayMs: 100,
  retryMaxDelayMs: 60_000,
  shutdownTimeoutSeconds: 8,
  metricsAddress: "0.0.0.0:9091",
  logLevel: "info",
  logFormat: "json",
  namespaceIsolation: false,
  allowedNadNamespaces: ["default"],
  dryRun: false,
  once: false,
};

function envName(key: string): string {
  return "DNC_" + key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Every setting, in help order. */
export const CONFIG_KEYS: readonly ConfigKeySpec[] = (Object.keys(SPECS) as ConfigKey[]).map(
  (key) => {
    const body: SpecBody = SPECS[key];
    const detected = key === "criSocketPath" || key === "multusSocketPath";
    return {
      ...body,
      key,
      env: body.env ?? envName(key),
      default: key === "nodeName" || detected ? undefined : DEFAULTS[key],
      emptyIsUnset: body.emptyIsUnset ?? false,
    };
  },
);

const BY_KEY = new Map(CONFIG_KEYS.map((s) => [s.key, s]));

/** A configuration that cannot be used; the process exits with {@linkcode ConfigError.exitCode}. */
export class ConfigError extends Error {
  /** The exit code (1, as the original controller uses for configuration errors). */
  readonly exitCode: number = 1;
  /** Each problem found, one sentence each. */
  readonly problems: readonly string[];
  /** Creates an error listing `problems`. */
  constructor(problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** The flags that are not settings: `--config`, `--help`, `--version`. */
export const EXTRA_FLAGS: readonly (HelpEntry & FlagSpec)[] = [
  {
    name: "config",
    flag: "config",
    kind: "value",
    placeholder: "<path>",
    description:
      "JSON config file. A missing file at the default path is fine (defaults apply); a missing file named explicitly is an error.",
    defaultText: DEFAULT_CONFIG_PATH,
    env: CONFIG_PATH_ENV,
  },
  {
    name: "help",
    flag: "help",
    kind: "boolean",
    placeholder: "",
    description: "Print this help and exit (also -h).",
    defaultText: "false",
  },
  {
    name: "version",
    flag: "version",
    kind: "boolean",
    placeholder: "",
    description: "Print the version and exit.",
    defaultText: "false",
  },
];

/** Every flag the program accepts. */
export const FLAG_SPECS: readonly FlagSpec[] = [
  ...EXTRA_FLAGS.map(({ name, kind }) => ({ name, kind })),
  ...CONFIG_KEYS.map((s) =>
    ({ name: s.flag, kind: s.kind === "boolean" ? "boolean" : "value" }) as const
  ),
  { name: "h", kind: "boolean" },
];

/** The flags of a command line, plus whether help or the version was asked for. */
export interface CommandLine {
  /** `--help` or `-h` was given. */
  help: boolean;
  /** `--version` was given. */
  version: boolean;
  /** Every flag, by name without dashes. */
  flags: ParsedFlags;
}

/** Parses `args`; throws a `UsageError` (exit code 2) for anything it cannot parse. */
export function parseCommandLine(args: readonly string[]): CommandLine {
  const flags = parseFlags(args, FLAG_SPECS);
  return {
    help: flags.get("help") === true || flags.get("h") === true,
    version: flags.get("version") === true,
    flags,
  };
}

const SUMMARY =
  "Hot-plugs and unplugs secondary network interfaces into running pods on this node when their k8s.v1.cni.cncf.io/networks annotation changes, through the multus thick daemon and the CRI runtime.";

function helpEntries(): HelpEntry[] {
  return [
    ...EXTRA_FLAGS.slice(0, 1),
    ...CONFIG_KEYS.map((s) => ({
      flag: s.flag,
      placeholder: s.placeholder,
      description: s.description,
      defaultText: s.defaultText,
      env: s.env,
      fileKey: s.key,
    })),
    ...EXTRA_FLAGS.slice(1),
  ];
}

/** The `--help` text: every flag and config key, with its default and environment variable. */
export function helpText(): string {
  return renderHelp(helpEntries(), SUMMARY);
}

/** The settings reference as a Markdown table (the README's configuration section). */
export function referenceMarkdown(): string {
  return renderReference(helpEntries());
}

/** Where a value came from, for error messages and the effective-config log line. */
export type Origin =
  | { kind: "flag"; flag: string }
  | { kind: "env"; name: string }
  | { kind: "file"; path: string }
  | { kind: "detected"; path: string }
  | { kind: "default" };

/** A short human description of `origin`, such as `flag --workers` or `config /etc/x.json`. */
export function describeOrigin(origin: Origin): string {
  switch (origin.kind) {
    case "flag":
      return `flag --${origin.flag}`;
    case "env":
      return `environment ${origin.name}`;
    case "file":
      return `config ${origin.path}`;
    case "detected":
      return "detected";
    case "default":
      return "default";
  }
}

/** What {@linkcode loadConfig} reads; every part is injectable for tests. */
export interface LoadOptions {
  /** The command-line arguments (without the program name). */
  args: readonly string[];
  /** The environment (see {@linkcode readEnvironment}). */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads a file as text; throws `Deno.errors.NotFound` when it does not exist. */
  readFile?: (path: string) => string;
  /** Whether a path exists (socket detection); see {@linkcode grantedExists}. */
  exists?: (path: string) => boolean;
}

/** The result of {@linkcode loadConfig}. */
export interface LoadedConfig {
  /** The effective configuration. */
  config: Config;
  /** Things worth logging that do not stop the program (unknown keys, sockets not found). */
  warnings: string[];
  /** Where each setting came from. */
  origins: Record<ConfigKey, Origin>;
  /** The config file path that was used (or would have been, when the default is missing). */
  configPath: string;
  /** Whether a config file was actually read. */
  configRead: boolean;
}

/**
 * Whether `path` exists, looking only at paths this process may read: without a read grant the
 * path counts as absent and is never touched, so a sandboxed process never hits `NotCapable`
 * (and an interactive one never prompts).
 */
export function grantedExists(path: string): boolean {
  try {
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return false;
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The first of `candidates` that `exists`, or undefined. */
export function detectSocket(
  candidates: readonly string[],
  exists: (path: string) => boolean,
): string | undefined {
  return candidates.find((p) => exists(p));
}

/**
 * The process environment as far as this process may see it: all of it when allowed, else
 * only the granted variables (with `--ignore-env` the rest read as unset).
 */
export function readEnvironment(): Record<string, string | undefined> {
  try {
    return Deno.env.toObject();
  } catch {
    const out: Record<string, string | undefined> = {};
    for (const name of [CONFIG_PATH_ENV, ...CONFIG_KEYS.map((s) => s.env)]) {
      try {
        out[name] = Deno.env.get(name);
      } catch {
        // Not granted: treat as unset.
      }
    }
    return out;
  }
}

function defaultReadFile(path: string): string {
  return Deno.readTextFileSync(path);
}

/** Converts a raw flag or environment string to the kind of value `spec` holds. */
function fromString(spec: ConfigKeySpec, raw: string): unknown {
  const s = raw.trim();
  switch (spec.kind) {
    case "integer":
      return /^[+-]?\d+(\.\d+)?$/.test(s) ? Number(s) : raw;
    case "boolean": {
      const v = s.toLowerCase();
      if (v === "true" || v === "1" || v === "yes") return true;
      if (v === "false" || v === "0" || v === "no") return false;
      return raw;
    }
    case "list":
      return s.split(",").map((x) => x.trim()).filter((x) => x !== "");
    case "string":
      return raw;
  }
}

/** Converts a JSON value from the file; lists may also be comma-separated strings. */
function fromJson(spec: ConfigKeySpec, value: unknown): unknown {
  if (spec.kind === "list" && typeof value === "string") return fromString(spec, value);
  return value;
}

function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound ||
    (err instanceof Error && (err as { code?: string }).code === "ENOENT");
}

function readConfigFile(
  path: string,
  explicit: boolean,
  origin: string,
  readFile: (path: string) => string,
): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    if (isNotFound(err)) {
      if (!explicit) return undefined;
      throw new ConfigError([
        `config file ${path} (from ${origin}) does not exist: create it, or point ${origin} at an existing file`,
      ]);
    }
    if (err instanceof Deno.errors.NotCapable) {
      throw new ConfigError([
        `config file ${path} may not be read by this process: grant --allow-read=${path} (deno task start does this from lib/process/permissions.ts)`,
      ]);
    }
    throw new ConfigError([
      `cannot read config file ${path}: ${
        err instanceof Error ? err.message : String(err)
      }; check the path and its permissions`,
    ]);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([
      `config ${path} is not valid JSON (${
        err instanceof Error ? err.message : String(err)
      }): fix the file; it must hold one object such as {"criSocketPath": "${DEFAULT_CRI_SOCKET}"}`,
    ]);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError([
      `config ${path} holds ${
        jsonType(doc)
      }, not an object of settings: write an object such as {"criSocketPath": "${DEFAULT_CRI_SOCKET}"}`,
    ]);
  }
  return doc as Record<string, unknown>;
}

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * The config file to read: `--config` > `DNC_CONFIG` > {@linkcode DEFAULT_CONFIG_PATH}, and
 * what named it (undefined for the default path, whose absence is not an error).
 */
export function configFileOf(
  flags: ParsedFlags,
  env: Readonly<Record<string, string | undefined>>,
): { path: string; origin?: "--config" | typeof CONFIG_PATH_ENV } {
  const flagPath = flags.get("config");
  if (typeof flagPath === "string") return { path: flagPath, origin: "--config" };
  const envPath = env[CONFIG_PATH_ENV];
  if (envPath !== undefined && envPath !== "") return { path: envPath, origin: CONFIG_PATH_ENV };
  return { path: DEFAULT_CONFIG_PATH };
}

/**
 * Loads the configuration from the command line, the environment, the config file and the
 * defaults, in that order of precedence. Throws `UsageError` (exit code 2) for a command line
 * that cannot be parsed and {@linkcode ConfigError} (exit code 1) for anything invalid, naming
 * each bad key, its value, where it came from, and what to write instead.
 */
export function loadConfig(options: LoadOptions): LoadedConfig {
  const { env } = options;
  const readFile = options.readFile ?? defaultReadFile;
  const exists = options.exists ?? grantedExists;
  const { flags } = parseCommandLine(options.args);
  const warnings: string[] = [];
  const problems: string[] = [];

  const { path: configPath, origin: pathOrigin } = configFileOf(flags, env);
  if (configPath === "") {
    throw new ConfigError([
      `--config is empty: name a JSON config file, or leave the flag out to use ${DEFAULT_CONFIG_PATH}`,
    ]);
  }
  const file = readConfigFile(configPath, pathOrigin !== undefined, pathOrigin ?? "", readFile);

  const values: Partial<Record<ConfigKey, unknown>> = {};
  const origins = {} as Record<ConfigKey, Origin>;
  const set = (spec: ConfigKeySpec, value: unknown, origin: Origin, subject: string) => {
    const parsed = ConfigSchema.shape[spec.key].safeParse(value);
    if (!parsed.success) {
      // A number or boolean written as a JSON string in the file: say so.
      const quoted = origin.kind === "file" && typeof value === "string" &&
        (spec.kind === "integer" || spec.kind === "boolean") &&
        ConfigSchema.shape[spec.key].safeParse(fromString(spec, value)).success;
      problems.push(
        `${describeOrigin(origin)}: ${subject}${show(value)} is not ${spec.expected}; ${
          quoted ? `write it without quotes: ${value.trim()}` : spec.fix
        }`,
      );
      return;
    }
    values[spec.key] = parsed.data;
    origins[spec.key] = origin;
  };

  // Lowest precedence first, so that later sources overwrite earlier ones.
  if (file) {
    for (const [key, value] of Object.entries(file)) {
      const spec = BY_KEY.get(key as ConfigKey);
      if (!spec) {
        const guess = closest(key, BY_KEY.keys());
        warnings.push(
          `config ${configPath}: unknown key ${show(key)} ignored; ${
            guess ? `did you mean ${show(guess)}? ` : ""
          }known keys: ${[...BY_KEY.keys()].join(", ")}`,
        );
        continue;
      }
      if (value === null || (value === "" && spec.emptyIsUnset)) continue;
      set(spec, fromJson(spec, value), { kind: "file", path: configPath }, `${show(key)}: `);
    }
  }

  const knownEnv = new Set([CONFIG_PATH_ENV, ...CONFIG_KEYS.map((s) => s.env)]);
  for (const name of Object.keys(env)) {
    if (name.startsWith("DNC_") && !knownEnv.has(name)) {
      const guess = closest(name, [...knownEnv].filter((n) => n.startsWith("DNC_")));
      warnings.push(
        `environment ${name} is not a known setting and is ignored${
          guess ? `; did you mean ${guess}?` : ""
        }`,
      );
    }
  }
  for (const spec of CONFIG_KEYS) {
    let raw = env[spec.env];
    if (raw === undefined || raw === "") continue;
    if (spec.key === "kubeconfig" && raw.includes(":")) {
      const first = raw.split(":").find((p) => p !== "") ?? "";
      warnings.push(
        `environment KUBECONFIG lists several files (${raw}); only the first, ${first}, is used: merge them into one file or pass --kubeconfig`,
      );
      raw = first;
    }
    set(spec, fromString(spec, raw), { kind: "env", name: spec.env }, "");
  }

  for (const spec of CONFIG_KEYS) {
    const raw = flags.get(spec.flag);
    if (raw === undefined) continue;
    if (typeof raw === "boolean") {
      set(spec, raw, { kind: "flag", flag: spec.flag }, "");
      continue;
    }
    if (raw === "" && spec.emptyIsUnset) continue;
    set(spec, fromString(spec, raw), { kind: "flag", flag: spec.flag }, "");
  }

  if (problems.length > 0) throw new ConfigError(problems);

  // Sockets that no source set: the first existing candidate, else the original's default.
  const sockets = [
    ["criSocketPath", CRI_SOCKET_CANDIDATES, "CRI runtime"],
    ["multusSocketPath", MULTUS_SOCKET_CANDIDATES, "multus"],
  ] as const;
  for (const [key, candidates, what] of sockets) {
    if (values[key] !== undefined) continue;
    const found = detectSocket(candidates, exists);
    if (found !== undefined) {
      values[key] = found;
      origins[key] = { kind: "detected", path: found };
    } else {
      values[key] = DEFAULTS[key];
      origins[key] = { kind: "default" };
      warnings.push(
        `no ${what} socket found at ${candidates.join(", ")}; using ${
          DEFAULTS[key]
        }: set ${key} in the config file or --${BY_KEY.get(key)!.flag}`,
      );
    }
  }

  for (const spec of CONFIG_KEYS) {
    if (values[spec.key] === undefined) {
      values[spec.key] = structuredClone(DEFAULTS[spec.key]);
      origins[spec.key] = { kind: "default" };
    }
  }

  if (values.nodeName === "") {
    problems.push(
      `the node name is not set: set NODE_NAME (the DaemonSet sets it from spec.nodeName), pass --node-name, or set "nodeName" in ${configPath}`,
    );
  }
  const base = values.retryBaseDelayMs as number;
  const max = values.retryMaxDelayMs as number;
  if (max < base) {
    problems.push(
      `retryMaxDelayMs ${max} (${
        describeOrigin(origins.retryMaxDelayMs)
      }) is below retryBaseDelayMs ${base} (${
        describeOrigin(origins.retryBaseDelayMs)
      }): make the maximum at least the base delay`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const config = ConfigSchema.parse(values);
  return { config, warnings, origins, configPath, configRead: file !== undefined };
}
