/**
 * The drift check: whether what network-status claims is still in the pod. Each attachment
 * network-status lists on a running pod of the node (the agent's own and those multus made at
 * the pod's creation) gets a CNI CHECK through multus' `/delegate`, once per interval, the
 * checks spread evenly over it so that many pods make no burst; the first round starts with the
 * agent. The plugins answer from the result libcni cached at ADD: a link deleted in the pod,
 * its master gone or its address removed fails the CHECK.
 *
 * A drifted attachment goes into the pod's memory and the pod is queued: its pass repairs it
 * (releases it and adds it again with the same request) or, with repair off, reports it in the
 * `NetworksReady` condition and an Event (`planning.ts`). A network whose attachments cannot be
 * checked (a `cniVersion` before 0.4.0, where multus' own daemon config decides it; a plugin
 * without CHECK; no cached result) is counted and said once, at its first attachment, and none
 * of its attachments is checked again while the agent runs.
 *
 * @module
 */
import { errorText, type Logger } from "../base/log.ts";
import type { Drift } from "../core/drift.ts";
import { delegateConfig, nadKey } from "../core/nad.ts";
import { type AttachmentId, attachmentKey, statusAttachmentId } from "../core/plan_types.ts";
import { isFinished, podKey, type PodSnapshot } from "../core/pod.ts";
import { NETWORK_STATUS_ANNOTATION } from "../core/annotations.ts";
import { parseNetworkStatus } from "../core/status.ts";
import type { PodMemory } from "./pod_memory.ts";
import type {
  AttachmentJournal,
  DelegateRequest,
  Delegator,
  DriftCheckResult,
  NadSource,
  PodSandbox,
  ReconcileObserver,
  SandboxLocator,
} from "./ports.ts";

/**
 * What a CHECK answers when the attachment cannot be checked at all: libcni refuses a
 * configuration before 0.4.0, a plugin gets no cached result to check against, or it does not
 * know the command.
 */
const UNCHECKABLE =
  /does not support the CHECK command|required prevResult missing|unknown CNI_COMMAND|not implemented/i;

/** What the drift check needs. */
export interface DriftCheckDeps {
  /** The pods of this node, as cached. */
  pods(): readonly PodSnapshot[];
  /** The cluster's NetworkAttachmentDefinitions (the configs of what multus made). */
  nads: NadSource;
  /** The container runtime. */
  sandboxes: SandboxLocator;
  /** multus. */
  delegator: Delegator;
  /** The agent's own attachments, with the requests that made them. */
  journal: AttachmentJournal;
  /** Where drifted attachments are remembered for the passes. */
  memory: PodMemory;
  /** Queues a pass over pod `key`. */
  enqueue(key: string): void;
  /** Where the check logs. */
  log: Logger;
  /** Metrics. */
  observer?: ReconcileObserver;
  /** Each attachment is checked once per this many milliseconds. */
  intervalMs: number;
}

/** One attachment to check. */
export interface DriftTarget {
  /** The attachment, as network-status lists it. */
  id: AttachmentId;
}

/** The drift check; {@linkcode DriftCheck.run} until the signal aborts. */
export class DriftCheck {
  readonly #deps: DriftCheckDeps;
  /**
   * Networks (`<namespace>/<name>`) whose attachments cannot be checked: said once, and none of
   * theirs checked again (the cause, a `cniVersion` or a plugin, is the network's, or multus').
   */
  readonly #uncheckable = new Set<string>();

  /** A drift check over `deps`. */
  constructor(deps: DriftCheckDeps) {
    this.#deps = deps;
  }

