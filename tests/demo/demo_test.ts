/**
 * `deno task demo`, the README's first command, run as a reader runs it: it must show the pod
 * the kubelet runs, the hot-plug (network-status, `kubectl exec … ip addr`, the events) and the
 * unplug, leave nothing behind, and exit 0.
 */
import assert from "node:assert/strict";
import { RIG_BASE_DIR } from "../rig/mod.ts";
import { rigTest, runDeno } from "../support/mod.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

async function runDirs(): Promise<string[]> {
  const dirs: string[] = [];
  try {
    for await (const e of Deno.readDir(RIG_BASE_DIR)) dirs.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return dirs;
}

Deno.test({
  name: "deno task demo hot-plugs and unplugs an interface, tears down and exits 0",
  ...rigTest,
  async fn() {
    const before = await runDirs();
    const out = await runDeno(["task", "demo"], { cwd: ROOT });
    const text = out.stdout + out.stderr;
    assert.equal(out.code, 0, text);
    for (
      const expected of [
        // The pod, run by the rig's kubelet on its node.
        /\$ kubectl get pods -n demo -o wide\n.*NODE.*\n +app +1\/1 +Running +0 +\S+ +[\d.]+ +rig-[0-9a-f]+ /,
        /plugged: network-status written/,
        /"interface": "net1"/,
        /\$ kubectl exec app -n demo -- ip addr show net1\n(.*\n)*.*inet 10\.10\.0\.5\/24 .* net1/,
        /Started +Pod\/app +Started container app/,
        /AddedInterface +Pod\/app +pod \[demo\/app\]: added interface net1/,
        /unplugged: network-status written/,
        /ip: can't find device 'net1'/,
        /RemovedInterface +pod\/app +pod \[demo\/app\]: removed interface net1/,
        // The kubectl plugin, through the real kubectl.
        /\$ kubectl plugin list\n +\S+\/kubectl-hotplug\n/,
        /\$ kubectl hotplug attach app macvlan-net@net1 --ips 10\.10\.0\.5\/24 -n demo --wait\n/,
        /attached in [\d.]+ s, waited for by the plugin/,
        /\$ kubectl hotplug networks app -n demo\n(.*\n)*.*net1/,
        /detached in [\d.]+ s, waited for by the plugin/,
        /controller stopped \(SIGTERM\), exit code 0/,
        /demo passed/,
      ]
    ) {
      assert.match(text, expected);
    }
    const id = /RIG=\/tmp\/dnc-rig\/([0-9a-f]+)/.exec(text)?.[1];
    assert.ok(id, text);
    assert.ok(!(await runDirs()).includes(id), `run dir ${id} left behind`);
    assert.ok(before.every((d) => d !== id));
  },
});
