/**
 * Plain HTTP/1.1 over a unix socket with `node:http`, as the multus shim and the controller
 * talk to the multus daemon.
 *
 * @module
 */

import { request } from "node:http";
import { Buffer } from "node:buffer";

/** A finished response. */
export interface UnixHttpResponse {
  status: number;
  body: string;
}

/** Sends one request to `socketPath` and resolves with the status and the body text. */
export function unixRequest(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 60_000,
): Promise<UnixHttpResponse> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method,
        path,
        host: "multus",
        headers: payload
          ? { "content-type": "application/json", "content-length": payload.length }
          : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on(
          "end",
          () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path} on ${socketPath} timed out`)));
    req.on(
      "error",
      (err) =>
        reject(
          new Error(`${method} ${path} on ${socketPath} failed: ${err.message}`, { cause: err }),
        ),
    );
    if (payload) req.write(payload);
    req.end();
  });
}
