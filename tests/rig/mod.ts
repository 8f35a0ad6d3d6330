/**
 * The node rig: a one-node Kubernetes made of real parts, for tests, benchmarks and the demo.
 *
 * - etcd (Debian) and a kube-apiserver built from the Go module proxy, with a throw-away CA,
 *   client-certificate and ServiceAccount-token authentication, RBAC, and the
 *   NetworkAttachmentDefinition CRD;
 * - containerd + runc (Debian) with the CRI plugin, whose CNI is `multus-shim`;
 * - the multus thick daemon, reading in-cluster credentials inside a private mount namespace,
 *   with a cluster network of bridge + host-local and the Debian CNI plugins;
 * - a veth pair owned by the run, usable as a macvlan master;
 * - the kubelet's part as helpers: {@linkcode Rig.createPod} creates the Pod, runs its sandbox
 *   through the CRI (so multus cold-plugs its networks and writes `network-status`) and marks it
 *   Running; {@linkcode Rig.deletePod} undoes that in the kubelet's order.
 *
 * Everything listens on loopback or on unix sockets in a private run directory
 * (`/tmp/dnc-rig/<id>`), so two rigs, or a rig and the host's own services, do not collide.
 * A rig left behind by a crashed test process is cleaned up by the next {@linkcode Rig.start}.
 *
 * Needs root. Run `bash tests/rig/setup.sh` once (the rig runs it too; a warm run takes seconds).
 *
 * ```ts
 * const rig = await Rig.start();
 * await rig.createNad("default", "mv", {
 *   cniVersion: "0.3.1", name: "mv", type: "macvlan", master: rig.macvlanMaster,
 *   capabilities: { ips: true }, ipam: { type: "static" },
 * });
 * const pod = await rig.createPod({ name: "p1", networks: '[{"name":"mv","ips":["10.10.0.5/24"]}]' });
 * console.log(await rig.netnsInterfaces(pod));
 * await rig.deletePod(pod);
 * await rig.stop();
 * ```
 *
 * @module
 */

import { ApiError, KubeApi } from "./kube_api.ts";
import { CriClient, netnsPathFromInfo, type SandboxConfig } from "./cri_client.ts";
import { Daemon, waitFor } from "./daemon.ts";
import { run, type RunResult } from "./exec.ts";
import { containerdConfig, kubeconfigJson, NAD_CRD_NAME, nadCrd } from "./manifests.ts";
import { createPki, type Pki } from "./pki.ts";
import { freePort } from "./ports.ts";
import { unixRequest } from "./unix_http.ts";
import {
  cleanDeadRuns,
  keepLogs,
  pathExists,
  removeSandboxes,
  RIG_BASE_DIR,
  teardownRunDir,
} from "./run_dir.ts";

/** The annotation a user edits to request networks. */
export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";
/** The annotation multus (and the controller) write. */
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";
/**
 * The rig's multus cniVersion. multus merges its daemon config into every `/delegate` request's
 * CNI config, so this version replaces the NAD's own there.
 */
export const RIG_CNI_VERSION = "0.3.1";

const RIG_DIR = new URL(".", import.meta.url).pathname;

/** Binaries and images set up by `tests/rig/setup.sh` (its `paths.json`). */
export interface RigBinaries {
  etcd: string;
  containerd: string;
  ctr: string;
  kubeApiserver: string;
  kubectl: string;
  multusDaemon: string;
  multusShim: string;
  cniBinDir: string;
  pauseImageTar: string;
  pauseImage: string;
  kubeVersion: string;
  multusVersion: string;
}

/** Options of {@linkcode Rig.start}. */
export interface RigOptions {
  /** Run `tests/rig/setup.sh` first (default true; a warm run takes seconds). */
  setup?: boolean;
  /** Cache directory of the set-up (default `$DNC_RIG_CACHE` or `/var/cache/dnc-rig`). */
  cacheDir?: string;
}

/** A network request in the JSON form of the networks annotation. */
export interface NetworkSelection {
  name: string;
  namespace?: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  "cni-args"?: Record<string, unknown>;
}

/** Options of {@linkcode Rig.createPod}. */
export interface CreatePodOptions {
  name: string;
  /** Default `default`. */
  namespace?: string;
  /** The networks annotation: a string as written by users, or a list (JSON-encoded). */
  networks?: string | NetworkSelection[];
  /** Run in the host's network namespace: no CNI, no multus. */
  hostNetwork?: boolean;
  /** More annotations. */
  annotations?: Record<string, string>;
  /** Labels. */
  labels?: Record<string, string>;
}

