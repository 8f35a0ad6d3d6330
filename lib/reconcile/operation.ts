/**
 * One planned operation carried out: the attach (CNI ADD) or detach (CNI DEL) of one
 * attachment through multus, with the journal written before either is sent and a failed ADD
 * undone. The outcome says what to record in network-status, or what failed and of which kind.
 *
 * A change (an element's network, IPs or MAC changed: the old attachment removed, the new one
 * added on the same interface) never leaves the pod with neither: when the new ADD fails, the
 * old attachment is put back with the very request that made it (the journal's; for one the
 * agent did not make, its network's config now and the MAC network-status recorded), and the
 * pass fails, so the change is retried with backoff.
 *
 * @module
 */
import { errorText, type Logger } from "../base/log.ts";
import type { InterfaceAttributes } from "../core/event_messages.ts";
import { nadKey } from "../core/nad.ts";
import { delegateConfig } from "../core/nad.ts";
import type { Operation } from "../core/plan_types.ts";
import type { PodSnapshot } from "../core/pod.ts";
import { podKey } from "../core/pod.ts";
import { objectKey } from "../core/names.ts";
import type { NetworkSelectionElement } from "../core/selection_element.ts";
import {
  type NetworkStatus,
  statusFromCniResult,
  withAttachment,
  withoutAttachment,
} from "../core/status.ts";
import type { Effects, EffectsContext } from "./effects.ts";
import { releaseWith } from "./recovery.ts";
import type { FailureKind } from "./outcome.ts";
import type { DelegateRequest, PendingAdd, PodSandbox, ReconcilerDeps } from "./ports.ts";

/**
 * An ADD refused because this attachment is already (partly) in place: multus' "interface name
 * … already exists", or host-local's "… has been allocated to <our sandbox>, duplicate
 * allocation is not allowed" when an earlier pass attached it and a DEL with another network's
 * config (a swap interrupted by a crash) removed the link but not this network's address.
 */
const ALREADY_EXISTS = /already exists|duplicate allocation is not allowed/i;

/** Why an operation failed: a {@linkcode FailureKind}, or a NAD that does not exist yet. */
export type OperationFailureKind = FailureKind | "missing-nad";

/** What became of one operation. */
export interface OperationOutcome {
  /** The operation. */
  op: Operation;
  /** True when it was carried out. */
  ok: boolean;
  /** The status entry to record for a successful add. */
  entry?: NetworkStatus;
  /** The journal record of an add that reached the delegate call. */
  pending?: PendingAdd;
  /**
   * The journal's entries of a removed attachment (its detaching one among them), to forget
   * once the status says so.
   */
  released?: PendingAdd[];
  /** On a failed add: the DEL that undoes the ADD succeeded, so nothing of it is left. */
  cleanedUp?: true;
  /** Why it failed, naming the fix where there is one. */
  error?: string;
  /** The kind of failure. */
  kind?: OperationFailureKind;
  /** The NAD (`"<namespace>/<name>"`) that must appear or change before a retry can help. */
  waitsFor?: string;
  /** On a removal: the change failed and a later outcome of the pass put this attachment back. */
  undone?: true;
}

/** A failed outcome. */
export function failed(
  op: Operation,
  kind: OperationFailureKind,
  error: string,
  waitsFor?: string,
): OperationOutcome {
  return { op, ok: false, kind, error, ...(waitsFor ? { waitsFor } : {}) };
}

/** What {@linkcode runOperation} acts through: the pass's ports, effects and logger. */
export type OperationContext = EffectsContext;

