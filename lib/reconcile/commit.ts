/**
 * The commit phase of a pass: one status write records what the operations did (network-status,
 * the finalizer and the condition together), then the journal is settled, then the pass's
 * outcomes are reported (Events and log lines at the pass's end, metrics, the NADs it waits
 * for), and the pass's outcome is returned.
 *
 * @module
 */
import { attachmentKey } from "../core/plan_types.ts";
import { podKey } from "../core/pod.ts";
import { formatNetworkStatus, type NetworkStatus } from "../core/status.ts";
import type { Acted } from "./act.ts";
import { type JournalChange, wantsFinalizer } from "./deletion.ts";
import { applyOutcomes } from "./operation.ts";
import { DONE, type ReconcileOutcome } from "./outcome.ts";
import { type PassContext, passNow } from "./pass_context.ts";
import { conditionChanged, passCondition, settledOutcome } from "./pass_end.ts";

/** Commits what `acted` did (see the module documentation). */
export async function commit(ctx: PassContext, acted: Acted): Promise<ReconcileOutcome> {
  const { pod, planned, outcomes } = acted;
  const key = podKey(pod);
  const succeeded = outcomes.filter((o) => o.ok);
  const change: JournalChange = {
    recorded: succeeded.flatMap((o) => o.op.kind === "add" && o.pending ? [o.pending] : []),
    released: succeeded.flatMap((o) => o.released ?? []),
  };
  const finalizer = wantsFinalizer(ctx.deps.journal, pod, passNow(ctx), change);
  const condition = passCondition(pod, planned, ctx.report.problems, { outcomes });
  if (
    succeeded.length > 0 || finalizer !== (pod.metadata.holdsFinalizer === true) ||
    conditionChanged(pod, condition)
  ) {
    let basedOn: string | undefined;
    let written: string | undefined;
    const record = succeeded.length > 0
      ? (entries: NetworkStatus[]) => {
        basedOn = formatNetworkStatus(entries);
        const next = applyOutcomes(entries, succeeded);
        const text = formatNetworkStatus(next);
        written = text === basedOn ? undefined : text;
        return next;
      }
      : undefined;
    const write = await ctx.effects.writeStatus(pod, ctx.log, {
      record,
      finalizer,
      condition,
      base: acted.base,
    });
    if (write.outcome === "gone") return DONE;
    if (written !== undefined && acted.settledAs !== undefined && basedOn === acted.settledAs) {
      // Written onto the very network-status the journal was settled against (no newer one,
      // such as a new sandbox's, came in between): the echo of this write needs no pass.
      ctx.memory.settled(key, written);
    }
    try {
      await ctx.deps.journal.settle(change);
    } catch (err) {
      // Harmless: the next pass finds them recorded in network-status and settles them then.
      ctx.log.warn("writing the attachment journal after the status write failed", { err });
    }
  }
  reportOutcomes(ctx, acted);
  return settledOutcome(key, planned, outcomes);
}

/** The pass's outcomes to the report, the metrics and the NADs the pod waits for. */
function reportOutcomes(ctx: PassContext, { pod, outcomes }: Acted): void {
  const key = podKey(pod);
  const observer = ctx.deps.observer;
  ctx.report.about(pod.metadata);
  for (const outcome of outcomes) {
    const { op } = outcome;
    observer?.attachmentOperation?.(op.kind, outcome.ok);
    if (op.kind === "add" && op.reason === "repair") {
      observer?.driftRepair?.(outcome.ok);
      // Repaired, or, when the add failed, an attachment to add like any other: either way
      // the drift is over; the next check looks again.
      ctx.memory.driftCleared(key, attachmentKey(op.id));
    }
    ctx.report.operationEnded(outcome);
  }
  ctx.memory.alsoWaitFor(key, outcomes.flatMap((o) => o.waitsFor ? [o.waitsFor] : []));
  if (outcomes.some((o) => !o.ok)) return;
  const seconds = ctx.memory.changeApplied(key);
  if (seconds === undefined) return;
  for (const o of outcomes) observer?.hotplugCompleted?.(o.op.kind, seconds);
}