/** A pod the rig runs. */
export interface RigPod {
  name: string;
  namespace: string;
  uid: string;
  /** The CRI sandbox ID (multus' and the controller's `CNI_CONTAINERID`). */
  sandboxId: string;
  hostNetwork: boolean;
}

/** One link inside a network namespace, from `ip -j addr`. */
export interface NetnsInterface {
  name: string;
  mac: string;
  /** `address/prefix` */
  ipv4: string[];
  /** `address/prefix`, link-local included */
  ipv6: string[];
}

/** The rig's long-running parts. */
export type RigPart = "etcd" | "kube-apiserver" | "containerd" | "multus";

/** Names of pods and objects, as `{name, namespace}`. */
export interface PodRef {
  name: string;
  namespace?: string;
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** Reads the set-up's `paths.json`, running `setup.sh` first when asked. */
async function binaries(options: RigOptions): Promise<RigBinaries> {
  const cacheDir = options.cacheDir ?? Deno.env.get("DNC_RIG_CACHE") ?? "/var/cache/dnc-rig";
  if (options.setup ?? true) {
    await run(["bash", `${RIG_DIR}setup.sh`], {
      env: { DNC_RIG_CACHE: cacheDir },
      timeoutMs: 90 * 60_000,
    });
  }
  const path = `${cacheDir}/paths.json`;
  try {
    return JSON.parse(await Deno.readTextFile(path)) as RigBinaries;
  } catch (err) {
    throw new Error(`cannot read ${path}; run "bash tests/rig/setup.sh" as root first`, {
      cause: err,
    });
  }
}

/** A running node rig. Create with {@linkcode Rig.start}, end with {@linkcode Rig.stop}. */
export class Rig {
  /** Admin API client (client certificate in `system:masters`). */
  readonly api: KubeApi;
  /** The rig's kubelet-side CRI client. */
  readonly cri: CriClient;

  readonly #bins: RigBinaries;
  readonly #pki: Pki;
  readonly #apiPort: number;
  readonly #daemons: { etcd: Daemon; apiserver: Daemon; containerd: Daemon; multus: Daemon };
  #stopped = false;

