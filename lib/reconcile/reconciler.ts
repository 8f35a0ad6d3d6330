/**
 * The reconciler: one pass over one pod. It reads the world as it is now (the pod's
 * desired networks, its recorded network-status, its sandbox), plans with the pure
 * planner, runs the delegate calls, writes network-status once from a fresh read, and
 * reports every outcome as an Event and a log line.
 *
 * It never trusts the event that queued the pod: any pass may be repeated, interrupted or
 * run after a crash, and it still converges.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import { errorText } from "../base/log.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../core/annotations.ts";
import {
  type NetworkSelectionElement,
  parseNetworkSelection,
  SelectionError,
} from "../core/selection.ts";
import { inputsChanged } from "../core/pod_inputs.ts";
import { objectKey, splitObjectKey } from "../core/names.ts";
import {
  formatNetworkStatus,
  isEntryOf,
  type NetworkStatus,
  parseNetworkStatus,
  statusFromCniResult,
  withAttachment,
  withoutAttachment,
} from "../core/status.ts";
import {
  type AttachmentId,
  attachmentKey,
  entrySatisfies,
  type Operation,
  type Plan,
  planPod,
} from "../core/plan.ts";
import type { PodSandbox, SandboxLocator } from "../cri/client.ts";
import type { DelegateRequest, Delegator } from "../multus/client.ts";
import type { AttachmentJournal, PendingAdd } from "../journal/file_journal.ts";
import { delegateConfig, type NetworkAttachmentDefinition } from "../core/nad.ts";
import {
  EventReason,
  interfaceAddRejectedMessage,
  type InterfaceAttributes,
  listSome,
} from "../core/event_messages.ts";
import type { EventRecorder } from "../kube/events.ts";
import { PassReport, type PodNotice } from "./pass_report.ts";
import { PodReplacedError } from "../kube/status_writer.ts";

/** The parts of a Pod the reconciler reads. */
export interface PodSnapshot {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion?: string;
    deletionTimestamp?: string;
    annotations?: Record<string, string>;
  };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status?: { phase?: string };
}

/** Pods as the reconciler sees them: the informer's cache and a fresh read. */
export interface PodSource {
  /** The cached pod for `namespace/name`, if any. */
  cached(key: string): PodSnapshot | undefined;
  /** A fresh read from the API server; undefined when the pod is gone. */
  fetch(namespace: string, name: string): Promise<PodSnapshot | undefined>;
}

/** NetworkAttachmentDefinitions by namespace and name. */
export interface NadSource {
  get(namespace: string, name: string): NetworkAttachmentDefinition | undefined;
}

/** Writes network-status with optimistic concurrency from a fresh read. */
export interface StatusStore {
  /**
   * Applies `mutate` to the pod's current network-status annotation (undefined when absent)
   * and writes the result when it differs. Must fail (not write) when the pod's uid is no
   * longer `uid`, with a {@linkcode PodReplacedError} when it is gone or replaced.
   */
  update(
    namespace: string,
    name: string,
    uid: string,
    mutate: (current: string | undefined) => string | undefined,
  ): Promise<unknown>;
}

/** What the reconciler reports to metrics; every method is optional to implement. */
export interface ReconcileObserver {
  attachmentOperation?(operation: "add" | "remove", ok: boolean): void;
  delegateDuration?(command: "ADD" | "DEL", seconds: number): void;
  statusWrite?(ok: boolean): void;
  unrecordedRelease?(ok: boolean): void;
  hotplugCompleted?(operation: "add" | "remove", seconds: number): void;
}

/** Settings the reconciler needs from the configuration. */
export interface ReconcileOptions {
  /** When true, a pod may use NADs only from its own namespace or `allowedNadNamespaces`. */
  namespaceIsolation: boolean;
  /** Namespaces whose NADs any pod may use when isolation is on. */
  allowedNadNamespaces: readonly string[];
  /** Plan and log, act on nothing. */
  dryRun: boolean;
}

