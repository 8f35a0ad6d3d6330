/**
 * The three Prometheus metric kinds (counters, gauges, histograms), each a family of series
 * keyed by label values, and the text format's escaping and number formatting. A `Registry`
 * (`metrics.ts`) declares and renders them.
 *
 * @module
 */

/** Prometheus' default histogram buckets, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** A value for each label name `L` of a metric. */
export type LabelValues<L extends string> = { readonly [K in L]: string };

/** What every metric is declared with. */
export interface MetricOptions<L extends string> {
  /** Metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, with base units and `_total` for counters. */
  name: string;
  /** One line describing the metric. */
  help: string;
  /** Label names; keep their values low-cardinality (never a pod name). */
  labelNames?: readonly L[];
}

/** A histogram's declaration: {@linkcode MetricOptions} plus its bucket bounds. */
export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds, strictly increasing; `+Inf` is added (default {@linkcode DEFAULT_BUCKETS}). */
  buckets?: readonly number[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Escapes HELP text: backslash and line feed. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Formats a sample value: `+Inf`, `-Inf`, `NaN`, or the shortest decimal form. */
export function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i] ?? "")}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function compareValues(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? "";
    const y = b[i] ?? "";
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** What the three metric kinds share: name, help, labels and a series per label set. */
export abstract class Metric<L extends string, S> {
  /** The metric's name. */
  readonly name: string;
  /** The metric's help text. */
  readonly help: string;
  /** The metric's label names, in declaration order. */
  readonly labelNames: readonly L[];
  /** The `# TYPE` of the metric. */
  abstract readonly type: "counter" | "gauge" | "histogram";
  readonly #series = new Map<string, { values: string[]; state: S }>();

  /** Declares the metric; `reserved` label names (`le` of histograms) are refused. */
  constructor(options: MetricOptions<L>, reserved: readonly string[]) {
    if (!METRIC_NAME.test(options.name)) {
      throw new RangeError(
        `metric name "${options.name}" is invalid; use letters, digits, "_" and ":" and do not start with a digit`,
      );
    }
    const names = options.labelNames ?? [];
    const seen = new Set<string>();
    for (const label of names) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || reserved.includes(label)) {
        throw new RangeError(
          `metric ${options.name}: label name "${label}" is invalid or reserved; use letters, digits and "_", not "__" first${
            reserved.length ? ` and not ${reserved.join(", ")}` : ""
          }`,
        );
      }
      if (seen.has(label)) {
        throw new RangeError(`metric ${options.name}: label "${label}" is declared twice`);
      }
      seen.add(label);
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = names;
  }

  /** A fresh state for a new series. */
  protected abstract initial(): S;

  /** Renders the samples of one series. */
  protected abstract renderSeries(lines: string[], values: readonly string[], state: S): void;

  /** The state of the series for `labels`, created on first use; validates the labels. */
  protected series(labels: LabelValues<L>): S {
    const record = labels as Record<string, unknown>;
    const values: string[] = [];
    for (const name of this.labelNames) {
      const value = record[name];
      if (typeof value !== "string") {
        throw new TypeError(
          `metric ${this.name}: label "${name}" is ${
            value === undefined ? "missing" : `a ${typeof value}`
          }; pass a string value for it`,
        );
      }
      values.push(value);
    }
    for (const name of Object.keys(record)) {
      if (!(this.labelNames as readonly string[]).includes(name)) {
        throw new TypeError(
          `metric ${this.name}: unknown label "${name}"; declared labels are [${
            this.labelNames.join(", ")
          }]`,
        );
      }
    }
    const key = JSON.stringify(values);
    let entry = this.#series.get(key);
    if (!entry) {
      entry = { values, state: this.initial() };
      this.#series.set(key, entry);
    }
    return entry.state;
  }

  /** The series' state without creating it. */
  protected peek(labels: LabelValues<L>): S | undefined {
    const values = this.labelNames.map((n) => (labels as Record<string, string>)[n] ?? "");
    return this.#series.get(JSON.stringify(values))?.state;
  }

  /** Appends this family's lines (nothing when it has no series). */
  render(lines: string[]): void {
    if (this.labelNames.length === 0) this.series({} as LabelValues<L>); // a label-free metric shows 0
    if (this.#series.size === 0) return;
    lines.push(`# HELP ${this.name} ${escapeHelp(this.help)}`);
    lines.push(`# TYPE ${this.name} ${this.type}`);
    const all = [...this.#series.values()].sort((a, b) => compareValues(a.values, b.values));
    for (const { values, state } of all) this.renderSeries(lines, values, state);
  }
}

/** The state of one counter or gauge series. */
export interface Cell {
  /** The series' value. */
  value: number;
}

/** A value that only goes up. */
export class Counter<L extends string = never> extends Metric<L, Cell> {
  /** Always `counter`. */
  readonly type = "counter" as const;

  /** Declares a counter; prefer {@linkcode Registry.counter}. */
  constructor(options: MetricOptions<L>) {
    super(options, []);
  }

  /** Adds `amount` (default 1, never negative) to the series of `labels`. */
  inc(labels: LabelValues<L> = {} as LabelValues<L>, amount = 1): void {
    if (!(amount >= 0)) {
      throw new RangeError(`counter ${this.name}: inc(${amount}); a counter only goes up`);
    }
    this.series(labels).value += amount;
  }

  /**
   * Sets the total of a counter kept elsewhere (such as CPU time read from the OS).
   * Throws when `total` is lower than the current value.
   */
  setTotal(labels: LabelValues<L>, total: number): void {
    const cell = this.series(labels);
    if (!(total >= cell.value)) {
      throw new RangeError(
        `counter ${this.name}: setTotal(${total}) is below the current ${cell.value}; a counter only goes up`,
      );
    }
    cell.value = total;
  }

  /** The current value for `labels` (0 when the series does not exist yet). */
  get(labels: LabelValues<L> = {} as LabelValues<L>): number {
    return this.peek(labels)?.value ?? 0;
  }

  /** A new series starts at 0. */
  protected initial(): Cell {
    return { value: 0 };
  }

  /** One sample line per series. */
  protected renderSeries(lines: string[], values: readonly string[], state: Cell): void {
    lines.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(state.value)}`);
  }
}

/** A value that goes up and down. */
export class Gauge<L extends string = never> extends Metric<L, Cell> {
  /** Always `gauge`. */
  readonly type = "gauge" as const;

  /** Declares a gauge; prefer {@linkcode Registry.gauge}. */
  constructor(options: MetricOptions<L>) {
    super(options, []);
  }

  /** Sets the series of `labels` to `value`. */
  set(labels: LabelValues<L>, value: number): void {
    this.series(labels).value = value;
  }

  /** Adds `amount` (default 1) to the series of `labels`. */
  inc(labels: LabelValues<L> = {} as LabelValues<L>, amount = 1): void {
    this.series(labels).value += amount;
  }

  /** Subtracts `amount` (default 1) from the series of `labels`. */
  dec(labels: LabelValues<L> = {} as LabelValues<L>, amount = 1): void {
    this.series(labels).value -= amount;
  }

  /** The current value for `labels` (0 when the series does not exist yet). */
  get(labels: LabelValues<L> = {} as LabelValues<L>): number {
    return this.peek(labels)?.value ?? 0;
  }

  /** A new series starts at 0. */
  protected initial(): Cell {
    return { value: 0 };
  }

  /** One sample line per series. */
  protected renderSeries(lines: string[], values: readonly string[], state: Cell): void {
    lines.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(state.value)}`);
  }
}

