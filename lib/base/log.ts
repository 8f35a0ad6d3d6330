/**
 * A small structured logger: JSON lines in klog's structured style, or a text
 * format for people. No dependency and no permission is needed.
 *
 * A JSON line looks like
 * `{"ts":"2026-11-28T03:00:00.000Z","level":"info","msg":"added interface","pod":"ns1/p","interface":"net1"}`;
 * keys are lowerCamelCase, an error goes under `err`. A line stays short whatever it is
 * given: a string value (an error's text included) is cut at {@linkcode MAX_VALUE_LENGTH}
 * characters and a list at {@linkcode MAX_LIST_ITEMS} items, each saying how much there was.
 *
 * @module
 */

/** Log severities, from the most to the least important. */
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
/** `json` for machines (the default in a cluster), `text` for a terminal. */
export type LogFormat = "json" | "text";

/** Key/value pairs attached to a log line. */
export type LogFields = Record<string, unknown>;

/** Where finished lines go; replaceable in tests. */
export type LogSink = (line: string, level: LogLevel) => void;

const encoder = new TextEncoder();

/** Writes error and warn lines to stderr, the rest to stdout. */
export const consoleSink: LogSink = (line, level) => {
  const bytes = encoder.encode(line + "\n");
  if (level === "error" || level === "warn") Deno.stderr.writeSync(bytes);
  else Deno.stdout.writeSync(bytes);
};

/** Renders an error (with its `cause` chain) as one readable string. */
export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause === undefined ? "" : `: ${errorText(err.cause)}`;
    return `${err.message}${cause}`;
  }
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}

/** Longest string value a line carries; longer ones are cut and say how long they were. */
export const MAX_VALUE_LENGTH = 1024;
/** Most items of a list value a line carries; the rest are counted. */
export const MAX_LIST_ITEMS = 16;

function short(text: string): string {
  if (text.length <= MAX_VALUE_LENGTH) return text;
  return `${text.slice(0, MAX_VALUE_LENGTH)}… (${text.length} characters in all)`;
}

/** A field value as a line carries it: errors as text, long strings and lists cut short. */
function plain(value: unknown): unknown {
  if (value instanceof Error) return short(errorText(value));
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string") return short(value);
  if (Array.isArray(value) && value.length > MAX_LIST_ITEMS) {
    return [...value.slice(0, MAX_LIST_ITEMS), `… and ${value.length - MAX_LIST_ITEMS} more`];
  }
  return value;
}

function textValue(value: unknown): string {
  const v = plain(value);
  if (typeof v === "string") return /[\s"=]/.test(v) || v === "" ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}

/** A leveled, structured logger; {@linkcode Logger.with} adds fields to every line. */
export class Logger {
  readonly #rank: number;
  readonly #format: LogFormat;
  readonly #fields: LogFields;
  readonly #sink: LogSink;

  /** Creates a logger that drops lines less important than `level`. */
  constructor(
    options: { level?: LogLevel; format?: LogFormat; fields?: LogFields; sink?: LogSink } = {},
  ) {
    this.#rank = LOG_LEVELS.indexOf(options.level ?? "info");
    this.#format = options.format ?? "json";
    this.#fields = options.fields ?? {};
    this.#sink = options.sink ?? consoleSink;
  }

  /** A logger with the same settings whose lines also carry `fields`. */
  with(fields: LogFields): Logger {
    return new Logger({
      level: LOG_LEVELS[this.#rank],
      format: this.#format,
      fields: { ...this.#fields, ...fields },
      sink: this.#sink,
    });
  }

  /** True when lines of `level` are written (to skip building costly fields). */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= this.#rank;
  }

  /** Logs at error level. */
  error(msg: string, fields?: LogFields): void {
    this.#write("error", msg, fields);
  }
  /** Logs at warn level. */
  warn(msg: string, fields?: LogFields): void {
    this.#write("warn", msg, fields);
  }
  /** Logs at info level. */
  info(msg: string, fields?: LogFields): void {
    this.#write("info", msg, fields);
  }
  /** Logs at debug level. */
  debug(msg: string, fields?: LogFields): void {
    this.#write("debug", msg, fields);
  }

  #write(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const all: LogFields = { ...this.#fields, ...fields };
    const ts = new Date().toISOString();
    if (this.#format === "json") {
      const line: LogFields = { ts, level, msg: short(msg) };
      for (const [k, v] of Object.entries(all)) if (v !== undefined) line[k] = plain(v);
      this.#sink(JSON.stringify(line), level);
      return;
    }
    const parts = [ts, level.toUpperCase().padEnd(5), short(msg)];
    for (const [k, v] of Object.entries(all)) {
      if (v !== undefined) parts.push(`${k}=${textValue(v)}`);
    }
    this.#sink(parts.join(" "), level);
  }
}
