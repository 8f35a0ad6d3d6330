/**
 * The agent as it ships, on the rig's real node: `deploy/base` applied through the rig's
 * overlay (`tests/rig/deploy/`) with an image packed on the node, run by the kubelet.
 *
 * - the pod turns Ready through its `httpGet` probes, and its controller process runs with no
 *   capability, no new privileges, seccomp and a read-only root;
 * - it hot-plugs and unplugs an interface in a kubelet-run pod;
 * - `kubectl rollout restart` while an ADD is journaled but unfinished: the new pod, which
 *   finds the journal on its hostPath, settles it (one attachment, one address, nothing left
 *   journaled);
 * - SIGTERM drains the ADD in flight before the process stops, and `kubectl delete -k`
 *   removes everything the install created.
 */
import assert from "node:assert/strict";
import { Rig, waitFor } from "./rig/mod.ts";
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
