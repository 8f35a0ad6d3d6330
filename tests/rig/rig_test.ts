/**
 * Proof that the node rig is made of real parts: the kubelet registers the Node and runs pods
 * created through the API, which get their networks from the real multus, which writes the
 * real network-status; kube-controller-manager makes ServiceAccounts and aggregates roles;
 * kube-scheduler binds pods; multus' /delegate adds and removes interfaces in the pod's netns;
 * the kubelet restarts a killed container, replaces a killed sandbox, keeps a pod Pending
 * while its init container waits, and tears a pod down on a graceful or a forced deletion
 * (netns and IPAM released); stopping the rig leaves nothing behind (processes, mounts,
 * links, cgroups, sysctls), and a crashed run is cleaned by the next one.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { cgroupHierarchies, createRigCgroup, rigCgroupName } from "./cgroups.ts";
import { holdHostState, HOST_STATE_DIR } from "./host_state.ts";
import {
  KubeApi,
  NETWORK_STATUS_ANNOTATION,
  Rig,
  RIG_BASE_DIR,
  RIG_CNI_VERSION,
  type RigPod,
  run,
  unixRequest,
  waitFor,
} from "./mod.ts";
import { rigTest } from "../support/rig_test.ts";

const isRoot = Deno.uid() === 0;
if (!isRoot) console.warn("tests/rig: skipped, the node rig needs root");

/** Test options shared by every rig test: gRPC and fetch keep handles between tests. */

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

// A run "crashed" before this file: its owner is dead; it holds a process, a mount, a link,
// a process in its own cgroups, and the host's saved sysctls, one of which its kubelet changed.
const crashedId = `x${Math.floor(Math.random() * 0xfffff).toString(16).padStart(5, "0")}`;
const crashed = {
  dir: `${RIG_BASE_DIR}/${crashedId}`,
  link: `dr${crashedId}m`,
  sleeper: 0,
  inCgroup: 0,
};
const PANIC_ON_OOPS = "/proc/sys/kernel/panic_on_oops";
/** The host's values as the rig saved them (read after the start, for the stop test). */
let hostSysctls: Record<string, string> = {};

function readSysctl(path: string): string {
  return Deno.readTextFileSync(`/proc/sys/${path}`).trim();
}

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
  // A pod process: known to no PID file, only to the run's cgroups.
  await createRigCgroup(crashedId);
  const pod = new Deno.Command("sleep", { args: ["600"], stdout: "null", stderr: "null" }).spawn();
  pod.unref();
  crashed.inCgroup = pod.pid;
  const pids = cgroupHierarchies().find((h) => h.endsWith("/pids")) ?? cgroupHierarchies()[0]!;
  await Deno.writeTextFile(`${pids}/${rigCgroupName(crashedId)}/cgroup.procs`, `${pod.pid}\n`);
  // Its kubelet changed a sysctl after the host's values were saved.
  await holdHostState(crashed.dir);
  const before = Deno.readTextFileSync(PANIC_ON_OOPS).trim();
  await Deno.writeTextFile(PANIC_ON_OOPS, before === "1" ? "0\n" : "1\n");
}

