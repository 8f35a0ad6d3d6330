/**
 * The settle phase of a pass: before it acts, what an interrupted pass left in the journal is
 * settled against the pod and its sandbox (`recovery.ts`). Settling can drop network-status
 * entries of interfaces it emptied; only then is the pod read and planned again.
 *
 * @module
 */
import { NETWORK_STATUS_ANNOTATION } from "../core/annotations.ts";
import { isFinished, podKey, type PodSnapshot } from "../core/pod.ts";
import { formatNetworkStatus, parseNetworkStatus } from "../core/status.ts";
import { releaseFinished } from "./deletion.ts";
import { fetchPod, plan } from "./observe.ts";
import { DONE, type ReconcileOutcome } from "./outcome.ts";
import type { PassContext } from "./pass_context.ts";
import { endSettled } from "./pass_end.ts";
import type { PlannedPod } from "./planning.ts";
import type { PodSandbox, StatusBase } from "./ports.ts";
import { settleJournal } from "./recovery.ts";

/** The pod as settled, for the act phase. */
export interface Settled {
  /** The pod as it is now. */
  pod: PodSnapshot;
  /** Its plan. */
  planned: PlannedPod;
  /** The pod as last read or written, for the next status write to start from. */
  base?: StatusBase;
  /**
   * The network-status the journal was settled against in the live sandbox (as the agent
   * writes it), when it is readable: a record written onto it needs no other look.
   */
  settledAs?: string;
}

/**
 * Settles the journal of `pod` in `sandbox` and returns the pod and plan to act on, or how the
 * pass ends when settling changed network-status and the pod read again is gone, finished,
 * or cannot be planned.
 */
export async function settle(
  ctx: PassContext,
  seen: Settled,
  sandbox: PodSandbox | undefined,
): Promise<Settled | ReconcileOutcome> {
  let { pod, planned, base } = seen;
  const key = podKey(pod);
  if (await settleJournal(ctx, key, pod, sandbox)) {
    // The release changed network-status: plan from what it says now.
    const read = await fetchPod(ctx, key);
    if (!read || read.pod.metadata.uid !== pod.metadata.uid) return DONE;
    ({ pod, base } = read);
    if (isFinished(pod)) return await releaseFinished(ctx, pod, () => Promise.resolve(sandbox));
    planned = plan(ctx, pod);
    if (!planned.plan) return await endSettled(ctx, pod, planned);
  }
  if (!sandbox?.ready) return { pod, planned, ...(base ? { base } : {}) };
  // Settled against the live sandbox: until network-status changes again, the journal's
  // attachments need no other look (a sandbox still being replaced is no such look).
  const text = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] ?? "";
  ctx.memory.settled(key, text);
  const settledAs = formattedOrUndefined(text);
  return { pod, planned, ...(base ? { base } : {}), ...(settledAs ? { settledAs } : {}) };
}

/** A network-status text as the agent would write it back; undefined when it cannot be read. */
function formattedOrUndefined(text: string): string | undefined {
  try {
    return formatNetworkStatus(parseNetworkStatus(text));
  } catch {
    return undefined;
  }
}
