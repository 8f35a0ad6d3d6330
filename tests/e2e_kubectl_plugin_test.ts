/**
 * The kubectl plugin on the node rig, driven through the rig's real kubectl: a `kubectl-hotplug`
 * on `$PATH` that runs `deno run <people's grants> main.ts kubectl "$@"` (the flags and the
 * baked-in argument of the compiled plugin, from `lib/process/permissions.ts`) is listed by
 * `kubectl plugin list`, prints its help, and against the agent on the real kubelet attaches,
 * shows and detaches an interface with a kubeconfig at an unusual path given by `$KUBECONFIG`
 * and by `--kubeconfig`, and with credentials from an exec plugin; it writes nothing, and a
 * missing pod or an unusable command line fail clearly with a non-zero exit code.
 */
import assert from "node:assert/strict";
import { NETWORKS_ANNOTATION } from "../lib/core/annotations.ts";
import { commandHelp, PLUGIN_PROGRAM, pluginHelp } from "../lib/commands/command_line.ts";
import { PLUGIN_FLAGS } from "../lib/process/permissions.ts";
import { Rig, rigCacheDir, type RigPod } from "./rig/mod.ts";
import {
  ControllerProcess,
  getPod,
  installPluginLauncher,
  pluginLauncherScript,
  rigTest,
  sh,
} from "./support/mod.ts";

const NS = "plugin";

