/**
 * What each loaded part of the agent costs, each measured in a process of its own with the
 * agent's V8 flags: the runtime alone, then the runtime with one part imported (grpc-js, zod,
 * the client-node parts the kubeconfig loader uses, the entry point's own imports, the whole
 * controller). A part's cost is its RSS and load time above the bare runtime's.
 *
 * Every process reports `performance.now()` at its first statement (the runtime's start-up, from
 * the process's time origin), the time the import took, and its VmRSS once the import is done.
 *
 * @module
 */
import { RUNTIME_FLAGS } from "../../lib/process/permissions.ts";
import { round, summarize, type Summary } from "./stats.ts";

/** The project's root directory. */
export const ROOT: string = new URL("../../", import.meta.url).pathname;

/** The parts measured: a label and the specifier imported (none for the bare runtime). */
export const PARTS: readonly { label: string; specifier?: string }[] = [
  { label: "runtime alone" },
  { label: "@grpc/grpc-js", specifier: "@grpc/grpc-js" },
  { label: "zod", specifier: "zod" },
  { label: "client-node config parts", specifier: "@kubernetes/client-node/dist/config_types.js" },
  { label: "js-yaml", specifier: "js-yaml" },
  { label: "config loading (main.ts's imports)", specifier: `${ROOT}lib/config/load.ts` },
  { label: "the CRI client (lib/cri/client.ts)", specifier: `${ROOT}lib/cri/client.ts` },
  { label: "the journal", specifier: `${ROOT}lib/journal/file_journal.ts` },
  { label: "the whole controller", specifier: `${ROOT}lib/controller.ts` },
];

/** One part's figures over several processes (medians). */
export interface PartCost {
  label: string;
  runs: number;
  /** `performance.now()` at the first statement: the runtime's own start-up. */
  runtimeStartMs: number;
  /** The import alone. */
  importMs: number;
  /** VmRSS after the import. */
  rssMiB: number;
  /** VmRSS above the bare runtime's. */
  extraMiB: number;
}

function probe(specifier: string | undefined): string {
  return [
    "const t0 = performance.now();",
    specifier ? `await import(${JSON.stringify(specifier)});` : "",
    "const t1 = performance.now();",
    "await new Promise((r) => setTimeout(r, 200));",
    'const s = Deno.readTextFileSync("/proc/self/status");',
    "const rss = Number(/^VmRSS:\\s+(\\d+)/m.exec(s)[1]) / 1024;",
    "console.log(JSON.stringify({ t0, importMs: t1 - t0, rss }));",
  ].join("\n");
}

/**
 * Runs `source` as a module of its own in a new process with the agent's V8 flags, from the
 * project's root, and returns what it printed, parsed as JSON.
 */
export async function runProbe<T>(source: string, what: string): Promise<T> {
  const file = await Deno.makeTempFile({ dir: ROOT, prefix: ".bench-probe-", suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, source);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...RUNTIME_FLAGS, file],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`${what}: ${new TextDecoder().decode(out.stderr)}`);
    return JSON.parse(new TextDecoder().decode(out.stdout)) as T;
  } finally {
    await Deno.remove(file);
  }
}

function once(specifier: string | undefined) {
  return runProbe<{ t0: number; importMs: number; rss: number }>(
    probe(specifier),
    `measuring ${specifier}`,
  );
}

/** Measures every part `runs` times, interleaved so that a busy moment hits all alike. */
export async function partCosts(runs = 5): Promise<PartCost[]> {
  const samples = PARTS.map(() => ({
    t0: [] as number[],
    imp: [] as number[],
    rss: [] as number[],
  }));
  for (let r = 0; r < runs; r++) {
    for (const [i, part] of PARTS.entries()) {
      const s = await once(part.specifier);
      samples[i]!.t0.push(s.t0);
      samples[i]!.imp.push(s.importMs);
      samples[i]!.rss.push(s.rss);
    }
  }
  const med = (v: number[]): number => (summarize(v) as Summary).median;
  const base = med(samples[0]!.rss);
  return PARTS.map((part, i) => ({
    label: part.label,
    runs,
    runtimeStartMs: round(med(samples[i]!.t0), 1),
    importMs: round(med(samples[i]!.imp), 1),
    rssMiB: round(med(samples[i]!.rss), 1),
    extraMiB: round(med(samples[i]!.rss) - base, 1),
  }));
}

if (import.meta.main) {
  for (const c of await partCosts(Number(Deno.args[0] ?? 3))) console.log(JSON.stringify(c));
}