/** Carries out `op` on `pod` in `sandbox`. Never throws: a failure is an outcome. */
export async function runOperation(
  ctx: OperationContext,
  pod: PodSnapshot,
  sandbox: Pick<PodSandbox, "id" | "netnsPath"> & { ready?: boolean },
  op: Operation,
): Promise<OperationOutcome> {
  const { deps } = ctx;
  const network = nadKey({ namespace: op.id.namespace, name: op.id.network });
  if (op.kind === "remove") {
    const journaled = journaledIn(deps, pod, sandbox, op);
    // The agent's own attachment goes with a DEL of the very request that made it, whatever
    // the NAD says now or whether it still exists (CNI wants a DEL with the ADD's config).
    if (journaled.length > 0) return await detach(ctx, op, journaled[0]!, sandbox, journaled);
  }
  const nad = deps.nads.get(op.id.namespace, op.id.network);
  if (!nad) {
    const hint = op.kind === "add"
      ? "create it, or fix the name in the networks annotation"
      : "the interface stays attached until the definition is recreated or the pod is deleted";
    return failed(
      op,
      "missing-nad",
      `NetworkAttachmentDefinition ${network} not found; ${hint}`,
      network,
    );
  }
  if (op.kind === "add" && !namespaceAllowed(deps, pod.metadata.namespace, op.id.namespace)) {
    return failed(
      op,
      "bad-input",
      `namespace isolation forbids pod namespace ${pod.metadata.namespace} from using ${network}; ` +
        `use a NetworkAttachmentDefinition in ${pod.metadata.namespace} or add ${op.id.namespace} to allowedNadNamespaces`,
    );
  }
  let config: Uint8Array;
  try {
    config = delegateConfig(nad);
  } catch (err) {
    return failed(op, "bad-input", errorText(err), network);
  }
  const base = {
    containerId: sandbox.id,
    netns: sandbox.netnsPath,
    ifname: op.id.interface,
    podNamespace: pod.metadata.namespace,
    podName: pod.metadata.name,
    podUid: pod.metadata.uid,
    config,
  };
  if (op.kind === "remove") {
    const request: PendingAdd = {
      podKey: podKey(pod),
      id: op.id,
      request: { ...base, command: "ADD" },
    };
    return await detach(ctx, op, request, sandbox, []);
  }
  return await attach(ctx, op, { ...base, command: "ADD", ...delegateAttributes(op.element) });
}

/**
 * The ADD of an add operation with `request`: journaled before it is sent; an attachment left
 * in place by a pass that died before recording it is detached and attached again; a failed
 * ADD is undone with a DEL of the same request.
 */
async function attach(
  ctx: OperationContext,
  op: Operation,
  request: DelegateRequest,
): Promise<OperationOutcome> {
  const { deps, effects, log } = ctx;
  const network = nadKey({ namespace: op.id.namespace, name: op.id.network });
  const pending: PendingAdd = {
    podKey: objectKey(request.podNamespace, request.podName),
    id: op.id,
    request,
  };
  const unjournaled = await journalBefore(op, "ADD", () => deps.journal.record(pending));
  if (unjournaled) return unjournaled;
  try {
    let result;
    try {
      result = await effects.delegate(request);
    } catch (err) {
      if (!ALREADY_EXISTS.test(errorText(err))) throw err;
      // Left over from a pass that attached it but died before recording it: detach, retry.
      log.info("attachment exists but is not recorded; re-attaching", {
        interfaceName: op.id.interface,
        network,
      });
      const { interfaceAttributes: _, ...plain } = request;
      await effects.delegate({ ...plain, command: "DEL" });
      result = await effects.delegate(request);
    }
    const entry = statusFromCniResult(network, result ?? {});
    // Plugins that report no sandbox interface must still be recorded under the name we asked for.
    if (!entry.interface) entry.interface = op.id.interface;
    return { op, ok: true, entry, pending };
  } catch (err) {
    // The journal keeps the ADD: multus may finish it after a timeout, so the next pass
    // releases it again before anything else.
    const cleanedUp = await rollbackAdd(effects, request, log);
    return {
      ...failed(op, "delegate", errorText(err)),
      pending,
      ...(cleanedUp ? { cleanedUp } : {}),
    };
  }
}

/** The journal's entries of the attachment `op` removes, made in `sandbox`. */
function journaledIn(
  deps: ReconcilerDeps,
  pod: PodSnapshot,
  sandbox: Pick<PodSandbox, "id">,
  op: Operation,
): PendingAdd[] {
  const key = podKey(pod);
  return [...deps.journal.attached(key), ...deps.journal.pending(key)].filter((a) =>
    a.request.podUid === pod.metadata.uid && a.request.containerId === sandbox.id &&
    a.id.namespace === op.id.namespace && a.id.network === op.id.network &&
    a.id.interface === op.id.interface
  );
}

/**
 * The DEL of a remove operation, with the request `made` (the journal's, or one built from the
 * NAD). In a sandbox that is not ready any more (a pod being deleted), a DEL whose network
 * namespace path fails is sent once more without one, which still releases the addresses.
 */
async function detach(
  ctx: OperationContext,
  op: Operation,
  made: PendingAdd,
  sandbox: Pick<PodSandbox, "id" | "netnsPath"> & { ready?: boolean },
  journaled: PendingAdd[],
): Promise<OperationOutcome> {
  const { deps, effects } = ctx;
  // Until network-status stops recording it, its entry there may describe an interface this
  // DEL took away: journaled, the next pass finishes the removal instead of trusting it.
  const unjournaled = await journalBefore(op, "DEL", () => deps.journal.recordDetach(made));
  if (unjournaled) return unjournaled;
  try {
    await releaseWith(effects, made, { withoutNetnsOnFailure: sandbox.ready === false });
    return { op, ok: true, released: [made, ...journaled] };
  } catch (err) {
    return failed(op, "delegate", errorText(err));
  }
}

