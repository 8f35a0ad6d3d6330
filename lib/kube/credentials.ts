/**
 * Where the `Authorization` header of an API request comes from: a fixed token, a token
 * file that is re-read as it rotates (projected ServiceAccount tokens), basic auth, or
 * client-node's own authenticators (exec plugins, auth providers), loaded only when a
 * kubeconfig asks for them because they cost about 75 MB of RSS.
 *
 * @module
 */

/** A source of the `Authorization` header. */
export interface Credentials {
  /** The header value (`Bearer …`, `Basic …`), or undefined when TLS client certs suffice. */
  authorization(): Promise<string | undefined>;
  /**
   * Called after a 401. Returns true when fresh credentials may differ (the caller then
   * retries once), false when a retry cannot help.
   */
  invalidate(): boolean;
}

/** No header: the client authenticates with a TLS client certificate, or not at all. */
export class NoCredentials implements Credentials {
  /** Always undefined. */
  authorization(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }
  /** A retry cannot help. */
  invalidate(): boolean {
    return false;
  }
}

/** A bearer token given inline (kubeconfig `token`). */
export class StaticToken implements Credentials {
  readonly #header: string;
  /** Wraps `token`; throws when it is empty. */
  constructor(token: string) {
    const t = token.trim();
    if (t === "") throw new Error("bearer token is empty: set a non-empty token in the kubeconfig");
    this.#header = `Bearer ${t}`;
  }
  /** The `Bearer` header. */
  authorization(): Promise<string | undefined> {
    return Promise.resolve(this.#header);
  }
  /** A fixed token does not change: a retry cannot help. */
  invalidate(): boolean {
    return false;
  }
}

/** HTTP basic auth (kubeconfig `username`/`password`). */
export class BasicAuth implements Credentials {
  readonly #header: string;
  /** Encodes `username:password` once. */
  constructor(username: string, password: string) {
    this.#header = `Basic ${new TextEncoder().encode(`${username}:${password}`).toBase64()}`;
  }
  /** The `Basic` header. */
  authorization(): Promise<string | undefined> {
    return Promise.resolve(this.#header);
  }
  /** Fixed credentials: a retry cannot help. */
  invalidate(): boolean {
    return false;
  }
}

/** Options of a {@linkcode TokenFile}. */
export interface TokenFileOptions {
  /** Re-read the file when the last read is older than this, in ms (default 60 000, as client-go). */
  maxAgeMs?: number;
  /** Monotonic clock in ms; injectable for tests. */
  now?: () => number;
  /** File reader; injectable for tests. */
  readFile?: (path: string) => Promise<string>;
}

/**
 * A bearer token read from a file and re-read at most every `maxAgeMs` and after a 401, so
 * that rotated projected ServiceAccount tokens are picked up without a restart.
 */
export class TokenFile implements Credentials {
  readonly #path: string;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #readFile: (path: string) => Promise<string>;
  #header: string | undefined;
  #readAt = -Infinity;
  #reading: Promise<string> | undefined;

  /** Creates the source; the file is read on first use. */
  constructor(path: string, options: TokenFileOptions = {}) {
    this.#path = path;
    this.#maxAgeMs = options.maxAgeMs ?? 60_000;
    this.#now = options.now ?? (() => performance.now());
    this.#readFile = options.readFile ?? ((p) => Deno.readTextFile(p));
  }

  /** The path this source reads. */
  get path(): string {
    return this.#path;
  }

  /** The `Bearer` header from the file, re-reading it when stale. */
  async authorization(): Promise<string | undefined> {
    if (this.#header !== undefined && this.#now() - this.#readAt < this.#maxAgeMs) {
      return this.#header;
    }
    this.#reading ??= this.#read().finally(() => this.#reading = undefined);
    return await this.#reading;
  }

  /** Marks the token stale; the next request reads the file again. */
  invalidate(): boolean {
    this.#readAt = -Infinity;
    return true;
  }

  async #read(): Promise<string> {
    let text: string;
    try {
      text = await this.#readFile(this.#path);
    } catch (err) {
      if (this.#header !== undefined) return this.#header; // keep the last good token
      throw new Error(
        `cannot read the bearer token file ${this.#path}: mount the ServiceAccount token there or pass --kubeconfig`,
        { cause: err },
      );
    }
    const token = text.trim();
    if (token === "") {
      if (this.#header !== undefined) return this.#header;
      throw new Error(`bearer token file ${this.#path} is empty: write a token into it`);
    }
    this.#header = `Bearer ${token}`;
    this.#readAt = this.#now();
    return this.#header;
  }
}

/** What client-node's authenticators produced: a header and maybe a client certificate. */
export interface PluginAuth {
  /** The `Authorization` header value, when the plugin gave one. */
  authorization?: string;
  /** A client certificate (PEM), when the plugin gave one. */
  cert?: string;
  /** The client certificate's key (PEM). */
  key?: string;
}

type HttpsOptions = { headers?: Record<string, string>; cert?: unknown; key?: unknown };
type PluginConfig = { applyToHTTPSOptions(opts: HttpsOptions): Promise<void> };

/**
 * Credentials from client-node's full `KubeConfig` (exec plugins, OIDC, Azure/GCP auth
 * providers). The module is imported on first use only: it costs about 75 MB of RSS, which
 * a kubeconfig with a token, a token file or client certificates never pays.
 */
export class PluginCredentials implements Credentials {
  readonly #path: string;
  readonly #context: string;
  #config: Promise<PluginConfig> | undefined;

  /** Uses the user of `context` in the kubeconfig at `kubeconfigPath`. */
  constructor(kubeconfigPath: string, context: string) {
    this.#path = kubeconfigPath;
    this.#context = context;
  }

  /** Runs client-node's authenticator for the user and returns what it produced. */
  async resolve(): Promise<PluginAuth> {
    this.#config ??= (async () => {
      const { KubeConfig } = await import("@kubernetes/client-node/dist/config.js");
      const kc = new KubeConfig();
      kc.loadFromFile(this.#path);
      kc.setCurrentContext(this.#context);
      return kc as unknown as PluginConfig;
    })();
    const opts: HttpsOptions = {};
    await (await this.#config).applyToHTTPSOptions(opts);
    const pem = (v: unknown) =>
      v === undefined || v === null ? undefined : typeof v === "string" ? v : String(v);
    return {
      authorization: opts.headers?.Authorization ?? opts.headers?.authorization,
      cert: pem(opts.cert),
      key: pem(opts.key),
    };
  }

  /** Asks the plugin; client-node caches its tokens until they expire. */
  async authorization(): Promise<string | undefined> {
    return (await this.resolve()).authorization;
  }

  /** The plugin decides when to refresh; a retry may get a new token. */
  invalidate(): boolean {
    return true;
  }
}