/** Everything a reconcile pass talks to. */
export interface ReconcilerDeps {
  pods: PodSource;
  nads: NadSource;
  sandboxes: SandboxLocator;
  delegator: Delegator;
  status: StatusStore;
  /** ADDs started but not yet recorded in network-status (see `lib/journal/file_journal.ts`). */
  journal: AttachmentJournal;
  events: EventRecorder;
  log: Logger;
  options: ReconcileOptions;
  observer?: ReconcileObserver;
  /** Wall clock in ms; injectable for tests. */
  now?: () => number;
  /**
   * Test-only crash injection: called at each {@linkcode FaultPoint} of an operation (see
   * `DNC_FAULT_INJECTION` in `lib/controller.ts`). Production wiring leaves it unset.
   */
  faultPoint?: (point: FaultPoint, operation: "add" | "remove") => void;
}

/** The instants of an operation where crash tests stop the process. */
export type FaultPoint =
  | "before-delegate"
  | "after-delegate"
  | "before-status-write"
  | "after-status-write";

/** A pass that could not finish; the queue retries it with backoff. */
export class ReconcileError extends Error {
  /** The failures of this pass, one line each. */
  readonly failures: string[];
  /** Creates an error summarising `failures` for pod `podKey`. */
  constructor(podKey: string, failures: string[]) {
    super(`pod ${podKey}: ${failures.length} operation(s) failed: ${listSome(failures, "; ")}`);
    this.name = "ReconcileError";
    this.failures = failures;
  }
}

/** Reason recorded when the networks annotation cannot be parsed. */
export const INVALID_SELECTION_REASON = "InvalidNetworkSelection";
/** Reason recorded when network-status cannot be parsed. */
export const INVALID_STATUS_REASON = "InvalidNetworkStatus";

/**
 * An ADD refused because this attachment is already (partly) in place: multus' "interface name
 * … already exists", or host-local's "… has been allocated to <our sandbox>, duplicate
 * allocation is not allowed" when an earlier pass attached it and a DEL with another network's
 * config (a swap interrupted by a crash) removed the link but not this network's address.
 */
const ALREADY_EXISTS = /already exists|duplicate allocation is not allowed/i;

interface OperationOutcome {
  op: Operation;
  ok: boolean;
  /** The status entry to record for a successful add. */
  entry?: NetworkStatus;
  /** The journal record of an add that reached the delegate call. */
  pending?: PendingAdd;
  error?: string;
}

function podKey(pod: PodSnapshot): string {
  return objectKey(pod.metadata.namespace, pod.metadata.name);
}

/** True when the pod's sandbox is gone or going: its attachments are to be released. */
export function isFinished(pod: PodSnapshot): boolean {
  const phase = pod.status?.phase;
  return pod.metadata.deletionTimestamp !== undefined || phase === "Succeeded" ||
    phase === "Failed";
}

/**
 * Reconciles pods one pass at a time. Also remembers which pods wait for a missing NAD,
 * so that the NAD's creation can queue them again.
 */
export class Reconciler {
  readonly #deps: ReconcilerDeps;
  readonly #now: () => number;
  /** NAD key "ns/name" → pod keys whose last pass needed it and did not find it. */
  readonly #waitingForNad = new Map<string, Set<string>>();
  /** Pod key → time its networks annotation was seen to change (for the latency metric). */
  readonly #changedAt = new Map<string, number>();
  /** Pod key → the last sandbox seen for it, to release attachments after its removal. */
  readonly #lastSandbox = new Map<string, { uid: string; sandbox: PodSandbox }>();
  /** UIDs of finished pods whose attachments a pass released. */
  readonly #released = new Set<string>();
  /** Pod key → the network-status text this agent wrote last for it. */
  readonly #ownStatus = new Map<string, string>();

