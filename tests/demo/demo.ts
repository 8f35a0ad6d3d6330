/**
 * `deno task demo`: the whole product on one machine, in seconds once the rig is set up.
 *
 * Sets up and starts the node rig (etcd, kube-apiserver, kube-scheduler,
 * kube-controller-manager, a kubelet on containerd, the multus thick daemon, the Debian CNI
 * plugins), runs the controller exactly as `deno task start` does (same permission list),
 * creates a macvlan NetworkAttachmentDefinition and a pod that the kubelet runs
 * (`kubectl get pods -o wide`), hot-plugs an interface by editing the pod's annotation with
 * kubectl, shows the pod's network-status, the interface from inside the pod
 * (`kubectl exec … ip addr`) and the pod's events, unplugs it, shows it gone, does the same
 * through the kubectl plugin (`kubectl hotplug attach|networks|detach`, run by the real kubectl
 * with the plugin's exact grants), and tears everything down. Exits 0 on success, 1 with a reason on failure. Needs root.
 *
 * @module
 */
import { ControllerProcess, installPluginLauncher } from "../support/mod.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, Rig, waitFor } from "../rig/mod.ts";

const NAMESPACE = "demo";
const NAD = "macvlan-net";
const POD = "app";
const IFACE = "net1";
const ADDRESS = "10.10.0.5/24";
const WAIT_MS = 60_000;

const color = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
const paint = (code: string) => (s: string) => color ? `\x1b[${code}m${s}\x1b[0m` : s;
const bold = paint("1");
const dim = paint("2");
const green = paint("32");
const red = paint("31");
const cyan = paint("36");

let stepNumber = 0;
const STEPS = 9;

function step(title: string): void {
  stepNumber++;
  console.log(`\n${bold(`[${stepNumber}/${STEPS}] ${title}`)}`);
}

function show(text: string, indent = "    "): void {
  for (const line of short(text).trimEnd().split("\n")) console.log(`${indent}${line}`);
}

/** The rig's run directory, shown as `$RIG` to keep paths short. */
let runDir = "";

function short(text: string): string {
  return runDir === "" ? text : text.replaceAll(runDir, "$RIG");
}

