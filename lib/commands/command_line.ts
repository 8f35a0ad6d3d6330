/**
 * The commands for people, beside the agent itself: `networks`, `attach` and `detach`. This
 * module holds their command lines, parsed without I/O, and their `--help` texts, built from
 * the same tables. They run with the user's kubeconfig (never the agent's ServiceAccount or
 * config file) and with their own permission list (`commandGrants` in
 * `lib/process/permissions.ts`).
 *
 * @module
 */
import { closest, PROGRAM, UsageError } from "../config/cli.ts";
import { helpText } from "../config/help.ts";

/** The names of the commands. */
export const COMMAND_NAMES = ["networks", "attach", "detach"] as const;
/** One of {@linkcode COMMAND_NAMES}. */
export type CommandName = typeof COMMAND_NAMES[number];

/** True when `word` (the first argument) names a command. */
export function isCommand(word: string | undefined): word is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(word ?? "");
}

/** One flag of a command. */
interface CommandFlag {
  /** Long name without dashes. */
  name: string;
  /** One-letter form, without the dash. */
  short?: string;
  /** `value` takes a value; `switch` none; `optional` takes one only as `--name=value`. */
  kind: "value" | "switch" | "optional";
  /** How the value is written in the help. */
  value?: string;
  /** What it does. */
  help: string;
}

const COMMON: readonly CommandFlag[] = [
  {
    name: "namespace",
    short: "n",
    kind: "value",
    value: "<namespace>",
    help: "Namespace of the pod (default: the kubeconfig context's namespace, else default).",
  },
  {
    name: "kubeconfig",
    kind: "value",
    value: "<path>",
    help: "Your kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config).",
  },
  {
    name: "context",
    kind: "value",
    value: "<name>",
    help: "Kubeconfig context to use instead of its current-context.",
  },
  { name: "help", short: "h", kind: "switch", help: "Print this help and exit." },
];

const WAIT: CommandFlag = {
  name: "wait",
  kind: "optional",
  value: "[=<timeout>]",
  help:
    "Wait until the pod's NetworksReady condition says the change is done (exit 0) or has failed (exit 1, with its reason), at most <timeout> (default 60s; e.g. 90s, 2m, 500ms; exit 3 when it runs out).",
};

/** What each command takes: its positional arguments, its flags and a sentence about it. */
const COMMANDS: Record<CommandName, { args: string; about: string; flags: CommandFlag[] }> = {
  networks: {
    args: "POD",
    about:
      "Show the networks a pod asks for and those it has: interface, network, state, IPs, MAC and the last error.",
    flags: [
      {
        name: "output",
        short: "o",
        kind: "value",
        value: "table|json",
        help: "Output format (default table).",
      },
      ...COMMON,
    ],
  },
  attach: {
    args: "POD [NAMESPACE/]NAD[@INTERFACE]",
    about:
      "Add one element to the pod's networks annotation, keeping every other element and the annotation's form; the agent then plugs the interface (without @INTERFACE it picks the lowest free netN).",
    flags: [
      {
        name: "ips",
        kind: "value",
        value: "<ip>[,<ip>…]",
        help: "Addresses to request (for IPAM that takes them, such as static).",
      },
      { name: "mac", kind: "value", value: "<mac>", help: "MAC address to request." },
      WAIT,
      ...COMMON,
    ],
  },
  detach: {
    args: "POD INTERFACE",
    about:
      "Remove the element that holds INTERFACE from the pod's networks annotation, keeping every other element and the annotation's form; the agent then unplugs it.",
    flags: [WAIT, ...COMMON],
  },
};

/** A parsed command line of one of the commands. */
export interface CommandLine {
  /** Which command. */
  command: CommandName;
  /** `--help` was given. */
  help: boolean;
  /** Positional arguments after the command name. */
  args: string[];
  /** `-n`/`--namespace`. */
  namespace?: string;
  /** `--kubeconfig`. */
  kubeconfig?: string;
  /** `--context`. */
  context?: string;
  /** `-o`/`--output` (networks). */
  output: "table" | "json";
  /** `--ips` (attach), split on commas. */
  ips?: string[];
  /** `--mac` (attach). */
  mac?: string;
  /** `--wait`: how long to wait in ms; undefined without `--wait`. */
  waitMs?: number;
}

