/**
 * CRI v1 client: finds a pod's sandbox and its network namespace path through the container
 * runtime (containerd or CRI-O) on its unix socket, with `@grpc/grpc-js` and the codec of our own
 * proto subset (`lib/cri/runtime_v1.proto`, compiled into `lib/cri/descriptor.ts`).
 *
 * One lookup is exactly two calls: `ListPodSandbox` filtered by the `io.kubernetes.pod.uid` label,
 * then `PodSandboxStatus(verbose=true)` of the chosen sandbox, whose `info["info"]` JSON holds the
 * OCI runtime spec with the network namespace path.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { isPlainObject } from "../base/json.ts";
import { CRI_DESCRIPTOR } from "./descriptor.ts";
import { ProtoCodec, type ProtoMessage } from "./codec.ts";

/** The kubelet's label carrying the pod UID on every sandbox it creates. */
export const POD_UID_LABEL = "io.kubernetes.pod.uid";

/** CRI `PodSandboxState` values. */
export const SandboxState = { READY: 0, NOTREADY: 1 } as const;

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
}

/** Finds the sandbox of a pod; the reconciler depends on this, not on the gRPC client. */
export interface SandboxLocator {
  /**
   * Returns the pod's sandbox: the newest READY one, else the newest NOTREADY one (with
   * `ready: false`), or `undefined` when the runtime has none for this pod UID.
   */
  findSandbox(podUid: string, signal?: AbortSignal): Promise<PodSandbox | undefined>;
  /** Releases the connection. */
  close(): void;
}

/** Runtime identity reported by CRI `Version`. */
export interface RuntimeVersion {
  /** e.g. `containerd` or `cri-o`. */
  runtimeName: string;
  /** e.g. `1.6.20~ds1`. */
  runtimeVersion: string;
  /** CRI API version the runtime serves, `v1`. */
  runtimeApiVersion: string;
}

/** Options of {@linkcode CriClient}. */
export interface CriClientOptions {
  /** Deadline of each single gRPC call, in milliseconds. */
  timeoutMs: number;
  /** Called after every call, e.g. to feed a latency histogram. `code` is a gRPC status name. */
  observe?: (call: string, seconds: number, code: string) => void;
}

/** Name of a gRPC status code, e.g. `UNAVAILABLE`. */
export function grpcCodeName(code: number): string {
  return grpc.status[code] ?? String(code);
}

/**
 * A failed CRI call. The message names the socket, the call and the gRPC code, and says what to
 * do for the common cases: socket missing, permission denied, not a CRI v1 runtime, timeout.
 */
export class CriError extends Error {
  /** Socket path of the runtime. */
  readonly socketPath: string;
  /** CRI method, e.g. `ListPodSandbox`. */
  readonly call: string;
  /** gRPC status code, when the failure came from gRPC. */
  readonly code?: number;

  /** Creates the error; prefer {@linkcode CriError.fromGrpc} for gRPC failures. */
  constructor(
    message: string,
    socketPath: string,
    call: string,
    code?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "CriError";
    this.socketPath = socketPath;
    this.call = call;
    if (code !== undefined) this.code = code;
  }

  /** gRPC status name of {@linkcode CriError.code}, or `undefined`. */
  get codeName(): string | undefined {
    return this.code === undefined ? undefined : grpcCodeName(this.code);
  }

