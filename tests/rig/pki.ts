/**
 * The rig's throw-away PKI, made with openssl: a CA, the API server's serving certificate,
 * client certificates (the admin is in `system:masters`; the kubelet is
 * `system:node:<node>` in `system:nodes`; kube-scheduler and kube-controller-manager have the
 * identities their bootstrap RBAC roles name; the API server has one for calling kubelets)
 * and the ServiceAccount signing key.
 *
 * @module
 */

import { run } from "./exec.ts";

/** Paths of the files {@linkcode createPki} writes. */
export interface Pki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  /** The kubelet's client certificate, `/O=system:nodes/CN=system:node:<node>`. */
  nodeCert: string;
  nodeKey: string;
  /** The API server's client certificate towards kubelets (exec, logs). */
  kubeletClientCert: string;
  kubeletClientKey: string;
  schedulerCert: string;
  schedulerKey: string;
  controllerManagerCert: string;
  controllerManagerKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

async function openssl(args: string[]): Promise<void> {
  await run(["openssl", ...args]);
}

/** Writes a key and a certificate signed by the CA in `dir`. */
export async function issueCertificate(
  dir: string,
  name: string,
  subject: string,
  extensions: string,
  ca: { cert: string; key: string },
): Promise<{ cert: string; key: string }> {
  const key = `${dir}/${name}.key`;
  const csr = `${dir}/${name}.csr`;
  const cert = `${dir}/${name}.crt`;
  const ext = `${dir}/${name}.ext`;
  await openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    subject,
  ]);
  await Deno.writeTextFile(ext, extensions);
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-CAcreateserial",
    "-days",
    "3650",
    "-out",
    cert,
    "-extfile",
    ext,
  ]);
  return { cert, key };
}

const CLIENT_EXTENSIONS = [
  "basicConstraints=CA:FALSE",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=clientAuth",
  "",
].join("\n");

/**
 * Creates the CA, the server and client certificates and the ServiceAccount key under `dir`.
 * The API server's certificate also names `extraIps` (e.g. an IPv6 address it is reached at).
 */
export async function createPki(
  dir: string,
  nodeName: string,
  extraIps: readonly string[] = [],
): Promise<Pki> {
  await Deno.mkdir(dir, { recursive: true });
  const caKey = `${dir}/ca.key`;
  const caCert = `${dir}/ca.crt`;
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    caCert,
    "-days",
    "3650",
    "-subj",
    "/CN=dnc-rig-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  ]);
  const ca = { cert: caCert, key: caKey };
  const server = await issueCertificate(
    dir,
    "apiserver",
    "/CN=kube-apiserver",
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,IP:10.96.0.1," + extraIps.map((ip) => `IP:${ip},`).join("") +
      "DNS:localhost,DNS:kubernetes," +
      "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
      "",
    ].join("\n"),
    ca,
  );
  const client = (name: string, subject: string) =>
    issueCertificate(dir, name, subject, CLIENT_EXTENSIONS, ca);
  const admin = await client("admin", "/O=system:masters/CN=rig-admin");
  // The Node authorizer and NodeRestriction know a kubelet by exactly this subject.
  const node = await client("node", `/O=system:nodes/CN=system:node:${nodeName}`);
  const kubeletClient = await client(
    "apiserver-kubelet-client",
    "/O=system:masters/CN=kube-apiserver-kubelet-client",
  );
  const scheduler = await client("scheduler", "/CN=system:kube-scheduler");
  const controllerManager = await client(
    "controller-manager",
    "/CN=system:kube-controller-manager",
  );
  const serviceAccountKey = `${dir}/sa.key`;
  const serviceAccountPub = `${dir}/sa.pub`;
  await openssl([
    "genpkey",
    "-algorithm",
    "RSA",
    "-pkeyopt",
    "rsa_keygen_bits:2048",
    "-out",
    serviceAccountKey,
  ]);
  await openssl(["pkey", "-in", serviceAccountKey, "-pubout", "-out", serviceAccountPub]);
  return {
    caCert,
    caKey,
    serverCert: server.cert,
    serverKey: server.key,
    adminCert: admin.cert,
    adminKey: admin.key,
    nodeCert: node.cert,
    nodeKey: node.key,
    kubeletClientCert: kubeletClient.cert,
    kubeletClientKey: kubeletClient.key,
    schedulerCert: scheduler.cert,
    schedulerKey: scheduler.key,
    controllerManagerCert: controllerManager.cert,
    controllerManagerKey: controllerManager.key,
    serviceAccountKey,
    serviceAccountPub,
  };
}