  /** Creates a reconciler over `deps`. */
  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** Records when a pod's networks annotation was seen to change. */
  noteAnnotationChange(key: string, at = this.#now()): void {
    if (!this.#changedAt.has(key)) this.#changedAt.set(key, at);
  }

  /** Forgets a pod that left the node. */
  forget(key: string): void {
    this.#changedAt.delete(key);
    this.#lastSandbox.delete(key);
    this.#ownStatus.delete(key);
    for (const pods of this.#waitingForNad.values()) pods.delete(key);
  }

  /**
   * Called when pod `pod` (its last known state) has left the API server. multus looks the
   * pod up for every DEL and refuses once it is gone, so attachments still recorded then can
   * no longer be released (a force deletion, or a grace period that ended while the agent was
   * down): say so once, naming them. The caller still forgets or requeues the key.
   */
  podRemoved(pod: PodSnapshot): void {
    if (this.#released.delete(pod.metadata.uid)) return;
    let entries: NetworkStatus[];
    try {
      entries = parseNetworkStatus(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]);
    } catch {
      return;
    }
    const left = entries.filter((e) => e.default !== true && e.interface).map((e) =>
      `${e.name}/${e.interface}`
    );
    if (left.length === 0) return;
    this.#deps.log.warn(
      "pod left the API server before its attachments were released; multus can no longer release them, so their IPAM addresses may stay allocated (those multus attached at pod creation it releases itself)",
      { pod: podKey(pod), podUid: pod.metadata.uid, attachments: left },
    );
  }

  /**
   * True when pod `next` differs from `previous` (its cached state before the event) in
   * something a pass reads: then the pod is due now, even while it backs off. The echo of
   * this agent's own last network-status write is not a change.
   */
  changeMatters(previous: PodSnapshot | undefined, next: PodSnapshot): boolean {
    return inputsChanged(previous, next, this.#ownStatus.get(podKey(next)));
  }

  /** Pods whose last pass planned an operation on NAD `namespace/name`, which was missing. */
  podsWaitingFor(nadKey: string): string[] {
    return [...(this.#waitingForNad.get(nadKey) ?? [])];
  }

  /** Plans one pod from the cache without acting: for `--dry-run` and diagnostics. */
  planFor(key: string): Plan | string {
    const pod = this.#deps.pods.cached(key);
    if (!pod) return `pod ${key} is not on this node`;
    try {
      return this.#plan(pod);
    } catch (err) {
      return errorText(err);
    }
  }

  /**
   * One reconcile pass for pod `key` ("namespace/name"). Throws to ask for a retry. What the
   * pass did and what went wrong is reported once, at its end (see `lib/reconcile/pass_report.ts`).
   */
  async reconcile(key: string): Promise<void> {
    const log = this.#deps.log.with({ pod: key });
    const report = new PassReport(key, log);
    try {
      await this.#pass(key, report, log);
    } finally {
      report.flush(this.#deps.events);
    }
  }

  async #pass(key: string, report: PassReport, log: Logger): Promise<void> {
    const cached = this.#deps.pods.cached(key);
    if (!cached) {
      await this.#releaseUnrecorded(key, undefined, undefined, log);
      this.forget(key);
      return;
    }
    if (!isFinished(cached) && cached.status?.phase !== "Running") {
      log.debug("pod not running yet; waiting", { phase: cached.status?.phase });
      return;
    }
    const unfinished = this.#deps.journal.pending(key).length > 0;
    const cachedPlan = this.#planAndNote(cached, report);
    if (!unfinished && (!cachedPlan || cachedPlan.operations.length === 0)) {
      this.#changedAt.delete(key);
      return;
    }
    if (this.#deps.options.dryRun) {
      if (cachedPlan) {
        log.info("dry run: would apply plan", { operations: describeOperations(cachedPlan) });
      }
      return;
    }

    // The cache may lag behind our own last status write; plan again from a fresh read.
    const { namespace, name } = splitObjectKey(key);
    const pod = await this.#deps.pods.fetch(namespace, name);
    if (!pod || pod.metadata.uid !== cached.metadata.uid) {
      log.debug("pod gone or replaced before acting");
      return;
    }
    const plan = this.#planAndNote(pod, report);
    if (!plan || plan.operations.length === 0) this.#changedAt.delete(key);
    if (!unfinished && (!plan || plan.operations.length === 0)) return;
    // Unfinished ADDs are settled even when the annotation cannot be planned: releasing them
    // depends only on what network-status records.
    await this.#apply(pod, plan ?? { operations: [], refusals: [], desired: [] }, report, log);
  }

  #plan(pod: PodSnapshot): Plan {
    const annotations = pod.metadata.annotations ?? {};
    const desired = parseNetworkSelection(
      annotations[NETWORKS_ANNOTATION],
      pod.metadata.namespace,
    );
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

  /**
   * Plans `pod` and hands what is wrong with its annotations to the pass's report; remembers
   * the NADs the plan needs and misses, so that their creation wakes the pod. Undefined when
   * nothing may be done.
   */
  #planAndNote(pod: PodSnapshot, report: PassReport): Plan | undefined {
    const key = podKey(pod);
    report.about(pod.metadata);
    let plan: Plan;
    try {
      plan = this.#plan(pod);
    } catch (err) {
      const selection = err instanceof SelectionError;
      const reason = selection ? INVALID_SELECTION_REASON : INVALID_STATUS_REASON;
      const annotation = selection ? NETWORKS_ANNOTATION : NETWORK_STATUS_ANNOTATION;
      const message = `pod [${key}]: annotation ${annotation} is invalid, nothing was changed: ${
        errorText(err)
      }`;
      report.planned({
        refusals: [],
        notices: [{
          reason,
          type: "Warning",
          message,
          summary: "cannot plan: annotation is invalid",
        }],
      });
      this.#awaitNads(key, []);
      return undefined;
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
    report.planned({ refusals, notices });
    this.#awaitNads(
      key,
      plan.operations.flatMap((op) =>
        this.#deps.nads.get(op.id.namespace, op.id.network)
          ? []
          : [objectKey(op.id.namespace, op.id.network)]
      ),
    );
    return plan;
  }

  async #apply(pod: PodSnapshot, plan: Plan, report: PassReport, log: Logger): Promise<void> {
    const key = podKey(pod);
    const finished = isFinished(pod);
    const uid = pod.metadata.uid;
    let sandbox = await this.#deps.sandboxes.findSandbox(uid);
    if (sandbox) this.#lastSandbox.set(key, { uid, sandbox });
    else if (finished && this.#lastSandbox.get(key)?.uid === uid) {
      // The runtime removed the sandbox before we released its attachments: DEL still frees
      // their addresses with the sandbox ID we saw last (plugins accept a vanished netns).
      sandbox = { ...this.#lastSandbox.get(key)!.sandbox, ready: false };
      log.info("sandbox already removed; releasing attachments with its last known ID", {
        sandboxId: sandbox.id,
      });
    }
    if (await this.#releaseUnrecorded(key, pod, sandbox, log)) {
      // The release changed network-status: plan from what it says now.
      const fresh = await this.#deps.pods.fetch(pod.metadata.namespace, pod.metadata.name);
      if (!fresh || fresh.metadata.uid !== uid) return;
      const replanned = this.#planAndNote(fresh, report);
      if (!replanned) return;
      pod = fresh;
      plan = replanned;
    }
    if (!sandbox) {
      if (finished) {
        log.info("sandbox already removed; nothing left to release");
        return;
      }
      throw new ReconcileError(key, [`no pod sandbox found for uid ${pod.metadata.uid} yet`]);
    }
    if (!sandbox.ready && !finished) {
      throw new ReconcileError(key, [`pod sandbox ${sandbox.id} is not ready`]);
    }

    const outcomes: OperationOutcome[] = [];
    const failedRemovals = new Set<string>();
    for (const op of plan.operations) {
      if (op.kind === "add" && failedRemovals.has(op.id.interface)) {
        outcomes.push({
          op,
          ok: false,
          error:
            `interface ${op.id.interface} is still held by an attachment that failed to detach`,
        });
        continue;
      }
      const outcome = await this.#run(pod, sandbox, op, log);
      if (op.kind === "remove" && !outcome.ok) failedRemovals.add(op.id.interface);
      outcomes.push(outcome);
    }

    const succeeded = outcomes.filter((o) => o.ok);
    if (finished && succeeded.length === outcomes.length) this.#released.add(uid);
    if (succeeded.length > 0) {
      this.#fault("before-status-write", succeeded);
      if (!await this.#writeStatus(pod, (entries) => applyOutcomes(entries, succeeded), log)) {
        return;
      }
      this.#fault("after-status-write", succeeded);
      try {
        await this.#deps.journal.clear(succeeded.flatMap((o) => o.pending ? [o.pending] : []));
      } catch (err) {
        // Harmless: the next pass finds them recorded in network-status and drops them then.
        log.warn("clearing recorded ADDs from the journal failed", { err });
      }
    }

    report.about(pod.metadata);
    for (const outcome of outcomes) this.#record(outcome, report);
    const failures = outcomes.filter((o) => !o.ok).map((o) =>
      `${o.op.kind} ${attachmentKey(o.op.id)}: ${o.error}`
    );
    if (failures.length > 0) throw new ReconcileError(key, failures);

    const changedAt = this.#changedAt.get(key);
    if (changedAt !== undefined) {
      const seconds = (this.#now() - changedAt) / 1000;
      for (const o of succeeded) this.#deps.observer?.hotplugCompleted?.(o.op.kind, seconds);
      this.#changedAt.delete(key);
    }
  }

  async #run(
    pod: PodSnapshot,
    sandbox: { id: string; netnsPath: string },
    op: Operation,
    log: Logger,
  ): Promise<OperationOutcome> {
    const key = podKey(pod);
    const network = objectKey(op.id.namespace, op.id.network);
    const nad = this.#deps.nads.get(op.id.namespace, op.id.network);
    if (!nad) {
      const hint = op.kind === "add"
        ? "create it, or fix the name in the networks annotation"
        : "the interface stays attached until the definition is recreated or the pod is deleted";
      return {
        op,
        ok: false,
        error: `NetworkAttachmentDefinition ${network} not found; ${hint}`,
      };
    }
    if (op.kind === "add" && !this.#namespaceAllowed(pod.metadata.namespace, op.id.namespace)) {
      return {
        op,
        ok: false,
        error:
          `namespace isolation forbids pod namespace ${pod.metadata.namespace} from using ${network}; ` +
          `use a NetworkAttachmentDefinition in ${pod.metadata.namespace} or add ${op.id.namespace} to allowedNadNamespaces`,
      };
    }
    let config: Uint8Array;
    try {
      config = delegateConfig(nad);
    } catch (err) {
      return { op, ok: false, error: errorText(err) };
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
      try {
        this.#deps.faultPoint?.("before-delegate", "remove");
        await this.#delegate({ ...base, command: "DEL" });
        this.#deps.faultPoint?.("after-delegate", "remove");
        return { op, ok: true };
      } catch (err) {
        return { op, ok: false, error: errorText(err) };
      }
    }
    const element = op.element;
    const attributes: DelegateRequest["interfaceAttributes"] = {};
    if (element.ips && element.ips.length > 0) attributes.ips = element.ips;
    if (element.mac) attributes.mac = element.mac;
    if (element["cni-args"] != null) attributes["cni-args"] = element["cni-args"];
    const request: DelegateRequest = {
      ...base,
      command: "ADD",
      ...(Object.keys(attributes).length > 0 ? { interfaceAttributes: attributes } : {}),
    };
    const pending: PendingAdd = { podKey: key, id: op.id, request };
    try {
      await this.#deps.journal.record(pending);
    } catch (err) {
      return {
        op,
        ok: false,
        error: `cannot journal the ADD before sending it (${
          errorText(err)
        }); make the state directory writable`,
      };
    }
    try {
      let result;
      this.#deps.faultPoint?.("before-delegate", "add");
      try {
        result = await this.#delegate(request);
      } catch (err) {
        if (!ALREADY_EXISTS.test(errorText(err))) throw err;
        // Left over from a pass that attached it but died before recording it: detach, retry.
        log.info("attachment exists but is not recorded; re-attaching", {
          interfaceName: op.id.interface,
          network,
        });
        await this.#delegate({ ...base, command: "DEL" });
        result = await this.#delegate(request);
      }
      this.#deps.faultPoint?.("after-delegate", "add");
      const entry = statusFromCniResult(network, result ?? {});
      // Plugins that report no sandbox interface must still be recorded under the name we asked for.
      if (!entry.interface) entry.interface = op.id.interface;
      return { op, ok: true, entry, pending };
    } catch (err) {
      // The journal keeps the ADD: multus may finish it after a timeout, so the next pass
      // releases it again before anything else.
      await this.#rollbackAdd(request, log);
      return { op, ok: false, error: errorText(err) };
    }
  }

  /**
   * Settles the ADDs earlier passes started for pod `key` but did not record, before anything
   * else is done to the pod.
   *
   * An ADD is recorded when network-status holds its attachment, for this pod and sandbox, as
   * it asked for it (its IPs and MAC): then it is simply forgotten. Every other one is undone
   * with a DEL of the very request that was sent, whatever the annotation or the NAD say now.
   * A journaled ADD on an interface was only sent after the pass removed whatever held that
   * interface before, so once it is undone nothing is left on the interface: any entry
   * network-status still shows there is dropped too (it is the one that was removed, or this
   * ADD's own). The journal is cleared only after that status write.
   *
   * @returns true when network-status was changed, so that the caller plans again.
   */
  async #releaseUnrecorded(
    key: string,
    pod: PodSnapshot | undefined,
    sandbox: PodSandbox | undefined,
    log: Logger,
  ): Promise<boolean> {
    const pending = this.#deps.journal.pending(key);
    if (pending.length === 0) return false;
    let entries: NetworkStatus[] = [];
    try {
      entries = parseNetworkStatus(pod?.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]);
    } catch {
      // Without a readable status nothing tells a recorded ADD from a lost one: keep them all
      // until the annotation is repaired (the invalid status has its own Event).
      log.warn("network-status is invalid; unfinished ADDs stay journaled until it is fixed", {
        pendingAdds: pending.length,
      });
      return false;
    }
    const done: PendingAdd[] = [];
    const emptied = new Set<string>();
    const failures: string[] = [];
    for (const add of pending) {
      const ours = add.request.podUid === pod?.metadata.uid &&
        add.request.containerId === sandbox?.id;
      const asked = {
        name: add.id.network,
        namespace: add.id.namespace,
        interface: add.id.interface,
        ...add.request.interfaceAttributes,
      } satisfies NetworkSelectionElement;
      if (ours && entries.some((e) => isEntryOf(e, add.id) && entrySatisfies(asked, e))) {
        done.push(add);
        continue;
      }
      const fields = {
        interfaceName: add.id.interface,
        network: objectKey(add.id.namespace, add.id.network),
        sandboxId: add.request.containerId,
      };
      try {
        await this.#delegate({ ...add.request, command: "DEL" });
        this.#deps.observer?.unrecordedRelease?.(true);
        log.info("released an attachment whose ADD was never recorded", fields);
      } catch (err) {
        this.#deps.observer?.unrecordedRelease?.(false);
        if (add.request.podUid !== pod?.metadata.uid) {
          // multus looks the pod up for every DEL and refuses once it is gone (or replaced):
          // nothing can release it any more. Its link went with the sandbox.
          log.warn(
            "cannot release an unrecorded attachment of a pod that no longer exists; its IPAM address may stay allocated",
            { ...fields, podUid: add.request.podUid, err },
          );
          done.push(add);
          continue;
        }
        log.warn("releasing an unrecorded attachment failed; retrying", { ...fields, err });
        failures.push(`release unrecorded ${attachmentKey(add.id)}: ${errorText(err)}`);
        continue;
      }
      if (ours) emptied.add(add.id.interface);
      done.push(add);
    }
    const stale = entries.filter((e) =>
      e.default !== true && typeof e.interface === "string" && emptied.has(e.interface)
    );
    let changed = false;
    if (stale.length > 0 && pod) {
      log.info("dropping network-status entries of interfaces emptied by the release", {
        interfaces: [...emptied],
      });
      // A failed write throws before the journal is cleared: the next pass releases them again
      // (DEL is idempotent) and retries the write.
      changed = await this.#writeStatus(
        pod,
        (current) =>
          current.filter((e) =>
            e.default === true || typeof e.interface !== "string" || !emptied.has(e.interface)
          ),
        log,
      );
    }
    await this.#deps.journal.clear(done);
    if (failures.length > 0) throw new ReconcileError(key, failures);
    return changed;
  }

