/**
 * The reconciler: one pass over one pod. It reads the world as it is now (the pod's
 * desired networks, its recorded network-status, its sandbox), plans with the pure
 * planner, settles what an interrupted pass left (`recovery.ts`), announces what it is about
 * to change (the condition, and the finalizer before a first ADD), carries out the
 * operations (`operation.ts`), writes network-status once from a fresh read, and reports
 * every outcome as an Event and a log line (`pass_report.ts`). A finished pod (being
 * deleted, or done) takes the deletion phase instead (`deletion.ts`).
 *
 * A pass returns a {@linkcode ReconcileOutcome} or throws a {@linkcode ReconcileError}, as
 * `outcome.ts` describes: it is done; it waits for an event (a NAD it needs does not exist);
 * it polls for the pod sandbox; or something failed, transiently (backoff) or because the
 * input is bad (terminal until it changes).
 *
 * It never trusts the event that queued the pod: any pass may be repeated, interrupted or
 * run after a crash, and it still converges.
 *
 * @module
 */
import { errorText, type Logger } from "../base/log.ts";
import { NETWORK_STATUS_ANNOTATION } from "../core/annotations.ts";
import { splitObjectKey } from "../core/names.ts";
import type { Plan } from "../core/plan_types.ts";
import { isActionable, isFinished, podKey, type PodSnapshot } from "../core/pod.ts";
import { nadKey } from "../core/nad.ts";
import { inputsChanged } from "../core/pod_inputs.ts";
import type { NetworksCondition } from "../core/networks_condition.ts";
import { formatNetworkStatus, type NetworkStatus, parseNetworkStatus } from "../core/status.ts";
import { Effects } from "./effects.ts";
import { applyOutcomes, type OperationContext, runOperations } from "./operation.ts";
import { DONE, ReconcileError, type ReconcileOutcome, requeue, waitFor } from "./outcome.ts";
import { describeOperations } from "./dry_run.ts";
import { PassReport } from "./pass_report.ts";
import {
  planFromAnnotations,
  type PlannedPod,
  planWithReport,
  refuseHostNetworkSandbox,
} from "./planning.ts";
import type { PodSandbox, ReconcilerDeps } from "./ports.ts";
import { settleJournal } from "./recovery.ts";
import { NadWaiters } from "./nad_waiters.ts";
import { conditionChanged, passCondition, settledOutcome } from "./pass_end.ts";
import { type JournalChange, releaseFinished, wantsFinalizer } from "./deletion.ts";
import type { WriteOutcome } from "./effects.ts";

/** What a pass that cannot act yet waits for, as the condition says it. */
const SANDBOX = "the pod sandbox";

const NO_PLAN: Plan = { operations: [], refusals: [], desired: [] };

/** A network-status text as the agent would write it back; undefined when it cannot be read. */
function formattedOrUndefined(text: string): string | undefined {
  try {
    return formatNetworkStatus(parseNetworkStatus(text));
  } catch {
    return undefined;
  }
}

function hasWork(plan: Plan | undefined): boolean {
  return plan !== undefined && plan.operations.length > 0;
}

/**
 * Reconciles pods one pass at a time. Also remembers, per pod, what a pass cannot read from
 * the world: which NADs it waits for (so that their creation queues it), when its annotation
 * changed (for the latency metric), and the network-status text it wrote last (to tell its
 * echo from someone else's write).
 */
export class Reconciler {
  readonly #deps: ReconcilerDeps;
  readonly #now: () => number;
  readonly #effects: Effects;
  /** NAD key "ns/name" → pod keys whose last pass needed it and did not find it usable. */
  readonly #waitingForNad = new NadWaiters();
  /** Pod key → time its networks annotation was seen to change (for the latency metric). */
  readonly #changedAt = new Map<string, number>();
  /** Pod key → the network-status text this agent wrote last for it. */
  readonly #ownStatus = new Map<string, string>();
  /** Pod key → the network-status text of its last pass that knew the pod's sandbox. */
  readonly #checkedStatus = new Map<string, string>();