/** The default of `--wait` without a value. */
export const DEFAULT_WAIT_MS = 60_000;

/** Parses a duration such as `90s`, `2m`, `500ms` or `30` (seconds) into milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `${flag}: ${JSON.stringify(text)} is not a duration: write it like 90s, 2m or 500ms`,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  return Math.round(Number(m[1]) * unit);
}

/**
 * Parses `args` (starting with the command's name) into a {@linkcode CommandLine}. `program`
 * is how usage errors name the program ({@linkcode PLUGIN_PROGRAM} for the kubectl plugin).
 */
export function parseCommand(args: readonly string[], program: string = PROGRAM): CommandLine {
  const [name, ...rest] = args;
  if (!isCommand(name)) {
    throw new UsageError(
      `unknown command ${JSON.stringify(name ?? "")}: use ${COMMAND_NAMES.join(", ")}`,
    );
  }
  const spec = COMMANDS[name];
  const line: CommandLine = { command: name, help: false, args: [], output: "table" };
  const byName = new Map(spec.flags.map((f) => [f.name, f]));
  const byShort = new Map(spec.flags.flatMap((f) => f.short ? [[f.short, f]] : []));
  let positionalOnly = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (positionalOnly || !arg.startsWith("-") || arg === "-") {
      line.args.push(arg);
      continue;
    }
    if (arg === "--") {
      positionalOnly = true;
      continue;
    }
    const long = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    const short = /^-([a-z])(.*)$/s.exec(arg);
    const flag = long ? byName.get(long[1]!) : short ? byShort.get(short[1]!) : undefined;
    if (!flag) {
      const word = long?.[1] ?? arg.replace(/^-+/, "");
      const guess = closest(word, byName.keys());
      throw new UsageError(
        `${name}: unknown flag ${arg}${
          guess ? `: did you mean --${guess}?` : ""
        } (see ${program} ${name} --help)`,
      );
    }
    let value: string | undefined = long
      ? long[2]
      : short![2] === ""
      ? undefined
      : short![2]!.replace(/^=/, "");
    if (flag.kind === "switch") {
      if (value !== undefined) throw new UsageError(`${name}: --${flag.name} takes no value`);
    } else if (flag.kind === "value" && value === undefined) {
      value = rest[++i];
      if (value === undefined || value === "") {
        throw new UsageError(
          `${name}: --${flag.name} needs a value: write --${flag.name}=${flag.value}`,
        );
      }
    }
    apply(line, flag.name, value);
  }
  if (line.help) return line;
  const wanted = spec.args.split(" ").length;
  if (line.args.length !== wanted) {
    throw new UsageError(
      `${name}: expected ${spec.args}, got ${
        line.args.length === 0 ? "nothing" : line.args.map((a) => JSON.stringify(a)).join(" ")
      } (see ${program} ${name} --help)`,
    );
  }
  return line;
}

function apply(line: CommandLine, flag: string, value: string | undefined): void {
  switch (flag) {
    case "help":
      line.help = true;
      return;
    case "namespace":
      line.namespace = value;
      return;
    case "kubeconfig":
      line.kubeconfig = value;
      return;
    case "context":
      line.context = value;
      return;
    case "output":
      if (value !== "table" && value !== "json") {
        throw new UsageError(
          `networks: -o ${JSON.stringify(value)} is not a format: use -o table or -o json`,
        );
      }
      line.output = value;
      return;
    case "ips":
      line.ips = value!.split(",").map((s) => s.trim()).filter((s) => s !== "");
      return;
    case "mac":
      line.mac = value;
      return;
    case "wait":
      line.waitMs = value === undefined ? DEFAULT_WAIT_MS : parseDuration(value, "--wait");
      return;
  }
}

/**
 * The `--help` text of `command`: its usage, what it does, and every flag. `program` is how
 * the usage line names the program ({@linkcode PLUGIN_PROGRAM} for the kubectl plugin).
 */
