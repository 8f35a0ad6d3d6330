/**
 * Sandbox and least privilege, on the rig.
 *
 * 1. The controller process itself: the exact command the product runs (`runCommand`: `deno run`
 *    with the one permission list of `lib/process/permissions.ts`, then `main.ts` and its flags) is
 *    started with a `--preload` module that runs first inside that same process, under those
 *    same permissions, tries everything the controller must not do and prints what happened;
 *    then the process goes on to run `main.ts`, becomes ready and hot-plugs an interface. So the
 *    refusals are those of the real controller process, and its grants are proven sufficient.
 *    Refused: reading etcd's database, /etc/passwd and the run directory; writing its own
 *    kubeconfig or /tmp; TCP to etcd, to another local port and to the internet; a unix
 *    socket other than its two; running any program; FFI; system information; listening on
 *    another port; environment variables it was not granted.
 * 2. RBAC: with a ServiceAccount token bound to `deploy/`'s ClusterRole, pods cannot be created,
 *    patched, updated or deleted, pods/status writes cannot change the spec, secrets, nodes and
 *    NADs are out of reach — and the controller still works end to end with that token.
 *
 * Namespace isolation is proven in `reliability_hostile_test.ts` (cases `isolated` and
 * `a NAD of the allowed 'default' namespace passes isolation`).
 */
import assert from "node:assert/strict";
import { MAIN_PATH, runCommand } from "../lib/launch.ts";
import { ControllerProcess, rigTest, setNetworks, waitConverged } from "./support/mod.ts";
import { freePort } from "./rig/ports.ts";
import { ApiError, KubeApi, Rig, waitFor } from "./rig/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;

function probeSource(targets: Record<string, string | number>): string {
  return `
const t = ${JSON.stringify(targets)};
const results: Record<string, string> = {};
async function attempt(name: string, fn: () => unknown) {
  try { await fn(); results[name] = "ok"; } catch (e) { results[name] = (e as Error).name; }
}
await attempt("readEtcdDatabase", () => Deno.readFile(t.etcdDb));
await attempt("readPasswd", () => Deno.readTextFile("/etc/passwd"));
await attempt("listRunDir", async () => { for await (const _ of Deno.readDir(t.runDir)) break; });
await attempt("readKubeconfig", () => Deno.readTextFile(t.kubeconfig));
await attempt("writeKubeconfig", () => Deno.writeTextFile(t.kubeconfig, "{}", { append: true }));
await attempt("writeTmp", () => Deno.writeTextFile("/tmp/dnc-sandbox-escape", "x"));
await attempt("tcpApiServer", async () => (await Deno.connect({ hostname: "127.0.0.1", port: Number(t.apiPort) })).close());
await attempt("tcpEtcd", async () => (await Deno.connect({ hostname: "127.0.0.1", port: Number(t.etcdPort) })).close());
await attempt("tcpOtherLocal", async () => (await Deno.connect({ hostname: "127.0.0.1", port: Number(t.otherPort) })).close());
await attempt("fetchInternet", async () => { await fetch("https://example.com/"); });
await attempt("unixCri", async () => (await Deno.connect({ transport: "unix", path: t.criSocket })).close());
await attempt("unixOther", async () => (await Deno.connect({ transport: "unix", path: t.otherSocket })).close());
await attempt("runIp", () => new Deno.Command("ip", { args: ["link"] }).output());
await attempt("runDeno", () => new Deno.Command(Deno.execPath(), { args: ["--version"] }).output());
await attempt("ffi", () => Deno.dlopen("libc.so.6", {}));
await attempt("sysHostname", () => Deno.hostname());
await attempt("listenOtherPort", () => Deno.listen({ hostname: "127.0.0.1", port: Number(t.otherPort) + 1 }).close());
results.envPath = String(Deno.env.get("PATH"));
results.envHome = String(Deno.env.get("HOME"));
console.log("SANDBOX-PROBE " + JSON.stringify(results));
`;
}

async function etcdPort(rig: Rig): Promise<number> {
  const pid = Number((await Deno.readTextFile(`${rig.dir}/pids/etcd.pid`)).trim());
  const cmdline = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0");
  const urls = cmdline.find((a) => a.startsWith("--listen-client-urls="))!;
  return Number(new URL(urls.split("=")[1]!.split(",")[0]!).port);
}

let rig: Rig | undefined;
function theRig(): Rig {
  if (!rig) throw new Error("the rig did not start (see the first test's failure)");
  return rig;
}

