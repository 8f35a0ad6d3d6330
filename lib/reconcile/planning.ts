/**
 * Planning one pod within a pass: its annotations parsed, the pure planner run, and what is
 * wrong with the annotations handed to the pass's report (an invalid annotation, elements
 * refused, a host-network pod, and, in a pass that changes the pod, an interface name multus
 * would give twice in a new sandbox). The result also names the NADs the plan needs and misses,
 * so that their creation wakes the pod.
 *
 * @module
 */
import { errorText } from "../base/log.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../core/annotations.ts";
import { type Drift, withRepairs } from "../core/drift.ts";
import {
  DRIFTED_REASON,
  driftedInterfacesMessage,
  EventReason,
  interfaceAddRejectedMessage,
  INVALID_SELECTION_REASON,
  INVALID_STATUS_REASON,
  invalidAnnotationMessage,
  NAME_CLASH_REASON,
  sandboxClashMessage,
} from "../core/event_messages.ts";
import { describeSandboxNameClash, sandboxNameClashes } from "../core/multus_names.ts";
import { nadKey } from "../core/nad.ts";
import type { Operation, Plan } from "../core/plan_types.ts";
import { planPod } from "../core/plan.ts";
import { isFinished, podKey, type PodSnapshot } from "../core/pod.ts";
import { parseNetworkSelection } from "../core/selection.ts";
import { SelectionError } from "../core/selection_element.ts";
import { parseNetworkStatus } from "../core/status.ts";
import { type Failure, ReconcileError } from "./outcome.ts";
import type { PassReport, PodNotice } from "./pass_report.ts";
import type { NadSource } from "./ports.ts";

/** Plans `pod` from its annotations; throws a `SelectionError` or `StatusError` for bad ones. */
export function planFromAnnotations(pod: PodSnapshot): Plan {
  const annotations = pod.metadata.annotations ?? {};
  const desired = parseNetworkSelection(annotations[NETWORKS_ANNOTATION], pod.metadata.namespace);
  const current = parseNetworkStatus(annotations[NETWORK_STATUS_ANNOTATION]);
  return planPod(
    {
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      uid: pod.metadata.uid,
      hostNetwork: pod.spec.hostNetwork === true,
      deleting: isFinished(pod),
    },
    desired,
    current,
  );
}

/** A pod planned within a pass. */
export interface PlannedPod {
  /** The plan; undefined when an annotation cannot be read, so nothing may be done. */
  plan: Plan | undefined;
  /** Bad input found while planning, one `bad-input` failure each. */
  badInput: Failure[];
  /** NADs (`"<namespace>/<name>"`) the plan's operations need and the cache does not have. */
  missingNads: string[];
}

/** What the drift check found in the pod, and what to do about it. */
export interface DriftFindings {
  /** Its drifted attachments. */
  drifts: readonly Drift[];
  /** Release and add them again (true), or only report them (false). */
  repair: boolean;
}

/**
 * Plans `pod` and hands what is wrong with its annotations to `report`. Only the last plan of
 * a pass counts in the report: a pass that plans again replaces what its earlier plan found.
 * Drifted attachments (`drift`) are planned for repair, or reported as the pod's problem.
 */
export function planWithReport(
  pod: PodSnapshot,
  nads: NadSource,
  report: PassReport,
  drift: DriftFindings = { drifts: [], repair: true },
): PlannedPod {
  const key = podKey(pod);
  report.about(pod.metadata);
  let plan: Plan;
  try {
    plan = planFromAnnotations(pod);
  } catch (err) {
    const selection = err instanceof SelectionError;
    const annotation = selection ? NETWORKS_ANNOTATION : NETWORK_STATUS_ANNOTATION;
    const message = invalidAnnotationMessage(key, annotation, errorText(err));
    report.planned({
      refusals: [],
      notices: [{
        reason: selection ? INVALID_SELECTION_REASON : INVALID_STATUS_REASON,
        type: "Warning",
        message,
        summary: "cannot plan: annotation is invalid",
      }],
    });
    return {
      plan: undefined,
      badInput: [{ kind: "bad-input", text: `annotation ${annotation}: ${errorText(err)}` }],
      missingNads: [],
    };
  }
  const refusals: string[] = [];
  const notices: PodNotice[] = [];
  for (const refusal of plan.refusals) {
    if (refusal.code === "host-network") {
      notices.push({
        reason: EventReason.InterfaceAddRejected,
        type: "Warning",
        message: interfaceAddRejectedMessage(key),
        summary: "refusing to plug interfaces into a host-network pod",
      });
    } else {
      refusals.push(refusal.message);
    }
  }
  if (drift.drifts.length > 0) {
    const entries = parseNetworkStatus(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]);
    if (drift.repair) plan = withRepairs(plan, drift.drifts, entries, pod.metadata.namespace);
    else notices.push(driftNotice(key, drift.drifts));
  }
  // Said only by a pass that changes the pod: the change is what the warning is about, and a
  // settled pod is not told again at every resync.
  if (plan.operations.length > 0) notices.push(...sandboxClashNotice(pod));
  report.planned({ refusals, notices });
  plan = keepingReplacedWhileNadMissing(plan, nads);
  const missingNads = plan.operations.flatMap((op) =>
    nads.get(op.id.namespace, op.id.network)
      ? []
      : [nadKey({ namespace: op.id.namespace, name: op.id.network })]
  );
  const badInput = plan.refusals.map((r): Failure => ({
    kind: "bad-input",
    text: `refused: ${r.message}`,
  }));
  return { plan, badInput, missingNads };
}