/** The state of one histogram series. */
export interface HistogramState {
  /** Observations per bucket (not cumulative); the last slot is `+Inf`. */
  counts: number[];
  /** Sum of the observations. */
  sum: number;
  /** Number of observations. */
  count: number;
}

/** Observations counted into buckets, with their sum and count. */
export class Histogram<L extends string = never> extends Metric<L, HistogramState> {
  /** Always `histogram`. */
  readonly type = "histogram" as const;
  /** Upper bounds of the buckets, without `+Inf`. */
  readonly buckets: readonly number[];

  /** Declares a histogram; prefer {@linkcode Registry.histogram}. */
  constructor(options: HistogramOptions<L>) {
    const buckets = [...(options.buckets ?? DEFAULT_BUCKETS)];
    if (buckets.at(-1) === Infinity) buckets.pop();
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      if (!Number.isFinite(b) || (i > 0 && !(b > buckets[i - 1]!))) {
        throw new RangeError(
          `histogram ${options.name}: buckets [${
            buckets.join(", ")
          }] must be finite and strictly increasing`,
        );
      }
    }
    super(options, ["le"]);
    this.buckets = buckets;
  }

  /** Records `value` in the series of `labels`. */
  observe(labels: LabelValues<L>, value: number): void {
    if (Number.isNaN(value)) {
      throw new RangeError(`histogram ${this.name}: observe(NaN); pass a number`);
    }
    const state = this.series(labels);
    let i = this.buckets.findIndex((b) => value <= b);
    if (i === -1) i = this.buckets.length;
    state.counts[i] = (state.counts[i] ?? 0) + 1;
    state.sum += value;
    state.count += 1;
  }

  /** The number and sum of observations for `labels`. */
  get(labels: LabelValues<L> = {} as LabelValues<L>): { count: number; sum: number } {
    const state = this.peek(labels);
    return { count: state?.count ?? 0, sum: state?.sum ?? 0 };
  }

  /** A new series has no observation. */
  protected initial(): HistogramState {
    const size = this.buckets.length + 1;
    return { counts: new Array<number>(size).fill(0), sum: 0, count: 0 };
  }

  /** Cumulative `_bucket` lines, then `_sum` and `_count`. */
  protected renderSeries(lines: string[], values: readonly string[], state: HistogramState): void {
    let cumulative = 0;
    const bounds = [...this.buckets, Infinity];
    bounds.forEach((bound, i) => {
      cumulative += state.counts[i] ?? 0;
      const labels = labelText(this.labelNames, values, `le="${formatValue(bound)}"`);
      lines.push(`${this.name}_bucket${labels} ${cumulative}`);
    });
    const labels = labelText(this.labelNames, values);
    lines.push(`${this.name}_sum${labels} ${formatValue(state.sum)}`);
    lines.push(`${this.name}_count${labels} ${state.count}`);
  }
}
