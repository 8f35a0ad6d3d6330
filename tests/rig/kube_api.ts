/**
 * A minimal Kubernetes REST client for the rig: Deno `fetch` with client-certificate or
 * bearer-token authentication. JSON in, JSON out; errors carry the status and the
 * API's message.
 *
 * @module
 */

/** A non-2xx answer from the API server. */
export class ApiError extends Error {
  /**
   * @param status HTTP status
   * @param body the response text (a `Status` object for most errors)
   */
  constructor(message: string, readonly status: number, readonly body: string) {
    super(message);
    this.name = "ApiError";
  }
}

/** Credentials for {@linkcode KubeApi}. */
export interface KubeApiAuth {
  /** PEM of the CA that signed the API server's certificate. */
  caCert: string;
  /** Client certificate and key (PEM). */
  cert?: string;
  key?: string;
  /** Bearer token. */
  token?: string;
}

/** Options of a request. */
export interface RequestOptions {
  /** Content type of a PATCH body, e.g. `application/merge-patch+json`. */
  contentType?: string;
  /** Query parameters. */
  query?: Record<string, string>;
}

/** A tiny API client bound to one server and identity. */
export class KubeApi {
  readonly #client: Deno.HttpClient;
  readonly #token: string | undefined;

  /**
   * @param server base URL, e.g. `https://127.0.0.1:6443`
   * @param auth CA plus client cert/key or token
   */
  constructor(readonly server: string, auth: KubeApiAuth) {
    this.#client = Deno.createHttpClient({
      caCerts: [auth.caCert],
      // HTTP/1.1: Deno's HTTP/2 client stalls for tens of ms on requests with a body.
      http2: false,
      ...(auth.cert && auth.key ? { cert: auth.cert, key: auth.key } : {}),
    });
    this.#token = auth.token;
  }

  /** Sends a request; resolves with the parsed JSON body (or `undefined` for an empty one). */
  async request<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    options: RequestOptions = {},
  ): Promise<T> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#token) headers["authorization"] = `Bearer ${this.#token}`;
    if (body !== undefined) headers["content-type"] = options.contentType ?? "application/json";
    const res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      client: this.#client,
    });
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not a Status object
      }
      throw new ApiError(`${method} ${url.pathname}: ${res.status} ${message}`, res.status, text);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** GET, resolving with `undefined` on 404. */
  async getOrUndefined<T = Record<string, unknown>>(path: string): Promise<T | undefined> {
    try {
      return await this.request<T>("GET", path);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** POST that treats 409 AlreadyExists as success. */
  async createIfMissing(path: string, body: unknown): Promise<void> {
    try {
      await this.request("POST", path, body);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409)) throw err;
    }
  }

  /** Closes the connection pool. */
  close(): void {
    this.#client.close();
  }
}