/** The pod-level problem of attachments that drifted while repair is off. */
function driftNotice(key: string, drifts: readonly Drift[]): PodNotice {
  const items = drifts.map((d) => ({
    iface: d.id.interface,
    network: d.id.network,
    namespace: d.id.namespace,
    error: d.found,
  }));
  return {
    reason: DRIFTED_REASON,
    type: "Warning",
    message: driftedInterfacesMessage(key, items),
    summary: "an attachment is not as network-status records it; repair is off",
  };
}

/**
 * The warning for an annotation that multus could not plug into a new sandbox of the pod
 * (`multus_names.ts`); none when it could. The annotation is known to parse.
 */
function sandboxClashNotice(pod: PodSnapshot): PodNotice[] {
  const elements = parseNetworkSelection(
    pod.metadata.annotations?.[NETWORKS_ANNOTATION],
    pod.metadata.namespace,
  );
  const clashes = sandboxNameClashes(elements);
  if (clashes.length === 0) return [];
  return [{
    reason: NAME_CLASH_REASON,
    type: "Warning",
    message: sandboxClashMessage(
      podKey(pod),
      clashes.map((clash) => describeSandboxNameClash(clash, elements)),
    ),
    summary: "multus would fail a new sandbox of the pod: two networks would get one name",
  }];
}

/**
 * The refusal of a pod whose sandbox the runtime runs in the node's network namespace although
 * its spec did not say `hostNetwork` (the planner refuses those itself): the report gets the
 * host-network pod's Event, and the returned error, to be thrown, is terminal bad input.
 */
export function refuseHostNetworkSandbox(
  key: string,
  podUid: string,
  sandboxId: string,
  report: PassReport,
): ReconcileError {
  report.planned({
    refusals: [],
    notices: [{
      reason: EventReason.InterfaceAddRejected,
      type: "Warning",
      message: interfaceAddRejectedMessage(key),
      summary:
        "the runtime runs the pod's sandbox in the node's network namespace; refusing to plug interfaces into it",
    }],
  });
  return new ReconcileError(key, [{
    kind: "bad-input",
    text:
      `the container runtime reports sandbox ${sandboxId} of pod uid ${podUid} in the node's network namespace (namespace mode NODE); nothing is plugged into the node: give the pod its own network (no hostNetwork)`,
  }]);
}

/**
 * A change whose new attachment needs a NAD that does not exist yet leaves the attachment it
 * would replace in place: the ADD cannot be sent, so taking the old one out would only lead to
 * putting it back, each pass, costing the pod its link meanwhile and, with host-local, a new
 * address every time. The change goes through once the NAD exists. An attachment that moves
 * (its network is added on another interface in the same plan: an element without an interface
 * name leaving a name another element now claims) still moves: kept, it would be there twice.
 */
function keepingReplacedWhileNadMissing(plan: Plan, nads: NadSource): Plan {
  const replaces = (reason: string) => reason === "changed" || reason === "interface-reassigned";
  const blocked = new Set(
    plan.operations.flatMap((op) =>
      op.kind === "add" && replaces(op.reason) && !nads.get(op.id.namespace, op.id.network)
        ? [op.id.interface]
        : []
    ),
  );
  if (blocked.size === 0) return plan;
  const moves = (remove: Operation) =>
    plan.operations.some((op) =>
      op.kind === "add" && op.id.namespace === remove.id.namespace &&
      op.id.network === remove.id.network && op.id.interface !== remove.id.interface
    );
  return {
    ...plan,
    operations: plan.operations.filter((op) =>
      !(op.kind === "remove" && replaces(op.reason) && blocked.has(op.id.interface) && !moves(op))
    ),
  };
}
