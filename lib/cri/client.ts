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
import type { PodSandbox, SandboxLocator } from "../reconcile/ports.ts";
import { ProtoCodec, type ProtoMessage } from "./codec.ts";
import { CRI_DESCRIPTOR } from "./descriptor.ts";
import { CriError, grpcCodeName } from "./errors.ts";
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
