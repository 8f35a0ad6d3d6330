/**
 * The controller's own HTTP endpoints, for Prometheus and the kubelet's `httpGet` probes:
 *
 * - `GET /metrics`: the registry in the Prometheus text format 0.0.4;
 * - `GET /healthz`: 200 `ok` while the process is alive and its loops are not wedged;
 * - `GET /readyz`: 200 `ok` when caches are synced and the sockets are reachable, 503 with
 *   the failing reasons otherwise, and 503 from the moment shutdown begins;
 * - 404 for other paths, 405 for methods other than GET and HEAD.
 *
 * @module
 */
import { errorText, type Logger } from "../base/log.ts";
import { CONTENT_TYPE, type Registry } from "../base/metrics.ts";

/** The result of a health check: `ok`, or the reasons it is not. */
export interface CheckResult {
  /** True when healthy. */
  ok: boolean;
  /** Why not, one short line each (empty when ok). */
  reasons: string[];
}

/** A health check; it may be synchronous. A check that throws counts as failing. */
export type HealthCheck = () => CheckResult | Promise<CheckResult>;

/** The checks behind the probe endpoints. */
export interface HealthChecks {
  /** Liveness: the process is alive and its loops make progress (default: always ok). */
  live?: HealthCheck;
  /** Readiness: caches synced, sockets reachable. */
  ready: HealthCheck;
}

/** Settings of {@linkcode serveHealth}. */
export interface HealthServerOptions {
  /** `host:port`, `:port` (every interface) or `[v6]:port`; port 0 picks a free port. */
  address: string;
  /** The metrics to serve on `/metrics`. */
  registry: Registry;
  /** The probes' checks. */
  checks: HealthChecks;
  /** Logger (the listening address at info, failed probes at debug). */
  log?: Logger;
  /** Longest a check may take before it counts as failing, in ms (default 5000). */
  checkTimeoutMs?: number;
}

/** A running endpoint server. */
export interface HealthServer {
  /** The port actually listened on (useful with port 0). */
  readonly port: number;
  /** The host listened on. */
  readonly hostname: string;
  /** Makes `/readyz` fail from now on (shutdown has begun). */
  setShuttingDown(): void;
  /** Stops listening and waits for open requests to finish. */
  close(): Promise<void>;
}

/** The flag that sets the endpoint address, named in errors. */
const ADDRESS_FLAG = "--metrics-address";

/**
 * Splits `host:port` into its parts: `:8080` and `0.0.0.0:8080` listen everywhere,
 * `[::1]:8080` is IPv6. Throws a RangeError naming the address and the fix.
 */
export function parseAddress(address: string): { hostname: string; port: number } {
  const bad = (why: string) =>
    new RangeError(
      `metrics address "${address}" ${why}; use host:port such as ":8080" or "127.0.0.1:8080" (${ADDRESS_FLAG})`,
    );
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(address);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else {
    const colon = address.lastIndexOf(":");
    if (colon === -1) throw bad("has no port");
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(":")) throw bad("is an IPv6 host without brackets");
  }
  if (!/^\d+$/.test(portText)) throw bad("has no numeric port");
  const port = Number(portText);
  if (port > 65535) throw bad(`has port ${port}, above 65535`);
  return { hostname: host === "" ? "0.0.0.0" : host, port };
}

const TEXT = "text/plain; charset=utf-8";

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": TEXT, ...headers } });
}

async function runCheck(check: HealthCheck, timeoutMs: number): Promise<CheckResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, reasons: [`check did not answer within ${timeoutMs} ms`] }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([Promise.resolve().then(check), timeout]);
  } catch (err) {
    return { ok: false, reasons: [`check failed: ${errorText(err)}`] };
  } finally {
    clearTimeout(timer);
  }
}

function probeBody(name: string, result: CheckResult): string {
  const reasons = result.reasons.length > 0 ? result.reasons : ["not ok"];
  return reasons.map((r) => `[-] ${r}\n`).join("") + `${name} check failed\n`;
}

/**
 * Starts the endpoint server on `options.address`. Throws, naming the address and the flag
 * that changes it, when the address is malformed or cannot be bound.
 */
export function serveHealth(options: HealthServerOptions): HealthServer {
  const { registry, checks, log } = options;
  const timeoutMs = options.checkTimeoutMs ?? 5000;
  const { hostname, port } = parseAddress(options.address);
  let shuttingDown = false;

  const probe = async (name: "healthz" | "readyz", head: boolean): Promise<Response> => {
    let result: CheckResult;
    if (name === "readyz" && shuttingDown) {
      result = { ok: false, reasons: ["shutting down"] };
    } else {
      const check = name === "readyz" ? checks.ready : checks.live;
      result = check ? await runCheck(check, timeoutMs) : { ok: true, reasons: [] };
    }
    if (result.ok) return text(200, head ? "" : "ok\n");
    log?.debug("Probe failed", { probe: name, reasons: result.reasons });
    return text(503, head ? "" : probeBody(name, result));
  };

  const handler = async (request: Request): Promise<Response> => {
    const method = request.method;
    if (method !== "GET" && method !== "HEAD") {
      return text(405, `method ${method} not allowed; use GET\n`, { allow: "GET, HEAD" });
    }
    const head = method === "HEAD";
    const path = new URL(request.url).pathname;
    try {
      switch (path) {
        case "/metrics": {
          const body = registry.render();
          return new Response(head ? null : body, {
            status: 200,
            headers: { "content-type": CONTENT_TYPE },
          });
        }
        case "/healthz":
        case "/livez":
          return await probe("healthz", head);
        case "/readyz":
          return await probe("readyz", head);
        default:
          return text(404, `${path} not found; try /metrics, /healthz or /readyz\n`);
      }
    } catch (err) {
      log?.error("Endpoint failed", { path, err });
      return text(500, `${errorText(err)}\n`);
    }
  };

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname, port, onListen: () => {} }, handler);
  } catch (err) {
    throw new Error(
      `cannot listen on ${options.address} for /metrics, /healthz and /readyz: ${
        errorText(err)
      }; choose another address with ${ADDRESS_FLAG} (and allow it with --allow-net)`,
      { cause: err },
    );
  }
  const addr = server.addr;
  log?.info("Serving metrics and probes", {
    address: `${addr.hostname}:${addr.port}`,
    paths: ["/metrics", "/healthz", "/readyz"],
  });
  let closed: Promise<void> | undefined;
  return {
    port: addr.port,
    hostname: addr.hostname,
    setShuttingDown() {
      shuttingDown = true;
    },
    close() {
      closed ??= server.shutdown();
      return closed;
    },
  };
}