/** The rig's kubectl, from the set-up's paths (`tests/rig/setup.sh`). */
async function rigKubectl(): Promise<string> {
  const paths = JSON.parse(await Deno.readTextFile(`${rigCacheDir()}/paths.json`));
  assert.equal(typeof paths.kubectl, "string", "the rig's paths.json names kubectl");
  return paths.kubectl;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function describe(r: Run): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

Deno.test({
  name: "kubectl plugin: kubectl hotplug through the real kubectl on the rig",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    const dir = await Deno.makeTempDir({ prefix: "kubectl-hotplug-" });
    let ctl: ControllerProcess | undefined;
    const transcript: string[] = [];
    try {
      const bin = `${dir}/bin`;
      const home = `${dir}/home`;
      await Deno.mkdir(bin);
      await Deno.mkdir(home);
      const plugin = await installPluginLauncher(bin);
      // A kubeconfig where no default looks: a directory with a space, an odd file name.
      const odd = `${dir}/team configs/rig.admin-kube.json`;
      await Deno.mkdir(`${dir}/team configs`);
      await Deno.copyFile(rig.kubeconfig, odd);
      const kubectlPath = await rigKubectl();
      const baseEnv = {
        PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
        HOME: home, // no ~/.kube/config: only $KUBECONFIG or --kubeconfig can name one
        DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
        NO_COLOR: "1",
      };
      const kubectl = async (args: string[], env: Record<string, string> = {}): Promise<Run> => {
        const out = await new Deno.Command(kubectlPath, {
          args,
          env: { ...baseEnv, ...env },
          clearEnv: true,
          cwd: dir,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder();
        const r = {
          code: out.code,
          stdout: text.decode(out.stdout),
          stderr: text.decode(out.stderr),
        };
        transcript.push(`$ kubectl ${args.join(" ")}`, r.stdout + r.stderr, `(exit ${r.code})`);
        return r;
      };
      const links = async (pod: RigPod) =>
        (await rig.netnsInterfaces(pod)).map((l) => l.name).sort();

      await t.step("kubectl plugin list finds kubectl-hotplug on PATH", async () => {
        const r = await kubectl(["plugin", "list"]);
        assert.equal(r.code, 0, describe(r));
        assert.ok(r.stdout.split("\n").includes(plugin), describe(r));
      });

      await t.step("kubectl hotplug and --help print the plugin's help", async () => {
        for (const args of [["hotplug"], ["hotplug", "--help"]]) {
          const r = await kubectl(args);
          assert.equal(r.code, 0, describe(r));
          assert.equal(r.stdout, pluginHelp());
        }
        const attach = await kubectl(["hotplug", "attach", "--help"]);
        assert.equal(attach.code, 0, describe(attach));
        assert.equal(attach.stdout, commandHelp("attach", PLUGIN_PROGRAM));
      });

      await rig.createNamespace(NS);
      await rig.createNad(NS, "blue", rig.macvlanConfig("10.86.1.0/24"));
      ctl = await ControllerProcess.start(rig);
      const pod = await rig.createPod({ name: "app", namespace: NS });

      await t.step("attach --wait with $KUBECONFIG at an unusual path plugs net1", async () => {
        const r = await kubectl(
          ["hotplug", "attach", "app", "blue@net1", "-n", NS, "--wait=60s"],
          { KUBECONFIG: odd },
        );
        assert.equal(r.code, 0, describe(r));
        assert.match(r.stdout, /net1 attached \(ips 10\.86\.1\.\d+, mac [0-9a-f:]{17}\) in /);
        // The pod had no networks annotation: it is written in the JSON form.
        const written = (await getPod(rig, pod)).metadata.annotations?.[NETWORKS_ANNOTATION];
        assert.deepEqual(JSON.parse(written ?? "null"), [{ name: "blue", interface: "net1" }]);
        assert.deepEqual(await links(pod), ["eth0", "lo", "net1"]);
      });

      await t.step("networks with --kubeconfig shows it attached", async () => {
        const r = await kubectl(["hotplug", "networks", "app", "-n", NS, "--kubeconfig", odd]);
        assert.equal(r.code, 0, describe(r));
        assert.match(r.stdout, /net1\s+plugin\/blue\s+attached\s+10\.86\.1\.\d+/);
        assert.match(r.stdout, /NetworksReady: True \(Attached\)/);
        const json = await kubectl(
          ["hotplug", "networks", "app", "-n", NS, "-o", "json", `--kubeconfig=${odd}`],
        );
        assert.equal(json.code, 0, describe(json));
        assert.equal(JSON.parse(json.stdout).condition.status, "True");
      });

      await t.step("detach --wait with --kubeconfig unplugs net1", async () => {
        const r = await kubectl(
          ["hotplug", "detach", "app", "net1", "-n", NS, "--wait", "--kubeconfig", odd],
        );
        assert.equal(r.code, 0, describe(r));
        assert.match(r.stdout, /net1 detached in /);
        assert.deepEqual(await links(pod), ["eth0", "lo"]);
      });

      await t.step(
        "credentials from an exec plugin, which gets only the listed variables",
        async () => {
          // A ServiceAccount token handed out by an exec credential plugin, as EKS and GKE do.
          const saKubeconfig = await rig.serviceAccountKubeconfig(
            "hotplug-exec",
            NS,
            "cluster-admin",
          );
          const sa = JSON.parse(await Deno.readTextFile(saKubeconfig));
          const token: string = sa.users[0].user.token;
          const creds = `${dir}/creds`;
          await Deno.mkdir(creds);
          const issuer = `${creds}/issue-token`;
          const seen = `${creds}/seen`;
          const credential = JSON.stringify({
            apiVersion: "client.authentication.k8s.io/v1",
            kind: "ExecCredential",
            status: { token },
          });
          await Deno.writeTextFile(
            issuer,
            `#!/bin/sh\necho "profile=$AWS_PROFILE secret=$SECRET_TOKEN" > ${sh(seen)}\necho ${
              sh(credential)
            }\n`,
          );
          await Deno.chmod(issuer, 0o755);
          sa.users[0].user = {
            exec: { apiVersion: "client.authentication.k8s.io/v1", command: issuer },
          };
          const execKubeconfig = `${creds}/exec.kubeconfig`;
          await Deno.writeTextFile(execKubeconfig, JSON.stringify(sa));
          const r = await kubectl(["hotplug", "networks", "app", "-n", NS], {
            KUBECONFIG: execKubeconfig,
            AWS_PROFILE: "rig",
            SECRET_TOKEN: "not-for-plugins",
          });
          assert.equal(r.code, 0, describe(r));
          assert.match(r.stdout, /eth0\s+\S+\s+default/);
          assert.equal((await Deno.readTextFile(seen)).trim(), "profile=rig secret=");
        },
      );

      await t.step("it may not write, nor read a variable outside its list", async () => {
        assert.ok(!PLUGIN_FLAGS.some((f) => f.startsWith("--allow-write")), PLUGIN_FLAGS.join(" "));
        assert.ok(!(await Deno.readTextFile(plugin)).includes("--allow-write"));
        // A program under the very same launcher, in place of main.ts, is refused both.
        const probe = `${dir}/probe.ts`;
        await Deno.writeTextFile(
          probe,
          `let write = "ok";
try { Deno.writeTextFileSync(Deno.args[0]!, "x"); } catch (e) { write = (e as Error).name; }
console.log(JSON.stringify({ write, secret: String(Deno.env.get("SECRET_TOKEN")) }));\n`,
        );
        const probePlugin = `${bin}/kubectl-hotplugprobe`;
        await Deno.writeTextFile(probePlugin, pluginLauncherScript(probe, []));
        await Deno.chmod(probePlugin, 0o755);
        const target = `${dir}/written-by-plugin`;
        const r = await kubectl(["hotplugprobe", target], { SECRET_TOKEN: "s" });
        assert.equal(r.code, 0, describe(r));
        assert.deepEqual(JSON.parse(r.stdout), { write: "NotCapable", secret: "undefined" });
        await assert.rejects(Deno.stat(target), Deno.errors.NotFound);
        await Deno.remove(probePlugin);
      });

      await t.step("a missing pod and an unusable command line fail clearly", async () => {
        const missing = await kubectl(["hotplug", "networks", "nope", "-n", NS], {
          KUBECONFIG: odd,
        });
        assert.equal(missing.code, 1, describe(missing));
        assert.match(
          missing.stderr,
          /^kubectl hotplug networks: pod nope not found in namespace plugin/m,
        );
        const detach = await kubectl(["hotplug", "detach", "nope", "net1", "-n", NS], {
          KUBECONFIG: odd,
        });
        assert.equal(detach.code, 1, describe(detach));
        assert.match(detach.stderr, /pod nope not found in namespace plugin/);
        const usage = await kubectl(["hotplug", "attach", "app"], { KUBECONFIG: odd });
        assert.equal(usage.code, 2, describe(usage));
        assert.match(usage.stderr, /^kubectl hotplug: attach: expected POD/m);
        const noConfig = await kubectl(["hotplug", "networks", "app", "-n", NS]);
        assert.equal(noConfig.code, 1, describe(noConfig));
        assert.match(
          noConfig.stderr,
          new RegExp(`kubeconfig ${home}/\\.kube/config does not exist: pass --kubeconfig`),
        );
      });
      console.log(`transcript:\n${transcript.join("\n")}`);
    } finally {
      await ctl?.stop();
      await rig.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => undefined);
    }
  },
});
