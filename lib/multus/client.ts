/**
 * Client of the multus thick daemon's `/delegate` API: one CNI ADD or DEL of a delegate
 * configuration in a pod's network namespace, over the daemon's unix socket (plain HTTP/1.1).
 *
 * The request body is byte-compatible with the original controller's (multus
 * `CreateDelegateRequest`): `env` with exactly the five CNI keys, the configuration as padded
 * standard base64, `interfaceAttributes` only when something is set. Every call opens its own
 * connection (the daemon disables keep-alives), so a restarted daemon on a recreated socket is
 * simply reached on the next call.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { type IncomingMessage, request } from "node:http";
import { goEscape, goMarshal } from "../base/go_json.ts";
import type { CniResult } from "../core/cni_result.ts";
import type { DelegateRequest, Delegator } from "../reconcile/ports.ts";

/** A failed delegate call; the message names the socket or repeats multus' answer verbatim. */
export class DelegateError extends Error {
  /** HTTP status of multus' answer, when there was one. */
  readonly status?: number;
  /** Body of multus' answer (trailing newline trimmed), when there was one. */
  readonly body?: string;

  /** Creates the error. */
  constructor(
    message: string,
    details?: { status?: number; body?: string },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "DelegateError";
    if (details?.status !== undefined) this.status = details.status;
    if (details?.body !== undefined) this.body = details.body;
  }
}

/**
 * The exact JSON body of a `/delegate` request, as the original controller sends it (Go's
 * encoding of multus' `api.Request`: `env` keys sorted, `config` as base64, `interfaceAttributes`
 * only when `ips` is non-empty, `mac` is non-empty or `cni-args` is non-null; inside it `ips` and
 * `mac` are omitted when empty and `cni-args` is always written, `null` when unset).
 */
export function delegateRequestBody(req: DelegateRequest): string {
  const env = {
    CNI_ARGS: `K8S_POD_NAMESPACE=${req.podNamespace};K8S_POD_NAME=${req.podName};` +
      `K8S_POD_UID=${req.podUid}`,
    CNI_COMMAND: req.command.toUpperCase(),
    CNI_CONTAINERID: req.containerId,
    CNI_IFNAME: req.ifname,
    CNI_NETNS: req.netns,
  };
  let body = `{"env":${goEscape(JSON.stringify(env))}`;
  if (req.config.length > 0) {
    body += `,"config":${JSON.stringify(req.config.toBase64())}`;
  }
  const a = req.interfaceAttributes;
  const ips = a?.ips ?? [];
  const mac = a?.mac ?? "";
  const cniArgs = a?.["cni-args"] ?? null;
  if (ips.length > 0 || mac !== "" || cniArgs !== null) {
    const parts: string[] = [];
    if (ips.length > 0) parts.push(`"ips":${goEscape(JSON.stringify(ips))}`);
    if (mac !== "") parts.push(`"mac":${goEscape(JSON.stringify(mac))}`);
    parts.push(`"cni-args":${goMarshal(cniArgs)}`);
    body += `,"interfaceAttributes":{${parts.join(",")}}`;
  }
  return body + "}";
}

/**
 * Interprets multus' answer to a `/delegate` call, as the original controller does: non-200 is
 * an error carrying the body verbatim; an empty 200 body (DEL) gives `undefined`; otherwise the
 * body must be JSON and its `Result` is the CNI result.
 *
 * @throws {DelegateError} `unexpected CNI response status <code>: '<body>'` or
 * `failed to unmarshal response '<body>': <reason>`.
 */
