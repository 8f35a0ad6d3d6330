/**
 * The program's command line: every flag it accepts (the settings' flags, plus `--config`,
 * `--help` and `--version`) and the parse of a command line into them.
 *
 * @module
 */
import { type FlagSpec, type HelpEntry, type ParsedFlags, parseFlags } from "./cli.ts";
import { CONFIG_KEYS, CONFIG_PATH_ENV, DEFAULT_CONFIG_PATH } from "./settings.ts";

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
