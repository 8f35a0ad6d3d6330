/**
 * The manifests in deploy/ against the rig's real kube-apiserver: both kustomizations render
 * with kubectl and pass a server-side dry run with strict field validation; `kubectl apply -k
 * deploy/base` installs them; the controller then runs with the token of the ServiceAccount
 * from deploy/, bound only by the ClusterRoleBinding from deploy/, and hot-plugs and unplugs
 * an interface (status, network namespace and events); that token is refused everything else
 * (deleting or patching pods); `kubectl delete -k deploy/base` removes it all.
 *
 * The rig's kube-scheduler is stopped first: the DaemonSet controller makes the DaemonSet's
 * pod for the rig's node, but nothing binds it there, because the rig's kubelet would run it
 * with the product's hostPaths on this host and an image the node does not have.
 */
import assert from "node:assert/strict";
import { load as loadYaml } from "js-yaml";
import { ControllerProcess, rigTest } from "./support/mod.ts";
import { DEFAULTS } from "../lib/config/settings.ts";
import { DEPLOY_GRANTS } from "../lib/process/permissions.ts";
import {
  NETWORK_STATUS_ANNOTATION,
  NETWORKS_ANNOTATION,
  Rig,
  type RigPod,
  run,
  type RunResult,
  waitFor,
} from "./rig/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const NAME = "dynamic-networks-controller";
const NS = "deploy-test";
const NAD = "tenant";
const WAIT_MS = 60_000;

let rig: Rig | undefined;
let kubeconfig: string | undefined;

function theRig(): Rig {
  if (!rig) throw new Error("the rig did not start (see the first test's failure)");
  return rig;
}

function saKubeconfig(): string {
  if (!kubeconfig) throw new Error("no ServiceAccount kubeconfig (see the earlier failure)");
  return kubeconfig;
}

/** Runs the rig's kubectl with `kubeconfig` (admin by default), optionally feeding stdin. */
async function kubectl(
  args: string[],
  options: { kubeconfig?: string; stdin?: string } = {},
): Promise<RunResult> {
  const r = theRig();
  return await run(
    [r.binaries.kubectl, `--kubeconfig=${options.kubeconfig ?? r.kubeconfig}`, ...args],
    { stdin: options.stdin, allowFailure: true },
  );
}

