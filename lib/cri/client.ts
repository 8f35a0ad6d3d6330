/**
 * CRI v1 client: finds a pod's sandbox and its network namespace path through the container
 * runtime (containerd or CRI-O) on its unix socket, with a unary gRPC client of our own
 * (`grpc.ts`, over `node:http2`) and the codec of our own proto subset
 * (`lib/cri/runtime_v1.proto`, compiled into `lib/cri/descriptor.ts`).
 *
 * A first lookup is exactly two calls: `ListPodSandbox` filtered by the `io.kubernetes.pod.uid`
 * label, then `PodSandboxStatus(verbose=true)` of the chosen sandbox, whose `info["info"]` JSON
 * holds the OCI runtime spec with the network namespace path. A sandbox's network namespace is
 * made with it and never changes, so once a sandbox was seen ready with an open namespace, a
 * later lookup that lists the same sandbox READY again needs only the first call.
 *
 * @module
 */
import type { PodSandbox, SandboxLocator } from "../reconcile/ports.ts";
import { ProtoCodec, type ProtoMessage } from "./codec.ts";
import { CRI_DESCRIPTOR } from "./descriptor.ts";
import { CriError } from "./errors.ts";
import { GrpcCallError, grpcCodeName, GrpcStatus, UnaryChannel } from "./grpc.ts";
import {
  listPodSandboxRequest,
  parseSandboxInfo,
  pickSandbox,
  SandboxState,
  usesNodeNetwork,
} from "./sandbox.ts";

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

/** The codec of our CRI v1 subset. */
export const criCodec: ProtoCodec = new ProtoCodec(CRI_DESCRIPTOR, "runtime.v1");

const SERVICE = "/runtime.v1.RuntimeService/";

/** Sandboxes whose namespace the client remembers (a node runs at most a few hundred pods). */
const KNOWN_SANDBOXES = 512;

/**
 * CRI v1 client over a unix socket. One long-lived gRPC channel; when a call fails with
 * `UNAVAILABLE` (runtime stopped, socket recreated) it is retried once on a fresh channel, so a
 * runtime restart costs only the calls made while it was down.
 */
export class CriClient implements SandboxLocator {
  readonly #socketPath: string;
  readonly #options: CriClientOptions;
  #client: UnaryChannel | undefined;
  /** Sandbox ID → its namespace, for sandboxes last seen READY with an open namespace. */
  readonly #known = new Map<string, Pick<PodSandbox, "netnsPath" | "hostNetwork">>();

  /**
   * A client of the runtime on `socketPath`; the channel opens on the first call.
   *
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

  #channel(): UnaryChannel {
    this.#client ??= new UnaryChannel(this.#socketPath);
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
        !(e instanceof CriError && e.code === GrpcStatus.UNAVAILABLE) || Date.now() >= deadline
      ) {
        throw e;
      }
      return await this.#callOnce(method, reqType, resType, req, deadline, signal);
    }
  }

  async #callOnce(
    method: string,
    reqType: string,
    resType: string,
    req: ProtoMessage,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<ProtoMessage> {
    const client = this.#channel();
    const started = performance.now();
    let answer: Uint8Array;
    try {
      answer = await client.call(SERVICE + method, criCodec.encode(reqType, req), deadline, signal);
    } catch (err) {
      const code = err instanceof GrpcCallError ? err.code : GrpcStatus.UNKNOWN;
      this.#options.observe?.(method, (performance.now() - started) / 1000, grpcCodeName(code));
      if (signal?.aborted) throw signal.reason;
      if (code === GrpcStatus.UNAVAILABLE && this.#client === client) {
        // Start over with a new channel on the next call: the runtime may come back on a
        // recreated socket, and a fresh channel connects at once.
        this.#client = undefined;
        client.close();
      }
      throw CriError.fromGrpc(err as Error, this.#socketPath, method, this.#options.timeoutMs);
    }
    this.#options.observe?.(method, (performance.now() - started) / 1000, "OK");
    try {
      return criCodec.decode(resType, answer);
    } catch (err) {
      throw CriError.fromGrpc(
        new GrpcCallError(GrpcStatus.INTERNAL, `Failed to parse server response: ${err}`),
        this.#socketPath,
        method,
        this.#options.timeoutMs,
      );
    }
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
    // A sandbox not READY now may be stopping: its namespace is asked for again.
    for (const item of items) if (item.state !== SandboxState.READY) this.#known.delete(item.id);
    const chosen = pickSandbox(items);
    if (chosen === undefined) return undefined;
    const known = chosen.state === SandboxState.READY ? this.#known.get(chosen.id) : undefined;
    if (known) return { id: chosen.id, ...known, ready: true, createdAt: chosen.createdAt };
    const found = await this.#status(chosen, signal);
    if (found?.ready) {
      this.#known.delete(found.id);
      this.#known.set(found.id, {
        netnsPath: found.netnsPath,
        ...(found.hostNetwork ? { hostNetwork: true } : {}),
      });
      // Sandboxes of pods long gone are never listed again: keep only the latest ones.
      for (const oldest of this.#known.keys()) {
        if (this.#known.size <= KNOWN_SANDBOXES) break;
        this.#known.delete(oldest);
      }
    }
    return found;
  }

  /** `PodSandboxStatus(verbose)` of a listed sandbox, as a {@linkcode PodSandbox}. */
  async #status(
    chosen: { id: string; state: number; createdAt: bigint },
    signal?: AbortSignal,
  ): Promise<PodSandbox | undefined> {
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
      if (e instanceof CriError && e.code === GrpcStatus.NOT_FOUND) return undefined;
      throw e;
    }
    const sandboxStatus = status["status"] as ProtoMessage | undefined;
    const state = sandboxStatus === undefined ? chosen.state : sandboxStatus["state"] as number;
    if (usesNodeNetwork(sandboxStatus)) {
      // Whatever path the runtime shows (CRI-O pins the host's namespace), it is the node's.
      return {
        id: chosen.id,
        netnsPath: "",
        ready: state === SandboxState.READY,
        createdAt: chosen.createdAt,
        hostNetwork: true,
      };
    }
    const info = parseSandboxInfo(chosen.id, status["info"] as Record<string, string>);
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
