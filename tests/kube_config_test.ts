/**
 * Kubeconfig and in-cluster loading, token rotation, and the ingestion transforms. Files
 * only, no server.
 */
import assert from "node:assert/strict";
import { BasicAuth, StaticToken, TokenFile } from "../lib/kube/credentials.ts";
import { inClusterConfig, loadKubeconfig } from "../lib/kube/kubeconfig.ts";
import { slimPod } from "../lib/kube/pods.ts";
import { slimNad } from "../lib/kube/nads.ts";

const CA = "-----BEGIN CERTIFICATE-----\nMIIBfake-ca\n-----END CERTIFICATE-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake-cert\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIBfake-key\n-----END PRIVATE KEY-----\n";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kube_config_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kubeconfig: client certificate files relative to the kubeconfig, context namespace", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/pki`);
    await Deno.writeTextFile(`${dir}/pki/ca.crt`, CA);
    await Deno.writeTextFile(`${dir}/pki/admin.crt`, CERT);
    await Deno.writeTextFile(`${dir}/pki/admin.key`, KEY);
    await Deno.writeTextFile(
      `${dir}/kubeconfig`,
      `apiVersion: v1
kind: Config
current-context: admin@rig
clusters:
- name: rig
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority: pki/ca.crt
users:
- name: admin
  user:
    client-certificate: pki/admin.crt
    client-key: ${dir}/pki/admin.key
contexts:
- name: admin@rig
  context: {cluster: rig, user: admin, namespace: team-a}
`,
    );
    const cfg = await loadKubeconfig(`${dir}/kubeconfig`);
    assert.equal(cfg.server.href, "https://127.0.0.1:6443/");
    assert.deepEqual(cfg.caCerts, [CA]);
    assert.equal(cfg.cert, CERT);
    assert.equal(cfg.key, KEY);
    assert.equal(cfg.namespace, "team-a");
    assert.equal(await cfg.credentials.authorization(), undefined);
    assert.match(cfg.source, /context admin@rig/);
  });
});

Deno.test("kubeconfig: inline data, a token, and choosing another context", async () => {
  await withDir(async (dir) => {
    const b64 = (s: string) => btoa(s);
    await Deno.writeTextFile(
      `${dir}/kc.yaml`,
      JSON.stringify({
        "current-context": "a",
        clusters: [
          { name: "c1", cluster: { server: "https://10.0.0.1:6443" } },
          {
            name: "c2",
            cluster: { server: "https://10.0.0.2:6443", "certificate-authority-data": b64(CA) },
          },
        ],
        users: [
          { name: "u1", user: { token: "tok-1" } },
          { name: "u2", user: { username: "jo", password: "pw" } },
        ],
        contexts: [
          { name: "a", context: { cluster: "c1", user: "u1" } },
          { name: "b", context: { cluster: "c2", user: "u2" } },
        ],
      }),
    );
    const a = await loadKubeconfig(`${dir}/kc.yaml`);
    assert.equal(a.server.host, "10.0.0.1:6443");
    assert.deepEqual(a.caCerts, []);
    assert.equal(await a.credentials.authorization(), "Bearer tok-1");
    assert.ok(a.credentials instanceof StaticToken);
    const b = await loadKubeconfig(`${dir}/kc.yaml`, { context: "b" });
    assert.deepEqual(b.caCerts, [CA]);
    assert.ok(b.credentials instanceof BasicAuth);
    assert.equal(await b.credentials.authorization(), `Basic ${btoa("jo:pw")}`);
  });
});

Deno.test("kubeconfig: errors name the value and the fix", async () => {
  await withDir(async (dir) => {
    const write = (body: string) => Deno.writeTextFile(`${dir}/kc`, body);
    const base = `clusters:
- name: c
  cluster: {server: "https://h:1"SKIP}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
`;
    await write(base.replace("SKIP", "") + "current-context: nope\n");
    await assert.rejects(loadKubeconfig(`${dir}/kc`), /no context "nope": use one of x/);
    await write(base.replace("SKIP", ", insecure-skip-tls-verify: true") + "current-context: x\n");
    await assert.rejects(
      loadKubeconfig(`${dir}/kc`),
      /insecure-skip-tls-verify.*set certificate-authority/,
    );
    await write(base.replace("SKIP", ""));
    await assert.rejects(loadKubeconfig(`${dir}/kc`), /no current-context/);
    await write("clusters: [\n");
    await assert.rejects(loadKubeconfig(`${dir}/kc`), /not valid YAML/);
    await assert.rejects(loadKubeconfig(`${dir}/missing`), /cannot read kubeconfig .*--kubeconfig/);
  });
});