function ok(result: RunResult, what: string): string {
  assert.equal(result.code, 0, `${what} failed:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

// deno-lint-ignore no-explicit-any
type Yaml = any;

/** The objects of a multi-document YAML stream. */
function documents(yaml: string): Yaml[] {
  return yaml.split(/^---$/m).map((d) => loadYaml(d)).filter((d) => d);
}

Deno.test({
  name: "deploy rig: start",
  ...rigTest,
  async fn() {
    rig = await Rig.start();
    await rig.createNamespace("kube-system");
    await rig.stopPart("kube-scheduler");
  },
});

/** The pods of the deployed DaemonSet, as `name node-or-none`. */
async function daemonSetPods(): Promise<string[]> {
  const list = JSON.parse(ok(
    await kubectl([
      "get",
      "pods",
      "-n",
      "kube-system",
      "-l",
      `name=${NAME}`,
      "-o",
      "json",
    ]),
    "get the DaemonSet's pods",
  ));
  return list.items.map((p: Yaml) => `${p.metadata.name} ${p.spec.nodeName ?? "none"}`);
}

for (const overlay of ["base", "crio"]) {
  Deno.test({
    name: `deploy rig: deploy/${overlay} renders and passes a strict server-side dry run`,
    ...rigTest,
    async fn() {
      const rendered = ok(await kubectl(["kustomize", `${ROOT}deploy/${overlay}`]), "kustomize");
      const kinds = documents(rendered).map((d) => `${d.kind}/${d.metadata.name}`).sort();
      assert.deepEqual(kinds, [
        `ClusterRole/${NAME}`,
        `ClusterRoleBinding/${NAME}`,
        `ConfigMap/${NAME}-config`,
        `DaemonSet/${NAME}-ds`,
        `ServiceAccount/${NAME}`,
        `ValidatingAdmissionPolicy/${NAME}-node-confinement`,
        `ValidatingAdmissionPolicyBinding/${NAME}-node-confinement`,
      ]);
      const out = ok(
        await kubectl(["apply", "--dry-run=server", "--validate=strict", "-f", "-"], {
          stdin: rendered,
        }),
        `server-side dry run of deploy/${overlay}`,
      );
      assert.equal(out.match(/\(server dry run\)/g)?.length, kinds.length, out);
    },
  });
}

for (const [overlay, runtimeDir] of [["base", "/run/containerd"], ["crio", "/run/crio"]]) {
  Deno.test({
    name:
      `deploy rig: deploy/${overlay}'s ConfigMap sockets and config file are where the pod mounts them`,
    ...rigTest,
    async fn() {
      const objects = documents(
        ok(await kubectl(["kustomize", `${ROOT}deploy/${overlay}`]), "kustomize"),
      );
      const ds = objects.find((o) => o.kind === "DaemonSet");
      const cm = objects.find((o) => o.kind === "ConfigMap");
      const spec = ds.spec.template.spec;
      const container = spec.containers[0];
      /** The volume mounted at the longest mountPath that holds `path`, and the rest of it. */
      const mountOf = (path: string) => {
        const mounts = (container.volumeMounts as Yaml[])
          .filter((m) => path.startsWith(`${m.mountPath.replace(/\/$/, "")}/`))
          .sort((a, b) => b.mountPath.length - a.mountPath.length);
        assert.ok(mounts[0], `nothing is mounted at ${path}`);
        const volume = (spec.volumes as Yaml[]).find((v) => v.name === mounts[0].name);
        return { volume, rest: path.slice(mounts[0].mountPath.replace(/\/$/, "").length) };
      };
      const config = JSON.parse(cm.data["dynamic-networks-config.json"]);
      // Each socket is inside a mounted host directory, so the pod sees a restarted daemon's
      // new socket; the host path is the runtime's and multus' standard one.
      const cri = mountOf(config.criSocketPath);
      assert.equal(cri.volume.hostPath.path + cri.rest, `${runtimeDir}${cri.rest}`);
      assert.ok(["Directory", "DirectoryOrCreate"].includes(cri.volume.hostPath.type));
      const multus = mountOf(config.multusSocketPath);
      assert.equal(multus.volume.hostPath.path + multus.rest, "/run/multus/multus.sock");
      // The journal directory is a host directory of its own (it must outlive the pod), at the
      // path the program defaults to and is granted.
      const stateDir = config.stateDir ?? DEFAULTS.stateDir;
      assert.equal(stateDir, DEPLOY_GRANTS.stateDir);
      const state = (container.volumeMounts as Yaml[]).find((m) => m.mountPath === stateDir);
      assert.ok(state, `nothing is mounted at ${stateDir}`);
      const stateVolume = (spec.volumes as Yaml[]).find((v) => v.name === state.name);
      assert.equal(stateVolume.hostPath.path, stateDir);
      assert.equal(stateVolume.hostPath.type, "DirectoryOrCreate");
      assert.notEqual(state.readOnly, true);
      // The --config file is the ConfigMap's key.
      const configArg = (container.args as string[]).find((a) => a.startsWith("--config="))!;
      const file = mountOf(configArg.slice("--config=".length));
      assert.equal(file.volume.configMap.name, cm.metadata.name);
      assert.equal(file.rest, "/dynamic-networks-config.json");
    },
  });
}

Deno.test({
  name: "deploy rig: the dry run does catch a schema error",
  ...rigTest,
  async fn() {
    const rendered = ok(await kubectl(["kustomize", `${ROOT}deploy/base`]), "kustomize");
    const broken = rendered.replace(/^(\s+)livenessProbe:$/m, "$1livenesProbe:");
    assert.notEqual(broken, rendered);
    const result = await kubectl(["apply", "--dry-run=server", "--validate=strict", "-f", "-"], {
      stdin: broken,
    });
    assert.notEqual(result.code, 0, result.stdout);
    assert.match(result.stderr, /unknown field.*livenesProbe/);
  },
});