  private constructor(
    /** Short random ID of this run. */
    readonly id: string,
    /** The run directory. */
    readonly dir: string,
    bins: RigBinaries,
    pki: Pki,
    ports: { etcdClient: number; etcdPeer: number; api: number },
  ) {
    this.#bins = bins;
    this.#pki = pki;
    this.#apiPort = ports.api;
    const logs = `${dir}/logs`;
    const pids = `${dir}/pids`;
    const etcdUrl = `http://127.0.0.1:${ports.etcdClient}`;
    const peerUrl = `http://127.0.0.1:${ports.etcdPeer}`;
    this.#daemons = {
      etcd: new Daemon({
        name: "etcd",
        command: [
          bins.etcd,
          "--name=rig",
          `--data-dir=${dir}/etcd`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=rig=${peerUrl}`,
          "--logger=zap",
        ],
        logFile: `${logs}/etcd.log`,
        pidFile: `${pids}/etcd.pid`,
      }),
      apiserver: new Daemon({
        name: "kube-apiserver",
        command: [
          bins.kubeApiserver,
          `--etcd-servers=${etcdUrl}`,
          "--bind-address=127.0.0.1",
          "--advertise-address=127.0.0.1",
          `--secure-port=${ports.api}`,
          `--cert-dir=${dir}/apiserver`,
          `--tls-cert-file=${pki.serverCert}`,
          `--tls-private-key-file=${pki.serverKey}`,
          `--client-ca-file=${pki.caCert}`,
          `--service-account-key-file=${pki.serviceAccountPub}`,
          `--service-account-signing-key-file=${pki.serviceAccountKey}`,
          "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
          "--authorization-mode=Node,RBAC",
          "--service-cluster-ip-range=10.96.0.0/24",
          // No controller-manager creates "default" ServiceAccounts, so pods go without.
          "--disable-admission-plugins=ServiceAccount",
          "--allow-privileged=true",
          "--endpoint-reconciler-type=none",
          "--profiling=false",
        ],
        logFile: `${logs}/kube-apiserver.log`,
        pidFile: `${pids}/kube-apiserver.pid`,
        // It stops listening at once but lingers for many seconds afterwards.
        graceMs: 2_000,
      }),
      containerd: new Daemon({
        name: "containerd",
        command: [bins.containerd, "--config", `${dir}/containerd/config.toml`],
        logFile: `${logs}/containerd.log`,
        pidFile: `${pids}/containerd.pid`,
      }),
      multus: new Daemon({
        name: "multus-daemon",
        // A private mount namespace (slave: later netns mounts still arrive) whose /run is a
        // tmpfs holding the in-cluster ServiceAccount files multus insists on.
        command: [
          "unshare",
          "--mount",
          "--propagation",
          "slave",
          "sh",
          "-c",
          [
            "set -e",
            "mount -t tmpfs -o size=4m,mode=0755 dnc-rig-multus /run",
            "mkdir -p /run/secrets/kubernetes.io/serviceaccount",
            'cp "$RIG_SA_DIR"/token "$RIG_SA_DIR"/ca.crt "$RIG_SA_DIR"/namespace /run/secrets/kubernetes.io/serviceaccount/',
            'exec "$0" "$@"',
          ].join("\n"),
          bins.multusDaemon,
          "-config",
          `${dir}/multus/daemon-config.json`,
        ],
        env: {
          RIG_SA_DIR: `${dir}/multus/serviceaccount`,
          KUBERNETES_SERVICE_HOST: "127.0.0.1",
          KUBERNETES_SERVICE_PORT: `${ports.api}`,
          MULTUS_NODE_NAME: `rig-${id}`,
        },
        logFile: `${logs}/multus.log`,
        pidFile: `${pids}/multus.pid`,
      }),
    };
    this.api = new KubeApi(this.apiServerUrl, {
      caCert: Deno.readTextFileSync(pki.caCert),
      cert: Deno.readTextFileSync(pki.adminCert),
      key: Deno.readTextFileSync(pki.adminKey),
    });
    this.cri = new CriClient(this.criSocket);
  }

  /**
   * Starts a rig: cleans up runs of dead test processes, then etcd, kube-apiserver (+ CRD,
   * Node, multus' ServiceAccount), the macvlan master veth, multus and containerd.
   * Throws (after undoing what it started) if a part does not come up.
   */
  static async start(options: RigOptions = {}): Promise<Rig> {
    if (!isRoot()) {
      throw new Error(
        "the node rig needs root (containerd, network namespaces, mounts); run as root",
      );
    }
    const bins = await binaries(options);
    await cleanDeadRuns();
    const id = randomId();
    const dir = `${RIG_BASE_DIR}/${id}`;
    for (const sub of ["logs", "pids", "pki", "apiserver", "kubeconfig", "pods"]) {
      await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
    }
    await Deno.writeTextFile(`${dir}/owner.pid`, `${Deno.pid}\n`);
    let rig: Rig | undefined;
    try {
      // The run dir becomes a shared mount, so that netns mounts containerd makes under it
      // later also appear in multus' private mount namespace.
      await run(["mount", "--bind", dir, dir]);
      await run(["mount", "--make-shared", dir]);
      const pki = await createPki(`${dir}/pki`);
      const ports = { etcdClient: freePort(), etcdPeer: freePort(), api: freePort() };
      rig = new Rig(id, dir, bins, pki, ports);
      await rig.#boot();
      return rig;
    } catch (err) {
      if (rig) await rig.stop().catch(() => undefined);
      else await teardownRunDir(dir);
      throw err;
    }
  }

  // ------------------------------------------------------------------ getters

  /** The Node this rig plays the kubelet of. */
  get nodeName(): string {
    return `rig-${this.id}`;
  }

  /** `https://127.0.0.1:<port>` */
  get apiServerUrl(): string {
    return `https://127.0.0.1:${this.#apiPort}`;
  }

  /** The admin kubeconfig (client certificate, `system:masters`). */
  get kubeconfig(): string {
    return `${this.dir}/kubeconfig/admin.json`;
  }

  /** PEM file of the cluster CA. */
  get caCertPath(): string {
    return this.#pki.caCert;
  }

  /** containerd's CRI socket. */
  get criSocket(): string {
    return `${this.dir}/containerd/containerd.sock`;
  }

  /** The multus daemon's socket dir. */
  get multusSocketDir(): string {
    return `${this.dir}/multus/run`;
  }

  /** The multus daemon's socket (`POST /delegate`, `GET /healthz`). */
  get multusSocket(): string {
    return `${this.multusSocketDir}/multus.sock`;
  }

  /** A veth owned by this run, to use as `master` of macvlan NADs. */
  get macvlanMaster(): string {
    return `dr${this.id}m`;
  }

  /** host-local IPAM for `subnet`, in this run's private data directory. */
  hostLocalIpam(subnet: string): Record<string, unknown> {
    return { type: "host-local", dataDir: this.ipamDataDir, ranges: [[{ subnet }]] };
  }

  /**
   * A NAD config for a macvlan interface on {@linkcode Rig.macvlanMaster} (bridge mode) with
   * host-local IPAM for `subnet`. `name` is the CNI network name, which also names
   * host-local's directory (left out, multus injects the NAD's name); `type` replaces the
   * plugin with a stand-in that takes macvlan's configuration.
   */
  macvlanConfig(
    subnet: string,
    options: { name?: string; type?: string } = {},
  ): Record<string, unknown> {
    return {
      cniVersion: "0.3.1",
      ...(options.name ? { name: options.name } : {}),
      type: options.type ?? "macvlan",
      master: this.macvlanMaster,
      mode: "bridge",
      ipam: this.hostLocalIpam(subnet),
    };
  }

  /** The peer of {@linkcode Rig.macvlanMaster}. */
  get macvlanPeer(): string {
    return `dr${this.id}p`;
  }

  /** Name of the cluster (default) network in `network-status`. */
  get clusterNetworkName(): string {
    return "rig-cluster";
  }

  /** A host-local `dataDir` private to this run; NADs should use it (see hostLocalFiles). */
  get ipamDataDir(): string {
    return `${this.dir}/cni/ipam`;
  }

  /**
   * The agent's state directory (its attachment journal) on this node: agents started
   * one after another on the rig share it, as DaemonSet pods on a node share their hostPath.
   */
  get agentStateDir(): string {
    return `${this.dir}/agent-state`;
  }

  /** The CNI plugin directory containerd and multus use (Debian plugins + multus-shim). */
  get cniBinDir(): string {
    return `${this.dir}/cni/bin`;
  }

  /**
   * A link name unique to this run (`dr<id><suffix>`, at most 15 characters), recorded so that
   * stop() (or the cleanup after a crash) deletes the link, e.g. a bridge a NAD creates.
   */
  ownLink(suffix: string): string {
    const name = `dr${this.id}${suffix}`;
    if (name.length > 15 || !/^[a-z0-9]+$/.test(suffix)) {
      throw new Error(
        `link suffix "${suffix}" gives "${name}"; use 1 to 7 lowercase letters or digits`,
      );
    }
    Deno.writeTextFileSync(`${this.dir}/links`, `${name}\n`, { append: true });
    return name;
  }

  /** Binaries and versions in use. */
  get binaries(): RigBinaries {
    return this.#bins;
  }

  /** Log file of a part: `etcd`, `kube-apiserver`, `containerd` or `multus`. */
  logFile(part: RigPart): string {
    return `${this.dir}/logs/${part}.log`;
  }

  // ------------------------------------------------------------------ boot

  async #boot(): Promise<void> {
    const { etcd, apiserver, multus, containerd } = this.#daemons;
    etcd.start();
    await this.#waitEtcd();
    apiserver.start();
    await this.#waitApiServer();
    await this.#writeAdminKubeconfig();
    await this.#installNadCrd();
    await this.#createNode();
    await this.#prepareMultusCredentials();
    await this.#createLinks();
    await this.#writeCniConfig();
    multus.start();
    await this.#waitMultus();
    await this.#writeContainerdConfig();
    containerd.start();
    await this.#waitContainerd();
    await run([
      this.#bins.ctr,
      "--address",
      this.criSocket,
      "-n",
      "k8s.io",
      "images",
      "import",
      "--snapshotter",
      "overlayfs",
      this.#bins.pauseImageTar,
    ]);
  }

  async #waitEtcd(): Promise<void> {
    const etcd = this.#daemons.etcd;
    const url = etcd.spec.command.find((a) => a.startsWith("--advertise-client-urls="))!
      .split("=")[1];
    await waitFor("etcd /health", async () => {
      etcd.assertAlive();
      const res = await fetch(`${url}/health`);
      const body = await res.json() as { health?: string };
      return body.health === "true";
    }, 30_000);
  }

  async #waitApiServer(): Promise<void> {
    const apiserver = this.#daemons.apiserver;
    await waitFor(
      "kube-apiserver /readyz",
      async () => {
        apiserver.assertAlive();
        const res = await this.api.request<string>("GET", "/readyz").catch((err) => {
          if (err instanceof SyntaxError) return "ok";
          throw err;
        });
        return res !== undefined;
      },
      120_000,
      200,
    );
  }

  async #writeAdminKubeconfig(): Promise<void> {
    await Deno.writeTextFile(
      this.kubeconfig,
      kubeconfigJson("rig-admin", this.apiServerUrl, Deno.readTextFileSync(this.#pki.caCert), {
        "client-certificate-data": btoa(Deno.readTextFileSync(this.#pki.adminCert)),
        "client-key-data": btoa(Deno.readTextFileSync(this.#pki.adminKey)),
      }),
    );
  }

  async #installNadCrd(): Promise<void> {
    await this.api.createIfMissing(
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      nadCrd(),
    );
    await waitFor("the NetworkAttachmentDefinition CRD to be established", async () => {
      const crd = await this.api.request<{
        status?: { conditions?: { type: string; status: string }[] };
      }>("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${NAD_CRD_NAME}`);
      return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    }, 60_000);
    await waitFor("the NetworkAttachmentDefinition API to be served", async () => {
      await this.api.request("GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions");
      return true;
    }, 60_000);
  }

  async #createNode(): Promise<void> {
    await this.api.createIfMissing("/api/v1/nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: this.nodeName,
        labels: { "kubernetes.io/hostname": this.nodeName, "kubernetes.io/os": "linux" },
      },
    });
    // What a kubelet reports: the node is Ready, on loopback.
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    await this.api.request(
      "PATCH",
      `/api/v1/nodes/${this.nodeName}/status`,
      {
        status: {
          conditions: [{
            type: "Ready",
            status: "True",
            reason: "KubeletReady",
            message: "the node rig plays the kubelet",
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          }],
          addresses: [
            { type: "InternalIP", address: "127.0.0.1" },
            { type: "Hostname", address: this.nodeName },
          ],
        },
      },
      { contentType: "application/merge-patch+json" },
    );
  }

  async #prepareMultusCredentials(): Promise<void> {
    const token = await this.#serviceAccountToken("multus", "kube-system", "cluster-admin");
    const dir = `${this.dir}/multus/serviceaccount`;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/token`, token);
    await Deno.copyFile(this.#pki.caCert, `${dir}/ca.crt`);
    await Deno.writeTextFile(`${dir}/namespace`, "kube-system");
  }

  async #createLinks(): Promise<void> {
    const bridge = `dr${this.id}b`;
    // Recorded before creating, so a crash in between still gets them deleted.
    await Deno.writeTextFile(`${this.dir}/links`, `${this.macvlanMaster}\n${bridge}\n`);
    await run([
      "ip",
      "link",
      "add",
      this.macvlanMaster,
      "type",
      "veth",
      "peer",
      "name",
      this.macvlanPeer,
    ]);
    await run(["ip", "link", "set", this.macvlanMaster, "up"]);
    await run(["ip", "link", "set", this.macvlanPeer, "up"]);
  }

  async #writeCniConfig(): Promise<void> {
    const d = this.dir;
    const subs = [
      "cni/bin",
      "cni/net.d",
      "cni/ipam",
      "multus/auto",
      "multus/cache",
      "multus/net.d",
    ];
    for (const sub of subs) {
      await Deno.mkdir(`${d}/${sub}`, { recursive: true });
    }
    for (const entry of Deno.readDirSync(this.#bins.cniBinDir)) {
      await Deno.symlink(
        `${this.#bins.cniBinDir}/${entry.name}`,
        `${this.cniBinDir}/${entry.name}`,
      );
    }
    await Deno.symlink(this.#bins.multusShim, `${this.cniBinDir}/multus-shim`);
    // The subnet is picked from the ID so that two rigs rarely share one.
    const subnet = `10.${200 + (parseInt(this.id.slice(0, 2), 16) % 50)}.${
      parseInt(this.id.slice(2, 4), 16)
    }.0/24`;
    // A single-plugin .conf, not a .conflist: multus v4.2.2 caches a cluster-network conflist
    // loaded from a file without its plugins' settings, and its CNI DEL then fails (the
    // bridge plugin sees no IPAM ranges) and leaks the address.
    const cluster = {
      cniVersion: RIG_CNI_VERSION,
      name: this.clusterNetworkName,
      type: "bridge",
      bridge: `dr${this.id}b`,
      isGateway: true,
      ipMasq: false,
      ipam: { type: "host-local", dataDir: this.ipamDataDir, ranges: [[{ subnet }]] },
    };
    await Deno.writeTextFile(
      `${d}/multus/auto/10-${this.clusterNetworkName}.conf`,
      JSON.stringify(cluster, null, 2),
    );
    // multus generates containerd's CNI config (00-multus.conf, type multus-shim) from the
    // first config in multusAutoconfigDir, and removes it when it stops, as on a real node.
    const daemon = {
      cniVersion: RIG_CNI_VERSION,
      logLevel: "verbose",
      logToStderr: true,
      multusConfigFile: "auto",
      multusAutoconfigDir: `${d}/multus/auto`,
      cniConfigDir: `${d}/cni/net.d`,
      multusNamespace: "kube-system",
      socketDir: this.multusSocketDir,
      daemonSocketDir: this.multusSocketDir,
      binDir: this.cniBinDir,
      cniDir: `${d}/multus/cache`,
      confDir: `${d}/multus/net.d`,
    };
    await Deno.writeTextFile(`${d}/multus/daemon-config.json`, JSON.stringify(daemon, null, 2));
  }