Deno.test({
  name:
    "rig: starts etcd, the control plane, multus, the runtime and the kubelet, after cleaning a crashed run",
  ...rigTest,
  async fn() {
    await simulateCrashedRun();
    rig = await Rig.start();

    // The crashed run is gone: processes, cgroups, mount, link and directory.
    assert.equal(pathExists(crashed.dir), false, "the crashed run's directory is left");
    assert.equal(pathExists(`/proc/${crashed.sleeper}/stat`), false, "its process still runs");
    assert.equal(pathExists(`/proc/${crashed.inCgroup}/stat`), false, "its pod process runs");
    for (const h of cgroupHierarchies()) {
      assert.equal(pathExists(`${h}/${rigCgroupName(crashedId)}`), false, `its cgroup in ${h}`);
    }
    assert.equal(await linkExists(crashed.link), false, "its link is left");
    const mounts = await Deno.readTextFile("/proc/self/mountinfo");
    assert.equal(mounts.includes(crashed.dir), false, "its mount is left");
    // Its sysctl was put back before this rig saved the host's values again.
    const saved = JSON.parse(await Deno.readTextFile(`${HOST_STATE_DIR}/saved.json`)) as {
      sysctls: Record<string, string>;
    };
    hostSysctls = saved.sysctls;
    assert.notEqual(hostSysctls["kernel/panic_on_oops"], undefined);

    // The real API server, at the pinned version, with the CRD.
    const version = await rig.api.request<{ gitVersion: string }>("GET", "/version");
    assert.equal(version.gitVersion, rig.binaries.kubeVersion);
    await rig.api.request("GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions");

    // The kubelet registered the Node, Ready, at the node IP on the rig's own bridge.
    const node = await rig.api.request<{
      metadata: { name: string };
      status: {
        conditions?: { type: string; status: string }[];
        addresses?: { type: string; address: string }[];
        nodeInfo?: { kubeletVersion: string; containerRuntimeVersion: string };
      };
    }>("GET", `/api/v1/nodes/${rig.nodeName}`);
    assert.equal(node.metadata.name, rig.nodeName);
    assert.equal(node.status.conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.equal(node.status.nodeInfo?.kubeletVersion, rig.binaries.kubeVersion);
    assert.match(
      node.status.nodeInfo?.containerRuntimeVersion ?? "",
      rig.runtime === "crio"
        ? new RegExp(`^cri-o://${rig.binaries.crioVersion.slice(1)}$`)
        : /^containerd:/,
    );
    assert.deepEqual(node.status.addresses, [
      { type: "InternalIP", address: rig.nodeIp },
      { type: "Hostname", address: rig.nodeName },
    ]);
    const onBridge = await run(["ip", "-j", "addr", "show", "dev", rig.clusterBridge]);
    assert.ok(onBridge.stdout.includes(`"local":"${rig.nodeIp}"`), onBridge.stdout);
    // Its pods go under the rig's own cgroup root.
    const memory = cgroupHierarchies().find((h) => h.endsWith("/memory"));
    if (memory) assert.ok(pathExists(`${memory}${rig.cgroupRoot}/kubepods`), "no kubepods cgroup");

    // kube-controller-manager: namespaces get their ServiceAccount and CA bundle, and the
    // aggregated ClusterRoles are filled.
    await waitFor(
      "the kube-root-ca.crt ConfigMap in default",
      () => rig!.api.getOrUndefined("/api/v1/namespaces/default/configmaps/kube-root-ca.crt"),
    );
    await rig.api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default");
    const view = await waitFor("the aggregated view ClusterRole to have rules", async () => {
      const role = await rig!.api.request<{ rules?: unknown[] }>(
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
      );
      return (role.rules?.length ?? 0) > 0 ? role : undefined;
    });
    assert.ok(view.rules!.length > 0);

    // multus answers on the rig's own socket, the runtime on its CRI socket.
    const health = await unixRequest(rig.multusSocket, "GET", "/healthz");
    assert.equal(health.status, 200);
    const cri = await rig.cri.version();
    assert.equal(cri.runtime_name, rig.runtime === "crio" ? "cri-o" : "containerd");
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
    // A role of the test's own, so that what is refused does not depend on the bootstrap roles.
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

interface PodStatusView {
  spec: { nodeName?: string };
  status: {
    phase: string;
    podIP?: string;
    containerStatuses?: { name: string; restartCount: number; containerID?: string }[];
  };
}

async function podObject(pod: { name: string; namespace: string }): Promise<PodStatusView> {
  return await theRig().api.request<PodStatusView>(
    "GET",
    `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`,
  );
}

Deno.test({
  name: "rig: the kubelet restarts a killed container in the same sandbox",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "crashy" });
    const before = await podObject(pod);
    const interfaces = await r.netnsInterfaces(pod);
    await r.restartContainer(pod);
    const after = await podObject(pod);
    assert.equal(after.status.containerStatuses?.[0]?.restartCount, 1);
    assert.notEqual(
      after.status.containerStatuses?.[0]?.containerID,
      before.status.containerStatuses?.[0]?.containerID,
    );
    // The sandbox, its netns and its address are the same: nothing was plugged again.
    assert.equal((await r.refreshPod(pod)).sandboxId, pod.sandboxId);
    assert.deepEqual(await r.netnsInterfaces(pod), interfaces);
    assert.equal(after.status.podIP, before.status.podIP);
    await r.deletePod(pod);
  },
});

Deno.test({
  name:
    "rig: a killed sandbox is replaced by the kubelet; multus plugs the new one and releases the old one's address",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({
      name: "phoenix",
      networks: [{ name: "mv-static", interface: "net1", ips: ["10.123.0.20/24"] }],
    });
    const oldNetns = await r.podNetns(pod);
    const oldIp = (await networkStatus(pod)).find((s) => s.default)?.ips?.[0];
    assert.ok(oldIp);
    const renewed = await r.killSandbox(pod);
    assert.notEqual(renewed.sandboxId, pod.sandboxId);
    const old = (await r.cri.listPodSandbox({ "io.kubernetes.pod.uid": pod.uid }))
      .find((s) => s.id === pod.sandboxId);
    if (old) assert.equal(old.state, "SANDBOX_NOTREADY");
    const newNetns = await r.podNetns(renewed);
    assert.notEqual(newNetns, oldNetns);
    // The annotation's network is in the new sandbox, and network-status says so.
    const net1 = (await r.netnsInterfaces(renewed)).find((l) => l.name === "net1");
    assert.deepEqual(net1?.ipv4, ["10.123.0.20/24"]);
    const status = await networkStatus(renewed);
    const clusterIp = status.find((s) => s.default)?.ips?.[0];
    assert.ok(clusterIp);
    assert.equal((await podObject(pod)).status.podIP, clusterIp);
    // The kubelet stopped the old sandbox through the CNI: its address is free again.
    const held = await r.hostLocalFiles(r.clusterNetworkName);
    assert.ok(held.includes(clusterIp), `${clusterIp} not held: ${held}`);
    if (clusterIp !== oldIp) assert.ok(!held.includes(oldIp), `${oldIp} still held: ${held}`);
    await r.deletePod(renewed);
  },
});

