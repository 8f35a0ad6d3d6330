/**
 * A small Prometheus registry: counters, gauges and histograms with labels
 * (`metric_families.ts`), rendered in the text exposition format 0.0.4. Output is deterministic: families sorted by name, series
 * sorted by their label values. Also the standard `process_*` metrics of the running process.
 *
 * ```ts
 * const registry = new Registry();
 * const ops = registry.counter({ name: "ops_total", help: "Operations.", labelNames: ["result"] });
 * ops.inc({ result: "success" });
 * registry.render(); // # HELP ops_total Operations.\n# TYPE ops_total counter\nops_total{result="success"} 1\n
 * ```
 *
 * @module
 */
import process from "node:process";
import {
  Counter,
  Gauge,
  Histogram,
  type HistogramOptions,
  type MetricOptions,
} from "./metric_families.ts";

/** The content type of {@linkcode Registry.render}'s output. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Anything the registry can render. */
export type AnyMetric = {
  /** The metric's name. */
  readonly name: string;
  /** Appends the metric's exposition lines to `lines`. */
  render(lines: string[]): void;
};

/** A set of metrics rendered together, with hooks that refresh values at scrape time. */
export class Registry {
  readonly #metrics = new Map<string, AnyMetric>();
  readonly #collectors: (() => void)[] = [];

  /** Declares a counter; throws when the name is taken. */
  counter<L extends string = never>(options: MetricOptions<L>): Counter<L> {
    return this.#add(new Counter<L>(options));
  }

  /** Declares a gauge; throws when the name is taken. */
  gauge<L extends string = never>(options: MetricOptions<L>): Gauge<L> {
    return this.#add(new Gauge<L>(options));
  }

  /** Declares a histogram; throws when the name is taken. */
  histogram<L extends string = never>(options: HistogramOptions<L>): Histogram<L> {
    return this.#add(new Histogram<L>(options));
  }

  /** Runs `collect` before every render, to refresh values read from elsewhere. */
  onCollect(collect: () => void): void {
    this.#collectors.push(collect);
  }

  /** The metric named `name`, if declared. */
  get(name: string): AnyMetric | undefined {
    return this.#metrics.get(name);
  }

  /**
   * Renders every metric in the text exposition format 0.0.4: families sorted by name,
   * `# HELP` and `# TYPE` first, one line per sample, a final line feed. A collector that
   * throws does not stop the rest.
   */
  render(): string {
    for (const collect of this.#collectors) {
      try {
        collect();
      } catch {
        // A broken collector leaves its metrics at their last values.
      }
    }
    const lines: string[] = [];
    const names = [...this.#metrics.keys()].sort();
    for (const name of names) this.#metrics.get(name)?.render(lines);
    return lines.length === 0 ? "" : lines.join("\n") + "\n";
  }

  #add<M extends AnyMetric>(metric: M): M {
    if (this.#metrics.has(metric.name)) {
      throw new Error(
        `metric ${metric.name} is already registered; declare it once and share the object`,
      );
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }
}

/**
 * Declares the standard process metrics, read at every scrape (no permission is needed):
 * `process_resident_memory_bytes`, `process_start_time_seconds`,
 * `process_cpu_seconds_total`, and Deno's `deno_heap_used_bytes`, `deno_heap_total_bytes`,
 * `deno_external_memory_bytes`.
 */
export function registerProcessMetrics(registry: Registry): void {
  const rss = registry.gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
  });
  const start = registry.gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
  });
  const cpu = registry.counter({
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
  });
  const heapUsed = registry.gauge({
    name: "deno_heap_used_bytes",
    help: "V8 heap in use, in bytes.",
  });
  const heapTotal = registry.gauge({
    name: "deno_heap_total_bytes",
    help: "V8 heap reserved, in bytes.",
  });
  const external = registry.gauge({
    name: "deno_external_memory_bytes",
    help: "Memory of objects outside the V8 heap bound to JavaScript objects, in bytes.",
  });
  start.set({}, Math.floor(performance.timeOrigin) / 1000);
  registry.onCollect(() => {
    const memory = Deno.memoryUsage();
    rss.set({}, memory.rss);
    heapUsed.set({}, memory.heapUsed);
    heapTotal.set({}, memory.heapTotal);
    external.set({}, memory.external);
    const usage = process.cpuUsage();
    cpu.setTotal({}, Math.max(cpu.get(), (usage.user + usage.system) / 1e6));
  });
}
