/**
 * What one reconcile pass tells people about a pod. A pass collects its outcomes here and
 * flushes them once at its end, so that the noise it makes is bounded whatever the
 * annotation holds:
 *
 * - **Events:** at most one per reason and pod per pass. One interface keeps upstream's exact
 *   message; several are aggregated (`42 interfaces could not be added: network x: … (net1,
 *   net2, … and 34 more)`). Refusals share `FailedAddingInterface` with failed adds.
 * - **Log lines:** one per interface that changed (each is real work done), and one per
 *   distinct failure (network and error), naming how many interfaces it hit; refusals are one
 *   line per pass. The logger truncates long values.
 *
 * A pod whose pass failed is retried with backoff, so the same failure is reported once per
 * backoff step; a pod that waits (for a NAD, for its input to change) is reported once per
 * event or resync that runs it.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import {
  addedInterfacesMessage,
  EventReason,
  type EventType,
  failedAddingInterfacesMessage,
  failedRemovingInterfacesMessage,
  groupFailures,
  type InterfaceItem,
  listSome,
  removedInterfacesMessage,
  REPAIRED_REASON,
  repairedInterfacesMessage,
  RESTORED_REASON,
  restoredInterfacesMessage,
} from "../core/event_messages.ts";
import { objectKey } from "../core/names.ts";
import { eventAttributes, type OperationOutcome } from "./operation.ts";
import type { EventRecorder, InvolvedPod } from "./ports.ts";

function nadKey(item: InterfaceItem): string {
  return objectKey(item.namespace, item.network);
}

/** A pod-level problem with an Event reason of its own (an invalid annotation, a host-network pod). */
export interface PodNotice {
  /** The Event's reason. */
  reason: string;
  /** The Event's type. */
  type: EventType;
  /** The Event's message. */
  message: string;
  /** The log line's message; the line carries `message` as `detail`. */
  summary: string;
}

/** What planning found wrong with the annotation of the pod. */
export interface PlanProblems {
  /** Elements the planner refused, one sentence each naming the element and the fix. */
  refusals: readonly string[];
  /** Pod-level problems. */
  notices: readonly PodNotice[];
}

/** One operation's outcome as its Event shows it. */
export function interfaceItem(outcome: OperationOutcome): InterfaceItem {
  const { op } = outcome;
  return {
    iface: op.id.interface,
    network: op.id.network,
    namespace: op.id.namespace,
    ...(op.kind === "add" ? { attrs: eventAttributes(op.element) } : {}),
    ...(outcome.ok ? {} : { error: outcome.error }),
  };
}

/** Collects one pass's outcomes for one pod, then reports them with {@linkcode flush}. */
export class PassReport {
  readonly #key: string;
  readonly #log: Logger;
  #pod: InvolvedPod | undefined;
  readonly #added: InterfaceItem[] = [];
  readonly #addFailed: InterfaceItem[] = [];
  readonly #removed: InterfaceItem[] = [];
  readonly #removeFailed: InterfaceItem[] = [];
  readonly #restored: InterfaceItem[] = [];
  readonly #repaired: InterfaceItem[] = [];
  #problems: PlanProblems = { refusals: [], notices: [] };

  /** A report for pod `key` ("namespace/name"), logging through `log`. */
  constructor(key: string, log: Logger) {
    this.#key = key;
    this.#log = log;
  }

  /** The pod the Events are recorded on: the latest state of it the pass read. */
  about(pod: InvolvedPod): void {
    this.#pod = pod;
  }

  /** An interface was added. */
  added(item: InterfaceItem): void {
    this.#log.info("added interface", { interfaceName: item.iface, network: nadKey(item) });
    this.#added.push(item);
  }

  /** An interface could not be added; `item.error` says why. */
  addFailed(item: InterfaceItem): void {
    this.#addFailed.push(item);
  }

  /** An interface was removed. */
  removed(item: InterfaceItem): void {
    this.#log.info("removed interface", { interfaceName: item.iface, network: nadKey(item) });
    this.#removed.push(item);
  }

  /** An interface could not be removed; `item.error` says why. */
  removeFailed(item: InterfaceItem): void {
    this.#removeFailed.push(item);
  }

