/**
 * The reconciler's ports: everything a reconcile pass reads from or does to the world, as
 * small interfaces. The adapters implement them (`lib/kube/` the pod and NAD sources, the
 * status store and the event recorder; `lib/cri/` the sandbox locator; `lib/multus/` the
 * delegator; `lib/journal/` the attachment journal; `lib/observe/` the observer), and the
 * unit tests implement them in memory. Nothing here knows Kubernetes' wire types, gRPC or
 * HTTP.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import type { CniResult } from "../core/cni_result.ts";
import type { EventType } from "../core/event_messages.ts";
import type { NetworkAttachmentDefinition } from "../core/nad.ts";
import type { NetworksCondition } from "../core/networks_condition.ts";
import type { PodSnapshot } from "../core/pod.ts";
import type { AttachmentKeyParts } from "../core/status.ts";

/** Pods as the reconciler sees them: the informer's cache and a fresh read. */
export interface PodSource {
  /** The cached pod for `namespace/name`, if any. */
  cached(key: string): PodSnapshot | undefined;
  /** A fresh read from the API server; undefined when the pod is gone. */
  fetch(namespace: string, name: string): Promise<FreshPod | undefined>;
}

/**
 * The version of a pod a status write starts from: the pod as a fresh read, or the last write
 * of the pass, answered it. Opaque to the pass but for the version it names: a write from it
 * is refused (409 Conflict) when the pod has changed since, and then made from a new read.
 */
export interface StatusBase {
  /** The pod's `metadata.resourceVersion` in it. */
  readonly resourceVersion: string;
}

/** A pod read afresh: what the pass reads of it, and the base of its next status write. */
export interface FreshPod {
  /** The pod. */
  pod: PodSnapshot;
  /** The pod as read, for a status write to start from. */
  base: StatusBase;
}

/** NetworkAttachmentDefinitions by namespace and name. */
export interface NadSource {
  /** The NAD `namespace/name`, or undefined when it does not exist. */
  get(namespace: string, name: string): NetworkAttachmentDefinition | undefined;
}

/** What became of a status update. */
export type StatusUpdate =
  /** The change was written; `base` is the pod as written, for the pass's next write. */
  | { result: "written"; base?: StatusBase }
  /** The mutation left the pod as it was: nothing was written. */
  | { result: "unchanged" }
  /** The pod is gone, or another pod took its name: there is nothing left to record. */
  | { result: "gone"; reason: "NotFound" | "UidChanged" };

/**
 * Why a status write failed, as the {@linkcode StatusStore} tells it: `conflict`, the pod kept
 * changing between its read and its write; `unavailable`, the API server could not be reached
 * or failed; `refused`, it refused the write for a reason only an operator can fix (the
 * credentials, RBAC, an admission policy).
 */
export type StatusWriteFailure = "conflict" | "unavailable" | "refused";

/** A failed status write and its {@linkcode StatusWriteFailure}; any other error is `unavailable`. */
export class StatusWriteError extends Error {
  /** Why the write failed. */
  readonly failure: StatusWriteFailure;

  /** The error `message`, of kind `failure`. */
  constructor(message: string, failure: StatusWriteFailure, options?: ErrorOptions) {
    super(message, options);
    this.name = "StatusWriteError";
    this.failure = failure;
  }
}

/** The parts of a pod the agent writes, all in one `pods/status` update. */
export interface OwnedStatus {
  /** The network-status annotation's text; undefined when absent (and to remove it). */
  networkStatus: string | undefined;
  /** Whether the agent's finalizer (`RELEASE_FINALIZER`) is on the pod. */
  finalizer: boolean;
  /**
   * The pod's `NETWORKS_READY_CONDITION` condition; undefined when absent. A `mutate` that
   * returns undefined leaves it as it is: the agent never removes it.
   */
  condition?: NetworksCondition;
  /**
   * True when the pod is being deleted (read only): the API server then refuses a finalizer the
   * pod does not have yet.
   */
  readonly deleting?: boolean;
}

/** Writes the agent's parts of a pod with optimistic concurrency from a fresh read. */
export interface StatusStore {
  /**
   * Applies `mutate` to the agent's parts of the pod as they are now and writes the result
   * when it differs, leaving everything else of the pod as it is. Starts from `base` (a fresh
   * read or the last write of the pass) when given, else reads the pod; a write the pod has
   * changed since is refused, and made again from a new read with `mutate` applied again.
   * Never writes to a pod whose uid is not `uid`. Throws only when the write could not be made
   * (the API refused it or could not be reached), and whatever `mutate` throws.
   */
  update(
    namespace: string,
    name: string,
    uid: string,
    mutate: (current: OwnedStatus) => OwnedStatus,
    base?: StatusBase,
  ): Promise<StatusUpdate>;
}

