/**
 * Where the API server is and how to authenticate: from a kubeconfig file or from the
 * in-cluster ServiceAccount.
 *
 * A kubeconfig in JSON is read with `JSON.parse`; one in YAML with client-node's own YAML parser
 * (`js-yaml`, the exact version client-node resolves to, loaded only then: about 3 MiB of RSS
 * for the agent's life). Either is normalised by `kubeconfig_model.ts`, with the field names
 * and checks of client-node's `KubeConfig`. The full `KubeConfig` (about 75 MB, it pulls in the
 * generated API) is loaded only for users with an exec plugin or an auth provider. Tokens,
 * token files, basic auth and client certificates are handled here.
 *
 * @module
 */
import {
  BasicAuth,
  type Credentials,
  NoCredentials,
  PluginCredentials,
  StaticToken,
  TokenFile,
} from "./credentials.ts";
import { kubeClusters, kubeContexts, kubeUsers } from "./kubeconfig_model.ts";

/** Everything needed to talk to one API server. */
export interface ClusterConfig {
  /** API server base URL, without a trailing slash. */
  server: URL;
  /** Extra trusted CA certificates (PEM); empty to trust only the system roots. */
  caCerts: string[];
  /** TLS client certificate chain (PEM). */
  cert?: string;
  /** TLS client key (PEM). */
  key?: string;
  /** Source of the Authorization header. */
  credentials: Credentials;
  /** HTTP(S)/SOCKS proxy URL from the kubeconfig's `proxy-url`. */
  proxyUrl?: string;
  /** Default namespace of the context or the ServiceAccount. */
  namespace?: string;
  /** Human-readable origin, for logs (`kubeconfig /path (context admin)` or `in-cluster`). */
  source: string;
}