export function parseDelegateResponse(status: number, body: string): CniResult | undefined {
  const text = body.replace(/\r?\n$/, "");
  if (status !== 200) {
    throw new DelegateError(`unexpected CNI response status ${status}: '${text}'`, {
      status,
      body: text,
    });
  }
  if (body.trim() === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (e) {
    throw new DelegateError(`failed to unmarshal response '${text}': ${(e as Error).message}`, {
      status,
      body: text,
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new DelegateError(`failed to unmarshal response '${text}': not a JSON object`, {
      status,
      body: text,
    });
  }
  const result = (parsed as Record<string, unknown>)["Result"];
  if (result === undefined || result === null) return undefined;
  if (typeof result !== "object" || Array.isArray(result)) {
    throw new DelegateError(`failed to unmarshal response '${text}': Result is not a JSON object`, {
      status,
      body: text,
    });
  }
  return result as CniResult;
}

/** Options of {@linkcode MultusClient}. */
export interface MultusClientOptions {
  /** Time limit of one call (connect, send, whole answer), in milliseconds. */
  timeoutMs: number;
  /** Largest answer accepted, in bytes (default 4 MiB). */
  maxResponseBytes?: number;
}

interface HttpAnswer {
  status: number;
  body: string;
}

/** The multus thick daemon's `/delegate` client over its unix socket: the reconciler's `Delegator`. */
export class MultusClient implements Delegator {
  readonly #socketPath: string;
  readonly #options: MultusClientOptions;

  /**
   * A client of the daemon on `socketPath`; nothing is connected until the first call.
   *
   * @param socketPath absolute path of the daemon's socket (`multusSocketPath`)
   * @param options per-call time limit
   */
  constructor(socketPath: string, options: MultusClientOptions) {
    if (!socketPath.startsWith("/")) {
      throw new Error(
        `multus socket path ${JSON.stringify(socketPath)} must be absolute; fix multusSocketPath`,
      );
    }
    if (!(options.timeoutMs > 0)) {
      throw new Error(
        `multus timeout ${options.timeoutMs} ms must be a positive number of milliseconds`,
      );
    }
    this.#socketPath = socketPath;
    this.#options = options;
  }

  /** The socket this client talks to. */
  get socketPath(): string {
    return this.#socketPath;
  }

  /**
   * Runs one delegate ADD or DEL. ADD returns multus' CNI result; DEL returns `undefined`.
   *
   * @throws {DelegateError} for a non-200 answer (body verbatim), a malformed answer, a missing
   * socket, a timeout; the signal's reason when aborted.
   */
  async delegate(req: DelegateRequest, signal?: AbortSignal): Promise<CniResult | undefined> {
    const what = `delegate ${req.command} of ${req.ifname || "<no interface name>"} for pod ` +
      `${req.podNamespace}/${req.podName}`;
    const answer = await this.#exchange(
      "POST",
      "/delegate",
      delegateRequestBody(req),
      what,
      signal,
    );
    return parseDelegateResponse(answer.status, answer.body);
  }

  /** `GET /healthz`: `true` on 200, `false` on any other answer or failure. */
  async healthy(signal?: AbortSignal): Promise<boolean> {
    try {
      return (await this.#exchange("GET", "/healthz", undefined, "health check", signal)).status ===
        200;
    } catch (e) {
      if (signal?.aborted) throw e;
      return false;
    }
  }

  #exchange(
    method: string,
    path: string,
    body: string | undefined,
    what: string,
    signal?: AbortSignal,
  ): Promise<HttpAnswer> {
    signal?.throwIfAborted();
    const socket = this.#socketPath;
    const timeoutMs = this.#options.timeoutMs;
    const limit = this.#options.maxResponseBytes ?? 4 * 1024 * 1024;
    return new Promise<HttpAnswer>((resolve, reject) => {
      let settled = false;
      let req: ReturnType<typeof request> | undefined;
      const timer = setTimeout(() => {
        req?.destroy();
        finish(
          new DelegateError(
            `multus ${what} on ${socket} timed out after ${timeoutMs} ms; the daemon or the CNI ` +
              "plugin is hung or slow (the operation may still complete)",
          ),
        );
      }, timeoutMs);
      const onAbort = () => {
        req?.destroy();
        finish(signal?.reason);
      };
      function finish(err: unknown, answer?: HttpAnswer): void {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (err !== undefined) reject(err);
        else resolve(answer as HttpAnswer);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      const payload = body === undefined ? undefined : Buffer.from(body, "utf8");
      const headers: Record<string, string | number> = { Connection: "close" };
      if (payload !== undefined) {
        headers["Content-Type"] = "application/json";
        headers["Content-Length"] = payload.length;
      }
      try {
        req = request({ socketPath: socket, method, path, headers, agent: false });
      } catch (e) {
        // Deno raises missing permissions synchronously.
        return finish(this.#transportError(e, what));
      }
      const r = req;
      r.on("error", (e) => finish(this.#transportError(e, what)));
      r.on("response", (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > limit) {
            r.destroy();
            finish(
              new DelegateError(`multus answer to ${what} on ${socket} exceeds ${limit} bytes`),
            );
            return;
          }
          chunks.push(c);
        });
        res.on("error", (e) => finish(this.#transportError(e, what)));
        res.on("end", () =>
          finish(undefined, {
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
          }));
      });
      r.end(payload);
    });
  }

  #transportError(e: unknown, what: string): DelegateError {
    const socket = this.#socketPath;
    const err = e as { code?: string; name?: string; message?: string };
    const detail = err.message ?? String(e);
    let message: string;
    if (err.code === "ENOENT") {
      message =
        `multus socket ${socket} not found; is the multus thick daemon running? set multusSocketPath`;
    } else if (err.code === "ECONNREFUSED") {
      message = `multus socket ${socket} refuses connections (a stale socket?); ` +
        "is the multus thick daemon running? set multusSocketPath";
    } else if (err.name === "NotCapable") {
      message = `the process has no Deno permission for multus socket ${socket}; grant ` +
        `--allow-read=${socket} --allow-write=${socket} --allow-net=unix:${socket}`;
    } else if (err.code === "EACCES" || err.code === "EPERM") {
      message = `permission denied on multus socket ${socket}; the agent must run as root ` +
        "(multus makes its socket 0600)";
    } else {
      message = `multus ${what} on ${socket} failed`;
    }
    return new DelegateError(`${message} (${what}: ${detail})`, undefined, { cause: e });
  }
}
