/**
 * Failed CRI calls: a {@linkcode CriError} names the socket, the call and the gRPC code, and
 * says what to do for the common cases.
 *
 * @module
 */
import { grpcCodeName, GrpcStatus } from "./grpc.ts";

export { grpcCodeName };

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

  /** Turns a failed gRPC call into a CriError with advice for the usual causes. */
  static fromGrpc(
    err: Error,
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
    } else if (code === GrpcStatus.UNIMPLEMENTED) {
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
    } else if (code === GrpcStatus.DEADLINE_EXCEEDED) {
      advice =
        `the runtime did not answer ${call} within ${timeoutMs} ms; it is overloaded or hung`;
    } else {
      advice =
        "check that criSocketPath names a CRI v1 runtime socket and that the runtime is healthy";
    }
    return new CriError(`${advice}: ${what}`, socketPath, call, code, { cause: err });
  }
}