/**
 * Journals with `write` before a `command` is sent; resolves to the failed outcome when the
 * journal cannot be written (nothing is sent unjournaled), else to undefined.
 */
async function journalBefore(
  op: Operation,
  command: "ADD" | "DEL",
  write: () => Promise<void>,
): Promise<OperationOutcome | undefined> {
  try {
    await write();
    return undefined;
  } catch (err) {
    return failed(
      op,
      "journal",
      `cannot journal the ${command} before sending it (${
        errorText(err)
      }); make the state directory writable`,
    );
  }
}

/** The `interfaceAttributes` of an element's ADD, when it sets any. */
function delegateAttributes(
  element: NetworkSelectionElement,
): Pick<DelegateRequest, "interfaceAttributes"> {
  const attributes: NonNullable<DelegateRequest["interfaceAttributes"]> = {};
  if (element.ips && element.ips.length > 0) attributes.ips = element.ips;
  if (element.mac) attributes.mac = element.mac;
  if (element["cni-args"] != null) attributes["cni-args"] = element["cni-args"];
  return Object.keys(attributes).length > 0 ? { interfaceAttributes: attributes } : {};
}

/**
 * Undoes whatever a failed ADD left behind, as CNI runtimes do: a DEL with the same request.
 * Some plugins (macvlan when its IPAM fails) leave the link in the pod, which would then be
 * there without a network-status entry. Best effort: a failing DEL is only logged.
 */
async function rollbackAdd(
  effects: Effects,
  request: DelegateRequest,
  log: Logger,
): Promise<true | undefined> {
  try {
    await effects.delegate({ ...request, command: "DEL" });
    return true;
  } catch (err) {
    log.debug("cleaning up after a failed ADD failed", { interfaceName: request.ifname, err });
    return undefined;
  }
}

function namespaceAllowed(deps: ReconcilerDeps, podNamespace: string, nadNamespace: string) {
  const { namespaceIsolation, allowedNadNamespaces } = deps.options;
  return !namespaceIsolation || nadNamespace === podNamespace ||
    allowedNadNamespaces.includes(nadNamespace);
}

/** Records the successful operations of a pass in network-status, keeping order. */
export function applyOutcomes(
  entries: NetworkStatus[],
  succeeded: readonly { op: Operation; entry?: NetworkStatus }[],
): NetworkStatus[] {
  let next = entries;
  for (const { op, entry } of succeeded) {
    if (op.kind === "remove") next = withoutAttachment(next, op.id);
    else if (entry) next = withAttachment(next, entry);
  }
  return next;
}

/**
 * Runs `operations` in order (removals come first) against `sandbox`. An add of an interface
 * whose removal failed in this pass is not attempted: the name is still taken in the pod. An
 * add that fails after a change removed the interface's old attachment puts that one back.
 */
export async function runOperations(
  ctx: OperationContext,
  pod: PodSnapshot,
  sandbox: PodSandbox,
  operations: readonly Operation[],
): Promise<OperationOutcome[]> {
  const outcomes: OperationOutcome[] = [];
  /** Interface → the failed removal that still holds it. */
  const held = new Map<string, OperationOutcome>();
  /** Interface → the attachment a change removed from it in this pass. */
  const replaced = new Map<string, OperationOutcome>();
  for (const op of operations) {
    const holder = op.kind === "add" ? held.get(op.id.interface) : undefined;
    if (holder) {
      outcomes.push(failed(
        op,
        holder.kind ?? "delegate",
        `interface ${op.id.interface} is still held by an attachment that failed to detach`,
        holder.waitsFor,
      ));
      continue;
    }
    const outcome = await bestEffort(ctx, op, await runOperation(ctx, pod, sandbox, op));
    outcomes.push(outcome);
    if (op.kind === "remove") {
      if (!outcome.ok) held.set(op.id.interface, outcome);
      else if (op.reason === "changed" || op.reason === "interface-reassigned") {
        replaced.set(op.id.interface, outcome);
      }
      continue;
    }
    const old = replaced.get(op.id.interface);
    // A missing NAD's add only follows a removal when that attachment moved elsewhere
    // (`planning.ts` keeps one it would merely replace): it is not put back.
    if (outcome.ok || !old || outcome.kind === "missing-nad") continue;
    const restored = await restore(ctx, old, outcome);
    if (restored.ok) old.undone = true;
    outcomes.push(restored);
  }
  return outcomes;
}

