/**
 * The command line: a small long-flag parser driven by a table of flag descriptions, the
 * "did you mean" helper, and the help and reference renderers built from the same table.
 *
 * Flags are GNU-style long flags: `--name value` and `--name=value`. A single dash is
 * accepted too (`-config=/etc/x.json`), so the original controller's manifest arguments keep
 * working. Boolean flags take no separate value: `--once`, `--once=true`, `--once=false`.
 * `--` ends the flags; positional arguments are refused.
 *
 * @module
 */

/** The program's name, as shown in the help text and in error messages. */
export const PROGRAM = "dynamic-networks-controller";

/** The program's version, printed by `--version`. */
export const VERSION = "0.1.0";

/** What a flag takes. */
export type FlagKind = "value" | "boolean";

/** One command-line flag. */
export interface FlagSpec {
  /** The name without dashes, e.g. `node-name`. */
  name: string;
  /** Whether it takes a value or is a switch. */
  kind: FlagKind;
}

/** A command line that could not be parsed; the process exits with code 2. */
export class UsageError extends Error {
  /** The exit code a usage error ends the process with. */
  readonly exitCode = 2;
  /** Creates a usage error with `message`. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The flags given on a command line: name (without dashes) → raw value (`true` for a switch). */
export type ParsedFlags = Map<string, string | boolean>;

/** The Levenshtein edit distance between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The candidate closest to `word` (case-insensitive, ignoring `-` and `_`), or undefined when
 * none is close enough to be a plausible typo.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  const w = norm(word);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const n = norm(c);
    let d = editDistance(w, n);
    // A word that is a prefix of a candidate (or the reverse) is a near miss.
    if (d > 0 && w.length >= 3 && (n.startsWith(w) || w.startsWith(n))) d = Math.min(d, 1);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(w.length / 3));
  return bestDistance <= limit ? best : undefined;
}

function parseBoolean(flag: string, raw: string): boolean {
  const v = raw.toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new UsageError(
    `flag --${flag}: ${JSON.stringify(raw)} is not a boolean; write --${flag} or --${flag}=false`,
  );
}

/**
 * Parses `args` against `specs`. Throws a {@linkcode UsageError} for an unknown flag (naming
 * the closest known one), a missing value, a value given to a switch, or a positional argument.
 * A flag given twice keeps its last value.
 */
export function parseFlags(args: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out: ParsedFlags = new Map();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      if (i + 1 < args.length) {
        throw new UsageError(
          `unexpected argument ${
            JSON.stringify(args[i + 1])
          }: this program takes only flags; run with --help to list them`,
        );
      }
      break;
    }
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(arg);
    if (!m || arg === "-") {
      throw new UsageError(
        `unexpected argument ${
          JSON.stringify(arg)
        }: this program takes only flags; run with --help to list them`,
      );
    }
    const name = m[1]!;
    const inline = m[2];
    const spec = byName.get(name);
    if (!spec) {
      const guess = closest(name, byName.keys());
      const shown = arg.replace(/=.*$/s, "");
      throw new UsageError(
        guess === undefined
          ? `unknown flag ${shown}: run with --help to list every flag`
          : `unknown flag ${shown}: did you mean --${guess}? Run with --help to list every flag`,
      );
    }
    if (spec.kind === "boolean") {
      out.set(name, inline === undefined ? true : parseBoolean(name, inline));
      continue;
    }
    if (inline !== undefined) {
      out.set(name, inline);
      continue;
    }
    const next = args[i + 1];
    if (next === undefined || (next.startsWith("--") && next.length > 2)) {
      throw new UsageError(`flag --${name} needs a value: write --${name}=<value>`);
    }
    out.set(name, next);
    i++;
  }
  return out;
}

/** One row of the help text and of the reference table. */
export interface HelpEntry {
  /** The flag name without dashes. */
  flag: string;
  /** The value placeholder, e.g. `<path>`; empty for a switch. */
  placeholder: string;
  /** What it does. */
  description: string;
  /** The default, as shown to a reader. */
  defaultText: string;
  /** The environment variable that sets it, if any. */
  env?: string;
  /** The config file key that sets it, if any. */
  fileKey?: string;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** Renders the `--help` text: usage, a summary, and every flag with its default, env and key. */
export function renderHelp(entries: readonly HelpEntry[], summary: string): string {
  const indent = 6;
  const width = 92;
  const out = [
    `Usage: ${PROGRAM} [flags]`,
    "",
    ...wrap(summary, width),
    "",
    "Every setting can come from a flag, an environment variable or the JSON config file;",
    "flags win over the environment, the environment over the file, the file over the defaults.",
    "",
    "Flags:",
  ];
  for (const e of entries) {
    out.push(`  --${e.flag}${e.placeholder === "" ? "" : ` ${e.placeholder}`}`);
    const pad = " ".repeat(indent);
    for (const l of wrap(e.description, width - indent)) out.push(pad + l);
    const where = [`default: ${e.defaultText}`];
    if (e.env) where.push(`env: ${e.env}`);
    if (e.fileKey) where.push(`config key: ${e.fileKey}`);
    for (const l of wrap(where.join("; "), width - indent)) out.push(pad + l);
  }
  return out.join("\n") + "\n";
}

/** Renders the same entries as a Markdown table, for the README. */
export function renderReference(entries: readonly HelpEntry[]): string {
  const cell = (s: string) => s.replace(/\|/g, "\\|");
  const rows = [
    "| flag | config key | environment | default | meaning |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const e of entries) {
    const flag = `\`--${e.flag}${e.placeholder === "" ? "" : ` ${e.placeholder}`}\``;
    const key = e.fileKey ? `\`${e.fileKey}\`` : "";
    const env = e.env ? `\`${e.env}\`` : "";
    rows.push(
      `| ${cell(flag)} | ${key} | ${env} | ${cell(e.defaultText)} | ${cell(e.description)} |`,
    );
  }
  return rows.join("\n") + "\n";
}