  /**
   * Checks every attachment once per interval until `signal` aborts: each round lists the
   * attachments as network-status has them now, and spreads their checks over the interval.
   */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const rounds = this.#round();
      const count = rounds.reduce((n, r) => n + r.targets.length, 0);
      const gapMs = this.#deps.intervalMs / Math.max(1, count);
      if (count === 0) await sleep(this.#deps.intervalMs, signal);
      for (const { pod, targets } of rounds) {
        if (signal.aborted) return;
        await this.checkPod(pod, targets, () => sleep(gapMs, signal));
      }
    }
  }

  /** The running pods of the node and the attachments network-status lists for each. */
  #round(): { pod: PodSnapshot; targets: DriftTarget[] }[] {
    const rounds: { pod: PodSnapshot; targets: DriftTarget[] }[] = [];
    for (const pod of this.#deps.pods()) {
      if (isFinished(pod) || pod.status?.phase !== "Running") continue;
      const key = podKey(pod);
      let entries;
      try {
        entries = parseNetworkStatus(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]);
      } catch {
        continue; // The passes report an unreadable network-status.
      }
      const targets = entries.flatMap((e) => {
        const id = statusAttachmentId(e, pod.metadata.namespace);
        return id ? [{ id }] : [];
      });
      // A drift whose attachment network-status no longer lists is over.
      const listed = new Set(targets.map((t) => attachmentKey(t.id)));
      for (const drift of this.#deps.memory.drifts(key)) {
        const id = attachmentKey(drift.id);
        if (!listed.has(id) && this.#deps.memory.driftCleared(key, id)) this.#deps.enqueue(key);
      }
      const checkable = targets.filter((t) =>
        !this.#uncheckable.has(nadKey({ namespace: t.id.namespace, name: t.id.network }))
      );
      if (checkable.length > 0) rounds.push({ pod, targets: checkable });
    }
    return rounds;
  }

  /** Checks `targets` of `pod`, calling `pause` after each. */
  async checkPod(
    pod: PodSnapshot,
    targets: readonly DriftTarget[],
    pause: () => Promise<void> = () => Promise.resolve(),
  ): Promise<void> {
    let sandbox: PodSandbox | undefined;
    try {
      sandbox = await this.#deps.sandboxes.findSandbox(pod.metadata.uid);
    } catch (err) {
      this.#deps.log.debug("drift check: finding the pod sandbox failed", {
        pod: podKey(pod),
        err,
      });
      return;
    }
    if (!sandbox?.ready || sandbox.hostNetwork) return;
    for (const target of targets) {
      const result = await this.#check(pod, sandbox, target);
      if (result !== undefined) this.#deps.observer?.driftCheck?.(result);
      await pause();
    }
  }

  async #check(
    pod: PodSnapshot,
    sandbox: PodSandbox,
    { id }: DriftTarget,
  ): Promise<DriftCheckResult | undefined> {
    const deps = this.#deps;
    const key = podKey(pod);
    const network = nadKey({ namespace: id.namespace, name: id.network });
    // Found uncheckable since this round began.
    if (this.#uncheckable.has(network)) return undefined;
    const request = this.#request(pod, sandbox, id);
    if (!request) return undefined;
    const started = performance.now();
    let failure: unknown;
    try {
      await deps.delegator.delegate(request);
    } catch (err) {
      failure = err ?? new Error("CHECK failed");
    }
    deps.observer?.delegateDuration?.("CHECK", (performance.now() - started) / 1000);
    if (failure === undefined) {
      if (deps.memory.driftCleared(key, attachmentKey(id))) deps.enqueue(key);
      return "ok";
    }
    const answered = typeof (failure as { status?: unknown }).status === "number";
    const text = checkError((failure as { body?: string }).body || errorText(failure));
    if (!answered) {
      deps.log.debug("drift check: multus could not be asked", {
        pod: key,
        interfaceName: id.interface,
        err: failure,
      });
      return "error";
    }
    if (UNCHECKABLE.test(text)) {
      this.#uncheckable.add(network);
      deps.log.info("network's attachments cannot be checked for drift; not checking them again", {
        pod: key,
        interfaceName: id.interface,
        network,
        detail: text,
      });
      return "unsupported";
    }
    const seenIn = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
    const drift: Drift = { id, found: text, ...(seenIn === undefined ? {} : { seenIn }) };
    if (deps.memory.driftFound(key, drift)) {
      deps.log.warn("attachment is not as network-status records it", {
        pod: key,
        interfaceName: id.interface,
        network,
        found: text,
      });
      deps.enqueue(key);
    }
    return "drifted";
  }

  /**
   * The CHECK of attachment `id`: the request the journal keeps for it (the agent made it in
   * this sandbox), else one built from its network's config, as multus made it.
   */
  #request(
    pod: PodSnapshot,
    sandbox: PodSandbox,
    id: AttachmentId,
  ): DelegateRequest | undefined {
    const made = this.#deps.journal.attached(podKey(pod)).find((a) =>
      a.request.containerId === sandbox.id && a.request.podUid === pod.metadata.uid &&
      attachmentKey(a.id) === attachmentKey(id)
    );
    if (made) {
      const { interfaceAttributes: _, ...plain } = made.request;
      return { ...plain, command: "CHECK" };
    }
    const nad = this.#deps.nads.get(id.namespace, id.network);
    if (!nad) return undefined;
    let config: Uint8Array;
    try {
      config = delegateConfig(nad);
    } catch {
      return undefined;
    }
    return {
      command: "CHECK",
      containerId: sandbox.id,
      netns: sandbox.netnsPath,
      ifname: id.interface,
      podNamespace: pod.metadata.namespace,
      podName: pod.metadata.name,
      podUid: pod.metadata.uid,
      config,
    };
  }
}

/**
 * What a failed CHECK found, without multus' preamble (`ContainerID:… Netns:… ERRORED:
 * DelegateCheck: error invoking DelegateCheck - "": `): the plugin's words.
 */
export function checkError(body: string): string {
  const at = body.lastIndexOf("ERRORED: ");
  const rest = at < 0 ? body : body.slice(at + "ERRORED: ".length);
  return rest.replace(/^DelegateCheck: error invoking DelegateCheck - "[^"]*": /, "").trim();
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
