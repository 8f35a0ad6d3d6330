/**
 * Proof that the node rig is made of real parts: a pod started through the CRI gets its
 * networks from the real multus, which writes the real network-status; multus' /delegate
 * adds and removes interfaces in the pod's netns; deleting the pod releases the netns and the
 * IPAM; stopping the rig leaves nothing behind, and a crashed run is cleaned by the next one.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  KubeApi,
  NETWORK_STATUS_ANNOTATION,
  Rig,
  RIG_BASE_DIR,
  RIG_CNI_VERSION,
  type RigPod,
  run,
  unixRequest,
} from "./mod.ts";

const isRoot = Deno.uid() === 0;
if (!isRoot) console.warn("tests/rig: skipped, the node rig needs root");

/** Test options shared by every rig test: gRPC and fetch keep handles between tests. */
const rigTest = { ignore: !isRoot, sanitizeResources: false, sanitizeOps: false };

let rig: Rig | undefined;
function theRig(): Rig {
  if (!rig) throw new Error("the rig did not start (see the first test's failure)");
  return rig;
}

interface NetworkStatusEntry {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  default?: boolean;
}

async function networkStatus(pod: RigPod): Promise<NetworkStatusEntry[]> {
  const obj = await theRig().api.request<{ metadata: { annotations?: Record<string, string> } }>(
    "GET",
    `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`,
  );
  const text = obj.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  assert.ok(text, `pod ${pod.namespace}/${pod.name} has no ${NETWORK_STATUS_ANNOTATION}`);
  return JSON.parse(text) as NetworkStatusEntry[];
}

function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

async function linkExists(name: string): Promise<boolean> {
  const res = await run(["ip", "link", "show", name], { allowFailure: true });
  return res.code === 0;
}

// A run "crashed" before this file: its owner is dead, it holds a process, a mount and a link.
const crashedId = `x${Math.floor(Math.random() * 0xfffff).toString(16).padStart(5, "0")}`;
const crashed = {
  dir: `${RIG_BASE_DIR}/${crashedId}`,
  link: `dr${crashedId}m`,
  sleeper: 0,
};

async function simulateCrashedRun(): Promise<void> {
  const dead = new Deno.Command("true").spawn();
  const deadPid = dead.pid;
  await dead.status;
  await Deno.mkdir(`${crashed.dir}/pids`, { recursive: true });
  await Deno.mkdir(`${crashed.dir}/mnt`, { recursive: true });
  await Deno.writeTextFile(`${crashed.dir}/owner.pid`, `${deadPid}\n`);
  // Like the rig's daemons, it names the run dir in its command line.
  const sleeper = new Deno.Command("setsid", {
    args: ["sh", "-c", "sleep 600; exit 0", crashed.dir],
    stdout: "null",
    stderr: "null",
  }).spawn();
  sleeper.unref();
  crashed.sleeper = sleeper.pid;
  await Deno.writeTextFile(`${crashed.dir}/pids/etcd.pid`, `${sleeper.pid}\n`);
  await run(["mount", "-t", "tmpfs", "dnc-rig-test", `${crashed.dir}/mnt`]);
  await run(["ip", "link", "add", crashed.link, "type", "veth", "peer", "name", `dr${crashedId}p`]);
  await Deno.writeTextFile(`${crashed.dir}/links`, `${crashed.link}\n`);
}

Deno.test({
  name: "rig: starts etcd, kube-apiserver, multus and containerd, after cleaning a crashed run",
  ...rigTest,
  async fn() {
    await simulateCrashedRun();
    rig = await Rig.start();

    // The crashed run is gone: process, mount, link and directory.
    assert.equal(pathExists(crashed.dir), false, "the crashed run's directory is left");
    assert.equal(pathExists(`/proc/${crashed.sleeper}/stat`), false, "its process still runs");
    assert.equal(await linkExists(crashed.link), false, "its link is left");
    const mounts = await Deno.readTextFile("/proc/self/mountinfo");
    assert.equal(mounts.includes(crashed.dir), false, "its mount is left");

    // The real API server, at the pinned version, with the CRD and our Node.
    const version = await rig.api.request<{ gitVersion: string }>("GET", "/version");
    assert.equal(version.gitVersion, rig.binaries.kubeVersion);
    const node = await rig.api.request<{
      metadata: { name: string };
      status: { conditions?: { type: string; status: string }[] };
    }>("GET", `/api/v1/nodes/${rig.nodeName}`);
    assert.equal(node.metadata.name, rig.nodeName);
    assert.equal(node.status.conditions?.find((c) => c.type === "Ready")?.status, "True");
    await rig.api.request("GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions");

    // multus answers on the rig's own socket, containerd on its CRI socket.
    const health = await unixRequest(rig.multusSocket, "GET", "/healthz");
    assert.equal(health.status, 200);
    const cri = await rig.cri.version();
    assert.equal(cri.runtime_name, "containerd");
    assert.match(await Deno.readTextFile(rig.logFile("multus")), /multus-daemon started/);

    // kubectl works with the admin kubeconfig.
    const nodes = await rig.kubectl("get", "nodes", "-o", "name");
    assert.equal(nodes.code, 0, nodes.stderr);
    assert.equal(nodes.stdout.trim(), `node/${rig.nodeName}`);
  },
});