/** Options of {@linkcode loadKubeconfig}. */
export interface KubeconfigOptions {
  /** Context to use instead of `current-context`. */
  context?: string;
  /** File reader; injectable for tests. */
  readFile?: (path: string) => Promise<string>;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

function absolute(root: string, file: string | undefined | null): string | undefined {
  if (file === undefined || file === null || file === "") return undefined;
  return file.startsWith("/") ? file : `${root}/${file}`;
}

function decodeBase64(data: string, what: string): string {
  try {
    return new TextDecoder().decode(Uint8Array.fromBase64(data));
  } catch (err) {
    throw new Error(`${what} is not valid base64: re-encode it with \`base64 -w0\``, {
      cause: err,
    });
  }
}

async function pemFrom(
  data: string | undefined | null,
  file: string | undefined,
  what: string,
  readFile: (path: string) => Promise<string>,
): Promise<string | undefined> {
  if (data) return decodeBase64(data, `${what}-data`);
  if (!file) return undefined;
  try {
    return await readFile(file);
  } catch (err) {
    throw new Error(`cannot read ${what} file ${file}: fix the path in the kubeconfig`, {
      cause: err,
    });
  }
}

/**
 * Loads the API server address and credentials of a context of the kubeconfig at `path`.
 * Relative file paths in the kubeconfig are resolved against its directory, as kubectl does.
 */
export async function loadKubeconfig(
  path: string,
  options: KubeconfigOptions = {},
): Promise<ClusterConfig> {
  const readFile = options.readFile ?? ((p: string) => Deno.readTextFile(p));
  let text: string;
  try {
    text = await readFile(path);
  } catch (err) {
    throw new Error(
      `cannot read kubeconfig ${path}: pass an existing file with --kubeconfig (and grant --allow-read on it)`,
      { cause: err },
    );
  }
  let doc: unknown;
  try {
    // JSON is YAML too; only a kubeconfig that is not JSON needs the YAML parser.
    doc = JSON.parse(text);
  } catch {
    const { load } = await import("js-yaml");
    try {
      doc = load(text);
    } catch (err) {
      throw new Error(`kubeconfig ${path} is not valid YAML: fix the file`, { cause: err });
    }
  }
  if (doc === null || typeof doc !== "object") {
    throw new Error(`kubeconfig ${path} is empty or not a mapping: write a kubeconfig into it`);
  }
  // deno-lint-ignore no-explicit-any
  const raw = doc as Record<string, any>;
  const root = dirname(path);
  // A token-file is relative to the kubeconfig's directory, as kubectl has it; like
  // client-node's KubeConfig, loading fails when it cannot be read.
  if (Array.isArray(raw.users)) {
    for (const u of raw.users) {
      const tf = u?.user?.["token-file"];
      if (typeof tf !== "string" || tf === "") continue;
      u.user["token-file"] = absolute(root, tf);
      try {
        await readFile(u.user["token-file"]);
      } catch (err) {
        throw new Error(
          `kubeconfig ${path} is invalid: cannot read token-file ${u.user["token-file"]}`,
          { cause: err },
        );
      }
    }
  }
  let clusters, users, contexts;
  try {
    clusters = kubeClusters(raw.clusters);
    users = kubeUsers(raw.users);
    contexts = kubeContexts(raw.contexts);
  } catch (err) {
    throw new Error(`kubeconfig ${path} is invalid: ${(err as Error).message}`, { cause: err });
  }
  const contextName: string | undefined = options.context ?? raw["current-context"];
  if (!contextName) {
    throw new Error(
      `kubeconfig ${path} has no current-context: set one with \`kubectl config use-context\``,
    );
  }
  const context = contexts.find((c) => c.name === contextName);
  if (!context) {
    throw new Error(
      `kubeconfig ${path} has no context "${contextName}": use one of ${
        contexts.map((c) => c.name).join(", ") || "(none)"
      }`,
    );
  }
  const cluster = clusters.find((c) => c.name === context.cluster);
  if (!cluster) {
    throw new Error(
      `kubeconfig ${path}: context "${contextName}" names cluster "${context.cluster}", which is not in clusters[]: add it`,
    );
  }
  const user = context.user === undefined ? undefined : users.find((u) => u.name === context.user);
  if (context.user !== undefined && !user) {
    throw new Error(
      `kubeconfig ${path}: context "${contextName}" names user "${context.user}", which is not in users[]: add it`,
    );
  }
  if (cluster.skipTLSVerify) {
    throw new Error(
      `kubeconfig ${path}: cluster "${cluster.name}" sets insecure-skip-tls-verify, which this client does not support: set certificate-authority or certificate-authority-data instead`,
    );
  }
  if (cluster.tlsServerName) {
    throw new Error(
      `kubeconfig ${path}: cluster "${cluster.name}" sets tls-server-name, which this client does not support: use a server URL whose host matches the certificate`,
    );
  }
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch (err) {
    throw new Error(
      `kubeconfig ${path}: cluster "${cluster.name}" server "${cluster.server}" is not a URL: use https://host:port`,
      { cause: err },
    );
  }
  const ca = await pemFrom(
    cluster.caData,
    absolute(root, cluster.caFile),
    "certificate-authority",
    readFile,
  );
  let cert = await pemFrom(
    user?.certData,
    absolute(root, user?.certFile),
    "client-certificate",
    readFile,
  );
  let key = await pemFrom(user?.keyData, absolute(root, user?.keyFile), "client-key", readFile);
  if ((cert === undefined) !== (key === undefined)) {
    throw new Error(
      `kubeconfig ${path}: user "${user?.name}" has a client ${
        cert ? "certificate but no key" : "key but no certificate"
      }: set both client-certificate and client-key`,
    );
  }
  // deno-lint-ignore no-explicit-any
  const rawUser: Record<string, any> | undefined = Array.isArray(raw.users)
    ? raw.users.find((u: { name?: string }) => u?.name === user?.name)?.user
    : undefined;
  let credentials: Credentials;
  if (user?.exec || user?.authProvider) {
    const plugin = new PluginCredentials(path, contextName);
    const resolved = await plugin.resolve();
    cert ??= resolved.cert;
    key ??= resolved.key;
    credentials = plugin;
  } else if (rawUser?.["token-file"]) {
    credentials = new TokenFile(String(rawUser["token-file"]));
  } else if (user?.token) {
    credentials = new StaticToken(user.token);
  } else if (user?.username) {
    credentials = new BasicAuth(user.username, user.password ?? "");
  } else {
    credentials = new NoCredentials();
  }
  return {
    server: new URL(server.href.replace(/\/$/, "")),
    caCerts: ca === undefined ? [] : [ca],
    cert,
    key,
    credentials,
    proxyUrl: cluster.proxyUrl || undefined,
    namespace: context.namespace,
    source: `kubeconfig ${path} (context ${contextName})`,
  };
}

/** The ServiceAccount directory a pod gets mounted. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Options of {@linkcode inClusterConfig}; the defaults are those of a pod. */
export interface InClusterOptions {
  /** Environment lookup (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
  /** Directory holding `token`, `ca.crt` and `namespace` (default {@linkcode SERVICE_ACCOUNT_DIR}). */
  serviceAccountDir?: string;
  /** Re-read the token after this many ms (default 60 000). */
  tokenMaxAgeMs?: number;
}

/**
 * The in-cluster configuration: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
 * the ServiceAccount's CA, and its token file (re-read as it rotates).
 */
export async function inClusterConfig(options: InClusterOptions = {}): Promise<ClusterConfig> {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const host = env("KUBERNETES_SERVICE_HOST");
  const port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    throw new Error(
      "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: run inside a pod, or pass --kubeconfig",
    );
  }
  const hostPart = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  let server: URL;
  try {
    server = new URL(`https://${hostPart}:${port}`);
  } catch (err) {
    throw new Error(
      `KUBERNETES_SERVICE_HOST=${host} KUBERNETES_SERVICE_PORT=${port} do not form a URL: fix the environment`,
      { cause: err },
    );
  }
  let ca: string;
  try {
    ca = await Deno.readTextFile(`${dir}/ca.crt`);
  } catch (err) {
    throw new Error(
      `cannot read ${dir}/ca.crt: mount the ServiceAccount (automountServiceAccountToken) and grant --allow-read=${dir}`,
      { cause: err },
    );
  }
  const credentials = new TokenFile(`${dir}/token`, { maxAgeMs: options.tokenMaxAgeMs });
  await credentials.authorization(); // fail early with a clear message
  let namespace: string | undefined;
  try {
    namespace = (await Deno.readTextFile(`${dir}/namespace`)).trim() || undefined;
  } catch {
    namespace = undefined;
  }
  return { server, caCerts: [ca], credentials, namespace, source: "in-cluster" };
}
