/**
 * What the bench's phases share (`bench.ts`, `drift.ts`, `floors.ts`): the agent's metrics and
 * its idleness, a pod's network-status interfaces, a bounded pool of concurrent work, the
 * machine's CPU time, and the report's cells.
 *
 * @module
 */
import type { ControllerProcess } from "../support/mod.ts";
import { NETWORK_STATUS_ANNOTATION } from "../rig/mod.ts";
import type { WatchedPod } from "./pod_watch.ts";
import { Scrape } from "./prom.ts";

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The agent's `/metrics`, parsed; throws unless it answers 200. */
export async function scrape(ctl: ControllerProcess): Promise<Scrape> {
  const { status, body } = await ctl.get("/metrics");
  if (status !== 200) throw new Error(`/metrics of pid ${ctl.pid} answered ${status}`);
  return new Scrape(body);
}

/**
 * Waits until the agent's queue is empty and no worker is busy, twice in a row; throws after
 * `timeoutMs`.
 */
export async function waitIdle(ctl: ControllerProcess, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let calm = 0;
  while (Date.now() < deadline) {
    const m = await scrape(ctl);
    const busy = m.sum("workqueue_depth") + m.sum("controller_runtime_active_workers");
    calm = busy === 0 ? calm + 1 : 0;
    if (calm >= 2) return;
    await sleep(100);
  }
  throw new Error(`the agent (pid ${ctl.pid}) did not become idle within ${timeoutMs} ms`);
}

/** Runs `fn` over `items` with at most `limit` at a time; resolves with the results, in order. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** Interface names recorded in a pod's network-status (default network excluded). */
export function statusInterfaces(pod: WatchedPod): string[] {
  const text = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  if (!text) return [];
  try {
    const entries = JSON.parse(text) as { interface?: string; default?: boolean }[];
    return entries.filter((e) => !e.default && e.interface).map((e) => e.interface!);
  } catch {
    return [];
  }
}

/** Busy and total CPU time of the whole machine, in clock ticks (`/proc/stat`). */
export function machineCpu(): { busy: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.split(/\s+/).slice(1)
    .map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait! };
}

/** A time in ms for a report cell: 2 decimals below 1, else 1; `-` when not finite. */
export function ms(v: number): string {
  return Number.isFinite(v) ? v.toFixed(v < 1 ? 2 : 1) : "-";
}

/** A report row: the first cell padded to its width on the right, the others on the left. */
export function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => {
    const s = String(c);
    return i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!);
  }).join("  ");
}
