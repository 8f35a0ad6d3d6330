/**
 * The agent as it ships, on the rig's real node: `deploy/base` applied through the rig's
 * overlay (`tests/rig/deploy/`) with an image packed on the node, run by the kubelet.
 *
 * - the pod turns Ready through its `httpGet` probes, and its controller process runs with no
 *   capability, no new privileges, seccomp and a read-only root, under exactly the shipped
 *   binary's permission flags, reaching the API server only at an IPv6 address on a port other
 *   than 443 (as in an IPv6 single-stack cluster);
 * - node confinement: with the token the kubelet gave the agent pod, a `pods/status` write may
 *   change the agent's annotation, finalizer and condition of a pod on its node, and is refused,
 *   with the policy's message, for anything else or a pod on another node;
 * - it hot-plugs and unplugs an interface in a kubelet-run pod;
 * - `kubectl rollout restart` while an ADD is journaled but unfinished: the new pod, which
 *   finds the journal on its hostPath, settles it (one attachment, one address, nothing left
 *   journaled);
 * - SIGTERM drains the ADD in flight before the process stops, and `kubectl delete -k`
 *   removes everything the install created.
 */
import assert from "node:assert/strict";
import { Rig, waitFor } from "./rig/mod.ts";
import { DEPLOY_GRANTS, permissionFlags, RUNTIME_FLAGS } from "../lib/process/permissions.ts";
import {
  AGENT_DAEMONSET,
  AGENT_NAMESPACE,
  type AgentDeployment,
  agentPods,
  agentProcesses,
  deployAgent,
  waitAgentReady,
} from "./rig/agent_daemonset.ts";
import {
  hasInterfaces,
  interfacesByName,
  ipamAllocations,
  networkStatus,
  rigTest,
  setNetworks,
  statusEntry,
  waitForEvent,
  waitForStatus,
} from "./support/mod.ts";

const NS = "daemonset";

/**
 * A CNI plugin that, on ADD, records its pid and waits until `<bin dir>/<name>.open` exists
 * (at most `waitSeconds`), then does macvlan's work; other commands go to macvlan at once.
 */
function gatedPlugin(name: string, waitSeconds: number): string {
  return `#!/bin/sh
dir=$(dirname "$0")
if [ "$CNI_COMMAND" = ADD ]; then
  echo $$ >> "$dir/${name}.pids"
  i=0
  while [ ! -e "$dir/${name}.open" ] && [ $i -lt ${
    waitSeconds * 10
  } ]; do sleep 0.1; i=$((i+1)); done
fi
exec "$dir/macvlan"
`;
}

async function started(rig: Rig, plugin: string): Promise<void> {
  await waitFor(
    `the ${plugin} plugin's ADD to start`,
    async () => {
      try {
        return (await Deno.readTextFile(`${rig.cniBinDir}/${plugin}.pids`)).trim() !== "";
      } catch {
        return false;
      }
    },
    30_000,
    50,
  );
}

function procStatus(pid: number): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of Deno.readTextFileSync(`/proc/${pid}/status`).split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return fields;
}

/** The mount options of `/` as the process sees it. */
function rootMountOptions(pid: number): string[] {
  for (const line of Deno.readTextFileSync(`/proc/${pid}/mountinfo`).split("\n")) {
    const parts = line.split(" ");
    if (parts[4] === "/") return (parts[5] ?? "").split(",");
  }
  throw new Error(`no root mount in /proc/${pid}/mountinfo`);
}

const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";
const OWN_FINALIZER = "dynamic-networks-controller.io/release-attachments";

/** The ServiceAccount token the kubelet projected into the pod `uid` (bound to it and its node). */
async function podToken(rig: Rig, uid: string): Promise<string> {
  const volumes = `${rig.kubeletRootDir}/pods/${uid}/volumes/kubernetes.io~projected`;
  for await (const v of Deno.readDir(volumes)) {
    try {
      return (await Deno.readTextFile(`${volumes}/${v.name}/token`)).trim();
    } catch {
      // another projected volume
    }
  }
  throw new Error(`no projected ServiceAccount token under ${volumes}`);
}

/**
 * A pod bound to node `elsewhere`. No Node object is made: the DaemonSet would want a pod there
 * too, which would never be Ready and would hold up its rollouts.
 */
