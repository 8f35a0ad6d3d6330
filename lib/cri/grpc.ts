/**
 * A unary gRPC client over HTTP/2 on a unix socket, with the runtime's own `node:http2`: what
 * the CRI client needs of gRPC (one request message, one response message, a deadline,
 * cancellation, the status code and message) and nothing else. A general gRPC library costs
 * the agent about 10 MiB of RSS and 70 ms of start-up for features it never uses (streams,
 * name resolution, load balancing, retries, channelz); the agent's `node:http` already brings
 * most of what `node:http2` needs.
 *
 * The wire format is gRPC over HTTP/2 as its specification (PROTOCOL-HTTP2) describes: a POST
 * to `/<service>/<method>` with `content-type: application/grpc` and `te: trailers`, the
 * message in one length-prefixed frame, the status in the trailers (or, for a call that fails
 * before any message, in the response headers: "trailers-only").
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as http2 from "node:http2";
import * as net from "node:net";

/** The gRPC status codes (the gRPC specification's `statuscodes.md`). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const CODE_NAMES: readonly string[] = Object.keys(GrpcStatus);

/** Name of a gRPC status code, e.g. `UNAVAILABLE`; the number itself for an unknown code. */
export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? String(code);
}

/** A failed call: its gRPC status code and the details (the server's message, or ours). */
export class GrpcCallError extends Error {
  /** gRPC status code. */
  readonly code: number;
  /** What went wrong, as the server or the transport said it. */
  readonly details: string;

  /** Creates the error. */
  constructor(code: number, details: string, options?: ErrorOptions) {
    super(`${code} ${grpcCodeName(code)}: ${details}`, options);
    this.name = "GrpcCallError";
    this.code = code;
    this.details = details;
  }
}

/** How an HTTP status other than 200 maps to a gRPC code (PROTOCOL-HTTP2's table). */
function codeOfHttpStatus(status: number): number {
  if (status === 400) return GrpcStatus.INTERNAL;
  if (status === 401) return GrpcStatus.UNAUTHENTICATED;
  if (status === 403) return GrpcStatus.PERMISSION_DENIED;
  if (status === 404) return GrpcStatus.UNIMPLEMENTED;
  if ([429, 502, 503, 504].includes(status)) return GrpcStatus.UNAVAILABLE;
  return GrpcStatus.UNKNOWN;
}