Deno.test("kubeconfig: a token-file is re-read after a 401", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, "first\n");
    await Deno.writeTextFile(
      `${dir}/kc`,
      `current-context: x
clusters: [{name: c, cluster: {server: "https://h:1"}}]
users: [{name: u, user: {token-file: token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
`,
    );
    const cfg = await loadKubeconfig(`${dir}/kc`);
    assert.ok(cfg.credentials instanceof TokenFile);
    assert.equal(await cfg.credentials.authorization(), "Bearer first");
    await Deno.writeTextFile(`${dir}/token`, "second");
    assert.equal(await cfg.credentials.authorization(), "Bearer first", "cached within maxAge");
    assert.equal(cfg.credentials.invalidate(), true);
    assert.equal(await cfg.credentials.authorization(), "Bearer second");
  });
});

Deno.test("token file: re-read when older than maxAge, last good token kept when the file vanishes", async () => {
  let now = 0;
  const contents: (string | Error)[] = ["t1", "t2", new Error("ENOENT")];
  let reads = 0;
  const tf = new TokenFile("/sa/token", {
    maxAgeMs: 1000,
    now: () => now,
    readFile: () => {
      reads++;
      const c = contents.shift()!;
      return c instanceof Error ? Promise.reject(c) : Promise.resolve(c);
    },
  });
  assert.equal(await tf.authorization(), "Bearer t1");
  now = 999;
  assert.equal(await tf.authorization(), "Bearer t1");
  assert.equal(reads, 1);
  now = 1000;
  assert.equal(await tf.authorization(), "Bearer t2");
  now = 5000;
  assert.equal(await tf.authorization(), "Bearer t2");
  assert.equal(reads, 3);
});

