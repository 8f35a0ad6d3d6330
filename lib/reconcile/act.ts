/**
 * The act phase of a pass: in the pod's live sandbox, announce what is about to change (the
 * condition says `Attaching` or `Detaching`, and the finalizer is put on a pod about to get its
 * first ADD, in one write), then carry out the operations in order (`operation.ts`).
 *
 * @module
 */
import { nadKey } from "../core/nad.ts";
import { podKey } from "../core/pod.ts";
import type { WriteOutcome } from "./effects.ts";
import { type OperationOutcome, runOperations } from "./operation.ts";
import { DONE, type ReconcileOutcome, requeue, waitFor } from "./outcome.ts";
import type { PassContext } from "./pass_context.ts";
import { conditionChanged, keepCondition, passCondition } from "./pass_end.ts";
import { refuseHostNetworkSandbox } from "./planning.ts";
import type { PodSandbox } from "./ports.ts";
import type { Settled } from "./settle.ts";

/** What the condition says the pass waits for when the sandbox is not ready. */
const SANDBOX = "the pod sandbox";

/** The pod as announced, and what its operations did, for the commit phase. */
export interface Acted extends Settled {
  /** Each operation's outcome, in order. */
  outcomes: OperationOutcome[];
}

/**
 * Acts on `settled` in `sandbox`, or says how the pass ends first: it polls for a sandbox that
 * is missing or not ready (the condition says `Pending`), refuses one in the node's network,
 * and stops when the pod is gone or its deletion began before the announcement.
 */
export async function act(
  ctx: PassContext,
  settled: Settled,
  sandbox: PodSandbox | undefined,
): Promise<Acted | ReconcileOutcome> {
  const { pod, planned } = settled;
  if (!sandbox?.ready) {
    const condition = passCondition(pod, planned, ctx.report.problems, { waitingFor: SANDBOX });
    await keepCondition(ctx, pod, condition);
    return requeue(
      sandbox
        ? `pod sandbox ${sandbox.id} to be ready`
        : `a pod sandbox for uid ${pod.metadata.uid}`,
    );
  }
  if (sandbox.hostNetwork) {
    const refusal = refuseHostNetworkSandbox(podKey(pod), pod.metadata.uid, sandbox.id, ctx.report);
    await keepCondition(ctx, pod, passCondition(pod, planned, ctx.report.problems));
    throw refusal;
  }
  const announced = await announce(ctx, settled);
  if (announced === "gone") return DONE;
  if (announced === "terminating") {
    // Its deletion is an event: the pass it queues releases nothing (nothing was plugged).
    ctx.log.info("pod deletion began before its first hot-plug; nothing is plugged into it");
    return waitFor("the pod's deletion");
  }
  const operations = planned.plan?.operations ?? [];
  const outcomes = await runOperations(ctx, announced.pod, sandbox, operations);
  return { ...settled, ...announced, outcomes };
}

/**
 * Before any operation is sent: the condition says what is about to change, and the finalizer
 * is put on a pod about to get its first ADD, in one write. Operations that cannot start (a NAD
 * that does not exist) are not announced, and a condition that is `False` already keeps the
 * pod from being Ready as it is (a retry that keeps failing costs no extra write). Returns the
 * pod as written, or what stops the pass: the pod is gone, or its deletion began, so it gets no
 * ADD (and the finalizer cannot be added any more).
 */
async function announce(
  ctx: PassContext,
  { pod, planned, base }: Settled,
): Promise<Pick<Settled, "pod" | "base"> | Exclude<WriteOutcome, "written">> {
  const missing = new Set(planned.missingNads);
  const changing = (planned.plan?.operations ?? []).filter((op) =>
    op.kind === "remove" ||
    !missing.has(nadKey({ namespace: op.id.namespace, name: op.id.network }))
  );
  if (changing.length === 0) return { pod, base };
  const addsFirst = changing.some((op) => op.kind === "add") &&
    pod.metadata.holdsFinalizer !== true;
  const condition = pod.status?.networksCondition?.status === "False"
    ? undefined
    : passCondition(pod, planned, ctx.report.problems, { changing });
  const newCondition = conditionChanged(pod, condition);
  if (!addsFirst && !newCondition) return { pod, base };
  const written = await ctx.effects.writeStatus(pod, ctx.log, {
    finalizer: addsFirst ? true : undefined,
    condition: newCondition ? condition : undefined,
    base,
  });
  if (written.outcome !== "written") return written.outcome;
  const metadata = addsFirst ? { ...pod.metadata, holdsFinalizer: true } : pod.metadata;
  const status = newCondition ? { ...pod.status, networksCondition: condition } : pod.status;
  return { pod: { ...pod, metadata, ...(status ? { status } : {}) }, base: written.base };
}
