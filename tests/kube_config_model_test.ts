/** The kubeconfig model (clusters, users, contexts) and a kubeconfig in JSON. Files only. */
import assert from "node:assert/strict";
import { StaticToken } from "../lib/kube/credentials.ts";
import { loadKubeconfig } from "../lib/kube/kubeconfig.ts";
import { kubeClusters, kubeContexts, kubeUsers } from "../lib/kube/kubeconfig_model.ts";

Deno.test("kubeconfig model: entries without what they need are refused, naming them", () => {
  assert.throws(
    () => kubeClusters([{ cluster: { server: "x" } }]),
    /clusters\[0\]\.name is missing/,
  );
  assert.throws(() => kubeClusters([{ name: "a" }]), /clusters\[0\]\.cluster is missing/);
  assert.throws(
    () => kubeClusters([{ name: "a", cluster: { server: "s" } }, { name: "b", cluster: {} }]),
    /clusters\[1\]\.cluster\.server is missing/,
  );
  assert.throws(() => kubeUsers([{ user: {} }]), /users\[0\]\.name is missing/);
  assert.throws(() => kubeContexts([{ name: "c" }]), /contexts\[0\]\.context is missing/);
  assert.throws(
    () => kubeContexts([{ name: "c", context: { user: "u" } }]),
    /contexts\[0\]\.context\.cluster is missing/,
  );
  assert.deepEqual(kubeClusters(undefined), []);
  assert.deepEqual(
    kubeClusters([{
      name: "a",
      cluster: { server: "https://h:6443/", "insecure-skip-tls-verify": true, "proxy-url": "" },
    }]),
    [{
      name: "a",
      server: "https://h:6443",
      caData: undefined,
      caFile: undefined,
      skipTLSVerify: true,
      tlsServerName: undefined,
      proxyUrl: undefined,
    }],
  );
  assert.deepEqual(kubeContexts([{ name: "c", context: { cluster: "a", user: "" } }]), [
    { name: "c", cluster: "a", user: undefined, namespace: undefined },
  ]);
});

Deno.test("kubeconfig: one in JSON is read without the YAML parser; an unreadable token-file is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kube_config_model_test_" });
  try {
    const config = (user: Record<string, unknown>) =>
      JSON.stringify({
        "current-context": "c",
        clusters: [{ name: "a", cluster: { server: "https://127.0.0.1:6443" } }],
        users: [{ name: "u", user }],
        contexts: [{ name: "c", context: { cluster: "a", user: "u" } }],
      });
    await Deno.writeTextFile(`${dir}/kc.json`, config({ token: "t0k" }));
    const cfg = await loadKubeconfig(`${dir}/kc.json`);
    assert.equal(cfg.server.href, "https://127.0.0.1:6443/");
    assert.ok(cfg.credentials instanceof StaticToken);
    assert.equal(await cfg.credentials.authorization(), "Bearer t0k");
    await Deno.writeTextFile(`${dir}/kc.json`, config({ "token-file": "no-such-token" }));
    await assert.rejects(
      loadKubeconfig(`${dir}/kc.json`),
      /is invalid: cannot read token-file .*\/no-such-token/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
