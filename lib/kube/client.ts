/**
 * A small Kubernetes REST client on Deno's own `fetch` with a `Deno.HttpClient` for TLS
 * (CA, client certificate). Deno's fetch reports an abort of a streaming body, which npm
 * undici (client-node's transport) does not under Deno, so watches never stall silently.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import {
  type ClusterConfig,
  inClusterConfig,
  type InClusterOptions,
  loadKubeconfig,
} from "./kubeconfig.ts";
import type { KubeStatus, Query, WatchEvent } from "./types.ts";

/** How to reach the API server. */
export interface KubeClientOptions {
  /** Path of a kubeconfig; without it the in-cluster ServiceAccount is used. */
  kubeconfig?: string;
  /** Kubeconfig context to use instead of its `current-context`. */
  context?: string;
  /** Timeout of a non-watch request, and of a watch until its response headers, in ms (default 30 000). */
  timeoutMs?: number;
  /** In-cluster settings (environment, ServiceAccount directory); for tests. */
  inCluster?: InClusterOptions;
  /** `User-Agent` header (default `dynamic-networks-controller`). */
  userAgent?: string;
  /**
   * Use HTTP/2 when the server offers it (default false). Deno 2.9's HTTP/2 client stalls
   * about 40 ms on every request whose body is larger than a few hundred bytes (a status
   * PUT: ~50 ms over HTTP/2, ~8 ms over HTTP/1.1 against the same kube-apiserver), so the
   * client speaks HTTP/1.1 and keeps a small pool of connections instead.
   */
  http2?: boolean;
  /** Called after every response (for metrics): method, path, HTTP status, seconds taken. */
  onResponse?: (method: string, path: string, status: number, seconds: number) => void;
}

/** Options of one request. */
export interface RequestOptions {
  /** Query parameters; `undefined` values are left out. */
  query?: Query;
  /** Request body; objects are sent as JSON. */
  body?: unknown;
  /** Content type of the body (default `application/json`). */
  contentType?: string;
  /** Aborts the request. */
  signal?: AbortSignal;
  /** Overrides the client's timeout for this request, in ms. */
  timeoutMs?: number;
}

/** An API request that got a non-2xx answer. */
export class KubeApiError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /** `Status.reason` from the body (e.g. `Conflict`, `NotFound`), when there is one. */
  readonly reason?: string;
  /** The parsed response body (a `Status`), or its text when it is not JSON. */
  readonly body: unknown;

  /** Builds the error for `method path` from the response status and body. */
  constructor(method: string, path: string, status: number, body: unknown) {
    const st = typeof body === "object" && body !== null ? body as KubeStatus : undefined;
    const detail = st?.message ?? (typeof body === "string" && body !== "" ? body : undefined);
    super(
      `${method} ${path}: HTTP ${status}${st?.reason ? ` ${st.reason}` : ""}${
        detail ? `: ${detail}` : ""
      }${hint(status)}`,
    );
    this.name = "KubeApiError";
    this.status = status;
    this.reason = st?.reason;
    this.body = body;
  }
}

function hint(status: number): string {
  switch (status) {
    case 401:
      return " (the credentials were refused: check the token or client certificate)";
    case 403:
      return " (forbidden: grant this verb in the controller's ClusterRole)";
    default:
      return "";
  }
}

