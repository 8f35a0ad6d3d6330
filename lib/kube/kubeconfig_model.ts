/**
 * A kubeconfig's clusters, users and contexts as plain records, with the field names and the
 * checks of client-node's kubeconfig model (`KubeConfig`: an entry without a name, a cluster
 * without a server, a context without a cluster is refused, naming it). Written out here so that
 * reading a kubeconfig loads no npm package: what a process loads stays loaded for its life.
 *
 * @module
 */

/** One `clusters[]` entry. */
export interface KubeCluster {
  /** The entry's name. */
  name: string;
  /** The server URL, without a trailing slash. */
  server: string;
  /** `certificate-authority-data` (base64 PEM). */
  caData?: string;
  /** `certificate-authority` (a file). */
  caFile?: string;
  /** `insecure-skip-tls-verify`. */
  skipTLSVerify: boolean;
  /** `tls-server-name`. */
  tlsServerName?: string;
  /** `proxy-url`. */
  proxyUrl?: string;
}

/** One `users[]` entry. */
export interface KubeUser {
  /** The entry's name. */
  name: string;
  /** `client-certificate-data` (base64 PEM). */
  certData?: string;
  /** `client-certificate` (a file). */
  certFile?: string;
  /** `client-key-data` (base64 PEM). */
  keyData?: string;
  /** `client-key` (a file). */
  keyFile?: string;
  /** `token`. */
  token?: string;
  /** `username` (basic auth). */
  username?: string;
  /** `password` (basic auth). */
  password?: string;
  /** `exec`: a credential plugin. */
  exec?: unknown;
  /** `auth-provider`. */
  authProvider?: unknown;
}

/** One `contexts[]` entry. */
export interface KubeContext {
  /** The entry's name. */
  name: string;
  /** The cluster it names. */
  cluster: string;
  /** The user it names. */
  user?: string;
  /** Its default namespace. */
  namespace?: string;
}

// deno-lint-ignore no-explicit-any
type Raw = any;

const list = (value: unknown): Raw[] => Array.isArray(value) ? value : [];
const opt = (value: unknown): string | undefined =>
  value === undefined || value === null || value === "" ? undefined : String(value);

/** The `clusters` list; throws naming the first entry that lacks a name, a cluster or a server. */
export function kubeClusters(value: unknown): KubeCluster[] {
  return list(value).map((e: Raw, i) => {
    if (!e?.name) throw new Error(`clusters[${i}].name is missing`);
    if (!e.cluster) throw new Error(`clusters[${i}].cluster is missing`);
    if (!e.cluster.server) throw new Error(`clusters[${i}].cluster.server is missing`);
    const c = e.cluster;
    return {
      name: String(e.name),
      server: String(c.server).replace(/\/$/, ""),
      caData: opt(c["certificate-authority-data"]),
      caFile: opt(c["certificate-authority"]),
      skipTLSVerify: c["insecure-skip-tls-verify"] === true,
      tlsServerName: opt(c["tls-server-name"]),
      proxyUrl: opt(c["proxy-url"]),
    };
  });
}

/** The `users` list; throws naming the first entry without a name. */
export function kubeUsers(value: unknown): KubeUser[] {
  return list(value).map((e: Raw, i) => {
    if (!e?.name) throw new Error(`users[${i}].name is missing`);
    const u = e.user ?? {};
    return {
      name: String(e.name),
      certData: opt(u["client-certificate-data"]),
      certFile: opt(u["client-certificate"]),
      keyData: opt(u["client-key-data"]),
      keyFile: opt(u["client-key"]),
      token: opt(u.token),
      username: opt(u.username),
      password: u.password === undefined || u.password === null ? undefined : String(u.password),
      exec: u.exec ?? undefined,
      authProvider: u["auth-provider"] ?? undefined,
    };
  });
}

/** The `contexts` list; throws naming the first entry without a name, a context or a cluster. */
export function kubeContexts(value: unknown): KubeContext[] {
  return list(value).map((e: Raw, i) => {
    if (!e?.name) throw new Error(`contexts[${i}].name is missing`);
    if (!e.context) throw new Error(`contexts[${i}].context is missing`);
    if (!e.context.cluster) throw new Error(`contexts[${i}].context.cluster is missing`);
    return {
      name: String(e.name),
      cluster: String(e.context.cluster),
      user: opt(e.context.user),
      namespace: opt(e.context.namespace),
    };
  });
}