  /** An attachment a failed change removed was put back. */
  restored(item: InterfaceItem): void {
    this.#log.info("put back interface", { interfaceName: item.iface, network: nadKey(item) });
    this.#restored.push(item);
  }

  /** A drifted attachment was released and made again; `item.error` says what was found. */
  repaired(item: InterfaceItem): void {
    this.#log.info("repaired interface", {
      interfaceName: item.iface,
      network: nadKey(item),
      found: item.error,
    });
    this.#repaired.push(item);
  }

  /**
   * Files one operation's outcome under added, removed, put back, repaired or failed. The
   * removal a failed change undid, and the release of a drifted attachment, are not reported:
   * the attachment is in the pod as before, or its repair is.
   */
  operationEnded(outcome: OperationOutcome): void {
    const { op } = outcome;
    if (outcome.undone || (op.kind === "remove" && op.reason === "drifted" && outcome.ok)) return;
    const item = interfaceItem(outcome);
    if (op.kind === "add" && op.reason === "restored" && outcome.ok) this.restored(item);
    else if (op.kind === "add" && op.reason === "repair" && outcome.ok) {
      this.repaired({ ...item, error: op.found });
    } else if (op.kind === "add") {
      if (outcome.ok) this.added(item);
      else this.addFailed(item);
    } else if (outcome.ok) this.removed(item);
    else this.removeFailed(item);
  }

  /**
   * What planning found wrong. Only the plan the pass acts on counts: a pass that plans
   * again (from a fresh read) replaces the problems of its earlier plan.
   */
  planned(problems: PlanProblems): void {
    this.#problems = problems;
  }

  /** What planning found wrong, as the last plan of the pass found it. */
  get problems(): PlanProblems {
    return this.#problems;
  }

  /** Writes the log lines and Events of the pass. Call once, at its end. */
  flush(events: EventRecorder): void {
    this.#logFailures("adding", this.#addFailed);
    this.#logFailures("removing", this.#removeFailed);
    const refusals = [...new Set(this.#problems.refusals)];
    const notices = new Map(this.#problems.notices.map((n) => [n.reason, n]));
    if (refusals.length > 0) {
      this.#log.warn("refused part of the networks annotation", {
        count: refusals.length,
        refusals: listSome(refusals, "; "),
      });
    }
    for (const [reason, notice] of notices) {
      this.#log.warn(notice.summary, { reason, detail: notice.message });
    }
    const pod = this.#pod;
    if (!pod) return;
    const key = this.#key;
    const record = (type: EventType, reason: string, message: string) =>
      events.record(pod, type, reason, message);
    for (const [reason, notice] of notices) record(notice.type, reason, notice.message);
    if (this.#removed.length > 0) {
      record("Normal", EventReason.RemovedInterface, removedInterfacesMessage(key, this.#removed));
    }
    if (this.#removeFailed.length > 0) {
      record(
        "Warning",
        EventReason.FailedRemovingInterface,
        failedRemovingInterfacesMessage(key, this.#removeFailed),
      );
    }
    if (this.#added.length > 0) {
      record("Normal", EventReason.AddedInterface, addedInterfacesMessage(key, this.#added));
    }
    if (this.#restored.length > 0) {
      record("Normal", RESTORED_REASON, restoredInterfacesMessage(key, this.#restored));
    }
    if (this.#repaired.length > 0) {
      record("Normal", REPAIRED_REASON, repairedInterfacesMessage(key, this.#repaired));
    }
    if (this.#addFailed.length > 0 || refusals.length > 0) {
      record(
        "Warning",
        EventReason.FailedAddingInterface,
        failedAddingInterfacesMessage(key, this.#addFailed, refusals),
      );
    }
  }

  /** One warning per distinct failure (network and error), naming the interfaces it hit. */
  #logFailures(verb: "adding" | "removing", items: readonly InterfaceItem[]): void {
    for (const group of groupFailures(items)) {
      const [first] = group.items as [InterfaceItem];
      if (group.items.length === 1) {
        this.#log.warn(`${verb} interface failed`, {
          interfaceName: first.iface,
          network: group.nadKey,
          err: group.error,
        });
        continue;
      }
      this.#log.warn(`${verb} interfaces failed`, {
        count: group.items.length,
        interfaces: listSome(group.items.map((i) => i.iface)),
        network: group.nadKey,
        err: group.error,
      });
    }
  }
}