async function readBody(res: Response): Promise<unknown> {
  const text = await res.text();
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** A client for one API server. */
export class KubeClient {
  /** API server base URL. */
  readonly server: URL;
  /** Default namespace of the kubeconfig context or ServiceAccount. */
  readonly namespace: string | undefined;
  readonly #base: string;
  readonly #config: ClusterConfig;
  readonly #http: Deno.HttpClient;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #onResponse: KubeClientOptions["onResponse"];
  readonly #log: Logger;

  /** Loads the kubeconfig (or the in-cluster config) and builds a client. */
  static async create(options: KubeClientOptions, log: Logger): Promise<KubeClient> {
    const config = options.kubeconfig
      ? await loadKubeconfig(options.kubeconfig, { context: options.context })
      : await inClusterConfig(options.inCluster);
    return new KubeClient(config, options, log);
  }

  /** Builds a client from an already loaded {@linkcode ClusterConfig}. */
  constructor(config: ClusterConfig, options: KubeClientOptions, log: Logger) {
    this.#config = config;
    this.server = config.server;
    this.namespace = config.namespace;
    this.#base = config.server.href.replace(/\/$/, "");
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#userAgent = options.userAgent ?? "dynamic-networks-controller";
    this.#onResponse = options.onResponse;
    this.#log = log;
    const tls = config.cert !== undefined && config.key !== undefined
      ? { cert: config.cert, key: config.key }
      : {};
    this.#http = Deno.createHttpClient({
      caCerts: config.caCerts,
      http2: options.http2 ?? false,
      ...tls,
      ...(config.proxyUrl ? { proxy: { url: config.proxyUrl } } : {}),
    });
    log.debug("Kubernetes client created", { server: this.#base, source: config.source });
  }

  #url(path: string, query?: Query): string {
    if (!path.startsWith("/")) {
      throw new Error(`API path "${path}" must start with "/": pass e.g. /api/v1/pods`);
    }
    const url = new URL(this.#base + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    return url.href;
  }

  async #headers(accept: string, contentType?: string): Promise<Headers> {
    const h = new Headers({ "Accept": accept, "User-Agent": this.#userAgent });
    if (contentType) h.set("Content-Type", contentType);
    const auth = await this.#config.credentials.authorization();
    if (auth) h.set("Authorization", auth);
    return h;
  }

  async #fetch(
    method: string,
    path: string,
    url: string,
    init: { body?: string; contentType?: string; signal: AbortSignal },
  ): Promise<Response> {
    for (let attempt = 0;; attempt++) {
      const started = performance.now();
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: await this.#headers("application/json", init.contentType),
          body: init.body,
          signal: init.signal,
          client: this.#http,
        });
      } catch (err) {
        if (init.signal.aborted) throw init.signal.reason ?? err;
        throw new Error(
          `${method} ${path} to ${this.#base} failed (is the API server up, reachable and allowed by --allow-net?)`,
          { cause: err },
        );
      }
      this.#onResponse?.(method, path, res.status, (performance.now() - started) / 1000);
      if (res.status === 401 && attempt === 0 && this.#config.credentials.invalidate()) {
        await res.body?.cancel();
        this.#log.debug("API server refused the credentials, reloading them", { path });
        continue;
      }
      return res;
    }
  }

  /**
   * Sends one request and returns the response whatever its status; throws only when no
   * response arrives (network error, timeout, abort).
   */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const { signal, timeout } = this.#signal(options);
    try {
      return await this.#send(method, path, options, signal);
    } catch (err) {
      throw this.#timeoutError(method, path, timeout, options, err);
    }
  }

  /** Sends one request and returns its JSON body; throws {@linkcode KubeApiError} on non-2xx. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const { signal, timeout } = this.#signal(options);
    let res: Response;
    let body: unknown;
    try {
      res = await this.#send(method, path, options, signal);
      body = await readBody(res); // the timeout covers the body too
    } catch (err) {
      throw this.#timeoutError(method, path, timeout, options, err);
    }
    if (!res.ok) throw new KubeApiError(method, path, res.status, body);
    return body as T;
  }

  #signal(options: RequestOptions): { signal: AbortSignal; timeout: AbortSignal } {
    const timeout = AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    return { signal, timeout };
  }

  async #send(
    method: string,
    path: string,
    options: RequestOptions,
    signal: AbortSignal,
  ): Promise<Response> {
    let body: string | undefined;
    let contentType: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      contentType = options.contentType ?? "application/json";
    }
    return await this.#fetch(method, path, this.#url(path, options.query), {
      body,
      contentType,
      signal,
    });
  }

  #timeoutError(
    method: string,
    path: string,
    timeout: AbortSignal,
    options: RequestOptions,
    err: unknown,
  ): unknown {
    if (!timeout.aborted || options.signal?.aborted) return err;
    const ms = options.timeoutMs ?? this.#timeoutMs;
    return new Error(
      `${method} ${path}: no complete answer from ${this.#base} within ${ms} ms (raise timeoutMs if the API server is slow)`,
      { cause: err },
    );
  }

  /**
   * Opens a watch (`?watch=true`) and yields its events as they arrive, objects as sent by
   * the server. Ends when the server closes the stream; throws {@linkcode KubeApiError} when
   * the server refuses the watch and the signal's reason when `signal` aborts. Breaking out of
   * the loop closes the connection.
   */
  async *watch(
    path: string,
    query: Query,
    signal: AbortSignal,
  ): AsyncGenerator<WatchEvent<unknown>, void, undefined> {
    const url = this.#url(path, { ...query, watch: "true" });
    // The request timeout covers the wait for headers only; the caller bounds the stream.
    const headers = new AbortController();
    const timer = setTimeout(
      () => headers.abort(new DOMException(`watch ${path}: no response headers`, "TimeoutError")),
      this.#timeoutMs,
    );
    const local = new AbortController();
    const all = AbortSignal.any([signal, headers.signal, local.signal]);
    let res: Response;
    try {
      res = await this.#fetch("GET", path, url, { signal: all });
    } finally {
      clearTimeout(timer);
    }
    if (res.status !== 200) {
      throw new KubeApiError("GET", `${path} (watch)`, res.status, await readBody(res));
    }
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let start = 0;
        for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n", start)) {
          const line = buffer.slice(start, nl);
          start = nl + 1;
          const event = parseLine(line, path);
          if (event) yield event;
        }
        buffer = buffer.slice(start);
      }
      buffer += decoder.decode();
      const event = parseLine(buffer, path);
      if (event) yield event;
    } finally {
      local.abort();
      reader.cancel().catch(() => {});
    }
  }

  /** Closes idle connections; in-flight requests fail. */
  close(): void {
    this.#http.close();
  }
}

function parseLine(line: string, path: string): WatchEvent<unknown> | undefined {
  if (line.trim() === "") return undefined;
  let parsed: { type?: unknown; object?: unknown };
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    throw new Error(`watch ${path}: the server sent a line that is not JSON`, { cause: err });
  }
  const { type, object } = parsed;
  if (
    type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED" && type !== "BOOKMARK" &&
    type !== "ERROR"
  ) {
    throw new Error(`watch ${path}: unknown event type ${JSON.stringify(type)}`);
  }
  return { type, object } as WatchEvent<unknown>;
}
