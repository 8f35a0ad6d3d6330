/**
 * Loading the configuration: the command line, the environment, the JSON config file and the
 * defaults, in that order of precedence (flags > environment > config file > defaults), each
 * value checked against the settings table (`settings.ts`). When no source sets a socket path,
 * the first existing candidate socket is used; only paths the process may read are looked at,
 * so a sandboxed process never trips over its permissions.
 *
 * @module
 */
import { jsonType } from "../base/json.ts";
import { closest, type ParsedFlags } from "./cli.ts";
import { parseCommandLine } from "./flags.ts";
import {
  type Config,
  CONFIG_KEYS,
  CONFIG_PATH_ENV,
  type ConfigKey,
  type ConfigKeySpec,
  ConfigSchema,
  CRI_SOCKET_CANDIDATES,
  DEFAULT_CONFIG_PATH,
  DEFAULT_CRI_SOCKET,
  DEFAULTS,
  MULTUS_SOCKET_CANDIDATES,
  SETTINGS_BY_KEY,
} from "./settings.ts";

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
      const spec = SETTINGS_BY_KEY.get(key as ConfigKey);
      if (!spec) {
        const guess = closest(key, SETTINGS_BY_KEY.keys());
        warnings.push(
          `config ${configPath}: unknown key ${show(key)} ignored; ${
            guess ? `did you mean ${show(guess)}? ` : ""
          }known keys: ${[...SETTINGS_BY_KEY.keys()].join(", ")}`,
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
        }: set ${key} in the config file or --${SETTINGS_BY_KEY.get(key)!.flag}`,
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