Deno.test({
  name:
    "deploy rig: kubectl apply -k deploy/base installs it; the token has exactly the ClusterRole",
  ...rigTest,
  async fn() {
    const r = theRig();
    ok(await kubectl(["apply", "-k", `${ROOT}deploy/base`]), "kubectl apply -k deploy/base");
    // The DaemonSet controller makes one pod for the rig's node, left unscheduled.
    const made = await waitFor("the DaemonSet's pod", async () => {
      const pods = await daemonSetPods();
      return pods.length > 0 ? pods : undefined;
    }, WAIT_MS);
    assert.equal(made.length, 1, made.join(", "));
    assert.match(made[0]!, / none$/);
    kubeconfig = await r.serviceAccountKubeconfig(NAME, "kube-system", NAME);
    // The rig binds the ServiceAccount itself too; drop that binding so that only the
    // ClusterRoleBinding from deploy/ grants anything.
    ok(
      await kubectl(["delete", "clusterrolebinding", `kube-system-${NAME}-${NAME}`]),
      "delete the rig's own binding",
    );
    const bindings = JSON.parse(ok(await kubectl(["get", "clusterrolebindings", "-o", "json"]), ""))
      .items.filter((b: Yaml) =>
        (b.subjects ?? []).some((s: Yaml) =>
          s.kind === "ServiceAccount" && s.name === NAME && s.namespace === "kube-system"
        )
      ).map((b: Yaml) => `${b.metadata.name} -> ${b.roleRef.name}`);
    assert.deepEqual(bindings, [`${NAME} -> ${NAME}`]);

    const role = loadYaml(await Deno.readTextFile(`${ROOT}deploy/base/cluster_role.yaml`)) as Yaml;
    const canI = async (verb: string, resource: string, subresource?: string) => {
      const args = ["auth", "can-i", verb, resource, "-n", NS];
      if (subresource) args.push(`--subresource=${subresource}`);
      const result = await kubectl(args, { kubeconfig: saKubeconfig() });
      assert.match(result.stdout.trim(), /^(yes|no)$/, result.stderr);
      return result.stdout.trim() === "yes";
    };
    // Every verb the ClusterRole grants is allowed …
    for (const rule of role.rules) {
      for (const full of rule.resources as string[]) {
        const [resource, sub] = full.split("/") as [string, string | undefined];
        const group = rule.apiGroups[0] === "" ? "" : `.${rule.apiGroups[0]}`;
        for (const verb of rule.verbs) {
          assert.ok(await canI(verb, `${resource}${group}`, sub), `${verb} ${full}`);
        }
      }
    }
    // … and nothing that would let it harm pods or read anything else.
    for (
      const [verb, resource, sub] of [
        ["delete", "pods"],
        ["patch", "pods"],
        ["update", "pods"],
        ["create", "pods"],
        ["patch", "pods", "status"],
        ["create", "pods", "exec"],
        ["get", "secrets"],
        ["get", "configmaps"],
        ["create", "network-attachment-definitions.k8s.cni.cncf.io"],
        ["delete", "events"],
      ] as [string, string, string?][]
    ) {
      assert.equal(await canI(verb, resource, sub), false, `${verb} ${resource} ${sub ?? ""}`);
    }
  },
});

function statusEntries(pod: Yaml): { name: string; interface?: string; ips?: string[] }[] {
  const text = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  return text ? JSON.parse(text) : [];
}

async function getPod(p: RigPod): Promise<Yaml> {
  return JSON.parse(
    ok(await kubectl(["get", "pod", p.name, "-n", p.namespace, "-o", "json"]), "get pod"),
  );
}

async function events(p: RigPod): Promise<Yaml[]> {
  const list = JSON.parse(ok(
    await kubectl([
      "get",
      "events",
      "-n",
      p.namespace,
      "--field-selector",
      `involvedObject.name=${p.name},involvedObject.uid=${p.uid}`,
      "-o",
      "json",
    ]),
    "get events",
  ));
  // multus records its own AddedInterface events for the pod's cold-plugged networks.
  return list.items.filter((e: Yaml) => e.source?.component === "pod-networks-updates");
}