Deno.test("in-cluster: server from the environment (IPv6 too), CA and token from the ServiceAccount dir", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ca.crt`, CA);
    await Deno.writeTextFile(`${dir}/token`, "sa-token\n");
    await Deno.writeTextFile(`${dir}/namespace`, "kube-system");
    const env = (vars: Record<string, string>) => (n: string) => vars[n];
    const v4 = await inClusterConfig({
      serviceAccountDir: dir,
      env: env({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }),
    });
    assert.equal(v4.server.href, "https://10.96.0.1/");
    assert.deepEqual(v4.caCerts, [CA]);
    assert.equal(v4.namespace, "kube-system");
    assert.equal(await v4.credentials.authorization(), "Bearer sa-token");
    const v6 = await inClusterConfig({
      serviceAccountDir: dir,
      env: env({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" }),
    });
    assert.equal(v6.server.href, "https://[fd00::1]:6443/");
    await assert.rejects(
      inClusterConfig({ serviceAccountDir: dir, env: env({}) }),
      /KUBERNETES_SERVICE_HOST.*--kubeconfig/,
    );
    await assert.rejects(
      inClusterConfig({
        serviceAccountDir: `${dir}/nope`,
        env: env({ KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "1" }),
      }),
      /ca\.crt.*--allow-read/,
    );
  });
});

Deno.test("slimPod keeps only the fields and the two network annotations the controller reads", () => {
  const raw = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "p",
      namespace: "ns",
      uid: "u-1",
      resourceVersion: "42",
      generation: 1,
      labels: { app: "x" },
      annotations: {
        "k8s.v1.cni.cncf.io/networks": "net-a",
        "k8s.v1.cni.cncf.io/network-status": "[]",
        "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(10_000),
      },
      managedFields: [{ manager: "kubectl" }],
    },
    spec: { nodeName: "node-1", hostNetwork: false, containers: [{ name: "c", image: "i" }] },
    status: { phase: "Running", podIP: "10.0.0.5", conditions: [] },
  };
  assert.deepEqual(slimPod(raw), {
    metadata: {
      name: "p",
      namespace: "ns",
      uid: "u-1",
      resourceVersion: "42",
      generation: 1,
      annotations: {
        "k8s.v1.cni.cncf.io/networks": "net-a",
        "k8s.v1.cni.cncf.io/network-status": "[]",
      },
    },
    spec: { nodeName: "node-1" },
    status: { phase: "Running" },
  });
  const terminating = slimPod({
    metadata: { name: "q", namespace: "ns", uid: "u-2", deletionTimestamp: "2026-01-01T00:00:00Z" },
    spec: { hostNetwork: true },
  });
  assert.deepEqual(terminating, {
    metadata: { name: "q", namespace: "ns", uid: "u-2", deletionTimestamp: "2026-01-01T00:00:00Z" },
    spec: { hostNetwork: true },
  });
  assert.equal(slimPod({ metadata: { name: "no-uid", namespace: "ns" } }), undefined);
  assert.equal(slimPod(null), undefined);
});

Deno.test("slimNad keeps namespace, name, config and resourceVersion", () => {
  assert.deepEqual(
    slimNad({
      metadata: { name: "n", namespace: "ns", resourceVersion: "7", uid: "x", labels: {} },
      spec: { config: '{"cniVersion":"0.3.1","type":"bridge"}' },
    }),
    {
      namespace: "ns",
      name: "n",
      config: '{"cniVersion":"0.3.1","type":"bridge"}',
      resourceVersion: "7",
    },
  );
  assert.deepEqual(slimNad({ metadata: { name: "n", namespace: "ns" }, spec: {} }), {
    namespace: "ns",
    name: "n",
    config: "",
  });
  assert.equal(slimNad({ metadata: { name: "n" } }), undefined);
});

Deno.test("kubeconfig: an exec credential plugin runs through client-node's authenticator", async () => {
  await withDir(async (dir) => {
    const credential = JSON.stringify({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token: "from-exec-plugin" },
    });
    await Deno.writeTextFile(`${dir}/plugin.sh`, `#!/bin/sh\necho '${credential}'\n`);
    await Deno.chmod(`${dir}/plugin.sh`, 0o755);
    await Deno.writeTextFile(
      `${dir}/kc`,
      JSON.stringify({
        "current-context": "x",
        clusters: [{ name: "c", cluster: { server: "https://h:1" } }],
        users: [{
          name: "u",
          user: {
            exec: {
              apiVersion: "client.authentication.k8s.io/v1",
              command: `${dir}/plugin.sh`,
              interactiveMode: "Never",
            },
          },
        }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      }),
    );
    const cfg = await loadKubeconfig(`${dir}/kc`);
    assert.equal(await cfg.credentials.authorization(), "Bearer from-exec-plugin");
  });
});

Deno.test("slimPod keeps the agent's condition and whether a readiness gate waits for it", () => {
  const raw = {
    metadata: { name: "p", namespace: "ns", uid: "u" },
    spec: {
      nodeName: "n",
      readinessGates: [{ conditionType: "dynamic-networks-controller.io/NetworksReady" }],
    },
    status: {
      phase: "Running",
      conditions: [
        { type: "Ready", status: "False" },
        {
          type: "dynamic-networks-controller.io/NetworksReady",
          status: "False",
          reason: "NetworkNotFound",
          message: "m",
          lastTransitionTime: "2026-01-01T00:00:00Z",
          lastProbeTime: null,
        },
      ],
    },
  };
  const pod = slimPod(raw)!;
  assert.equal(pod.spec.networksGate, true);
  assert.deepEqual(pod.status, {
    phase: "Running",
    networksCondition: {
      status: "False",
      reason: "NetworkNotFound",
      message: "m",
      lastTransitionTime: "2026-01-01T00:00:00Z",
    },
  });
  const plain = slimPod({ ...raw, spec: { nodeName: "n" }, status: { phase: "Running" } })!;
  assert.equal(plain.spec.networksGate, undefined);
  assert.deepEqual(plain.status, { phase: "Running" });
});
