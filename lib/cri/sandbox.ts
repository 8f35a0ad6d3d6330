/**
 * What the agent reads of the runtime's sandboxes, as pure functions: the `ListPodSandbox`
 * request for a pod, the choice of the sandbox to act on, and the network namespace path from
 * a verbose `PodSandboxStatus`.
 *
 * @module
 */
import { isPlainObject } from "../base/json.ts";
import type { ProtoMessage } from "./codec.ts";

/** The kubelet's label carrying the pod UID on every sandbox it creates. */
export const POD_UID_LABEL = "io.kubernetes.pod.uid";

/** CRI `PodSandboxState` values. */
export const SandboxState = { READY: 0, NOTREADY: 1 } as const;

/** CRI `NamespaceMode` values. */
export const NamespaceMode = { POD: 0, CONTAINER: 1, NODE: 2, TARGET: 3 } as const;

/**
 * True when a `PodSandboxStatus` says the sandbox uses the node's network namespace
 * (`linux.namespaces.options.network == NODE`). CRI-O still reports a network namespace path
 * for such a sandbox (a pin of the host's own namespace), so the path alone cannot tell.
 */
export function usesNodeNetwork(status: ProtoMessage | undefined): boolean {
  const linux = status?.["linux"] as ProtoMessage | undefined;
  const namespaces = linux?.["namespaces"] as ProtoMessage | undefined;
  const options = namespaces?.["options"] as ProtoMessage | undefined;
  return options?.["network"] === NamespaceMode.NODE;
}

/** The verbose-info facts the agent needs from `PodSandboxStatus`. */
export interface SandboxInfo {
  /** Network namespace path from `runtimeSpec.linux.namespaces[type=network].path`. */
  netnsPath: string;
  /** containerd's `netNamespaceClosed`; `undefined` when the runtime does not say (CRI-O). */
  netNamespaceClosed?: boolean;
}

/**
 * Extracts the network namespace path from the `info` map of a verbose `PodSandboxStatus`
 * response. Handles containerd (`info["info"]` with `runtimeSpec`, `netNamespaceClosed`, …) and
 * CRI-O (`info["info"]` with `runtimeSpec`, and `image`/`pid` for a real infra container).
 *
 * @throws {Error} naming the sandbox when the info is missing, not JSON, has no `runtimeSpec`
 * (not fully created yet) or no network namespace path (a host-network sandbox).
 */
export function parseSandboxInfo(sandboxId: string, info: Record<string, string>): SandboxInfo {
  const raw = info["info"];
  if (raw === undefined || raw === "") {
    const keys = Object.keys(info);
    throw new Error(
      `PodSandboxStatus(verbose) of sandbox ${sandboxId} has no info["info"] ` +
        `(keys: ${keys.length === 0 ? "none" : keys.join(", ")}); ` +
        "the runtime must be containerd or CRI-O, which put the sandbox's OCI spec there",
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (e) {
    throw new Error(
      `info["info"] of sandbox ${sandboxId} is not JSON (${(e as Error).message}): ` +
        `${raw.slice(0, 200)}`,
    );
  }
  if (!isPlainObject(doc)) {
    throw new Error(
      `info["info"] of sandbox ${sandboxId} is not a JSON object: ${raw.slice(0, 200)}`,
    );
  }
  const closed = typeof doc["netNamespaceClosed"] === "boolean"
    ? doc["netNamespaceClosed"]
    : undefined;
  const spec = doc["runtimeSpec"];
  if (!isPlainObject(spec)) {
    throw new Error(
      `sandbox ${sandboxId} has no runtimeSpec in its verbose info (keys: ` +
        `${Object.keys(doc).join(", ")}); it may not be fully created yet, retry later`,
    );
  }
  const linux = spec["linux"];
  const namespaces = isPlainObject(linux) ? linux["namespaces"] : undefined;
  if (!Array.isArray(namespaces)) {
    throw new Error(`runtimeSpec of sandbox ${sandboxId} has no linux.namespaces list`);
  }
  const network = namespaces.find((n) => isPlainObject(n) && n["type"] === "network");
  const path = isPlainObject(network) ? network["path"] : undefined;
  if (typeof path !== "string" || path === "") {
    throw new Error(
      `sandbox ${sandboxId} has no network namespace path in runtimeSpec.linux.namespaces ` +
        "(a host-network pod has none; nothing can be plugged into it)",
    );
  }
  return closed === undefined
    ? { netnsPath: path }
    : { netnsPath: path, netNamespaceClosed: closed };
}

/** A sandbox as `ListPodSandbox` lists it (the fields {@linkcode pickSandbox} reads). */
export interface ListedSandbox {
  /** Sandbox ID. */
  id: string;
  /** `SandboxState.READY` or `SandboxState.NOTREADY`. */
  state: number;
  /** Nanoseconds since the epoch. */
  createdAt: bigint;
}

/**
 * Chooses the sandbox to act on: the newest READY one; if none is READY, the newest NOTREADY
 * one (so a DEL can still be issued for a terminating pod); `undefined` for an empty list.
 */
export function pickSandbox<T extends ListedSandbox>(items: readonly T[]): T | undefined {
  const newest = (list: T[]) =>
    list.reduce<T | undefined>(
      (best, s) => best === undefined || s.createdAt > best.createdAt ? s : best,
      undefined,
    );
  return newest(items.filter((s) => s.state === SandboxState.READY)) ?? newest([...items]);
}

/** The `ListPodSandbox` request for one pod UID, optionally restricted to one state. */
export function listPodSandboxRequest(podUid: string, state?: number): ProtoMessage {
  const filter: ProtoMessage = { label_selector: { [POD_UID_LABEL]: podUid } };
  if (state !== undefined) filter["state"] = { state };
  return { filter };
}