export function commandHelp(command: CommandName, program: string = PROGRAM): string {
  const spec = COMMANDS[command];
  const lines = [
    `Usage: ${program} ${command} ${spec.args} [flags]`,
    "",
    spec.about,
    "",
    "Flags:",
  ];
  for (const f of spec.flags) {
    const names = `${f.short ? `-${f.short}, ` : "    "}--${f.name}${
      f.value ? (f.kind === "optional" ? f.value : ` ${f.value}`) : ""
    }`;
    lines.push(`  ${names.padEnd(34)} ${f.help}`);
  }
  lines.push(
    "",
    "Exit codes: 0 done, 1 failed (the reason is printed), 2 unusable command line, 3 timed out waiting.",
  );
  return lines.join("\n") + "\n";
}

/** The flags of `command` as `--name` words (for the README check). */
export function commandFlags(command: CommandName): string[] {
  return COMMANDS[command].flags.map((f) => `--${f.name}`);
}

/** A line per command for the program's `--help`, each starting with `program`. */
export function commandsSummary(program: string = PROGRAM): string {
  return COMMAND_NAMES.map((c) => `  ${program} ${c} ${COMMANDS[c].args}`).join("\n");
}

/**
 * The program's `--help`: the agent's flags and config keys (`config/help.ts`), then the
 * commands for people (each has its own `--help`).
 */
export function programHelp(): string {
  return `${
    helpText().replace(/\n$/, "")
  }\n\nCommands for people who edit pod networks (each has its own --help):\n${commandsSummary()}\n`;
}

/**
 * The user's kubeconfig for `line`, as kubectl finds it: `--kubeconfig`, else the first file
 * of `$KUBECONFIG`, else `$HOME/.kube/config`. Never the agent's ServiceAccount nor its config
 * file: these commands act as the person who runs them.
 */
export function userKubeconfig(
  line: Pick<CommandLine, "kubeconfig">,
  env: Readonly<Record<string, string | undefined>>,
): string {
  if (line.kubeconfig) return line.kubeconfig;
  const first = (env.KUBECONFIG ?? "").split(":").find((p) => p !== "");
  if (first) return first;
  if (env.HOME) return `${env.HOME}/.kube/config`;
  throw new UsageError(
    "no kubeconfig: pass --kubeconfig <path>, or set KUBECONFIG (or HOME, for ~/.kube/config)",
  );
}

/** Environment variables the commands read. */
export const COMMAND_ENV: readonly string[] = ["KUBECONFIG", "HOME"];

/**
 * The first argument that makes `main.ts` the kubectl plugin: the plugin binary is compiled
 * with it baked in (`deno compile … main.ts kubectl`), so `kubectl hotplug attach …` runs
 * `main.ts kubectl attach …`. It never starts the agent.
 */
export const KUBECTL_MODE = "kubectl";

/** The plugin's file name; kubectl finds `kubectl-hotplug` on `$PATH` as `kubectl hotplug`. */
export const PLUGIN_NAME = "kubectl-hotplug";

/** How people type the plugin, and how its help and errors name it. */
export const PLUGIN_PROGRAM = "kubectl hotplug";

/**
 * The kubectl plugin's `--help` (also printed by `kubectl hotplug` alone): its commands, an
 * example of each, and where each command's own `--help` is.
 */
export function pluginHelp(): string {
  const p = PLUGIN_PROGRAM;
  return [
    `Usage: ${p} <command> [arguments] [flags]`,
    "",
    "Plugs secondary network interfaces into running pods, and unplugs them, by editing the pod's",
    "k8s.v1.cni.cncf.io/networks annotation; the dynamic-networks-controller agent on the pod's",
    "node carries the change out. Acts as you, with your kubeconfig.",
    "",
    "Commands (each has its own --help):",
    commandsSummary(p),
    "",
    "Examples:",
    `  ${p} attach app macvlan-net@net1 --ips 10.10.0.5/24 --wait`,
    `  ${p} networks app -n default`,
    `  ${p} detach app net1 --wait`,
    "",
    "Flags:",
    `  -h, --help                           Print this help and exit.`,
    `      --version                        Print the version and exit.`,
    "",
    "Exit codes: 0 done, 1 failed (the reason is printed), 2 unusable command line, 3 timed out waiting.",
    "",
  ].join("\n");
}
