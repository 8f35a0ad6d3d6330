/**
 * The commands for people (`networks`, `attach`, `detach`) on the node rig, run as processes
 * with their own permission list and a kubeconfig of the rig's, against the agent on the real
 * kubelet: attach and detach with `--wait` succeed and fail as they should, two concurrent
 * attaches to one pod both land, the annotation keeps its form, and the errors (a missing pod,
 * a pod on no node, a taken interface name, a missing NAD, a 403) say what is wrong. An
 * annotation multus could not plug into a new sandbox draws a warning from the command and the
 * agent, and the step after shows the runtime failing the pod's next sandbox over it.
 */
import assert from "node:assert/strict";
import { NETWORKS_ANNOTATION } from "../lib/core/annotations.ts";
import { Logger } from "../lib/base/log.ts";
import { KubeClient } from "../lib/kube/client.ts";
import { editNetworksAnnotation } from "../lib/commands/pod_editor.ts";
import { Rig, type RigPod, waitFor } from "./rig/mod.ts";
import {
  beforeFirstWrite,
  type CliResult,
  ControllerProcess,
  describeRun,
  getPod,
  hasInterfaces,
  networkStatus,
  podEvents,
  rigTest,
  runCli,
  setNetworks,
  waitForEvent,
} from "./support/mod.ts";

const NS = "commands";

async function annotation(rig: Rig, pod: RigPod): Promise<string | undefined> {
  return (await getPod(rig, pod)).metadata.annotations?.[NETWORKS_ANNOTATION];
}

async function links(rig: Rig, pod: RigPod): Promise<string[]> {
  return (await rig.netnsInterfaces(pod)).map((l) => l.name).sort();
}

function expectExit(r: CliResult, code: number): void {
  assert.equal(r.code, code, describeRun(r));
}

/** Seconds a `--wait` reported (`… attached (…) in 0.42s`). */
function waited(r: CliResult): number {
  const m = / in (\d+\.\d+)s$/m.exec(r.stdout);
  assert.ok(m, describeRun(r));
  return Number(m[1]);
}

/** A ClusterRole of `rules`, and a kubeconfig of a ServiceAccount bound to it. */
async function restrictedKubeconfig(
  rig: Rig,
  name: string,
  rules: Record<string, unknown>[],
): Promise<string> {
  await rig.api.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules,
  });
  return await rig.serviceAccountKubeconfig(name, NS, name);
}