function command(argv: readonly string[]): void {
  console.log(`    ${cyan("$")} ${cyan(short(argv.join(" ")))}`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

class DemoFailure extends Error {}

/** Runs kubectl as a reader would type it, shows the command; fails the demo if it fails. */
async function kubectl(rig: Rig, ...args: string[]): Promise<string> {
  const result = await kubectlMay(rig, ...args);
  if (result.code !== 0) {
    throw new DemoFailure(`kubectl ${args[0]} failed: ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/** Like {@linkcode kubectl}, for a command that may fail (its error is part of the story). */
async function kubectlMay(rig: Rig, ...args: string[]) {
  command(["kubectl", ...args.map((a) => /[\s"'[\]{}]/.test(a) ? `'${a}'` : a)]);
  return await rig.kubectl(...args);
}

async function podObject(
  rig: Rig,
): Promise<{ metadata: { annotations?: Record<string, string> } }> {
  const out = await rig.kubectl("get", "pod", POD, "-n", NAMESPACE, "-o", "json");
  if (out.code !== 0) throw new DemoFailure(`cannot read pod: ${out.stderr.trim()}`);
  return JSON.parse(out.stdout);
}

async function networkStatus(rig: Rig): Promise<{ name: string; interface?: string }[]> {
  const text = (await podObject(rig)).metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  return text ? JSON.parse(text) : [];
}

/** `ip addr show <iface>` inside the pod, through the kubelet (`kubectl exec`). */
async function ipAddrShow(rig: Rig, iface: string): Promise<string> {
  const out = await kubectlMay(
    rig,
    "exec",
    POD,
    "-n",
    NAMESPACE,
    "--",
    "ip",
    "addr",
    "show",
    iface,
  );
  return (out.stdout + out.stderr).trimEnd();
}

/** The pod's events, from the kubelet, multus and the controller. */
async function events(rig: Rig): Promise<string> {
  return await kubectl(rig, "events", "-n", NAMESPACE, "--for", `pod/${POD}`);
}

/** The controller's events of one reason on the pod. */
async function eventsOf(rig: Rig, reason: string): Promise<string> {
  const selector = `involvedObject.name=${POD},reason=${reason}`;
  return await kubectl(rig, "get", "events", "-n", NAMESPACE, "--field-selector", selector);
}

/**
 * Runs the rig's real kubectl as a person would, with the kubectl plugin on `PATH` and the
 * kubeconfig in `$KUBECONFIG`; shows the command and its output; fails the demo if it fails.
 */
async function kubectlAsPerson(rig: Rig, bin: string, ...args: string[]): Promise<string> {
  command(["kubectl", ...args]);
  const out = await new Deno.Command(rig.binaries.kubectl, {
    args,
    env: { PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`, KUBECONFIG: rig.kubeconfig },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  const stdout = text.decode(out.stdout);
  if (out.code !== 0) {
    throw new DemoFailure(`kubectl ${args.join(" ")} failed: ${text.decode(out.stderr).trim()}`);
  }
  return stdout;
}

async function demo(): Promise<void> {
  let rig: Rig | undefined;
  let controller: ControllerProcess | undefined;
  const teardown = async () => {
    const c = controller;
    const r = rig;
    controller = undefined;
    rig = undefined;
    if (c) {
      const code = await c.stop();
      console.log(`    controller stopped (SIGTERM), exit code ${code}`);
    }
    if (r) {
      await r.stop();
      console.log("    rig stopped; pods, links, mounts and processes removed");
    }
  };
  const interrupt = () => {
    console.log(red("\ninterrupted: tearing down"));
    teardown().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", interrupt);
  Deno.addSignalListener("SIGTERM", interrupt);
  try {
    step("Node rig: etcd, kube-apiserver, scheduler, controller-manager, kubelet, multus, CNI");
    console.log(
      dim("    (the first run installs packages and builds Kubernetes and multus: about ten"),
    );
    console.log(dim("     minutes; later runs take seconds)"));
    let t = Date.now();
    rig = await Rig.start();
    const b = rig.binaries;
    show(
      [
        `node ${rig.nodeName}, Kubernetes ${b.kubeVersion}, multus ${b.multusVersion}`,
        `up in ${seconds(Date.now() - t)}; RIG=${rig.dir}`,
      ].join("\n"),
    );
    runDir = rig.dir;

    step("Controller, with exactly the permissions of `deno task start`");
    controller = await ControllerProcess.start(rig, { args: ["--log-level=info"] });
    const flags = controller.command.filter((a) => a.startsWith("--allow") || a === "--ignore-env");
    show(
      [
        "deno run --no-prompt \\",
        ...flags.map((f) => `  ${f} \\`),
        "  main.ts --kubeconfig … --node-name …",
      ].join("\n"),
    );
    console.log(`    ${green("ready")}: /readyz answers 200 on 127.0.0.1:${controller.port}`);

    step("A macvlan NetworkAttachmentDefinition, and a pod the kubelet runs");
    await rig.createNamespace(NAMESPACE);
    const config = {
      cniVersion: "0.3.1",
      type: "macvlan",
      master: rig.macvlanMaster,
      mode: "bridge",
      capabilities: { ips: true },
      ipam: { type: "static" },
    };
    await rig.createNad(NAMESPACE, NAD, config);
    show(`NetworkAttachmentDefinition ${NAMESPACE}/${NAD}: ${JSON.stringify(config)}`);
    const pod = await rig.createPod({ name: POD, namespace: NAMESPACE });
    show(await kubectl(rig, "get", "pods", "-n", NAMESPACE, "-o", "wide"));

    step(`Hot-plug ${IFACE}: edit the pod's ${NETWORKS_ANNOTATION} annotation`);
    const selection = JSON.stringify([{ name: NAD, interface: IFACE, ips: [ADDRESS] }]);
    t = Date.now();
    await kubectl(
      rig,
      "annotate",
      "pod",
      POD,
      "-n",
      NAMESPACE,
      "--overwrite",
      `${NETWORKS_ANNOTATION}=${selection}`,
    );
    await waitFor(`${IFACE} in network-status`, async () => {
      return (await networkStatus(rig!)).some((e) => e.interface === IFACE);
    }, WAIT_MS);
    console.log(
      `    ${green("plugged")}: network-status written ${seconds(Date.now() - t)} after the edit`,
    );

    step("What the pod sees");
    console.log(`    ${bold(NETWORK_STATUS_ANNOTATION)}:`);
    show(JSON.stringify(await networkStatus(rig), null, 2), "      ");
    const plugged = await ipAddrShow(rig, IFACE);
    show(plugged, "      ");
    if (!plugged.includes(ADDRESS)) throw new DemoFailure(`${IFACE} lacks ${ADDRESS} in the pod`);
    show(await events(rig), "      ");
    console.log(
      dim("      (the kubelet started the pod; multus recorded eth0 at its start and net1"),
    );
    console.log(dim("       as it plugged it; the last line is the controller's)"));

    step(`Unplug ${IFACE}: remove the annotation`);
    t = Date.now();
    await kubectl(rig, "annotate", "pod", POD, "-n", NAMESPACE, `${NETWORKS_ANNOTATION}-`);
    await waitFor(`${IFACE} gone from network-status`, async () => {
      return !(await networkStatus(rig!)).some((e) => e.interface === IFACE);
    }, WAIT_MS);
    console.log(
      `    ${green("unplugged")}: network-status written ${seconds(Date.now() - t)} after the edit`,
    );

    step("Gone");
    show(
      `network-status: ${
        (await networkStatus(rig)).map((e) => `${e.name} (${e.interface})`).join(", ")
      }`,
    );
    const after = await ipAddrShow(rig, IFACE);
    show(after, "      ");
    if (!/can't find device/.test(after)) throw new DemoFailure(`${IFACE} is still in the pod`);
    show(await eventsOf(rig, "RemovedInterface"), "      ");

    step("The same for people: the kubectl plugin, `kubectl hotplug`");
    console.log(
      dim("    (kubectl-hotplug on PATH: main.ts with the compiled plugin's exact grants)"),
    );
    const bin = `${rig.dir}/plugin-bin`;
    await Deno.mkdir(bin, { recursive: true });
    await installPluginLauncher(bin);
    const person = (...args: string[]) => kubectlAsPerson(rig!, bin, ...args);
    show(
      (await person("plugin", "list")).split("\n").filter((l) => l.includes("hotplug")).join(
        "\n",
      ),
    );
    t = Date.now();
    show(
      await person(
        "hotplug",
        "attach",
        POD,
        `${NAD}@${IFACE}`,
        "--ips",
        ADDRESS,
        "-n",
        NAMESPACE,
        "--wait",
      ),
    );
    console.log(`    ${green("attached")} in ${seconds(Date.now() - t)}, waited for by the plugin`);
    show(await person("hotplug", "networks", POD, "-n", NAMESPACE));
    t = Date.now();
    show(await person("hotplug", "detach", POD, IFACE, "-n", NAMESPACE, "--wait"));
    console.log(`    ${green("detached")} in ${seconds(Date.now() - t)}, waited for by the plugin`);

    step("Tear down");
    await rig.deletePod(pod);
    console.log(`    pod ${NAMESPACE}/${POD} deleted`);
    await teardown();
    console.log(
      `\n${green(bold("demo passed"))}: ${IFACE} hot-plugged and unplugged in a running pod`,
    );
  } catch (err) {
    const lines = controller?.lines.slice(-15) ?? [];
    console.error(
      `\n${red(bold("demo failed"))}: ${err instanceof Error ? err.message : String(err)}`,
    );
    if (lines.length > 0) {
      console.error(dim("last controller log lines:"));
      for (const line of lines) console.error(dim(`  ${line}`));
    }
    const dir = rig ? `/tmp/dnc-rig-logs/${rig.id}` : undefined;
    await teardown().catch((e) => console.error(`teardown failed too: ${e}`));
    if (dir) console.error(`rig logs: ${dir}`);
    throw new DemoFailure("see above");
  } finally {
    Deno.removeSignalListener("SIGINT", interrupt);
    Deno.removeSignalListener("SIGTERM", interrupt);
  }
}

if (import.meta.main) {
  console.log(bold("dynamic-networks-controller demo: hot-plug and unplug a pod interface"));
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) {
    console.error(
      red("the demo needs Linux and root (containerd, network namespaces, mounts): ") +
        "run it as root, e.g. sudo npx -y deno@2.9.6 task demo",
    );
    Deno.exit(1);
  }
  try {
    await demo();
    Deno.exit(0);
  } catch (err) {
    if (!(err instanceof DemoFailure)) console.error(err);
    Deno.exit(1);
  }
}
