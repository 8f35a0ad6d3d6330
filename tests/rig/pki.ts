/**
 * The rig's throw-away PKI, made with openssl: a CA, the API server's serving certificate,
 * client certificates (the admin is in `system:masters`) and the ServiceAccount signing key.
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

/** Creates the CA, server, admin and ServiceAccount keys under `dir`. */
export async function createPki(dir: string): Promise<Pki> {
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
      "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes," +
      "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
      "",
    ].join("\n"),
    ca,
  );
  const admin = await issueCertificate(
    dir,
    "admin",
    "/O=system:masters/CN=rig-admin",
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=clientAuth",
      "",
    ].join("\n"),
    ca,
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
    serviceAccountKey,
    serviceAccountPub,
  };
}