Deno.test({
  name: "commands: networks, attach and detach on the rig",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    const transcript: string[] = [];
    const cli = async (...args: string[]) => {
      const r = await runCli(rig.kubeconfig, args);
      transcript.push(
        `$ dynamic-networks-controller ${args.join(" ")}`,
        r.stdout + r.stderr,
        `(exit ${r.code})`,
      );
      return r;
    };
    const timings: string[] = [];
    try {
      await rig.createNamespace(NS);
      await rig.createNad(NS, "blue", rig.macvlanConfig("10.84.1.0/24"));
      await rig.createNad(NS, "red", rig.macvlanConfig("10.84.2.0/24"));
      await rig.createNad(NS, "green", rig.macvlanConfig("10.84.3.0/24"));
      ctl = await ControllerProcess.start(rig);
      const pod = await rig.createPod({ name: "short", namespace: NS, networks: "blue@net1" });

      await t.step("attach --wait plugs the interface and keeps the short form", async () => {
        const r = await cli("attach", "short", "red@net2", "-n", NS, "--wait=60s");
        expectExit(r, 0);
        assert.match(r.stdout, /attach commands\/red as net2 written to the networks annotation/);
        assert.match(r.stdout, /net2 attached \(ips 10\.84\.2\.\d+, mac [0-9a-f:]{17}\) in /);
        timings.push(`attach --wait ${waited(r)} s (process ${Math.round(r.ms)} ms)`);
        assert.equal(await annotation(rig, pod), "blue@net1,red@net2");
        assert.deepEqual(await links(rig, pod), ["eth0", "lo", "net1", "net2"]);
      });

      await t.step("networks shows desired and actual, as a table and as JSON", async () => {
        const table = await cli("networks", "short", "-n", NS);
        expectExit(table, 0);
        assert.match(table.stdout, /^INTERFACE\s+NETWORK\s+STATE\s+IPS\s+MAC\s+LAST ERROR/);
        assert.match(table.stdout, /net1\s+commands\/blue\s+attached\s+10\.84\.1\.\d+/);
        assert.match(table.stdout, /net2\s+commands\/red\s+attached\s+10\.84\.2\.\d+/);
        assert.match(table.stdout, /eth0\s+\S+\s+default/);
        assert.match(table.stdout, /NetworksReady: True \(Attached\)/);
        const json = await cli("networks", "short", "-n", NS, "-o", "json");
        expectExit(json, 0);
        const view = JSON.parse(json.stdout);
        assert.equal(view.condition.status, "True");
        assert.deepEqual(
          view.interfaces.filter((i: { desired: boolean }) => i.desired).map((
            i: { interface: string; state: string },
          ) => `${i.interface}:${i.state}`),
          ["net1:attached", "net2:attached"],
        );
        console.log(`networks short -n ${NS}\n${table.stdout}`);
      });

      await t.step("detach --wait unplugs it and keeps the rest", async () => {
        const r = await cli("detach", "short", "net2", "-n", NS, "--wait");
        expectExit(r, 0);
        assert.match(r.stdout, /detach net2 \(red@net2\) written/);
        assert.match(r.stdout, /net2 detached in /);
        timings.push(`detach --wait ${waited(r)} s`);
        assert.equal(await annotation(rig, pod), "blue@net1");
        assert.deepEqual(await links(rig, pod), ["eth0", "lo", "net1"]);
      });

      await t.step(
        "attach warns of an annotation multus could not plug into a new sandbox, and so does the agent",
        async () => {
          expectExit(await cli("attach", "short", "green@net3", "-n", NS, "--wait"), 0);
          // red is third and names no interface: multus would call it net3 in a new sandbox.
          const r = await cli("attach", "short", "red", "-n", NS, "--wait");
          expectExit(r, 0);
          assert.match(r.stdout, /attach commands\/red as net2 written/);
          assert.match(
            r.stderr,
            /attach: warning: .*multus would fail a new one .*: networks\[2\] \(red\) names no interface, so multus calls it net3 in a new sandbox, the name networks\[1\] \(green\) asks for/,
          );
          assert.deepEqual(await links(rig, pod), ["eth0", "lo", "net1", "net2", "net3"]);
          const event = await waitForEvent(rig, pod, {
            reason: "SandboxInterfaceClash",
            type: "Warning",
            includes: ["networks[2] (red) names no interface", "net3"],
          });
          console.log(`${event.reason}: ${event.message}`);
          await setNetworks(rig, pod, "blue@net1");
          await waitFor(
            "net2 and net3 to go",
            async () => (await links(rig, pod)).join(",") === "eth0,lo,net1",
            30_000,
          );
        },
      );

      await t.step(
        "what the warning is about: multus fails the new sandbox until the annotation names the interface",
        async () => {
          const fragile = await rig.createPod({
            name: "fragile",
            namespace: NS,
            networks: "blue@net1,green@net3",
          });
          expectExit(await cli("attach", "fragile", "red", "-n", NS, "--wait"), 0);
          const killedAt = Date.now();
          const dead = await rig.killPause(fragile);
          const failure = await waitFor(
            "the kubelet to fail the pod's new sandbox",
            async () =>
              (await podEvents(rig, NS, fragile.name)).find((e) =>
                e.reason === "FailedCreatePodSandBox"
              ),
            60_000,
          );
          // multus names red net3, which green holds already.
          assert.match(failure.message ?? "", /"red".*interface name to "net3".*already exists/);
          console.log(`after the sandbox died: ${failure.reason}: ${failure.message}`);
          await setNetworks(rig, fragile, "blue@net1,green@net3,red@net2");
          const restarted = await waitFor(
            "a new sandbox once red names its interface",
            async () => {
              const now = await rig.refreshPod(fragile).catch(() => undefined);
              return now && now.sandboxId !== dead ? now : undefined;
            },
            120_000,
          );
          await waitFor(
            "the new sandbox to hold every network",
            async () => (await links(rig, restarted)).join(",") === "eth0,lo,net1,net2,net3",
            60_000,
          );
          timings.push(
            `clashing annotation: sandbox killed, FailedCreatePodSandBox seen, fixed, running again ${
              ((Date.now() - killedAt) / 1000).toFixed(1)
            } s after the kill`,
          );
          await rig.deletePod(restarted);
        },
      );

      await t.step(
        "attach --wait fails with the reason for a NAD that does not exist",
        async () => {
          const r = await cli("attach", "short", "nowhere@net3", "-n", NS, "--wait=30s");
          expectExit(r, 1);
          assert.match(
            r.stderr,
            /warning: NetworkAttachmentDefinition commands\/nowhere does not exist \(yet\)/,
          );
          assert.match(
            r.stderr,
            /net3 not attached after [\d.]+s: NetworkNotFound: .*net3 to network: nowhere/,
          );
          // Not refused: the element is written, and attached once the NAD appears.
          assert.equal(await annotation(rig, pod), "blue@net1,nowhere@net3");
          await rig.createNad(NS, "nowhere", rig.macvlanConfig("10.84.4.0/24"));
          const later = await cli("detach", "short", "net3", "-n", NS, "--wait");
          expectExit(later, 0);
        },
      );

      await t.step("two concurrent attaches to one pod both land", async () => {
        const json = await rig.createPod({
          name: "json",
          namespace: NS,
          networks: [{ name: "blue", interface: "net1", "x-extra": { kept: true } } as never],
        });
        const [a, b] = await Promise.all([
          cli("attach", "json", "red@net2", "-n", NS, "--wait"),
          cli("attach", "json", "green@net3", "-n", NS, "--ips=10.84.3.33/24", "--wait"),
        ]);
        expectExit(a, 0);
        expectExit(b, 0);
        const text = await annotation(rig, json);
        const list = JSON.parse(text!);
        assert.deepEqual(list[0], { name: "blue", interface: "net1", "x-extra": { kept: true } });
        assert.deepEqual(
          list.slice(1).sort((x: { interface: string }, y: { interface: string }) =>
            x.interface < y.interface ? -1 : 1
          ),
          [
            { name: "red", interface: "net2" },
            { name: "green", interface: "net3", ips: ["10.84.3.33/24"] },
          ],
        );
        assert.ok(hasInterfaces(await networkStatus(rig, json), ["net1", "net2", "net3"]));
        assert.deepEqual(await links(rig, json), ["eth0", "lo", "net1", "net2", "net3"]);
        const retried = [a, b].filter((r) => /after \d+ conflicting write/.test(r.stdout)).length;
        timings.push(
          `two concurrent attach --wait: ${waited(a)} s and ${
            waited(b)
          } s (${retried} met a conflict)`,
        );
        await rig.deletePod(json);
      });

      await t.step("an edit that meets a concurrent one is made again on it (409)", async () => {
        const client = await KubeClient.create(
          { kubeconfig: rig.kubeconfig },
          new Logger({ level: "error" }),
        );
        try {
          // Someone else's edit lands between this edit's read and its write.
          const staged = beforeFirstWrite(client, async () => {
            await setNetworks(rig, pod, "blue@net1,green@net4");
          });
          const result = await editNetworksAnnotation(staged, NS, "short", (p) => {
            const text = p.metadata?.annotations?.[NETWORKS_ANNOTATION];
            return { text: `${text},red@net5` };
          });
          // At least the one staged here; the agent's own status write for net4 may be another.
          assert.ok(result.conflicts >= 1, `conflicts: ${result.conflicts}`);
          assert.equal(await annotation(rig, pod), "blue@net1,green@net4,red@net5");
        } finally {
          client.close();
        }
        await setNetworks(rig, pod, "blue@net1");
        await waitFor(
          "net4 and net5 to come and go",
          async () =>
            (await links(rig, pod)).join(",") === "eth0,lo,net1" &&
            (await networkStatus(rig, pod)).length === 2,
          30_000,
        );
      });

      await t.step("clear errors: missing pod, taken interface, no node, 403", async () => {
        const missing = await cli("networks", "nope", "-n", NS);
        expectExit(missing, 1);
        assert.match(missing.stderr, /pod nope not found in namespace commands/);

        const taken = await cli("attach", "short", "red@net1", "-n", NS);
        expectExit(taken, 1);
        assert.match(
          taken.stderr,
          /interface net1 is already asked for by element 0 .*\(blue@net1\)/,
        );
        const cluster = await cli("attach", "short", "red@eth0", "-n", NS);
        expectExit(cluster, 1);
        assert.match(cluster.stderr, /eth0 is the pod's cluster network/);
        const notHeld = await cli("detach", "short", "net7", "-n", NS, "--wait");
        expectExit(notHeld, 1);
        assert.match(notHeld.stderr, /holds interface net7: its interfaces are net1/);
        assert.equal(await annotation(rig, pod), "blue@net1", "nothing written on refusal");

        await rig.api.request("POST", `/api/v1/namespaces/${NS}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "unscheduled", namespace: NS },
          spec: {
            nodeSelector: { "commands.test/never": "true" },
            containers: [{ name: "app", image: "busybox", imagePullPolicy: "Never" }],
          },
        });
        const noNode = await cli("attach", "unscheduled", "blue", "-n", NS);
        expectExit(noNode, 1);
        assert.match(noNode.stderr, /pod commands\/unscheduled is on no node yet/);

        const readOnly = await restrictedKubeconfig(rig, "commands-reader", [
          { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
        ]);
        const denied = await runCli(readOnly, ["attach", "short", "red@net2", "-n", NS]);
        expectExit(denied, 1);
        assert.match(
          denied.stderr,
          /refused to let you patch pods in namespace commands \(403 Forbidden: .*\): ask for a Role that grants "patch" on "pods"/,
        );
        assert.match(denied.stderr, /warning: you may not get NetworkAttachmentDefinition/);
        const nobody = await restrictedKubeconfig(rig, "commands-nobody", []);
        const blind = await runCli(nobody, ["networks", "short", "-n", NS]);
        expectExit(blind, 1);
        assert.match(blind.stderr, /refused to let you get pods in namespace commands/);
      });

      await t.step("--wait runs out (exit 3) when no agent acts", async () => {
        await ctl!.stop();
        ctl = undefined;
        const r = await cli("attach", "short", "red@net2", "-n", NS, "--wait=1500ms");
        expectExit(r, 3);
        assert.match(
          r.stderr,
          /timed out after 1\.5s waiting for net2 to be attached: .*NetworksReady is True/,
        );
      });
      console.log(timings.join("\n"));
      console.log(`transcript:\n${transcript.join("\n")}`);
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
