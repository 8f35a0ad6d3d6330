/**
 * The shape of `lib/`, read from the import statements of its modules (type imports and
 * re-exports included): no import cycle anywhere, and dependencies that point one way, from
 * the process edges through the adapters to the reconcile machinery, the pure core and the
 * generic base. A failure names the cycle or the import that points the wrong way.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(new URL("..", import.meta.url).pathname);
const LIB = join(ROOT, "lib");

/** Every `.ts` file under `dir`, as absolute paths. */
function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...tsFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/**
 * The relative specifiers a module imports or re-exports: `import … from`, `import type …
 * from`, `export … from`, `import "…"` and `import("…")`. Statements start a line, so text in
 * comments and strings is not taken for one.
 */
export function importSpecifiers(source: string): string[] {
  const found: string[] = [];
  const statement =
    /^(?:import|export)(?:\s+type)?\s+(?:[\w$*\s{},]+?\s+from\s+)?["'](\.{1,2}\/[^"']+)["']/gm;
  for (const m of source.matchAll(statement)) found.push(m[1]!);
  for (const m of source.matchAll(/\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g)) {
    found.push(m[1]!);
  }
  return found;
}

/** `lib/`'s import graph: module path (relative to the project) → the modules it imports. */
function libGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of tsFiles(LIB)) {
    const deps = importSpecifiers(Deno.readTextFileSync(file))
      .map((spec) => resolve(dirname(file), spec))
      .filter((target) => target.startsWith(LIB + "/"))
      .map((target) => relative(ROOT, target));
    graph.set(relative(ROOT, file), [...new Set(deps)]);
  }
  return graph;
}

/** Every cycle of `graph`, each as the path that closes it (`a → b → a`), found by DFS. */
export function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "visiting");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "visiting") {
        cycles.push([...stack.slice(stack.indexOf(next)), next]);
      } else if (!state.has(next)) {
        visit(next);
      }
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

Deno.test("import graph: the parser sees every kind of import statement", () => {
  const source = [
    'import { a } from "./a.ts";',
    'import type { B } from "../b.ts";',
    "import {",
    "  c,",
    "  type D,",
    '} from "./c.ts";',
    'export { e } from "./e.ts";',
    'export type { F } from "./f.ts";',
    'export * from "./g.ts";',
    'import "./h.ts";',
    'const i = await import("./i.ts");',
    'import { z } from "zod";',
    ' * import { j } from "./not-a-statement.ts";',
    'const text = `export interface K { from: "./k.ts" }`;',
  ].join("\n");
  assert.deepEqual(importSpecifiers(source), [
    "./a.ts",
    "../b.ts",
    "./c.ts",
    "./e.ts",
    "./f.ts",
    "./g.ts",
    "./h.ts",
    "./i.ts",
  ]);
});

Deno.test("import graph: cycles are found and named", () => {
  const graph = new Map([
    ["a.ts", ["b.ts"]],
    ["b.ts", ["c.ts"]],
    ["c.ts", ["a.ts", "d.ts"]],
    ["d.ts", []],
  ]);
  assert.deepEqual(findCycles(graph), [["a.ts", "b.ts", "c.ts", "a.ts"]]);
});

Deno.test("import graph: no import cycle in lib/", () => {
  const graph = libGraph();
  assert.ok(graph.size > 40, `only ${graph.size} modules found`);
  const cycles = findCycles(graph).map((cycle) => cycle.join(" → "));
  assert.deepEqual(cycles, [], `import cycles in lib/:\n${cycles.join("\n")}`);
});

/**
 * Which folders of `lib/` each folder may import from, besides itself. The generic base, the
 * generic work queue and the pure core know nothing of the rest; the reconcile machinery only the core and its own
 * ports; each adapter implements those ports and knows no other adapter; the process edges
 * and the wiring (`lib/controller.ts`) sit on top.
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  base: [],
  work_queue: ["base"],
  core: ["base"],
  reconcile: ["base", "core", "work_queue"],
  kube: ["base", "core", "reconcile", "work_queue"],
  cri: ["base", "core", "reconcile"],
  multus: ["base", "core", "reconcile"],
  journal: ["base", "core", "reconcile"],
  observe: ["base", "core", "reconcile", "work_queue"],
  config: ["base", "core"],
  commands: ["base", "core", "config", "kube"],
  process: ["base", "core", "reconcile", "config", "kube", "commands"],
};

/** The folder of a module under `lib/`, or `.` for `lib/controller.ts`. */
function folderOf(path: string): string {
  const parts = path.split("/");
  return parts.length > 2 ? parts[1]! : ".";
}

Deno.test("import graph: dependencies in lib/ point one way", () => {
  const graph = libGraph();
  const folders = new Set([...graph.keys()].map(folderOf));
  assert.deepEqual([...folders].filter((f) => f !== "." && !(f in MAY_IMPORT)), [], "a new folder");
  const wrong: string[] = [];
  for (const [from, deps] of graph) {
    const folder = folderOf(from);
    if (folder === ".") continue;
    for (const to of deps) {
      const target = folderOf(to);
      if (target !== folder && !MAY_IMPORT[folder]!.includes(target)) {
        wrong.push(`${from} → ${to}`);
      }
    }
  }
  assert.deepEqual(wrong, [], `imports against the layering:\n${wrong.join("\n")}`);
});