Deno.test({
  name: "rig: a ServiceAccount kubeconfig authenticates by token and is limited by RBAC",
  ...rigTest,
  async fn() {
    const r = theRig();
    // "view" and friends are aggregated by kube-controller-manager, which the rig lacks.
    await r.api.createIfMissing("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "rig-test-pod-reader" },
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] }],
    });
    const path = await r.serviceAccountKubeconfig("reader", "default", "rig-test-pod-reader");
    const config = JSON.parse(await Deno.readTextFile(path));
    const token = config.users[0].user.token as string;
    const api = new KubeApi(r.apiServerUrl, {
      caCert: await Deno.readTextFile(r.caCertPath),
      token,
    });
    try {
      await api.request("GET", "/api/v1/namespaces/default/pods");
      await assert.rejects(
        api.request("POST", "/api/v1/namespaces/default/configmaps", {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "nope" },
        }),
        (err: Error & { status?: number }) => err.status === 403,
      );
    } finally {
      api.close();
    }
  },
});

let macvlanPod: RigPod | undefined;
const macvlanConfig = (name: string) => ({
  cniVersion: RIG_CNI_VERSION,
  name,
  plugins: [{
    type: "macvlan",
    capabilities: { ips: true },
    master: theRig().macvlanMaster,
    mode: "bridge",
    ipam: { type: "static" },
  }],
});

Deno.test({
  name: "rig: multus cold-plugs a macvlan NAD requested at pod creation and writes network-status",
  ...rigTest,
  async fn() {
    const r = theRig();
    await r.createNad("default", "mv-static", macvlanConfig("mv-static"));
    macvlanPod = await r.createPod({
      name: "cold",
      networks: [{ name: "mv-static", interface: "net1", ips: ["10.123.0.10/24"] }],
    });

    const links = await r.netnsInterfaces(macvlanPod);
    const net1 = links.find((l) => l.name === "net1");
    assert.ok(net1, `no net1 in the pod netns: ${JSON.stringify(links)}`);
    assert.deepEqual(net1.ipv4, ["10.123.0.10/24"]);
    const eth0 = links.find((l) => l.name === "eth0");
    assert.ok(eth0 && eth0.ipv4.length === 1, `no cluster-network eth0: ${JSON.stringify(links)}`);

    const status = await networkStatus(macvlanPod);
    const cluster = status.find((s) => s.default === true);
    assert.equal(cluster?.name, r.clusterNetworkName);
    assert.equal(cluster?.interface, "eth0");
    assert.deepEqual(cluster?.ips, [eth0.ipv4[0]!.split("/")[0]]);
    const secondary = status.find((s) => s.name === "default/mv-static");
    assert.ok(secondary, `no default/mv-static in network-status: ${JSON.stringify(status)}`);
    assert.equal(secondary.interface, "net1");
    assert.deepEqual(secondary.ips, ["10.123.0.10"]);
    assert.equal(secondary.mac, net1.mac);

    const pod = await r.api.request<{ status: { phase: string } }>(
      "GET",
      "/api/v1/namespaces/default/pods/cold",
    );
    assert.equal(pod.status.phase, "Running");
  },
});

