/**
 * The node rig's own CRI client over containerd's unix socket: it finds a pod's sandboxes and
 * containers (and their PIDs, to kill them as a crash would) beside the kubelet, and stops and
 * removes sandboxes where the rig cleans up. It is separate from the controller's client on
 * purpose: the controller never stops or removes sandboxes.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";

const PROTO_PATH = new URL("./cri_runtime.proto", import.meta.url);
const SERVICE = "runtime.v1.RuntimeService";
const METHODS = [
  "Version",
  "StopPodSandbox",
  "RemovePodSandbox",
  "PodSandboxStatus",
  "ListPodSandbox",
  "ListContainers",
  "ContainerStatus",
] as const;
type Method = typeof METHODS[number];

/** A pod sandbox as ListPodSandbox reports it. */
export interface SandboxSummary {
  id: string;
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  state: "SANDBOX_READY" | "SANDBOX_NOTREADY";
  /** Nanoseconds since the epoch, as a decimal string. */
  created_at: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** CRI v1 container states. */
export type ContainerState =
  | "CONTAINER_CREATED"
  | "CONTAINER_RUNNING"
  | "CONTAINER_EXITED"
  | "CONTAINER_UNKNOWN";

/** A container as ListContainers reports it. */
export interface ContainerSummary {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  /** Nanoseconds since the epoch, as a decimal string. */
  created_at: string;
  labels: Record<string, string>;
}

/** PodSandboxStatus(verbose) reduced to what the rig needs. */
export interface SandboxStatus {
  id: string;
  state: "SANDBOX_READY" | "SANDBOX_NOTREADY";
  ip: string;
  /**
   * `linux.namespaces.options.network`: `POD`, or `NODE` for a hostNetwork sandbox (for which
   * CRI-O still names a network namespace path, a pin of the node's own).
   */
  networkMode: string;
  /** The runtime's verbose `info` document, parsed. */
  info: Record<string, unknown>;
}

let root: protobuf.Root | undefined;
function protoRoot(): protobuf.Root {
  root ??= protobuf.parse(Deno.readTextFileSync(PROTO_PATH), { keepCase: true }).root;
  return root;
}

function methodDefinition(method: Method): grpc.MethodDefinition<unknown, unknown> {
  const service = protoRoot().lookupService(SERVICE);
  const rpc = service.methods[method];
  if (!rpc) throw new Error(`method ${method} is missing from ${PROTO_PATH.pathname}`);
  const request = protoRoot().lookupType(`runtime.v1.${rpc.requestType}`);
  const response = protoRoot().lookupType(`runtime.v1.${rpc.responseType}`);
  return {
    path: `/${SERVICE}/${method}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: unknown) =>
      Buffer.from(request.encode(request.fromObject(value as Record<string, unknown>)).finish()),
    requestDeserialize: (bytes: Buffer) => request.decode(bytes),
    responseSerialize: () => {
      throw new Error("the rig is a CRI client only");
    },
    responseDeserialize: (bytes: Buffer) =>
      response.toObject(response.decode(bytes), {
        longs: String,
        enums: String,
        defaults: true,
        objects: true,
      }),
  };
}

/** A CRI RuntimeService client over a unix socket, with a deadline on every call. */
export class CriClient {
  #client: grpc.Client | undefined;
  readonly #timeoutMs: number;

  /**
   * @param socketPath the runtime's CRI socket, e.g. `/tmp/dnc-rig/ab12cd/crio/crio.sock`
   * @param timeoutMs deadline of each call
   */
  constructor(readonly socketPath: string, timeoutMs = 60_000) {
    this.#timeoutMs = timeoutMs;
  }

  /** The channel, opened on the first call after construction or {@linkcode CriClient.close}. */
  #channel(): grpc.Client {
    if (!this.#client) {
      const definition = Object.fromEntries(METHODS.map((m) => [m, methodDefinition(m)]));
      const Client = grpc.makeGenericClientConstructor(definition, "RuntimeService");
      this.#client = new Client(`unix://${this.socketPath}`, grpc.credentials.createInsecure());
    }
    return this.#client;
  }

  #call<T>(method: Method, request: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + this.#timeoutMs;
      const client = this.#channel();
      // deno-lint-ignore no-explicit-any
      const fn = (client as any)[method] as (
        req: unknown,
        options: grpc.CallOptions,
        cb: (err: grpc.ServiceError | null, res: T) => void,
      ) => void;
      fn.call(client, request, { deadline }, (err, res) => {
        if (err) {
          reject(
            new Error(`CRI ${method} on ${this.socketPath} failed: ${err.message}`, { cause: err }),
          );
        } else resolve(res);
      });
    });
  }

  /** CRI Version: answers once the runtime serves the CRI. */
  async version(): Promise<{ runtime_name: string; runtime_version: string }> {
    return await this.#call("Version", { version: "v1" });
  }

  /** Stops a sandbox: CNI DEL, then kills its processes. */
  async stopPodSandbox(id: string): Promise<void> {
    await this.#call("StopPodSandbox", { pod_sandbox_id: id });
  }

  /** Removes a stopped sandbox and its netns. */
  async removePodSandbox(id: string): Promise<void> {
    await this.#call("RemovePodSandbox", { pod_sandbox_id: id });
  }

  /** PodSandboxStatus with verbose info. */
  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    const res = await this.#call<{
      status: {
        id: string;
        state: SandboxStatus["state"];
        network: { ip: string } | null;
        linux: { namespaces: { options: { network: string } | null } | null } | null;
      };
      info: Record<string, string>;
    }>("PodSandboxStatus", { pod_sandbox_id: id, verbose: true });
    const infoText = res.info["info"];
    return {
      id: res.status.id,
      state: res.status.state,
      ip: res.status.network?.ip ?? "",
      networkMode: res.status.linux?.namespaces?.options?.network ?? "POD",
      info: infoText ? JSON.parse(infoText) : {},
    };
  }

  /** Lists sandboxes, optionally only those carrying all the given labels. */
  async listPodSandbox(labels: Record<string, string> = {}): Promise<SandboxSummary[]> {
    const res = await this.#call<{ items: SandboxSummary[] }>("ListPodSandbox", {
      filter: { label_selector: labels },
    });
    return res.items;
  }

  /** Lists containers, optionally only those carrying all the given labels. */
  async listContainers(labels: Record<string, string> = {}): Promise<ContainerSummary[]> {
    const res = await this.#call<{ containers: ContainerSummary[] }>("ListContainers", {
      filter: { label_selector: labels },
    });
    return res.containers;
  }

  /** The PID of a container's first process, from ContainerStatus(verbose); 0 if none. */
  async containerPid(id: string): Promise<number> {
    const res = await this.#call<{ info: Record<string, string> }>("ContainerStatus", {
      container_id: id,
      verbose: true,
    });
    const info = JSON.parse(res.info["info"] ?? "{}") as { pid?: number };
    return info.pid ?? 0;
  }

  /** Closes the channel; a later call opens a new one. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }
}

/** Reads the sandbox's netns path out of containerd's verbose info. */
export function netnsPathFromInfo(info: Record<string, unknown>): string {
  const spec = info["runtimeSpec"] as
    | { linux?: { namespaces?: { type: string; path?: string }[] } }
    | undefined;
  const path = spec?.linux?.namespaces?.find((n) => n.type === "network")?.path;
  if (!path) {
    throw new Error(
      "the sandbox's verbose status has no network namespace path " +
        "(a hostNetwork pod, or a runtime other than containerd?)",
    );
  }
  return path;
}
