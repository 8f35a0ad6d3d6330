/**
 * How a pass that went to its end ends: its outcome for the work queue
 * ({@linkcode settledOutcome}) and the condition it leaves on the pod
 * ({@linkcode passCondition}), both from what planning found and what the operations did.
 *
 * @module
 */
import { NETWORKS_ANNOTATION } from "../core/annotations.ts";
import { listSome } from "../core/event_messages.ts";
import {
  keepsCondition,
  type NetworksCondition,
  networksCondition,
  sameCondition,
} from "../core/networks_condition.ts";
import { attachmentKey, type Operation } from "../core/plan_types.ts";
import { isFinished, podKey, type PodSnapshot } from "../core/pod.ts";
import type { OperationOutcome } from "./operation.ts";
import { DONE, type Failure, ReconcileError, type ReconcileOutcome, waitFor } from "./outcome.ts";
import { interfaceItem, type PlanProblems } from "./pass_report.ts";
import type { PassContext } from "./pass_context.ts";
import type { PlannedPod } from "./planning.ts";

/**
 * The outcome of a pass that went to its end: a {@linkcode ReconcileError} for every
 * failure and every piece of bad input, else waiting for the NADs it misses, else done.
 */
export function settledOutcome(
  key: string,
  planned: PlannedPod,
  outcomes: readonly OperationOutcome[],
): ReconcileOutcome {
  const failures: Failure[] = [];
  // Once the operations ran, their outcomes say which NADs are still missing (a removal the
  // journal could do needed none).
  const missing = new Set(outcomes.length > 0 ? [] : planned.missingNads);
  for (const o of outcomes) {
    if (o.ok) continue;
    if (o.kind === "missing-nad") {
      if (o.waitsFor) missing.add(o.waitsFor);
      continue;
    }
    failures.push({
      kind: o.kind ?? "delegate",
      text: `${o.op.kind} ${attachmentKey(o.op.id)}: ${o.error}`,
    });
  }
  failures.push(...planned.badInput);
  if (failures.length > 0) throw new ReconcileError(key, failures);
  if (missing.size > 0) return waitFor(`NetworkAttachmentDefinition ${listSome([...missing])}`);
  return DONE;
}

/** What a pass adds to what planning found, for {@linkcode passCondition}. */
export interface PassFindings {
  /** What the operations did. */
  outcomes?: readonly OperationOutcome[];
  /** What the pass waits for, when it could not act (e.g. the pod sandbox). */
  waitingFor?: string;
  /** The operations the pass is about to carry out (the condition then says so). */
  changing?: readonly Operation[];
}

/**
 * The condition a pass over `pod` leaves: from what planning found (`planned`, `problems`),
 * what the operations did, what the pass still waits for, or what it is about to change
 * (`findings`). Undefined when the pod gets none: it is finished, or it never asked for
 * networks.
 */
export function passCondition(
  pod: PodSnapshot,
  planned: PlannedPod,
  problems: PlanProblems,
  findings: PassFindings = {},
): NetworksCondition | undefined {
  if (isFinished(pod)) return undefined;
  const annotation = pod.metadata.annotations?.[NETWORKS_ANNOTATION];
  const gated = pod.spec.networksGate === true;
  if (!keepsCondition(annotation, pod.status?.networksCondition, gated)) return undefined;
  const failed = (findings.outcomes ?? []).filter((o) => !o.ok);
  const adds = failed.filter((o) => o.op.kind === "add");
  const changing = findings.changing ?? [];
  const named = (op: Operation) => ({ interface: op.id.interface, network: op.id.network });
  return networksCondition({
    podKey: podKey(pod),
    desired: (planned.plan?.desired ?? []).map((d) => ({
      interface: d.id.interface,
      network: d.id.network,
    })),
    notices: problems.notices,
    refusals: problems.refusals,
    addFailed: adds.filter((o) => o.kind !== "missing-nad").map(interfaceItem),
    missingNad: adds.filter((o) => o.kind === "missing-nad").map(interfaceItem),
    removeFailed: failed.filter((o) => o.op.kind === "remove").map(interfaceItem),
    // Waiting matters only while something the annotation asks for is still to be done.
    waitingFor: planned.plan?.operations.length ? findings.waitingFor : undefined,
    changing: {
      attach: changing.filter((op) => op.kind === "add").map(named),
      detach: changing.filter((op) => op.kind === "remove").map(named),
    },
  });
}

/** True when `condition` is set and says something else than the one `pod` has. */
export function conditionChanged(
  pod: PodSnapshot,
  condition: NetworksCondition | undefined,
): condition is NetworksCondition {
  return condition !== undefined && !sameCondition(pod.status?.networksCondition, condition);
}

/** Writes `condition` alone, when it says something else than the one `pod` has (not in a dry run). */
export async function keepCondition(
  ctx: PassContext,
  pod: PodSnapshot,
  condition: NetworksCondition | undefined,
): Promise<void> {
  if (ctx.deps.options.dryRun || !conditionChanged(pod, condition)) return;
  await ctx.effects.writeStatus(pod, ctx.log, { condition });
}

/**
 * The end of a pass that has nothing to do to `pod`: its condition kept up to date, and the
 * outcome of what planning found (bad input throws, a missing NAD waits).
 */
export async function endSettled(
  ctx: PassContext,
  pod: PodSnapshot,
  planned: PlannedPod,
): Promise<ReconcileOutcome> {
  await keepCondition(ctx, pod, passCondition(pod, planned, ctx.report.problems));
  return settledOutcome(podKey(pod), planned, []);
}