/**
 * The release of a drifted attachment is best effort: its link is often gone already, and the
 * add that follows makes it again whatever the release said. A failed one is logged and counts
 * as done, keeping the journal's entries (the add's record replaces one of the same request).
 */
function bestEffort(
  ctx: OperationContext,
  op: Operation,
  outcome: OperationOutcome,
): OperationOutcome {
  if (outcome.ok || op.kind !== "remove" || op.reason !== "drifted") return outcome;
  ctx.log.info("releasing a drifted attachment failed; adding it again anyway", {
    interfaceName: op.id.interface,
    network: nadKey({ namespace: op.id.namespace, name: op.id.network }),
    err: outcome.error,
  });
  return { op, ok: true, released: [] };
}

/**
 * Puts back the attachment `removal` took away, after `failedAdd` (the change's new attachment
 * on the same interface) failed: an ADD of the request that made it, journaled first like
 * every ADD. Its outcome is an add with reason `restored`. Only once nothing of the failed ADD
 * is left (it was never sent, or it was undone): until then the interface may still hold it.
 */
async function restore(
  ctx: OperationContext,
  removal: OperationOutcome,
  failedAddOutcome: OperationOutcome,
): Promise<OperationOutcome> {
  const made = removal.released?.[0];
  const op = removal.op;
  const failedAdd = failedAddOutcome.op;
  // An ADD that was never sent (a missing NAD, a journal that cannot be written) left nothing.
  const nothingLeft = failedAddOutcome.cleanedUp === true || !failedAddOutcome.pending;
  if (!made || op.kind !== "remove" || !nothingLeft) {
    return failed(
      failedAdd,
      failedAddOutcome.kind ?? "delegate",
      `the previous attachment on ${failedAdd.id.interface} could not be put back: what the failed ADD left could not be undone`,
    );
  }
  const request = restoringRequest(made.request, op.entry);
  const element: NetworkSelectionElement = {
    name: op.id.network,
    namespace: op.id.namespace,
    interface: op.id.interface,
    ...(request.interfaceAttributes?.ips ? { ips: request.interfaceAttributes.ips } : {}),
    ...(request.interfaceAttributes?.mac ? { mac: request.interfaceAttributes.mac } : {}),
  };
  const restoring: Operation = { kind: "add", id: op.id, element, reason: "restored" };
  ctx.log.info("the change failed; putting the previous attachment back", {
    interfaceName: op.id.interface,
    network: nadKey({ namespace: op.id.namespace, name: op.id.network }),
    failedNetwork: nadKey({ namespace: failedAdd.id.namespace, name: failedAdd.id.network }),
  });
  // The failed ADD is undone: forgotten before the old attachment goes back, so that the
  // journal never holds two unfinished ADDs on one interface (a crash in between would leave
  // recovery to undo the failed one on the interface the restored one holds).
  const failedPending = failedAddOutcome.pending;
  if (failedPending) {
    const unjournaled = await journalBefore(
      restoring,
      "ADD",
      () => ctx.deps.journal.settle({ released: [failedPending] }),
    );
    if (unjournaled) return unjournaled;
  }
  const outcome = await attach(ctx, restoring, request);
  if (outcome.ok) return outcome;
  return { ...outcome, error: `putting the previous attachment back failed: ${outcome.error}` };
}

/**
 * The ADD that puts an attachment back: the request that made it, as the journal keeps it; for
 * one the agent did not make (built from its network's config, with no attributes), also the
 * MAC network-status recorded, so that the interface comes back as it was.
 */
function restoringRequest(made: DelegateRequest, entry: NetworkStatus): DelegateRequest {
  const request: DelegateRequest = { ...made, command: "ADD" };
  if (made.interfaceAttributes || !entry.mac) return request;
  return { ...request, interfaceAttributes: { mac: entry.mac } };
}

/** The attributes an add Event shows, as upstream renders them; undefined when none are set. */
export function eventAttributes(element: NetworkSelectionElement): InterfaceAttributes | undefined {
  const attrs: InterfaceAttributes = {};
  if (element.ips && element.ips.length > 0) attrs.ips = element.ips;
  if (element.mac) attrs.mac = element.mac;
  if (element["cni-args"] != null) attrs.cniArgs = element["cni-args"];
  return Object.keys(attrs).length > 0 ? attrs : undefined;
}