  async #waitMultus(): Promise<void> {
    const multus = this.#daemons.multus;
    await waitFor("multus-daemon /healthz", async () => {
      multus.assertAlive();
      const res = await unixRequest(this.multusSocket, "GET", "/healthz", undefined, 2_000);
      // containerd needs the CNI config multus writes once it serves.
      return res.status === 200 && pathExists(`${this.dir}/cni/net.d/00-multus.conf`);
    }, 60_000);
  }

  async #writeContainerdConfig(): Promise<void> {
    const d = `${this.dir}/containerd`;
    await Deno.mkdir(d, { recursive: true });
    const toml = containerdConfig({
      dir: d,
      pauseImage: this.#bins.pauseImage,
      cniBinDir: this.cniBinDir,
      cniConfDir: `${this.dir}/cni/net.d`,
    });
    await Deno.writeTextFile(`${d}/config.toml`, toml);
  }

  async #waitContainerd(): Promise<void> {
    const containerd = this.#daemons.containerd;
    await waitFor("containerd's CRI", async () => {
      containerd.assertAlive();
      await this.cri.version();
      return true;
    }, 60_000);
  }

  async #serviceAccountToken(
    name: string,
    namespace: string,
    clusterRole: string,
  ): Promise<string> {
    await this.api.createIfMissing(`/api/v1/namespaces/${namespace}/serviceaccounts`, {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name, namespace },
    });
    await this.api.createIfMissing("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: `${namespace}-${name}-${clusterRole}` },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole },
      subjects: [{ kind: "ServiceAccount", name, namespace }],
    });
    const res = await this.api.request<{ status: { token: string } }>(
      "POST",
      `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 7 * 24 * 3600 },
      },
    );
    return res.status.token;
  }

  // ------------------------------------------------------------------ cluster helpers

  /** Creates a namespace (no error if it exists). */
  async createNamespace(name: string): Promise<void> {
    await this.api.createIfMissing("/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name },
    });
  }

  /**
   * Creates a NetworkAttachmentDefinition; `config` is the CNI config (object or JSON text).
   * Give host-local IPAM `dataDir: rig.ipamDataDir` to keep its files inside the run.
   */
  async createNad(
    namespace: string,
    name: string,
    config: string | Record<string, unknown>,
  ): Promise<void> {
    await this.api.request(
      "POST",
      `/apis/k8s.cni.cncf.io/v1/namespaces/${namespace}/network-attachment-definitions`,
      {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name, namespace },
        spec: { config: typeof config === "string" ? config : JSON.stringify(config) },
      },
    );
  }

  /**
   * Creates a ServiceAccount bound to `clusterRole` with a ClusterRoleBinding, mints a token
   * through the TokenRequest API and writes a kubeconfig using it. Resolves with its path.
   */
  async serviceAccountKubeconfig(
    name: string,
    namespace: string,
    clusterRole: string,
  ): Promise<string> {
    const token = await this.#serviceAccountToken(name, namespace, clusterRole);
    const path = `${this.dir}/kubeconfig/${namespace}-${name}.json`;
    await Deno.writeTextFile(
      path,
      kubeconfigJson(
        `${namespace}-${name}`,
        this.apiServerUrl,
        Deno.readTextFileSync(this.#pki.caCert),
        { token },
      ),
    );
    return path;
  }

  /** Runs the rig's kubectl with the admin kubeconfig; resolves with its exit code and output. */
  async kubectl(...args: string[]): Promise<RunResult> {
    return await run([this.#bins.kubectl, `--kubeconfig=${this.kubeconfig}`, ...args], {
      allowFailure: true,
    });
  }

  // ------------------------------------------------------------------ kubelet's part

  /**
   * Plays the kubelet for a new pod: creates the Pod bound to this node, runs its sandbox
   * through the CRI with the kubelet's labels (multus cold-plugs the requested networks and
   * writes `network-status`), waits for that status, then sets `status.phase=Running`.
   */
  async createPod(options: CreatePodOptions): Promise<RigPod> {
    const namespace = options.namespace ?? "default";
    const hostNetwork = options.hostNetwork ?? false;
    const annotations: Record<string, string> = { ...options.annotations };
    if (options.networks !== undefined) {
      annotations[NETWORKS_ANNOTATION] = typeof options.networks === "string"
        ? options.networks
        : JSON.stringify(options.networks);
    }
    const created = await this.api.request<{ metadata: { uid: string } }>(
      "POST",
      `/api/v1/namespaces/${namespace}/pods`,
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: options.name, namespace, labels: options.labels ?? {}, annotations },
        spec: {
          nodeName: this.nodeName,
          hostNetwork,
          terminationGracePeriodSeconds: 30,
          containers: [{ name: "app", image: this.#bins.pauseImage }],
        },
      },
    );
    const uid = created.metadata.uid;
    const config: SandboxConfig = {
      metadata: { name: options.name, uid, namespace, attempt: 0 },
      // A hostNetwork pod shares the node's UTS namespace: the kubelet sets no hostname.
      hostname: hostNetwork ? "" : options.name,
      log_directory: `${this.dir}/pods/${namespace}_${options.name}_${uid}`,
      labels: {
        ...options.labels,
        "io.kubernetes.pod.uid": uid,
        "io.kubernetes.pod.name": options.name,
        "io.kubernetes.pod.namespace": namespace,
      },
      annotations: {
        ...annotations,
        "kubernetes.io/config.source": "api",
        "kubernetes.io/config.seen": new Date().toISOString(),
      },
      linux: {
        security_context: {
          namespace_options: {
            network: hostNetwork ? "NODE" : "POD",
            pid: "CONTAINER",
            ipc: "POD",
          },
        },
      },
    };
    await Deno.mkdir(config.log_directory, { recursive: true });
    const sandboxId = await this.cri.runPodSandbox(config);
    const pod: RigPod = { name: options.name, namespace, uid, sandboxId, hostNetwork };
    if (!hostNetwork) {
      await waitFor(`multus' network-status on pod ${namespace}/${options.name}`, async () => {
        const current = await this.#getPod(pod);
        return current?.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] !== undefined;
      }, 30_000);
    }
    const status = await this.cri.podSandboxStatus(sandboxId);
    await this.#setRunning(pod, hostNetwork ? "127.0.0.1" : status.ip);
    return pod;
  }

  async #getPod(pod: PodRef): Promise<PodObject | undefined> {
    return await this.api.getOrUndefined<PodObject>(
      `/api/v1/namespaces/${pod.namespace ?? "default"}/pods/${pod.name}`,
    );
  }

  async #setRunning(pod: RigPod, ip: string): Promise<void> {
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const condition = (type: string) => ({ type, status: "True", lastTransitionTime: now });
    for (let attempt = 0;; attempt++) {
      const current = await this.#getPod(pod);
      if (!current) throw new Error(`pod ${pod.namespace}/${pod.name} vanished before Running`);
      current.status = {
        phase: "Running",
        hostIP: "127.0.0.1",
        hostIPs: [{ ip: "127.0.0.1" }],
        ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
        startTime: now,
        qosClass: "BestEffort",
        conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map(condition),
        containerStatuses: [{
          name: "app",
          ready: true,
          started: true,
          restartCount: 0,
          image: this.#bins.pauseImage,
          imageID: "",
          state: { running: { startedAt: now } },
        }],
      };
      try {
        await this.api.request(
          "PUT",
          `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}/status`,
          current,
        );
        return;
      } catch (err) {
        if (err instanceof ApiError && err.status === 409 && attempt < 10) continue;
        throw err;
      }
    }
  }

  /**
   * Plays the kubelet for a pod deletion: a graceful DELETE (sets deletionTimestamp), then
   * StopPodSandbox (CNI DEL through multus) and RemovePodSandbox, then the final DELETE with
   * grace period 0. Resolves once the Pod object is gone.
   */
  async deletePod(pod: RigPod): Promise<void> {
    const path = `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`;
    const del = async (body: Record<string, unknown>) => {
      try {
        await this.api.request("DELETE", path, {
          apiVersion: "v1",
          kind: "DeleteOptions",
          ...body,
        });
      } catch (err) {
        if (!(err instanceof ApiError && (err.status === 404 || err.status === 409))) throw err;
      }
    };
    await del({ gracePeriodSeconds: 30 });
    // A sandbox a test already removed is fine; any other CRI error is not.
    const gone = (err: unknown) => {
      if (!(err instanceof Error && /not ?found/i.test(err.message))) throw err;
    };
    await this.cri.stopPodSandbox(pod.sandboxId).catch(gone);
    await this.cri.removePodSandbox(pod.sandboxId).catch(gone);
    await del({ gracePeriodSeconds: 0, preconditions: { uid: pod.uid } });
    await waitFor(`pod ${pod.namespace}/${pod.name} to be gone`, async () => {
      const current = await this.#getPod(pod);
      return current === undefined || current.metadata.uid !== pod.uid;
    }, 30_000);
  }

  /** The pod sandbox's network namespace path, from CRI PodSandboxStatus(verbose). */
  async podNetns(pod: RigPod): Promise<string> {
    const status = await this.cri.podSandboxStatus(pod.sandboxId);
    return netnsPathFromInfo(status.info);
  }

  /** The links and addresses inside a pod's (or a netns path's) network namespace. */
  async netnsInterfaces(pod: RigPod | string): Promise<NetnsInterface[]> {
    const netns = typeof pod === "string" ? pod : await this.podNetns(pod);
    const out = await run(["nsenter", `--net=${netns}`, "ip", "-j", "addr", "show"]);
    const links = JSON.parse(out.stdout) as {
      ifname: string;
      address?: string;
      addr_info?: { family: string; local: string; prefixlen: number }[];
    }[];
    return links.map((l) => ({
      name: l.ifname,
      mac: l.address ?? "",
      ipv4: (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) =>
        `${a.local}/${a.prefixlen}`
      ),
      ipv6: (l.addr_info ?? []).filter((a) => a.family === "inet6").map((a) =>
        `${a.local}/${a.prefixlen}`
      ),
    }));
  }

  /**
   * The addresses host-local holds for `network` (the CNI config's `name`) under `dataDir`
   * (default {@linkcode Rig.ipamDataDir}): one file per allocated IP.
   */
  async hostLocalFiles(network: string, dataDir = this.ipamDataDir): Promise<string[]> {
    const files: string[] = [];
    try {
      for await (const entry of Deno.readDir(`${dataDir}/${network}`)) {
        if (entry.isFile && /^[0-9a-f.:]+$/i.test(entry.name)) files.push(entry.name);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return files.sort();
  }

  // ------------------------------------------------------------------ faults and health

  /**
   * Stops one part (SIGTERM, then SIGKILL), e.g. to test behaviour while multus is down.
   * Pod sandboxes survive a containerd stop. {@linkcode Rig.startPart} brings it back.
   */
  async stopPart(part: RigPart): Promise<void> {
    await this.#daemon(part).stop();
  }

  /** Starts a part stopped by {@linkcode Rig.stopPart} and waits until it answers. */
  async startPart(part: RigPart): Promise<void> {
    const daemon = this.#daemon(part);
    if (!daemon.alive) daemon.start();
    if (part === "etcd") await this.#waitEtcd();
    else if (part === "kube-apiserver") await this.#waitApiServer();
    else if (part === "multus") await this.#waitMultus();
    else await this.#waitContainerd();
  }

  #daemon(part: RigPart): Daemon {
    const byPart = {
      etcd: this.#daemons.etcd,
      "kube-apiserver": this.#daemons.apiserver,
      containerd: this.#daemons.containerd,
      multus: this.#daemons.multus,
    };
    return byPart[part];
  }

  /** Restarts the multus daemon (its socket is recreated) and waits for /healthz. */
  async restartMultus(): Promise<void> {
    await this.#daemons.multus.stop();
    this.#daemons.multus.start();
    await this.#waitMultus();
  }

  /** Restarts containerd (sandboxes keep running in their shims) and waits for its CRI. */
  async restartContainerd(): Promise<void> {
    await this.#daemons.containerd.stop();
    this.#daemons.containerd.start();
    await this.#waitContainerd();
  }

  /** Restarts kube-apiserver on the same port and waits for /readyz. */
  async restartApiServer(): Promise<void> {
    await this.#daemons.apiserver.stop();
    this.#daemons.apiserver.start();
    await this.#waitApiServer();
  }

  /** Waits until every part answers: etcd, kube-apiserver, multus and containerd. */
  async ready(): Promise<void> {
    await this.#waitEtcd();
    await this.#waitApiServer();
    await this.#waitMultus();
    await this.#waitContainerd();
  }

  /**
   * Stops everything and removes what the run made: pod sandboxes (through the CRI, so CNI
   * DEL runs), processes, mounts, links and the run directory. Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const { etcd, apiserver, multus, containerd } = this.#daemons;
    if (containerd.alive) await removeSandboxes(this.cri).catch(() => undefined);
    this.cri.close();
    this.api.close();
    await multus.stop();
    await containerd.stop();
    await apiserver.stop();
    await etcd.stop();
    await keepLogs(this.dir, this.id);
    await teardownRunDir(this.dir);
  }
}

/** The parts of a Pod object the rig reads. */
interface PodObject {
  metadata: { uid: string; annotations?: Record<string, string>; resourceVersion?: string };
  status?: Record<string, unknown>;
  [key: string]: unknown;
}

export { RIG_BASE_DIR, RIG_LOG_DIR } from "./run_dir.ts";
export { ApiError, KubeApi } from "./kube_api.ts";
export { CriClient, netnsPathFromInfo } from "./cri_client.ts";
export { sleep, waitFor } from "./daemon.ts";
export { run } from "./exec.ts";
export type { RunResult } from "./exec.ts";
export { unixRequest } from "./unix_http.ts";
export type { UnixHttpResponse } from "./unix_http.ts";