Deno.test({
  name:
    "deploy rig: with only the deployed RBAC the controller hot-plugs and unplugs; other writes get 403",
  ...rigTest,
  async fn() {
    const r = theRig();
    await r.createNamespace(NS);
    await r.createNad(NS, NAD, {
      cniVersion: "0.3.1",
      type: "macvlan",
      master: r.macvlanMaster,
      mode: "bridge",
      ipam: { type: "static", addresses: [{ address: "10.77.0.10/24" }] },
    });
    const pod = await r.createPod({ name: "app", namespace: NS });
    const controller = await ControllerProcess.start(r, { kubeconfig: saKubeconfig() });
    try {
      // Hot-plug.
      ok(
        await kubectl([
          "annotate",
          "--overwrite",
          "pod",
          pod.name,
          "-n",
          NS,
          `${NETWORKS_ANNOTATION}=[{"name":"${NAD}","interface":"net1"}]`,
        ]),
        "annotate (add)",
      );
      const added = await waitFor("net1 in network-status", async () => {
        const entry = statusEntries(await getPod(pod)).find((e) => e.interface === "net1");
        return entry ?? false;
      }, WAIT_MS);
      assert.equal(added.name, `${NS}/${NAD}`);
      assert.deepEqual(added.ips, ["10.77.0.10"]);
      const inside = (await r.netnsInterfaces(pod)).find((i) => i.name === "net1");
      assert.deepEqual(inside?.ipv4, ["10.77.0.10/24"]);
      const addEvent = await waitFor("an AddedInterface event", async () => {
        return (await events(pod)).find((e) => e.reason === "AddedInterface") ?? false;
      }, WAIT_MS);
      assert.match(addEvent.message, /added interface net1 to network: tenant/);

      // Unplug.
      ok(
        await kubectl(["annotate", "pod", pod.name, "-n", NS, `${NETWORKS_ANNOTATION}-`]),
        "annotate (remove)",
      );
      await waitFor("net1 gone from network-status", async () => {
        return !statusEntries(await getPod(pod)).some((e) => e.interface === "net1");
      }, WAIT_MS);
      assert.ok(!(await r.netnsInterfaces(pod)).some((i) => i.name === "net1"));
      const removeEvent = await waitFor("a RemovedInterface event", async () => {
        return (await events(pod)).find((e) => e.reason === "RemovedInterface") ?? false;
      }, WAIT_MS);
      assert.match(removeEvent.message, /removed interface net1 from network: tenant/);
      assert.deepEqual(
        (await events(pod)).filter((e) => e.type === "Warning").map((e) => e.message),
        [],
      );

      // Every API request the controller made was allowed.
      const metrics = (await controller.get("/metrics")).body;
      const requests = metrics.split("\n").filter((l) =>
        l.startsWith("rest_client_requests_total{")
      );
      assert.ok(requests.some((l) => /code="200"/.test(l) && /method="PUT"/.test(l)), metrics);
      assert.deepEqual(requests.filter((l) => /code="40[13]"/.test(l) && !/ 0$/.test(l)), []);

      // The same token may not delete or patch the pod: real requests, refused with 403.
      for (
        const args of [
          ["delete", "pod", pod.name, "-n", NS, "--wait=false"],
          ["annotate", "pod", pod.name, "-n", NS, "example.com/x=y"],
          ["label", "pod", pod.name, "-n", NS, "x=y"],
        ]
      ) {
        const refused = await kubectl(args, { kubeconfig: saKubeconfig() });
        assert.notEqual(refused.code, 0, args.join(" "));
        assert.match(refused.stderr, /Forbidden|forbidden/, refused.stderr);
      }
      assert.equal((await getPod(pod)).metadata.uid, pod.uid);
    } finally {
      const code = await controller.stop();
      assert.equal(code, 0, controller.lines.slice(-20).join("\n"));
    }
    await r.deletePod(pod);
  },
});

Deno.test({
  name: "deploy rig: kubectl delete -k deploy/base removes everything it installed",
  ...rigTest,
  async fn() {
    ok(await kubectl(["delete", "-k", `${ROOT}deploy/base`]), "kubectl delete -k deploy/base");
    for (
      const [kind, ns] of [
        [`clusterrole/${NAME}`],
        [`clusterrolebinding/${NAME}`],
        [`serviceaccount/${NAME}`, "kube-system"],
        [`configmap/${NAME}-config`, "kube-system"],
        [`daemonset/${NAME}-ds`, "kube-system"],
      ]
    ) {
      const result = await kubectl(["get", kind!, ...(ns ? ["-n", ns] : [])]);
      assert.notEqual(result.code, 0, `${kind} still exists`);
      assert.match(result.stderr, /NotFound|not found/);
    }
    // The garbage collector removes the DaemonSet's pod with it.
    await waitFor(
      "the DaemonSet's pod to go",
      async () => (await daemonSetPods()).length === 0,
      WAIT_MS,
    );
  },
});

Deno.test({
  name: "deploy rig: stop",
  ...rigTest,
  async fn() {
    await rig?.stop();
  },
});