async function farPod(rig: Rig): Promise<{ name: string; namespace: string }> {
  await rig.api.request("POST", `/api/v1/namespaces/${NS}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "far", namespace: NS },
    spec: { nodeName: "elsewhere", containers: [{ name: "c", image: "none" }] },
  });
  return { name: "far", namespace: NS };
}

/** Sets annotation `key` to what `value` makes of its current value. */
// deno-lint-ignore no-explicit-any
function annotate(pod: any, key: string, value: (current?: string) => string): void {
  pod.metadata.annotations = {
    ...pod.metadata.annotations,
    [key]: value(pod.metadata.annotations?.[key]),
  };
}

/** The same network-status, spelled differently: a real change that changes nothing. */
function reformatted(current?: string): string {
  return JSON.stringify(JSON.parse(current ?? "[]"), null, 1);
}

/**
 * Each change PUT to `pods/status` with `token`, one after the other: 200, or the status code
 * and the API server's message.
 */
async function statusWrites(
  rig: Rig,
  token: string,
  // deno-lint-ignore no-explicit-any
  changes: [string, { name: string; namespace: string }, (pod: any) => void][],
): Promise<Record<string, number | string>> {
  const client = Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(rig.caCertPath)] });
  const out: Record<string, number | string> = {};
  try {
    for (const [what, target, change] of changes) {
      const path = `/api/v1/namespaces/${target.namespace}/pods/${target.name}`;
      // The running agent may write the pod between the read and the write: read again then.
      for (let attempt = 0;; attempt++) {
        // deno-lint-ignore no-explicit-any
        const object = await rig.api.request<any>("GET", path);
        change(object);
        const res = await fetch(new URL(`${path}/status`, rig.apiServerUrl), {
          method: "PUT",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify(object),
          client,
        });
        const body = await res.json() as { message?: string };
        if (res.status === 409 && attempt < 5) continue;
        out[what] = res.ok
          ? res.status
          : `${res.status} ${body.message?.replace(/^.*?denied request: /, "")}`;
        break;
      }
    }
  } finally {
    client.close();
  }
  return out;
}

async function exists(rig: Rig, ...what: string[]): Promise<boolean> {
  const res = await rig.kubectl("get", "--ignore-not-found", "-o", "name", ...what);
  assert.equal(res.code, 0, res.stderr);
  return res.stdout.trim() !== "";
}

Deno.test({
  name:
    "DaemonSet: the runtime's overlay runs on the node, hot-plugs, survives a rollout and drains",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let deployment: AgentDeployment | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(NS, "blue", rig.macvlanConfig("10.85.1.0/24", { name: "ds-blue" }));
      for (const [name, wait] of [["dnc-gated", 60], ["dnc-slow", 3]] as const) {
        await Deno.writeTextFile(`${rig.cniBinDir}/${name}`, gatedPlugin(name, wait), {
          mode: 0o755,
        });
      }
      await rig.createNad(
        NS,
        "gated",
        rig.macvlanConfig("10.85.2.0/24", { name: "ds-gated", type: "dnc-gated" }),
      );
      await rig.createNad(
        NS,
        "slow",
        rig.macvlanConfig("10.85.3.0/24", { name: "ds-slow", type: "dnc-slow" }),
      );
      const pod = await rig.createPod({ name: "app", namespace: NS });
      let agent: Awaited<ReturnType<typeof waitAgentReady>> | undefined;

      await t.step("Ready through its probes, with no privilege", async () => {
        const began = performance.now();
        deployment = await deployAgent(rig);
        agent = await waitAgentReady(rig);
        console.log(
          `agent pod Ready ${((performance.now() - began) / 1000).toFixed(1)} s after deploy`,
        );
        const controller = agentProcesses(agent).find((p) => p.cmdline.includes("/app/main.ts"));
        assert.ok(controller, `no controller process in pod ${agent.metadata.name}`);
        const status = procStatus(controller.pid);
        assert.equal(status.CapEff, "0000000000000000", "effective capabilities");
        assert.equal(status.CapPrm, "0000000000000000", "permitted capabilities");
        assert.equal(status.NoNewPrivs, "1");
        assert.equal(status.Seccomp, "2", "seccomp filter mode");
        assert.ok(rootMountOptions(controller.pid).includes("ro"), "read-only root");
        // Exactly the shipped binary's flags, and the API server only at an IPv6 address on a
        // port other than 443: the grants reach it without being told where it is.
        const argv = controller.cmdline.trim().split(" ");
        const flags = argv.slice(argv.indexOf("run") + 1, argv.indexOf("/app/main.ts"));
        assert.deepEqual(flags, [...permissionFlags(DEPLOY_GRANTS), ...RUNTIME_FLAGS]);
        const env = new Map(
          Deno.readTextFileSync(`/proc/${controller.pid}/environ`).split("\0").map((kv) => {
            const eq = kv.indexOf("=");
            return [kv.slice(0, eq), kv.slice(eq + 1)] as const;
          }),
        );
        const api = rig.ipv6ApiEndpoint();
        assert.equal(env.get("KUBERNETES_SERVICE_HOST"), api.host);
        assert.equal(env.get("KUBERNETES_SERVICE_PORT"), `${api.port}`);
        assert.ok(api.host.includes(":") && api.port !== 443);
        const logs = await rig.kubectl("logs", "-n", AGENT_NAMESPACE, agent.metadata.name);
        assert.equal(logs.code, 0, logs.stderr);
        assert.ok(!/Download https?:/.test(logs.stdout + logs.stderr), "nothing downloaded");
        assert.match(logs.stdout + logs.stderr, /Caches synced/);
      });

      await t.step("hot-plugs and unplugs", async () => {
        await setNetworks(rig, pod, [{ name: "blue", interface: "net1" }]);
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net1"]));
        const link = (await interfacesByName(rig, pod)).get("net1");
        assert.equal(link?.mac, statusEntry(entries, "net1")!.mac);
        assert.deepEqual(link?.ipv4, [`${statusEntry(entries, "net1")!.ips![0]}/24`]);
        await waitForEvent(rig, pod, {
          reason: "AddedInterface",
          includes: [`pod [${NS}/app]: added interface net1 to network: blue`],
        });
        await setNetworks(rig, pod, []);
        await waitForStatus(rig, pod, (s) => hasInterfaces(s, []));
        assert.ok(!(await interfacesByName(rig, pod)).has("net1"));
        assert.equal((await ipamAllocations(rig, "ds-blue", pod.sandboxId)).size, 0);
      });

      await t.step(
        "confined to its node: its own token writes only what it owns, on its node's pods",
        async () => {
          const token = await podToken(rig, agent!.metadata.uid);
          const far = await farPod(rig);
          const before = await rig.api.request<{ metadata: { finalizers?: string[] } }>(
            "GET",
            `/api/v1/namespaces/${NS}/pods/${pod.name}`,
          );
          const finalizers = before.metadata.finalizers ?? [];
          const denied = await statusWrites(rig, token, [
            ["own annotation", pod, (p) => annotate(p, NETWORK_STATUS, reformatted)],
            ["own finalizer", pod, (p) => (p.metadata.finalizers = [OWN_FINALIZER])],
            ["finalizer removed", pod, (p) => (p.metadata.finalizers = [])],
            ["finalizers as they were", pod, (p) => (p.metadata.finalizers = finalizers)],
            ["another annotation", pod, (p) => annotate(p, "example.com/x", () => "y")],
            ["a label", pod, (p) => (p.metadata.labels = { ...p.metadata.labels, x: "y" })],
            ["another finalizer", pod, (p) => (p.metadata.finalizers = ["example.com/x"])],
            ["the phase", pod, (p) => (p.status.phase = "Failed")],
            ["a pod on another node", far, (p) => annotate(p, NETWORK_STATUS, () => "[]")],
          ]);
          assert.deepEqual(denied, {
            "own annotation": 200,
            "own finalizer": 200,
            "finalizer removed": 200,
            "finalizers as they were": 200,
            "another annotation":
              "422 dynamic-networks-controller may change only the k8s.v1.cni.cncf.io/network-status annotation of pod daemonset/app; another annotation was changed",
            "a label":
              "422 dynamic-networks-controller may not change the labels or owners of pod daemonset/app",
            "another finalizer":
              "422 dynamic-networks-controller may add or remove only its own finalizer on pod daemonset/app",
            "the phase":
              "422 dynamic-networks-controller may change only its dynamic-networks-controller.io/NetworksReady condition in the status of pod daemonset/app",
            "a pod on another node":
              `422 dynamic-networks-controller on node ${rig.nodeName} may write only the pods of its own node; pod daemonset/far is on elsewhere`,
          });
          await rig.kubectl("delete", "pod", "-n", NS, "far", "--grace-period=0", "--force");
        },
      );

      await t.step("a rollout restart with an unfinished ADD: the new pod settles it", async () => {
        const old = agent!;
        await setNetworks(rig, pod, [{ name: "gated", interface: "net2" }]);
        await started(rig, "dnc-gated");
        const journal = `${rig.agentStateDir}/${pod.uid}.json`;
        await waitFor("the ADD to be journaled", () => Deno.stat(journal).then(() => true), 10_000);
        const restart = await rig.kubectl(
          "-n",
          AGENT_NAMESPACE,
          "rollout",
          "restart",
          `daemonset/${AGENT_DAEMONSET}`,
        );
        assert.equal(restart.code, 0, restart.stderr);
        await waitFor(
          "the old agent pod to be gone",
          async () => {
            return !(await agentPods(rig)).some((p) => p.metadata.uid === old.metadata.uid);
          },
          60_000,
          250,
        );
        // The ADD the old pod sent finishes in multus now, after its sender is gone.
        await Deno.writeTextFile(`${rig.cniBinDir}/dnc-gated.open`, "");
        agent = await waitAgentReady(rig, { except: old.metadata.uid });
        const entries = await waitForStatus(rig, pod, (s) => hasInterfaces(s, ["net2"]));
        await waitFor("no unfinished ADD left in the journal", async () => {
          const file = JSON.parse(await Deno.readTextFile(journal)) as {
            adds: unknown[];
            attached: { ifname: string }[];
          };
          return file.adds.length === 0 && file.attached.map((a) => a.ifname).join() === "net2";
        }, 30_000);
        const links = await interfacesByName(rig, pod);
        assert.equal(links.get("net2")?.mac, statusEntry(entries, "net2")!.mac);
        const owned = await ipamAllocations(rig, "ds-gated", pod.sandboxId);
        assert.deepEqual(
          [...owned.keys()],
          statusEntry(entries, "net2")!.ips,
          "exactly the recorded address is allocated",
        );
        const logs = await rig.kubectl("logs", "-n", AGENT_NAMESPACE, agent.metadata.name);
        const settled =
          /released an attachment whose ADD was never recorded|attachment exists but is not recorded/
            .exec(logs.stdout + logs.stderr)?.[0];
        console.log(`the new agent pod settled the unfinished ADD: ${settled ?? "(no line)"}`);
      });

      await t.step("SIGTERM drains the ADD in flight; delete -k removes everything", async () => {
        const current = agent!;
        const follow = new Deno.Command(rig.binaries.kubectl, {
          args: [
            `--kubeconfig=${rig.kubeconfig}`,
            "logs",
            "-f",
            "-n",
            AGENT_NAMESPACE,
            current.metadata.name,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        await setNetworks(rig, pod, [
          { name: "gated", interface: "net2" },
          { name: "slow", interface: "net3" },
        ]);
        await started(rig, "dnc-slow");
        // The pod alone is deleted: its RBAC stays, so its last status write can land.
        const deleted = await rig.kubectl(
          "delete",
          "pod",
          "-n",
          AGENT_NAMESPACE,
          current.metadata.name,
          "--wait=false",
        );
        assert.equal(deleted.code, 0, deleted.stderr);
        const out = await follow;
        const lines = new TextDecoder().decode(out.stdout).split("\n").flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        });
        const stopAt = lines.findIndex((l) => l.msg === "Shutdown requested");
        const addedAt = lines.findIndex((l) =>
          l.msg === "added interface" && l.interfaceName === "net3"
        );
        const tail = lines.slice(Math.max(0, stopAt - 3)).map((l) => JSON.stringify(l)).join("\n");
        assert.ok(stopAt >= 0, `the agent saw SIGTERM:\n${tail}`);
        assert.ok(addedAt > stopAt, `the ADD in flight finished after SIGTERM:\n${tail}`);
        assert.equal(lines.at(-1)?.msg, "Stopped", "and then the process stopped");
        const entries = await networkStatus(rig, pod);
        assert.ok(hasInterfaces(entries, ["net2", "net3"]), JSON.stringify(entries));
        await waitAgentReady(rig, { except: current.metadata.uid });
        const removed = await rig.kubectl("delete", "-k", deployment!.dir, "--wait=false");
        assert.equal(removed.code, 0, removed.stderr);
        await waitFor(
          "every object of the install to be gone",
          async () => {
            for (
              const path of [
                `daemonset/${AGENT_DAEMONSET}`,
                "serviceaccount/dynamic-networks-controller",
                "configmap/dynamic-networks-controller-config",
              ]
            ) if (await exists(rig, "-n", AGENT_NAMESPACE, path)) return false;
            for (
              const path of [
                "clusterrole/dynamic-networks-controller",
                "clusterrolebinding/dynamic-networks-controller",
              ]
            ) if (await exists(rig, path)) return false;
            return (await agentPods(rig)).length === 0;
          },
          60_000,
          500,
        );
        deployment = undefined;
      });
    } finally {
      if (deployment) await rig.kubectl("delete", "-k", deployment.dir, "--wait=false");
      await rig.stop();
    }
  },
});