  /** Turns a grpc-js error into a CriError with advice for the usual causes. */
  static fromGrpc(
    err: grpc.ServiceError | Error,
    socketPath: string,
    call: string,
    timeoutMs: number,
  ): CriError {
    const code = "code" in err && typeof err.code === "number" ? err.code : undefined;
    const details = "details" in err && typeof err.details === "string" ? err.details : err.message;
    const what = `CRI ${call} on ${socketPath} failed with ${
      code === undefined ? "an error" : `${grpcCodeName(code)} (${code})`
    }: ${details}`;
    let advice: string;
    if (/\bENOENT\b/.test(details)) {
      advice = `CRI socket ${socketPath} not found; is the container runtime running? ` +
        "set criSocketPath to its socket (containerd: /run/containerd/containerd.sock, " +
        "CRI-O: /run/crio/crio.sock)";
    } else if (/NotCapable/.test(details)) {
      advice = `the process has no Deno permission for CRI socket ${socketPath}; grant ` +
        `--allow-read=${socketPath} --allow-write=${socketPath} --allow-net=unix:${socketPath}`;
    } else if (/\bEACCES\b|\bEPERM\b|permission denied/i.test(details)) {
      advice = `permission denied on CRI socket ${socketPath}; the agent must run as root ` +
        "(the runtime's socket is root-only)";
    } else if (/\bECONNREFUSED\b/.test(details)) {
      advice = `nothing listens on CRI socket ${socketPath} (a stale socket?); ` +
        "is the container runtime running?";
    } else if (code === grpc.status.UNIMPLEMENTED) {
      advice =
        `the server on ${socketPath} does not implement runtime.v1.RuntimeService/${call}; ` +
        "it is not a CRI v1 runtime (CRI v1 needs containerd >= 1.6 or CRI-O >= 1.20); " +
        "check criSocketPath";
    } else if (
      /without gRPC status|Protocol error|Received HTTP status|Unexpected content-type/i.test(
        details,
      )
    ) {
      advice = `the server on ${socketPath} is not a gRPC server, so not a CRI runtime; ` +
        "check criSocketPath";
    } else if (code === grpc.status.DEADLINE_EXCEEDED) {
      advice =
        `the runtime did not answer ${call} within ${timeoutMs} ms; it is overloaded or hung`;
    } else {
      advice =
        "check that criSocketPath names a CRI v1 runtime socket and that the runtime is healthy";
    }
    return new CriError(`${advice}: ${what}`, socketPath, call, code, { cause: err });
  }
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

/** The codec of our CRI v1 subset. */
export const criCodec: ProtoCodec = new ProtoCodec(CRI_DESCRIPTOR, "runtime.v1");

const SERVICE = "/runtime.v1.RuntimeService/";

/**
 * CRI v1 client over a unix socket. One long-lived gRPC channel; when a call fails with
 * `UNAVAILABLE` (runtime stopped, socket recreated) it is retried once on a fresh channel, so a
 * runtime restart costs only the calls made while it was down.
 */
export class CriClient implements SandboxLocator {
  readonly #socketPath: string;
  readonly #options: CriClientOptions;
  #client: grpc.Client | undefined;

  /**
   * @param socketPath absolute path of the runtime's CRI socket
   * @param options per-call deadline and an optional observer
   */
  constructor(socketPath: string, options: CriClientOptions) {
    if (!socketPath.startsWith("/")) {
      throw new Error(
        `CRI socket path ${JSON.stringify(socketPath)} must be absolute; fix criSocketPath`,
      );
    }
    if (!(options.timeoutMs > 0)) {
      throw new Error(
        `CRI timeout ${options.timeoutMs} ms must be a positive number of milliseconds`,
      );
    }
    this.#socketPath = socketPath;
    this.#options = options;
  }

  /** The socket this client talks to. */
  get socketPath(): string {
    return this.#socketPath;
  }