Deno.test({
  name: "rig: a pending pod has its sandbox and network-status, and runs once released",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "held", pending: true });
    assert.equal((await podObject(pod)).status.phase, "Pending");
    assert.ok((await networkStatus(pod)).some((s) => s.default), "no cluster network entry");
    assert.ok((await r.netnsInterfaces(pod)).some((l) => l.name === "eth0"));
    await r.releasePending(pod);
    assert.equal((await podObject(pod)).status.phase, "Running");
    assert.equal((await r.refreshPod(pod)).sandboxId, pod.sandboxId);
    await r.deletePod(pod);
  },
});

Deno.test({
  name:
    "rig: a forced deletion removes the object at once; the kubelet then tears the sandbox down",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "forced" });
    const netns = await r.podNetns(pod);
    const ip = (await networkStatus(pod)).find((s) => s.default)?.ips?.[0];
    assert.ok(ip);
    await r.forceDeletePod(pod);
    assert.equal(await r.api.getOrUndefined("/api/v1/namespaces/default/pods/forced"), undefined);
    assert.equal(pathExists(netns), false, `netns ${netns} is left`);
    assert.equal((await r.hostLocalFiles(r.clusterNetworkName)).includes(ip), false);
  },
});

Deno.test({
  name: "rig: kube-scheduler binds a pod without a node; kubectl exec and logs reach it",
  ...rigTest,
  async fn() {
    const r = theRig();
    await r.api.request("POST", "/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "scheduled" },
      spec: {
        dnsPolicy: "Default",
        terminationGracePeriodSeconds: 5,
        containers: [{
          name: "app",
          image: r.binaries.podImage,
          imagePullPolicy: "Never",
          command: [
            "/bin/sh",
            "-c",
            "echo hello from the pod; trap 'exit 0' TERM; sleep infinity & wait",
          ],
        }],
      },
    });
    const ref = { name: "scheduled", namespace: "default" };
    const running = await waitFor("the scheduled pod to run", async () => {
      const p = await podObject(ref);
      return p.status.phase === "Running" ? p : undefined;
    }, 60_000);
    assert.equal(running.spec.nodeName, r.nodeName);
    const exec = await r.kubectl(
      "exec",
      "scheduled",
      "--",
      "ip",
      "-o",
      "-4",
      "addr",
      "show",
      "eth0",
    );
    assert.equal(exec.code, 0, exec.stderr);
    assert.match(exec.stdout, new RegExp(`inet ${running.status.podIP!.replaceAll(".", "\\.")}/`));
    const logs = await waitFor("the pod's log", async () => {
      const res = await r.kubectl("logs", "scheduled");
      return res.code === 0 && res.stdout.includes("hello") ? res.stdout : undefined;
    });
    assert.match(logs, /hello from the pod/);
    const uid = (await r.api.request<{ metadata: { uid: string } }>(
      "GET",
      "/api/v1/namespaces/default/pods/scheduled",
    )).metadata.uid;
    await r.deletePod({ ...ref, uid, sandboxId: "", hostNetwork: false });
  },
});