  /** Creates a reconciler over `deps`. */
  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#effects = new Effects(deps, (key, text) => this.#ownStatus.set(key, text));
  }

  /** Records when a pod's networks annotation was seen to change. */
  noteAnnotationChange(key: string, at = this.#now()): void {
    if (!this.#changedAt.has(key)) this.#changedAt.set(key, at);
  }

  /** Forgets what the reconciler remembers of pod `key`. */
  forget(key: string): void {
    this.#changedAt.delete(key);
    this.#ownStatus.delete(key);
    this.#checkedStatus.delete(key);
    this.#waitingForNad.forget(key);
  }

  /**
   * Called when pod `pod` (its last known state) has left the API server; forgets it. The pass
   * the triggers queue for its key then settles what the journal still holds for it.
   */
  podRemoved(pod: PodSnapshot): void {
    this.forget(podKey(pod));
  }

  /**
   * True when pod `next` differs from `previous` (its cached state before the event) in
   * something a pass reads: then the pod is due now, even while it backs off. The echo of
   * this agent's own last network-status write is not a change.
   */
  changeMatters(previous: PodSnapshot | undefined, next: PodSnapshot): boolean {
    return inputsChanged(previous, next, this.#ownStatus.get(podKey(next)));
  }

  /**
   * Pods whose last pass needed NAD `nadKey` ("namespace/name") and found it missing, or its
   * config unusable: its creation or change is the event they wait for.
   */
  podsWaitingFor(nadKey: string): string[] {
    return this.#waitingForNad.podsWaitingFor(nadKey);
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
    try {
      return await this.#pass(key, report, log);
    } finally {
      report.flush(this.#deps.events);
    }
  }

  async #pass(key: string, report: PassReport, log: Logger): Promise<ReconcileOutcome> {
    const ctx = this.#context(log);
    const cached = this.#deps.pods.cached(key);
    if (!cached) {
      await settleJournal(ctx, key, undefined, undefined);
      this.forget(key);
      return DONE;
    }
    if (isFinished(cached)) return await this.#finish(cached, report, log);
    if (!isActionable(cached)) {
      log.debug("pod not running yet; waiting", { phase: cached.status?.phase });
      return waitFor("the pod to run");
    }
    const first = this.#plan(cached, report);
    if (!this.#hasWork(cached, first)) {
      this.#changedAt.delete(key);
      await this.#keepCondition(cached, passCondition(cached, first, report.problems), log);
      return settledOutcome(key, first, []);
    }
    if (this.#deps.options.dryRun) {
      if (first.plan) {
        log.info("dry run: would apply plan", { operations: describeOperations(first.plan) });
      }
      return DONE;
    }

    // The sandbox lookup needs only the pod's uid: it runs while the pod is read. Its failure
    // is the pass's only when the pass gets to use it.
    const found = this.#findSandbox(key, cached.metadata.uid);
    found.catch(() => {});
    // The cache may lag behind our own last status write; plan again from a fresh read.
    const pod = await this.#fetch(key);
    if (!pod || pod.metadata.uid !== cached.metadata.uid) {
      log.debug("pod gone or replaced before acting");
      return DONE;
    }
    if (isFinished(pod)) return await this.#finish(pod, report, log, found);
    const planned = this.#plan(pod, report);
    if (!hasWork(planned.plan)) this.#changedAt.delete(key);
    if (!this.#hasWork(pod, planned)) {
      await this.#keepCondition(pod, passCondition(pod, planned, report.problems), log);
      return settledOutcome(key, planned, []);
    }
    // The journal is settled even when the annotation cannot be planned: releasing what it
    // holds depends only on what network-status records and on the pod's sandbox.
    return await this.#apply(pod, planned, report, log, found);
  }

  /** The deletion phase of a finished pod (`deletion.ts`); its sandbox is looked up when needed. */
  async #finish(
    pod: PodSnapshot,
    report: PassReport,
    log: Logger,
    found?: Promise<PodSandbox | undefined>,
  ): Promise<ReconcileOutcome> {
    this.#changedAt.delete(podKey(pod));
    const sandbox = () => found ?? this.#findSandbox(podKey(pod), pod.metadata.uid);
    return await releaseFinished(this.#context(log), pod, sandbox, report);
  }

  /**
   * True when a pass over the running `pod` has something to do: operations to run,
   * unfinished ADDs or DELs to settle, attachments of the agent's whose sandbox may have been
   * replaced (network-status was rewritten since the agent last looked; multus does so for
   * every new sandbox), or the agent's finalizer to add or remove.
   */
  #hasWork(pod: PodSnapshot, planned: PlannedPod): boolean {
    const key = podKey(pod);
    const { journal } = this.#deps;
    if (hasWork(planned.plan) || journal.pending(key).length + journal.detaching(key).length > 0) {
      return true;
    }
    if (journal.attached(key).length > 0) {
      const status = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
      if (status !== this.#checkedStatus.get(key)) return true;
    }
    return wantsFinalizer(this.#deps.journal, pod, this.#now()) !==
      (pod.metadata.holdsFinalizer === true);
  }

  async #apply(
    pod: PodSnapshot,
    planned: PlannedPod,
    report: PassReport,
    log: Logger,
    found: Promise<PodSandbox | undefined>,
  ): Promise<ReconcileOutcome> {
    const key = podKey(pod);
    const ctx = this.#context(log);
    const uid = pod.metadata.uid;
    const sandbox = await found;
    if (await settleJournal(ctx, key, pod, sandbox)) {
      // The release changed network-status: plan from what it says now.
      const fresh = await this.#fetch(key);
      if (!fresh || fresh.metadata.uid !== uid) return DONE;
      if (isFinished(fresh)) return await this.#finish(fresh, report, log, found);
      const replanned = this.#plan(fresh, report);
      if (!replanned.plan) {
        await this.#keepCondition(fresh, passCondition(fresh, replanned, report.problems), log);
        return settledOutcome(key, replanned, []);
      }
      pod = fresh;
      planned = replanned;
    }
    let settledAs: string | undefined;
    if (sandbox?.ready) {
      // Settled against the live sandbox: until network-status changes again, the journal's
      // attachments need no other look (a sandbox still being replaced is no such look).
      const text = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] ?? "";
      this.#checkedStatus.set(key, text);
      settledAs = formattedOrUndefined(text);
    }
    if (!sandbox?.ready) {
      const waitingFor = SANDBOX;
      await this.#keepCondition(
        pod,
        passCondition(pod, planned, report.problems, { waitingFor }),
        log,
      );
      return requeue(
        sandbox ? `pod sandbox ${sandbox.id} to be ready` : `a pod sandbox for uid ${uid}`,
      );
    }
    if (sandbox.hostNetwork) {
      const refusal = refuseHostNetworkSandbox(key, pod.metadata.uid, sandbox.id, report);
      await this.#keepCondition(pod, passCondition(pod, planned, report.problems), log);
      throw refusal;
    }

    const operations = (planned.plan ?? NO_PLAN).operations;
    const announced = await this.#announce(pod, planned, report, log);
    if (announced === "gone") return DONE;
    if (announced === "terminating") {
      // Its deletion is an event: the pass it queues releases nothing (nothing was plugged).
      log.info("pod deletion began before its first hot-plug; nothing is plugged into it");
      return waitFor("the pod's deletion");
    }
    pod = announced;
    const outcomes = await runOperations(ctx, pod, sandbox, operations);

    const succeeded = outcomes.filter((o) => o.ok);
    const change: JournalChange = {
      recorded: succeeded.flatMap((o) => o.op.kind === "add" && o.pending ? [o.pending] : []),
      released: succeeded.flatMap((o) => o.op.kind === "remove" ? o.released ?? [] : []),
    };
    const finalizer = wantsFinalizer(this.#deps.journal, pod, this.#now(), change);
    const condition = passCondition(pod, planned, report.problems, { outcomes });
    if (
      succeeded.length > 0 || finalizer !== (pod.metadata.holdsFinalizer === true) ||
      conditionChanged(pod, condition)
    ) {
      let basedOn: string | undefined;
      let written: string | undefined;
      const mutate = succeeded.length > 0
        ? (e: NetworkStatus[]) => {
          basedOn = formatNetworkStatus(e);
          const next = applyOutcomes(e, succeeded);
          const text = formatNetworkStatus(next);
          written = text === basedOn ? undefined : text;
          return next;
        }
        : undefined;
      if (await this.#effects.writeStatus(pod, mutate, log, finalizer, condition) === "gone") {
        return DONE;
      }
      if (written !== undefined && settledAs !== undefined && basedOn === settledAs) {
        // Written onto the very network-status the journal was settled against (no newer one,
        // such as a new sandbox's, came in between): the echo of this write needs no pass.
        this.#checkedStatus.set(key, written);
      }
      try {
        await this.#deps.journal.settle(change);
      } catch (err) {
        // Harmless: the next pass finds them recorded in network-status and settles them then.
        log.warn("writing the attachment journal after the status write failed", { err });
      }
    }

    report.about(pod.metadata);
    for (const outcome of outcomes) {
      this.#deps.observer?.attachmentOperation?.(outcome.op.kind, outcome.ok);
      report.operationEnded(outcome);
    }
    this.#waitingForNad.alsoAwait(key, outcomes.flatMap((o) => o.waitsFor ? [o.waitsFor] : []));
    const changedAt = this.#changedAt.get(key);
    if (changedAt !== undefined && succeeded.length === outcomes.length) {
      const seconds = (this.#now() - changedAt) / 1000;
      for (const o of succeeded) this.#deps.observer?.hotplugCompleted?.(o.op.kind, seconds);
      this.#changedAt.delete(key);
    }
    return settledOutcome(key, planned, outcomes);
  }

  /**
   * Before any operation is sent: the condition says what is about to change (`Attaching`,
   * `Detaching`), and the finalizer is put on a pod that is about to get its first ADD, in one
   * write. Operations that cannot start (a NAD that does not exist) are not announced. Returns
   * `pod` as written, or what stops the pass: the pod is gone, or its deletion began, so it
   * gets no ADD (and the finalizer cannot be added any more).
   */
  async #announce(
    pod: PodSnapshot,
    planned: PlannedPod,
    report: PassReport,
    log: Logger,
  ): Promise<PodSnapshot | Exclude<WriteOutcome, "written">> {
    const missing = new Set(planned.missingNads);
    const changing = (planned.plan ?? NO_PLAN).operations.filter((op) =>
      op.kind === "remove" ||
      !missing.has(nadKey({ namespace: op.id.namespace, name: op.id.network }))
    );
    if (changing.length === 0) return pod;
    const addsFirst = changing.some((op) => op.kind === "add") &&
      pod.metadata.holdsFinalizer !== true;
    // A condition that is False already keeps the pod from being Ready: it is left as it is
    // (a retry that keeps failing then costs no extra write).
    const condition = pod.status?.networksCondition?.status === "False"
      ? undefined
      : passCondition(pod, planned, report.problems, { changing });
    const newCondition = conditionChanged(pod, condition);
    if (!addsFirst && !newCondition) return pod;
    const outcome = await this.#effects.writeStatus(
      pod,
      undefined,
      log,
      addsFirst ? true : undefined,
      newCondition ? condition : undefined,
    );
    if (outcome !== "written") return outcome;
    const metadata = addsFirst ? { ...pod.metadata, holdsFinalizer: true } : pod.metadata;
    const status = newCondition ? { ...pod.status, networksCondition: condition } : pod.status;
    return { ...pod, metadata, ...(status ? { status } : {}) };
  }

  /** Writes `condition` alone, when it says something else than the one `pod` has. */
  async #keepCondition(
    pod: PodSnapshot,
    condition: NetworksCondition | undefined,
    log: Logger,
  ): Promise<void> {
    if (this.#deps.options.dryRun || !conditionChanged(pod, condition)) return;
    await this.#effects.writeStatus(pod, undefined, log, undefined, condition);
  }

  #context(log: Logger): OperationContext {
    return { deps: this.#deps, effects: this.#effects, log };
  }

  /** A fresh read of pod `key`; a failure is an `api` failure of the pass. */
  async #fetch(key: string): Promise<PodSnapshot | undefined> {
    const { namespace, name } = splitObjectKey(key);
    try {
      return await this.#deps.pods.fetch(namespace, name);
    } catch (err) {
      throw new ReconcileError(key, [{
        kind: "api",
        text: `reading the pod failed: ${errorText(err)}`,
      }]);
    }
  }

  /** The pod's sandbox; a failure is a `cri` failure of the pass. */
  async #findSandbox(key: string, uid: string): Promise<PodSandbox | undefined> {
    try {
      return await this.#deps.sandboxes.findSandbox(uid);
    } catch (err) {
      throw new ReconcileError(key, [{
        kind: "cri",
        text: `finding the pod sandbox failed: ${errorText(err)}`,
      }]);
    }
  }

  /** Plans `pod` into the pass's report and remembers the NADs the plan misses. */
  #plan(pod: PodSnapshot, report: PassReport): PlannedPod {
    const planned = planWithReport(pod, this.#deps.nads, report);
    this.#waitingForNad.await(podKey(pod), planned.missingNads);
    return planned;
  }
}