function decodeMessage(value: unknown): string {
  const text = Array.isArray(value) ? value.join(",") : String(value ?? "");
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The text of a transport error, keeping its code (ENOENT, ECONNREFUSED…) or its name. */
function transportDetails(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // The stream's own error only says it was cancelled; its cause says why (connect ENOENT…).
  if (err.cause instanceof Error) return transportDetails(err.cause);
  const code = (err as { code?: unknown }).code;
  const tag = typeof code === "string" ? code : err.name;
  return err.message.includes(tag) ? err.message : `${tag}: ${err.message}`;
}

/**
 * One HTTP/2 connection to a gRPC server on a unix socket, opened on the first call. A call that
 * fails in the transport fails with `UNAVAILABLE`, and the connection is dropped so that the
 * next call opens a new one (the server may have been restarted on a recreated socket).
 */
export class UnaryChannel {
  readonly #socketPath: string;
  #session: http2.ClientHttp2Session | undefined;

  /** A channel to the server on `socketPath`. */
  constructor(socketPath: string) {
    this.#socketPath = socketPath;
  }

  #connect(): http2.ClientHttp2Session {
    const current = this.#session;
    if (current && !current.closed && !current.destroyed) return current;
    const session = http2.connect("http://localhost", {
      createConnection: () => net.connect({ path: this.#socketPath }),
    });
    // Failures reach the calls through their streams; the session's own error is only noted.
    session.on("error", () => this.#drop(session));
    session.on("goaway", () => this.#drop(session));
    session.on("close", () => this.#drop(session));
    this.#session = session;
    return session;
  }

  // A graceful close, not destroy(): destroying a session from its own event handlers crashed
  // the runtime's HTTP/2 (Deno 2.9.6, a segmentation fault on the next connection).
  #drop(session: http2.ClientHttp2Session): void {
    if (this.#session === session) this.#session = undefined;
    if (!session.destroyed && !session.closed) session.close();
  }

  /**
   * Sends `message` to `path` (`/<service>/<method>`) and resolves to the response message.
   * Rejects with a {@linkcode GrpcCallError}, or with `signal`'s reason when it aborts.
   */
  call(
    path: string,
    message: Uint8Array,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      let session: http2.ClientHttp2Session;
      let stream: http2.ClientHttp2Stream;
      const remaining = Math.max(1, Math.ceil(deadline - Date.now()));
      let settled = false;
      const chunks: Buffer[] = [];
      let headers: http2.IncomingHttpHeaders | undefined;
      let trailers: http2.IncomingHttpHeaders | undefined;
      const finish = (err: unknown, value?: Uint8Array) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (err !== undefined) {
          if (stream && !stream.destroyed && !session.destroyed) {
            stream.close(http2.constants.NGHTTP2_CANCEL);
          }
          reject(err);
        } else resolve(value!);
      };
      const onAbort = () => finish(signal!.reason);
      const timer = setTimeout(
        () => finish(new GrpcCallError(GrpcStatus.DEADLINE_EXCEEDED, "Deadline exceeded")),
        remaining,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        session = this.#connect();
        stream = session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": `${remaining}m`,
        });
      } catch (err) {
        if (this.#session) this.#drop(this.#session);
        return finish(new GrpcCallError(GrpcStatus.UNAVAILABLE, transportDetails(err)));
      }
      stream.on("response", (h) => headers = h);
      stream.on("trailers", (t) => trailers = t);
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", (err) => {
        // The connection (not the call) failed: the next call opens a new one.
        this.#drop(session);
        finish(new GrpcCallError(GrpcStatus.UNAVAILABLE, transportDetails(err), { cause: err }));
      });
      stream.on("close", () => {
        if (settled) return;
        if (!headers) {
          this.#drop(session);
          return finish(
            new GrpcCallError(
              GrpcStatus.UNAVAILABLE,
              `the connection closed before an answer (HTTP/2 code ${stream.rstCode})`,
            ),
          );
        }
        try {
          finish(undefined, this.#answer(headers, trailers, Buffer.concat(chunks)));
        } catch (err) {
          finish(err);
        }
      });
      const frame = new Uint8Array(5 + message.length);
      new DataView(frame.buffer).setUint32(1, message.length);
      frame.set(message, 5);
      stream.end(frame);
    });
  }

  /** The response message, or the error the status says. */
  #answer(
    headers: http2.IncomingHttpHeaders,
    trailers: http2.IncomingHttpHeaders | undefined,
    body: Buffer,
  ): Uint8Array {
    const status = Number(headers[":status"]);
    // A status in the headers is a "trailers-only" answer, which wins over the HTTP status.
    const end = headers["grpc-status"] !== undefined ? headers : trailers;
    if (end?.["grpc-status"] === undefined) {
      if (status !== 200) {
        throw new GrpcCallError(codeOfHttpStatus(status), `Received HTTP status code ${status}`);
      }
      const type = String(headers["content-type"] ?? "");
      if (!type.startsWith("application/grpc")) {
        throw new GrpcCallError(GrpcStatus.UNKNOWN, `Unexpected content-type "${type}"`);
      }
      throw new GrpcCallError(GrpcStatus.UNKNOWN, "the call ended without gRPC status");
    }
    const code = Number(end["grpc-status"]);
    if (code !== GrpcStatus.OK) {
      throw new GrpcCallError(
        Number.isInteger(code) ? code : GrpcStatus.UNKNOWN,
        decodeMessage(end["grpc-message"]),
      );
    }
    if (body.length < 5 || body[0] !== 0) {
      throw new GrpcCallError(
        GrpcStatus.INTERNAL,
        body.length < 5 ? "no response message" : "a compressed response message",
      );
    }
    const length = body.readUInt32BE(1);
    if (body.length !== 5 + length) {
      throw new GrpcCallError(GrpcStatus.INTERNAL, "a response that is not one whole message");
    }
    return new Uint8Array(body.buffer, body.byteOffset + 5, length);
  }

  /** Closes the connection; a later call opens a new one. */
  close(): void {
    if (this.#session) this.#drop(this.#session);
  }
}
