/**
 * The reconciler: one pass over one pod, in named phases, each a function of its own that
 * takes what the one before returned:
 *
 * 1. **observe** (`observe.ts`): the pod from the cache, and only when it shows work, afresh,
 *    with its sandbox; planned once (`planning.ts` over the pure planner);
 * 2. **settle** (`settle.ts`): what an interrupted pass left in the journal (`recovery.ts`);
 * 3. **act** (`act.ts`): announce the change (the condition, and the finalizer before a first
 *    ADD), then the operations in order (`operation.ts`);
 * 4. **commit** (`commit.ts`): one status write with network-status, the finalizer and the
 *    condition; then the journal; then the report (Events and log lines, `pass_report.ts`).
 *
 * A finished pod (being deleted, or ended) takes the **deletion** phase instead
 * (`deletion.ts`), and a pod gone from the cache only has its journal settled.
 *
 * A pass returns a {@linkcode ReconcileOutcome} or throws a {@linkcode ReconcileError}, as
 * `outcome.ts` describes: it is done; it waits for an event (a NAD it needs does not exist);
 * it polls for the pod sandbox; or something failed, transiently (backoff) or because the
 * input is bad (terminal until it changes). It never trusts the event that queued the pod: any
 * pass may be repeated, interrupted or run after a crash, and it still converges.
 *
 * @module
 */
import { errorText } from "../base/log.ts";
import type { Plan } from "../core/plan_types.ts";
import { act } from "./act.ts";
import { commit } from "./commit.ts";
import { releaseFinished } from "./deletion.ts";
import { describeOperations } from "./dry_run.ts";
import { Effects } from "./effects.ts";
import { findSandbox, observe } from "./observe.ts";
import { DONE, type ReconcileOutcome, waitFor } from "./outcome.ts";
import type { PassContext } from "./pass_context.ts";
import { endSettled } from "./pass_end.ts";
import { PassReport } from "./pass_report.ts";
import { planFromAnnotations } from "./planning.ts";
import { PodMemory } from "./pod_memory.ts";
import type { ReconcilerDeps } from "./ports.ts";
import { settleJournal } from "./recovery.ts";
import { settle } from "./settle.ts";

/** Reconciles pods one pass at a time, over its ports and a memory of each pod. */
export class Reconciler {
  readonly #deps: ReconcilerDeps;
  readonly #effects: Effects;
  /** What the reconciler remembers of each pod; the triggers read it. */
  readonly memory: PodMemory;

  /** A reconciler over `deps`, remembering in `memory`. */
  constructor(deps: ReconcilerDeps, memory: PodMemory = new PodMemory(deps.now)) {
    this.#deps = deps;
    this.memory = memory;
    this.#effects = new Effects(deps, (key, text) => memory.wrote(key, text));
  }

  /** Plans one pod from the cache without acting: for `--dry-run` and diagnostics. */
  planFor(key: string): Plan | string {
    const pod = this.#deps.pods.cached(key);
    if (!pod) return `pod ${key} is not on this node`;
    try {
      return planFromAnnotations(pod);
    } catch (err) {
      return errorText(err);
    }
  }

  /**
   * One reconcile pass for pod `key` ("namespace/name"): resolves to its outcome, rejects
   * with a {@linkcode ReconcileError} when something failed (and with anything else only for
   * the unexpected). What the pass did and what went wrong is reported once, at its end.
   */
  async reconcile(key: string): Promise<ReconcileOutcome> {
    const log = this.#deps.log.with({ pod: key });
    const report = new PassReport(key, log);
    const ctx = { deps: this.#deps, effects: this.#effects, memory: this.memory, log, report };
    try {
      return await pass(ctx, key);
    } finally {
      report.flush(this.#deps.events);
    }
  }
}

/** One pass over pod `key`: the phases of the module documentation. */
async function pass(ctx: PassContext, key: string): Promise<ReconcileOutcome> {
  const seen = await observe(ctx, key);
  switch (seen.kind) {
    case "gone":
      await settleJournal(ctx, key, undefined, undefined);
      ctx.memory.forget(key);
      return DONE;
    case "finished": {
      ctx.memory.changeApplied(key);
      const { pod, sandbox } = seen;
      return await releaseFinished(
        ctx,
        pod,
        () => sandbox ?? findSandbox(ctx, key, pod.metadata.uid),
      );
    }
    case "not running":
      ctx.log.debug("pod not running yet; waiting", { phase: seen.pod.status?.phase });
      return waitFor("the pod to run");
    case "replaced":
      ctx.log.debug("pod gone or replaced before acting");
      return DONE;
    case "dry run":
      if (seen.planned.plan) {
        const operations = describeOperations(seen.planned.plan);
        ctx.log.info("dry run: would apply plan", { operations });
      }
      return DONE;
    case "settled":
      ctx.memory.changeApplied(key);
      return await endSettled(ctx, seen.pod, seen.planned);
  }
  const settled = await settle(ctx, seen, await seen.sandbox);
  if ("kind" in settled) return settled;
  const acted = await act(ctx, settled, await seen.sandbox);
  if ("kind" in acted) return acted;
  return await commit(ctx, acted);
}