  /**
   * Writes `pod`'s network-status through `mutate`. False when the pod was deleted or
   * replaced meanwhile (typically while its attachments were released): there is nothing
   * left to record and nothing to retry. Any other failure throws, so the pass is retried.
   */
  async #writeStatus(
    pod: PodSnapshot,
    mutate: (entries: NetworkStatus[]) => NetworkStatus[],
    log: Logger,
  ): Promise<boolean> {
    const key = podKey(pod);
    try {
      await this.#deps.status.update(
        pod.metadata.namespace,
        pod.metadata.name,
        pod.metadata.uid,
        (current) => {
          const entries = parseNetworkStatus(current);
          const next = formatNetworkStatus(mutate(entries));
          if (next === formatNetworkStatus(entries)) return current;
          // Remembered before it lands, so that its echo from the watch is never taken for a
          // change made by someone else (see inputsChanged).
          this.#ownStatus.set(key, next);
          return next;
        },
      );
      this.#deps.observer?.statusWrite?.(true);
      return true;
    } catch (err) {
      if (err instanceof PodReplacedError) {
        log.info("pod gone before its network-status was written; nothing to record", {
          reason: err.reason,
        });
        return false;
      }
      this.#deps.observer?.statusWrite?.(false);
      log.error("writing network-status failed; the next pass repairs it", { err });
      throw new ReconcileError(podKey(pod), [`network-status write failed: ${errorText(err)}`]);
    }
  }

  /**
   * Undoes whatever a failed ADD left behind, as CNI runtimes do: a DEL with the same request.
   * Some plugins (macvlan when its IPAM fails) leave the link in the pod, which would then be
   * there without a network-status entry. Best effort: a failing DEL is only logged.
   */
  async #rollbackAdd(request: DelegateRequest, log: Logger): Promise<void> {
    try {
      await this.#delegate({ ...request, command: "DEL" });
    } catch (err) {
      log.debug("cleaning up after a failed ADD failed", {
        interfaceName: request.ifname,
        err,
      });
    }
  }

  #fault(point: FaultPoint, outcomes: readonly OperationOutcome[]): void {
    if (!this.#deps.faultPoint) return;
    for (const kind of new Set(outcomes.map((o) => o.op.kind))) this.#deps.faultPoint(point, kind);
  }

  async #delegate(request: DelegateRequest) {
    const started = performance.now();
    try {
      return await this.#deps.delegator.delegate(request);
    } finally {
      this.#deps.observer?.delegateDuration?.(
        request.command,
        (performance.now() - started) / 1000,
      );
    }
  }

  #namespaceAllowed(podNamespace: string, nadNamespace: string): boolean {
    const { namespaceIsolation, allowedNadNamespaces } = this.#deps.options;
    return !namespaceIsolation || nadNamespace === podNamespace ||
      allowedNadNamespaces.includes(nadNamespace);
  }

  /** Hands one operation's outcome to the pass's report and the metrics. */
  #record(outcome: OperationOutcome, report: PassReport): void {
    const { op } = outcome;
    this.#deps.observer?.attachmentOperation?.(op.kind, outcome.ok);
    const item = {
      iface: op.id.interface,
      network: op.id.network,
      namespace: op.id.namespace,
      ...(op.kind === "add" ? { attrs: eventAttributes(op.element) } : {}),
      ...(outcome.ok ? {} : { error: outcome.error }),
    };
    if (op.kind === "add") {
      if (outcome.ok) report.added(item);
      else report.addFailed(item);
    } else if (outcome.ok) report.removed(item);
    else report.removeFailed(item);
  }

  /** Remembers that pod `podKey` needs the NADs `nadKeys` ("ns/name"), which are missing. */
  #awaitNads(podKey: string, nadKeys: readonly string[]): void {
    for (const [nad, pods] of this.#waitingForNad) {
      if (pods.delete(podKey) && pods.size === 0) this.#waitingForNad.delete(nad);
    }
    for (const nad of nadKeys) {
      let pods = this.#waitingForNad.get(nad);
      if (!pods) this.#waitingForNad.set(nad, pods = new Set());
      pods.add(podKey);
    }
  }
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

function eventAttributes(element: NetworkSelectionElement): InterfaceAttributes | undefined {
  const attrs: InterfaceAttributes = {};
  if (element.ips && element.ips.length > 0) attrs.ips = element.ips;
  if (element.mac) attrs.mac = element.mac;
  if (element["cni-args"] != null) attrs.cniArgs = element["cni-args"];
  return Object.keys(attrs).length > 0 ? attrs : undefined;
}

/** One readable line per planned operation, for logs and `--dry-run`. */
export function describeOperations(plan: Plan): string[] {
  return plan.operations.map((op) => `${op.kind} ${attachmentKey(op.id)} (${op.reason})`);
}

/** The attachment identity of a status entry, as the planner would key it. */
export type { AttachmentId };