Deno.test({
  name: "sandbox: the controller process is refused everything outside its grants, then runs",
  ...rigTest,
  async fn() {
    rig = await Rig.start();
    const r = theRig();
    const dir = await Deno.makeTempDir();
    const other = Deno.listen({ transport: "unix", path: `${dir}/other.sock` });
    const otherTcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let child: Deno.ChildProcess | undefined;
    try {
      await r.createNamespace("sandbox");
      await r.createNad("sandbox", "blue", {
        cniVersion: "0.3.1",
        type: "macvlan",
        master: r.macvlanMaster,
        mode: "bridge",
        ipam: { type: "static", addresses: [{ address: "10.81.0.5/24" }] },
      });
      const pod = await r.createPod({ name: "sandboxed", namespace: "sandbox" });
      const probe = `${dir}/probe.ts`;
      await Deno.writeTextFile(
        probe,
        probeSource({
          etcdDb: `${r.dir}/etcd/member/snap/db`,
          runDir: r.dir,
          kubeconfig: r.kubeconfig,
          apiPort: Number(new URL(r.apiServerUrl).port),
          etcdPort: await etcdPort(r),
          otherPort: otherTcp.addr.port,
          criSocket: r.criSocket,
          otherSocket: `${dir}/other.sock`,
        }),
      );
      // The etcd database and the run directory are there: a refusal is not a missing file.
      await Deno.stat(`${r.dir}/etcd/member/snap/db`);

      const port = freePort();
      const env = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: "/root" };
      const command = await runCommand([
        `--kubeconfig=${r.kubeconfig}`,
        `--node-name=${r.nodeName}`,
        `--cri-socket=${r.criSocket}`,
        `--multus-socket=${r.multusSocket}`,
        `--state-dir=${r.agentStateDir}`,
        `--metrics-address=127.0.0.1:${port}`,
      ], { env });
      const main = command.indexOf(MAIN_PATH);
      assert.ok(main > 2, command.join(" "));
      const flags = command.slice(2, main);
      assert.ok(flags.every((f) => !f.startsWith("-A") && f !== "--allow-all"), flags.join(" "));
      const args = [...command.slice(1, main), `--preload=${probe}`, ...command.slice(main)];
      child = new Deno.Command(Deno.execPath(), {
        args,
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "null",
        stdin: "null",
      }).spawn();
      const lines: string[] = [];
      (async () => {
        let buffer = "";
        for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
          buffer += chunk;
          const parts = buffer.split("\n");
          buffer = parts.pop()!;
          lines.push(...parts);
        }
      })();
      const line = await waitFor(
        "the probe's report",
        () => lines.find((l) => l.startsWith("SANDBOX-PROBE ")),
        60_000,
      );
      const results = JSON.parse(line.slice("SANDBOX-PROBE ".length));
      assert.deepEqual(results, {
        readEtcdDatabase: "NotCapable",
        readPasswd: "NotCapable",
        listRunDir: "NotCapable",
        readKubeconfig: "ok",
        writeKubeconfig: "NotCapable",
        writeTmp: "NotCapable",
        tcpApiServer: "ok",
        tcpEtcd: "NotCapable",
        tcpOtherLocal: "NotCapable",
        fetchInternet: "NotCapable",
        unixCri: "ok",
        unixOther: "NotCapable",
        runIp: "NotCapable",
        runDeno: "NotCapable",
        ffi: "NotCapable",
        sysHostname: "NotCapable",
        listenOtherPort: "NotCapable",
        envPath: "undefined",
        envHome: "undefined",
      });

      // The same process then runs the controller: ready, and it hot-plugs.
      await waitFor("the sandboxed controller to be ready", async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        await res?.body?.cancel();
        return res?.status === 200;
      }, 60_000);
      await setNetworks(r, pod, [{ name: "blue", interface: "net1" }]);
      await waitConverged(r, pod, [{
        network: "sandbox/blue",
        iface: "net1",
        ipPrefix: "10.81.0.5",
      }]);
    } finally {
      if (child) {
        child.kill("SIGTERM");
        await child.status;
      }
      other.close();
      otherTcp.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "least privilege: deploy/'s ClusterRole cannot write pods beyond pods/status, and suffices",
  ...rigTest,
  async fn() {
    const r = theRig();
    try {
      const applied = await r.kubectl("apply", "-f", `${ROOT}deploy/base/cluster_role.yaml`);
      assert.equal(applied.code, 0, applied.stderr);
      await r.createNamespace("kube-system");
      const kubeconfig = await r.serviceAccountKubeconfig(
        "dynamic-networks-controller",
        "kube-system",
        "dynamic-networks-controller",
      );
      const token = JSON.parse(await Deno.readTextFile(kubeconfig)).users[0].user.token as string;
      assert.ok(token);
      const sa = new KubeApi(r.apiServerUrl, {
        caCert: await Deno.readTextFile(r.caCertPath),
        token,
      });
      await r.createNamespace("rbac");
      await r.createNad("rbac", "blue", {
        cniVersion: "0.3.1",
        type: "macvlan",
        master: r.macvlanMaster,
        mode: "bridge",
        ipam: { type: "static", addresses: [{ address: "10.81.1.5/24" }] },
      });
      const pod = await r.createPod({ name: "target", namespace: "rbac" });
      const path = `/api/v1/namespaces/rbac/pods/target`;
      const forbidden = async (what: string, fn: () => Promise<unknown>) => {
        await assert.rejects(fn, (err) => err instanceof ApiError && err.status === 403, what);
      };
      try {
        // What it needs works.
        const current = await sa.request<Record<string, unknown>>("GET", path);
        await sa.request("GET", "/api/v1/pods", undefined, { query: { limit: "1" } });
        await sa.request("GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions");

        // Everything else on pods is refused.
        await forbidden(
          "patch pod",
          () =>
            sa.request("PATCH", path, { metadata: { labels: { x: "y" } } }, {
              contentType: "application/merge-patch+json",
            }),
        );
        await forbidden("update pod", () => sa.request("PUT", path, current));
        await forbidden("delete pod", () => sa.request("DELETE", path));
        await forbidden("evict pod", () =>
          sa.request("POST", `${path}/eviction`, {
            apiVersion: "policy/v1",
            kind: "Eviction",
            metadata: { name: "target", namespace: "rbac" },
          }));
        await forbidden("create pod", () =>
          sa.request("POST", "/api/v1/namespaces/rbac/pods", {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: "intruder" },
            spec: { containers: [{ name: "c", image: "x" }] },
          }));
        await forbidden(
          "patch pod status",
          () =>
            sa.request("PATCH", `${path}/status`, { metadata: { labels: { x: "y" } } }, {
              contentType: "application/merge-patch+json",
            }),
        );
        await forbidden("exec", () => sa.request("POST", `${path}/exec`, {}));
        await forbidden(
          "read secrets",
          () => sa.request("GET", "/api/v1/namespaces/kube-system/secrets"),
        );
        await forbidden(
          "patch node",
          () =>
            sa.request(
              "PATCH",
              `/api/v1/nodes/${r.nodeName}`,
              { metadata: { labels: { x: "y" } } },
              {
                contentType: "application/merge-patch+json",
              },
            ),
        );
        await forbidden(
          "create NAD",
          () =>
            sa.request(
              "POST",
              "/apis/k8s.cni.cncf.io/v1/namespaces/rbac/network-attachment-definitions",
              {
                apiVersion: "k8s.cni.cncf.io/v1",
                kind: "NetworkAttachmentDefinition",
                metadata: { name: "evil" },
                spec: { config: "{}" },
              },
            ),
        );
        await forbidden(
          "delete NAD",
          () =>
            sa.request(
              "DELETE",
              "/apis/k8s.cni.cncf.io/v1/namespaces/rbac/network-attachment-definitions/blue",
            ),
        );

        // A pods/status update (allowed) cannot change the pod's spec: the server drops it.
        const fresh = await sa.request<{ spec: Record<string, unknown> }>("GET", path);
        const before = JSON.stringify(fresh.spec);
        (fresh.spec as { activeDeadlineSeconds?: number }).activeDeadlineSeconds = 1;
        await sa.request("PUT", `${path}/status`, fresh);
        const after = await r.api.request<{ spec: Record<string, unknown> }>("GET", path);
        assert.equal(JSON.stringify(after.spec), before);

        // And with exactly this token the controller does its whole job.
        const ctl = await ControllerProcess.start(r, { kubeconfig });
        try {
          await setNetworks(r, pod, [{ name: "blue", interface: "net1" }]);
          await waitConverged(r, pod, [{
            network: "rbac/blue",
            iface: "net1",
            ipPrefix: "10.81.1.5",
          }]);
          const denied = ctl.records().filter((rec) => /forbidden|403/i.test(JSON.stringify(rec)));
          assert.deepEqual(denied, [], "the controller hit a permission it lacks");
        } finally {
          await ctl.stop();
        }
      } finally {
        sa.close();
      }
    } finally {
      await r.stop();
    }
  },
});