  #channel(): grpc.Client {
    this.#client ??= new grpc.Client(
      `unix://${this.#socketPath}`,
      grpc.credentials.createInsecure(),
      {
        "grpc.initial_reconnect_backoff_ms": 100,
        "grpc.max_reconnect_backoff_ms": 1000,
        "grpc.max_receive_message_length": 16 * 1024 * 1024,
        "grpc.enable_retries": 0,
      },
    );
    return this.#client;
  }

  /**
   * One call with the per-call deadline. Every method we use only reads, so a call that fails
   * with `UNAVAILABLE` (the connection had died: runtime restarted, socket recreated) is made
   * once more on a fresh channel within the same deadline.
   */
  async #call(
    method: string,
    reqType: string,
    resType: string,
    req: ProtoMessage,
    signal?: AbortSignal,
  ): Promise<ProtoMessage> {
    const deadline = Date.now() + this.#options.timeoutMs;
    try {
      return await this.#callOnce(method, reqType, resType, req, deadline, signal);
    } catch (e) {
      if (
        !(e instanceof CriError && e.code === grpc.status.UNAVAILABLE) || Date.now() >= deadline
      ) {
        throw e;
      }
      return await this.#callOnce(method, reqType, resType, req, deadline, signal);
    }
  }

  #callOnce(
    method: string,
    reqType: string,
    resType: string,
    req: ProtoMessage,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<ProtoMessage> {
    signal?.throwIfAborted();
    const client = this.#channel();
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const onAbort = () => call.cancel();
      const call = client.makeUnaryRequest<ProtoMessage, ProtoMessage>(
        SERVICE + method,
        (v) => Buffer.from(criCodec.encode(reqType, v)),
        (b) => criCodec.decode(resType, b),
        req,
        new grpc.Metadata(),
        { deadline },
        (err, res) => {
          signal?.removeEventListener("abort", onAbort);
          const code = err ? err.code : grpc.status.OK;
          this.#options.observe?.(method, (performance.now() - started) / 1000, grpcCodeName(code));
          if (err) {
            if (signal?.aborted) return reject(signal.reason);
            if (err.code === grpc.status.UNAVAILABLE && this.#client === client) {
              // Start over with a new channel on the next call: the runtime may come back on a
              // recreated socket, and a fresh channel connects at once instead of backing off.
              this.#client = undefined;
              client.close();
            }
            return reject(
              CriError.fromGrpc(err, this.#socketPath, method, this.#options.timeoutMs),
            );
          }
          if (res === undefined) {
            return reject(
              new CriError(
                `CRI ${method} on ${this.#socketPath} returned no message`,
                this.#socketPath,
                method,
              ),
            );
          }
          resolve(res);
        },
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** CRI `Version`: which runtime serves the socket and which CRI API version it speaks. */
  async version(signal?: AbortSignal): Promise<RuntimeVersion> {
    const res = await this.#call(
      "Version",
      "VersionRequest",
      "VersionResponse",
      { version: "v1" },
      signal,
    );
    return {
      runtimeName: res["runtime_name"] as string,
      runtimeVersion: res["runtime_version"] as string,
      runtimeApiVersion: res["runtime_api_version"] as string,
    };
  }

  /**
   * Finds the pod's sandbox and its network namespace path (two calls: `ListPodSandbox` by the
   * pod-UID label, then a verbose `PodSandboxStatus`). Returns `undefined` when the runtime has
   * no sandbox for the UID (or it vanished between the two calls).
   *
   * @throws {CriError} when a call fails; {@linkcode Error} when the sandbox's info has no usable
   * network namespace path (see {@linkcode parseSandboxInfo}).
   */
  async findSandbox(podUid: string, signal?: AbortSignal): Promise<PodSandbox | undefined> {
    const list = await this.#call(
      "ListPodSandbox",
      "ListPodSandboxRequest",
      "ListPodSandboxResponse",
      listPodSandboxRequest(podUid),
      signal,
    );
    const items = (list["items"] as ProtoMessage[]).map((s) => ({
      id: s["id"] as string,
      state: s["state"] as number,
      createdAt: s["created_at"] as bigint,
    }));
    const chosen = pickSandbox(items);
    if (chosen === undefined) return undefined;
    let status: ProtoMessage;
    try {
      status = await this.#call(
        "PodSandboxStatus",
        "PodSandboxStatusRequest",
        "PodSandboxStatusResponse",
        { pod_sandbox_id: chosen.id, verbose: true },
        signal,
      );
    } catch (e) {
      if (e instanceof CriError && e.code === grpc.status.NOT_FOUND) return undefined;
      throw e;
    }
    const info = parseSandboxInfo(chosen.id, status["info"] as Record<string, string>);
    const sandboxStatus = status["status"] as ProtoMessage | undefined;
    const state = sandboxStatus === undefined ? chosen.state : sandboxStatus["state"] as number;
    return {
      id: chosen.id,
      netnsPath: info.netnsPath,
      ready: state === SandboxState.READY && info.netNamespaceClosed !== true,
      createdAt: chosen.createdAt,
    };
  }

  /** Closes the gRPC channel; a later call opens a new one. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }
}