Deno.test({
  name: "rig: multus /delegate adds an interface to the pod netns and removes it",
  ...rigTest,
  async fn() {
    const r = theRig();
    assert.ok(macvlanPod, "the cold-plug test did not create its pod");
    const pod = macvlanPod;
    const netns = await r.podNetns(pod);
    const request = (command: "ADD" | "DEL") => ({
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: pod.sandboxId,
        CNI_NETNS: netns,
        CNI_IFNAME: "net2",
        CNI_ARGS:
          `K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
      },
      config: Buffer.from(JSON.stringify(macvlanConfig("mv-static"))).toString("base64"),
      ...(command === "ADD" ? { interfaceAttributes: { ips: ["10.123.0.11/24"] } } : {}),
    });

    const add = await unixRequest(r.multusSocket, "POST", "/delegate", request("ADD"));
    assert.equal(add.status, 200, add.body);
    const result = JSON.parse(add.body) as { Result: { ips: { address: string }[] } };
    assert.deepEqual(result.Result.ips.map((ip) => ip.address), ["10.123.0.11/24"]);
    const net2 = (await r.netnsInterfaces(netns)).find((l) => l.name === "net2");
    assert.deepEqual(net2?.ipv4, ["10.123.0.11/24"]);

    const del = await unixRequest(r.multusSocket, "POST", "/delegate", request("DEL"));
    assert.equal(del.status, 200, del.body);
    const names = (await r.netnsInterfaces(netns)).map((l) => l.name);
    assert.equal(names.includes("net2"), false, `net2 is still there: ${names}`);
    assert.equal(names.includes("net1"), true, `net1 went away too: ${names}`);
  },
});

Deno.test({
  name: "rig: deleting a pod removes its netns and releases its host-local addresses",
  ...rigTest,
  async fn() {
    const r = theRig();
    await r.createNad("default", "br-ipam", {
      cniVersion: RIG_CNI_VERSION,
      name: "br-ipam",
      type: "bridge",
      bridge: r.ownLink("x"),
      ipam: {
        type: "host-local",
        dataDir: r.ipamDataDir,
        ranges: [[{ subnet: "10.124.0.0/24" }]],
      },
    });
    const pod = await r.createPod({ name: "ipam", networks: "br-ipam@net1" });
    const netns = await r.podNetns(pod);
    const status = await networkStatus(pod);
    const entry = status.find((s) => s.name === "default/br-ipam");
    assert.ok(entry?.ips?.[0], `no default/br-ipam address in ${JSON.stringify(status)}`);
    assert.deepEqual(await r.hostLocalFiles("br-ipam"), [entry.ips[0]]);
    const clusterIp = status.find((s) => s.default)?.ips?.[0];
    assert.ok(clusterIp);
    assert.ok((await r.hostLocalFiles(r.clusterNetworkName)).includes(clusterIp));
    assert.equal(pathExists(netns), true);

    await r.deletePod(pod);
    assert.equal(pathExists(netns), false, `netns ${netns} is left`);
    assert.deepEqual(await r.hostLocalFiles("br-ipam"), []);
    assert.equal((await r.hostLocalFiles(r.clusterNetworkName)).includes(clusterIp), false);
    const gone = await r.api.getOrUndefined(`/api/v1/namespaces/default/pods/ipam`);
    assert.equal(gone, undefined);
  },
});

Deno.test({
  name: "rig: a hostNetwork pod runs in the node's network namespace, without multus",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "host", hostNetwork: true });
    const obj = await r.api.request<{
      metadata: { annotations?: Record<string, string> };
      status: { phase: string };
    }>("GET", "/api/v1/namespaces/default/pods/host");
    assert.equal(obj.status.phase, "Running");
    assert.equal(obj.metadata.annotations?.[NETWORK_STATUS_ANNOTATION], undefined);
    await assert.rejects(r.podNetns(pod), /no network namespace path/);
    await r.deletePod(pod);
  },
});

Deno.test({
  name: "rig: restarts of multus, containerd and kube-apiserver keep the rig usable",
  ...rigTest,
  async fn() {
    const r = theRig();
    assert.ok(macvlanPod, "the cold-plug test did not create its pod");
    await r.restartMultus();
    await r.restartContainerd();
    await r.restartApiServer();
    await r.stopPart("multus");
    await assert.rejects(unixRequest(r.multusSocket, "GET", "/healthz", undefined, 2_000));
    await r.startPart("multus");
    await r.ready();
    // The running pod survived: its sandbox is ready and keeps its interfaces.
    const sandbox = await r.cri.podSandboxStatus(macvlanPod.sandboxId);
    assert.equal(sandbox.state, "SANDBOX_READY");
    const names = (await r.netnsInterfaces(macvlanPod)).map((l) => l.name);
    assert.ok(names.includes("net1") && names.includes("eth0"), `interfaces: ${names}`);
    // A pod started after the restarts still gets its network from multus.
    const pod = await r.createPod({ name: "after-restart" });
    const status = await networkStatus(pod);
    assert.equal(status.find((s) => s.default)?.interface, "eth0");
    await r.deletePod(pod);
  },
});

Deno.test({
  name: "rig: stop removes sandboxes, processes, mounts, links and the run directory",
  ...rigTest,
  async fn() {
    const r = theRig();
    const dir = r.dir;
    const master = r.macvlanMaster;
    const pids = [...Deno.readDirSync(`${dir}/pids`)].map((e) =>
      Number(Deno.readTextFileSync(`${dir}/pids/${e.name}`).trim())
    );
    assert.equal(pids.length, 4);
    await r.stop();
    rig = undefined;
    assert.equal(pathExists(dir), false, `${dir} is left`);
    assert.equal(await linkExists(master), false, `${master} is left`);
    for (const pid of pids) assert.equal(pathExists(`/proc/${pid}/stat`), false, `PID ${pid} runs`);
    const mounts = await Deno.readTextFile("/proc/self/mountinfo");
    assert.equal(mounts.includes(dir), false, `mounts under ${dir} are left`);
    const shims = await run(["pgrep", "-f", `${dir}/containerd`], { allowFailure: true });
    assert.equal(shims.stdout.trim(), "", "containerd shims are left");
  },
});

// If a test failed half-way, do not leave the rig running.
globalThis.addEventListener("unload", () => {
  if (rig) console.warn(`tests/rig: rig ${rig.dir} left running; the next Rig.start() cleans it`);
});
