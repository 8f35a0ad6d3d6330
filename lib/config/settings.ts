/**
 * The table of settings ({@linkcode CONFIG_KEYS}): for each one its config-file key, flag,
 * environment variable, default and documentation, and the zod schema every value is checked
 * with ({@linkcode ConfigSchema}). The JSON config file, the environment, the command line
 * (`load.ts`), `--help` and the README reference (`help.ts`) are all driven by it.
 *
 * The config file keeps the original controller's keys (`criSocketPath`, `multusSocketPath`),
 * so its ConfigMap works unchanged. When no source sets a socket path, the first existing
 * candidate socket is used ({@linkcode CRI_SOCKET_CANDIDATES},
 * {@linkcode MULTUS_SOCKET_CANDIDATES}).
 *
 * @module
 */
import { z } from "zod";
import { LOG_LEVELS, type LogFormat, type LogLevel } from "../base/log.ts";
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

/** A configuration key (a key of the JSON config file). */
export type ConfigKey = keyof Config;

/** A complete, validated configuration; {@linkcode CONFIG_KEYS} documents each setting. */
export interface Config {
  /** The node this agent serves. */
  nodeName: string;
  /** kubeconfig path; empty for the in-cluster ServiceAccount. */
  kubeconfig: string;
  /** The CRI runtime's socket. */
  criSocketPath: string;
  /** multus' socket. */
  multusSocketPath: string;
  /** Where the attachment journal lives. */
  stateDir: string;
  /** Pods reconciled at the same time. */
  workers: number;
  /** Deadline of each CRI call, in ms. */
  criTimeoutMs: number;
  /** Deadline of each delegate call, in ms. */
  delegateTimeoutMs: number;
  /** Period of the resync, in seconds (0: off). */
  resyncPeriodSeconds: number;
  /** Each attachment is checked for drift (CNI CHECK) this often, in seconds (0: off). */
  driftCheckIntervalSeconds: number;
  /** Whether a drifted attachment is released and added again (else only reported). */
  driftRepair: boolean;
  /** First retry delay, in ms. */
  retryBaseDelayMs: number;
  /** Largest retry delay, in ms. */
  retryMaxDelayMs: number;
  /** Time in-flight work may take to finish at shutdown, in seconds. */
  shutdownTimeoutSeconds: number;
  /** Address of /metrics, /healthz and /readyz; "" for off. */
  metricsAddress: string;
  /** Least important log lines written. */
  logLevel: LogLevel;
  /** Log line format. */
  logFormat: LogFormat;
  /** Whether pods may attach NADs of their own namespace only (and the allowed ones). */
  namespaceIsolation: boolean;
  /** Namespaces whose NADs every pod may attach under isolation. */
  allowedNadNamespaces: string[];
  /** Plan and print, act on nothing. */
  dryRun: boolean;
  /** Reconcile every pod once, then exit. */
  once: boolean;
}

/** The result of checking a value against a schema: the value, or why not. */
export type Checked<T> = { success: true; data: T } | { success: false };

/** A check of one setting's value. */
export interface SettingSchema<T> {
  /** Checks `value`; the data is the value as the configuration holds it. */
  safeParse(value: unknown): Checked<T>;
}

/** The checks of a whole configuration and of each setting ({@linkcode ConfigSchema}). */
export interface ConfigChecks {
  /** One check per setting. */
  shape: { readonly [K in ConfigKey]: SettingSchema<Config[K]> };
  /** Checks a whole configuration. */
  safeParse(value: unknown): Checked<Config>;
  /** Checks a whole configuration; throws when it is not one. */
  parse(value: unknown): Config;
}

/** The schema of a complete, validated configuration (zod, strict: no unknown key). */
export const ConfigSchema: ConfigChecks = z.strictObject(
  {
    nodeName: z.string().refine((name) => isDnsSubdomain(name, 63)),
    kubeconfig: z.string().regex(/^[^\0]*$/),
    criSocketPath: absolutePath,
    multusSocketPath: absolutePath,
    stateDir: absolutePath.refine((p) => !p.includes(","), "no commas"),
    workers: z.int().min(1).max(256),
    criTimeoutMs: z.int().min(1).max(600_000),
    delegateTimeoutMs: z.int().min(1).max(3_600_000),
    resyncPeriodSeconds: z.int().min(0).max(86_400),
    driftCheckIntervalSeconds: z.int().min(0).max(86_400),
    driftRepair: z.boolean(),
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
  },
);

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
      "Node-local directory where each ADD and each DEL is journaled until network-status records it, so that one cut short by a crash or a timeout is released (or finished) later. Must persist across restarts of the agent (a hostPath).",
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
  driftCheckIntervalSeconds: {
    flag: "drift-check-interval-seconds",
    kind: "integer",
    placeholder: "<s>",
    defaultText: "300",
    description:
      "Every attachment network-status lists on a running pod is checked (CNI CHECK through multus) this often, the checks spread over the interval; the first round starts with the agent. 0 turns the drift check off.",
    expected: "an integer from 0 to 86400 (seconds)",
    fix: "set a number such as 300, or 0 to turn the drift check off",
  },
  driftRepair: {
    flag: "drift-repair",
    kind: "boolean",
    placeholder: "",
    defaultText: "true",
    description:
      "What happens to an attachment the drift check finds missing or altered: true releases it and adds it again with the same request; false only reports it (NetworksReady False, reason Drifted, and an Event).",
    expected: "true or false",
    fix: "set true or false",
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
  driftCheckIntervalSeconds: 300,
  driftRepair: true,
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

/** Every setting by its config key. */
export const SETTINGS_BY_KEY: ReadonlyMap<ConfigKey, ConfigKeySpec> = new Map(
  CONFIG_KEYS.map((s) => [s.key, s]),
);