/** A pod's sandbox, as the reconciler needs it. */
export interface PodSandbox {
  /** Sandbox ID: `CNI_CONTAINERID` of every delegate call. */
  id: string;
  /** Host path of the sandbox's network namespace: `CNI_NETNS`. */
  netnsPath: string;
  /**
   * `true` when the sandbox is `SANDBOX_READY` and its network namespace is open. `false` for a
   * stopped sandbox of a terminating pod: its path may name a namespace that no longer exists,
   * which is still good enough for a CNI DEL (plugins treat a missing namespace as done).
   */
  ready: boolean;
  /** Creation time in nanoseconds since the epoch. */
  createdAt: bigint | number;
  /**
   * `true` when the runtime runs the sandbox in the node's own network namespace (CRI
   * `linux.namespaces.options.network == NODE`): nothing may be plugged into it, whatever the
   * pod's spec says, and `netnsPath` is empty.
   */
  hostNetwork?: boolean;
}

/** Finds the sandbox of a pod through the container runtime. */
export interface SandboxLocator {
  /**
   * Returns the pod's sandbox: the newest READY one, else the newest NOTREADY one (with
   * `ready: false`), or `undefined` when the runtime has none for this pod UID.
   */
  findSandbox(podUid: string, signal?: AbortSignal): Promise<PodSandbox | undefined>;
}

/** One delegate call: the CNI command and where and for whom to run it. */
export interface DelegateRequest {
  /** CNI command. */
  command: "ADD" | "DEL" | "CHECK";
  /** Pod sandbox ID (`CNI_CONTAINERID`). */
  containerId: string;
  /** Network namespace path (`CNI_NETNS`). */
  netns: string;
  /** Interface name in the pod (`CNI_IFNAME`). */
  ifname: string;
  /** Pod namespace (`K8S_POD_NAMESPACE`). */
  podNamespace: string;
  /** Pod name (`K8S_POD_NAME`). */
  podName: string;
  /** Pod UID (`K8S_POD_UID`); multus checks it against the pod it reads. */
  podUid: string;
  /** The delegate CNI configuration JSON bytes (see `delegateConfig` in `lib/core/nad.ts`). */
  config: Uint8Array;
  /** Requested IPs, MAC and CNI args of the selection element (honoured on ADD). */
  interfaceAttributes?: {
    /** Requested addresses, as written in the annotation. */
    ips?: string[];
    /** Requested MAC address. */
    mac?: string;
    /** Extra CNI arguments; null when the element set them to null. */
    "cni-args"?: Record<string, unknown> | null;
  };
}

/** Runs delegate CNI commands (multus' `/delegate`). */
export interface Delegator {
  /**
   * Runs one ADD (returns the CNI result), DEL or CHECK (return `undefined`). A CHECK that
   * finds the attachment other than its ADD's result throws, like a failed ADD or DEL.
   */
  delegate(req: DelegateRequest, signal?: AbortSignal): Promise<CniResult | undefined>;
}

/** An ADD the agent started for one attachment of one pod. */
export interface PendingAdd {
  /** The pod's key, "namespace/name". */
  podKey: string;
  /** The attachment; `interface` equals `request.ifname`. */
  id: AttachmentKeyParts;
  /** The ADD request as sent; a DEL of the same request undoes it. */
  request: DelegateRequest;
}

/**
 * The agent's own attachments on the node, kept so that each can always be released with a DEL
 * of the very request that made it. An ADD is journaled *pending* before it is sent; once
 * network-status records it, it is *attached*, with the sandbox, network namespace and CNI
 * config it was made with, until it is released. A pending ADD that a crash or a timeout cut
 * short is released by the next pass; an attached one whose sandbox the runtime replaced (the
 * pod's network-status then describes the new sandbox only) is released too, and so is every
 * one of a pod being deleted. Every removal is journaled *detaching* before its DEL is sent,
 * whoever made the attachment: until network-status stops recording it, the entry there may
 * describe an interface that is gone, and the next pass must not take it for one in place.
 */
