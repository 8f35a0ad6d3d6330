/**
 * What every phase of one pass works with: the reconciler's ports, the pass's effects, the
 * per-pod memory, the pass's logger and its report.
 *
 * @module
 */
import type { EffectsContext } from "./effects.ts";
import type { PassReport } from "./pass_report.ts";
import type { PodMemory } from "./pod_memory.ts";

/** One pass's context, handed from phase to phase. */
export interface PassContext extends EffectsContext {
  /** What the agent remembers of each pod between passes. */
  memory: PodMemory;
  /** What the pass did and found, reported once at its end. */
  report: PassReport;
}

/** The pass's clock, in ms. */
export function passNow(ctx: Pick<PassContext, "deps">): number {
  return (ctx.deps.now ?? Date.now)();
}