Deno.test({
  name:
    "rig: restarts of multus, the runtime, kube-apiserver, the controllers and the kubelet keep the rig usable",
  ...rigTest,
  async fn() {
    const r = theRig();
    assert.ok(macvlanPod, "the cold-plug test did not create its pod");
    await r.restartMultus();
    await r.restartRuntime();
    await r.restartApiServer();
    await r.restartKubelet();
    for (const part of ["kube-controller-manager", "kube-scheduler", "multus"] as const) {
      await r.stopPart(part);
      await r.startPart(part);
    }
    await r.stopPart("multus");
    await assert.rejects(unixRequest(r.multusSocket, "GET", "/healthz", undefined, 2_000));
    await r.startPart("multus");
    await r.ready();
    // The running pod survived, in the same sandbox, which keeps its interfaces.
    assert.equal((await r.refreshPod(macvlanPod)).sandboxId, macvlanPod.sandboxId);
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
  name: "rig: a second rig runs beside the first; stopping it leaves the first's node and sysctls",
  ...rigTest,
  async fn() {
    const r = theRig();
    const other = await Rig.start();
    try {
      assert.notEqual(other.cgroupRoot, r.cgroupRoot);
      assert.notEqual(other.nodeIp, r.nodeIp);
      const [mine, theirs] = await Promise.all([
        r.createPod({ name: "beside" }),
        other.createPod({ name: "beside" }),
      ]);
      const memory = cgroupHierarchies().find((h) => h.endsWith("/memory"));
      if (memory) {
        const placed: [Rig, RigPod][] = [[r, mine], [other, theirs]];
        for (const [owner, pod] of placed) {
          const qos: string = `${memory}${owner.cgroupRoot}/kubepods/besteffort/pod${pod.uid}`;
          assert.ok(pathExists(qos), `no ${qos}`);
        }
      }
      await other.stop();
      // The first rig's kubelet still holds the host's sysctls as it set them, and still works.
      assert.equal(readSysctl("vm/overcommit_memory"), "1");
      assert.ok(pathExists(`${HOST_STATE_DIR}/saved.json`), "the saved host values went");
      await r.deletePod(mine);
      await r.deletePod(await r.createPod({ name: "after-other" }));
    } finally {
      await other.stop();
    }
  },
});

Deno.test({
  name:
    "rig: stop removes sandboxes, processes, mounts, cgroups, links and the run directory, and restores the sysctls",
  ...rigTest,
  async fn() {
    const r = theRig();
    // A pod left running, with a ServiceAccount token volume (a tmpfs under the kubelet's root).
    await r.createPod({ name: "left-running" });
    const dir = r.dir;
    const master = r.macvlanMaster;
    const bridge = r.clusterBridge;
    const pids = [...Deno.readDirSync(`${dir}/pids`)].map((e) =>
      Number(Deno.readTextFileSync(`${dir}/pids/${e.name}`).trim())
    );
    assert.equal(pids.length, 7);
    const mountsBefore = await Deno.readTextFile("/proc/self/mountinfo");
    assert.ok(mountsBefore.includes(`${r.kubeletRootDir}/pods/`), "no volume mount to clean up");
    // The kubelet set these (the test's start saw the host's own values saved).
    assert.equal(readSysctl("vm/overcommit_memory"), "1");
    await r.stop();
    rig = undefined;
    assert.equal(pathExists(dir), false, `${dir} is left`);
    assert.equal(await linkExists(master), false, `${master} is left`);
    assert.equal(await linkExists(bridge), false, `${bridge} is left`);
    for (const pid of pids) assert.equal(pathExists(`/proc/${pid}/stat`), false, `PID ${pid} runs`);
    const mounts = await Deno.readTextFile("/proc/self/mountinfo");
    assert.equal(mounts.includes(dir), false, `mounts under ${dir} are left`);
    const shims = await run(["pgrep", "-f", `${dir}/containerd`], { allowFailure: true });
    assert.equal(shims.stdout.trim(), "", "containerd shims are left");
    for (const h of cgroupHierarchies()) {
      assert.equal(pathExists(`${h}/${rigCgroupName(r.id)}`), false, `cgroup left in ${h}`);
    }
    // No other rig holds the saved values (this file runs alone): they are back.
    if (!pathExists(`${HOST_STATE_DIR}/saved.json`)) {
      for (const [path, value] of Object.entries(hostSysctls)) {
        assert.equal(readSysctl(path), value, `sysctl ${path}`);
      }
    }
    try {
      for (const link of Deno.readDirSync("/var/log/containers")) {
        const target = Deno.readLinkSync(`/var/log/containers/${link.name}`);
        assert.ok(!target.startsWith(`${dir}/`), `log link ${link.name} into the run is left`);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  },
});

// If a test failed half-way, do not leave the rig running.
globalThis.addEventListener("unload", () => {
  if (rig) console.warn(`tests/rig: rig ${rig.dir} left running; the next Rig.start() cleans it`);
});