export interface AttachmentJournal {
  /** The pending ADDs of pod `podKey`, oldest first. */
  pending(podKey: string): readonly PendingAdd[];
  /** The attached ADDs of pod `podKey`, oldest first. */
  attached(podKey: string): readonly PendingAdd[];
  /** The detaching attachments of pod `podKey` (their DEL sent, their removal not recorded). */
  detaching(podKey: string): readonly PendingAdd[];
  /** Pod keys with at least one pending ADD or detaching attachment: work left unfinished. */
  podKeys(): string[];
  /** Pod keys with at least one attached ADD. */
  attachedPodKeys(): string[];
  /** Records `add` as pending before its ADD is sent. Resolves once it is stored. */
  record(add: PendingAdd): Promise<void>;
  /**
   * Records the attachment `add` made (or one built from its NAD, for an attachment the agent
   * did not make) as detaching before its DEL is sent; it is pending or attached no more.
   * Resolves once it is stored.
   */
  recordDetach(add: PendingAdd): Promise<void>;
  /**
   * In one write per pod: `released` are forgotten, whatever their state, then `recorded`
   * (network-status now records them) become attached; one in both (released, then made again
   * with the same request) ends attached.
   */
  settle(change: { recorded?: readonly PendingAdd[]; released?: readonly PendingAdd[] }): Promise<
    void
  >;
}

/** The pod an Event is about. */
export interface InvolvedPod {
  /** Namespace of the pod. */
  namespace: string;
  /** Name of the pod. */
  name: string;
  /** UID of the pod (Events name the exact object). */
  uid: string;
  /** Version of the pod the Event is about, when known. */
  resourceVersion?: string;
}

/** Records Events on pods; implementations never throw and never block. */
export interface EventRecorder {
  /** Records (or counts a repeat of) an event on `pod`. Returns at once. */
  record(pod: InvolvedPod, type: EventType, reason: string, message: string): void;
}

/** What the reconciler reports to metrics; every method is optional to implement. */
export interface ReconcileObserver {
  /** One attachment operation ended, successfully or not. */
  attachmentOperation?(operation: "add" | "remove", ok: boolean): void;
  /** One delegate call took `seconds`. */
  delegateDuration?(command: "ADD" | "DEL" | "CHECK", seconds: number): void;
  /** One network-status write ended, successfully or not. */
  statusWrite?(ok: boolean): void;
  /** One release of an ADD the journal held unrecorded ended, successfully or not. */
  unrecordedRelease?(ok: boolean): void;
  /** An annotation change was applied and recorded `seconds` after it was seen. */
  hotplugCompleted?(operation: "add" | "remove", seconds: number): void;
  /** One drift check (CNI CHECK) of an attachment ended with `result`. */
  driftCheck?(result: DriftCheckResult): void;
  /** One repair of a drifted attachment ended, successfully or not. */
  driftRepair?(ok: boolean): void;
}

/**
 * What one drift check found: `ok` (as recorded), `drifted` (missing or altered),
 * `unsupported` (its configuration cannot be checked: a `cniVersion` before 0.4.0, a plugin
 * without CHECK, no cached result), `error` (multus could not be asked).
 */
export type DriftCheckResult = "ok" | "drifted" | "unsupported" | "error";

/** Settings the reconciler needs from the configuration. */
export interface ReconcileOptions {
  /** When true, a pod may use NADs only from its own namespace or `allowedNadNamespaces`. */
  namespaceIsolation: boolean;
  /** Namespaces whose NADs any pod may use when isolation is on. */
  allowedNadNamespaces: readonly string[];
  /** Plan and log, act on nothing. */
  dryRun: boolean;
  /**
   * What a pass does with an attachment a drift check found missing or altered: release it and
   * add it again with the same request (true, the default), or only report it (false).
   */
  driftRepair?: boolean;
}

/** Everything a reconcile pass talks to. */
export interface ReconcilerDeps {
  /** The pods of this node. */
  pods: PodSource;
  /** The cluster's NetworkAttachmentDefinitions. */
  nads: NadSource;
  /** The container runtime. */
  sandboxes: SandboxLocator;
  /** multus. */
  delegator: Delegator;
  /** Where network-status is written. */
  status: StatusStore;
  /** ADDs started but not yet recorded in network-status (see `lib/journal/`). */
  journal: AttachmentJournal;
  /** Where Events go. */
  events: EventRecorder;
  /** The reconciler's logger; every line of a pass carries the pod's key. */
  log: Logger;
  /** Settings from the configuration. */
  options: ReconcileOptions;
  /** Metrics. */
  observer?: ReconcileObserver;
  /** Wall clock in ms (the finalizer's give-up deadline, the latency metric). */
  now?: () => number;
}
