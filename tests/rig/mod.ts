/**
 * The node rig: a one-node Kubernetes made of real parts, for tests, benchmarks and the demo.
 *
 * - etcd (Debian), and kube-apiserver, kube-controller-manager and kube-scheduler built from
 *   the Go module proxy, with a throw-away CA, client-certificate and ServiceAccount-token
 *   authentication, Node and RBAC authorization, the ServiceAccount and NodeRestriction
 *   admission plugins, and the NetworkAttachmentDefinition CRD;
 * - a container runtime, {@linkcode RigOptions.runtime}: containerd + runc (Debian) with the
 *   CRI plugin, or CRI-O (built from the Go module proxy) with Debian's conmon and runc, either
 *   one's CNI being `multus-shim`;
 * - the multus thick daemon, reading in-cluster credentials inside a private mount namespace,
 *   with a cluster network of bridge + host-local and the Debian CNI plugins;
 * - a kubelet on that runtime, with its own node certificate, its own cgroup root and every
 *   path inside the run directory, registered as the rig's Node with an address on the rig's
 *   cluster-network bridge: {@linkcode Rig.createPod} creates a Pod through the API and the
 *   kubelet runs it (multus cold-plugs its networks and writes `network-status`), restarts its
 *   containers and sandbox when they die, and tears it down when it is deleted;
 * - a veth pair owned by the run, usable as a macvlan master.
 *
 * Everything listens on loopback, on the rig's own bridge address or on unix sockets in a
 * private run directory (`/tmp/dnc-rig/<id>`), so two rigs, or a rig and the host's own
 * services, do not collide. A rig left behind by a crashed test process is cleaned up by the
 * next {@linkcode Rig.start}, which also puts back the sysctls its kubelet changed.
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
import { CriClient, netnsPathFromInfo, type SandboxSummary } from "./cri_client.ts";
import { CGROUP_FS, cgroupHierarchies, createRigCgroup, rigCgroupName } from "./cgroups.ts";
import { Daemon, sleep, waitFor } from "./daemon.ts";
import { run, type RunResult } from "./exec.ts";
import { holdHostState } from "./host_state.ts";
import {
  crioConfig,
  crioStorageConfig,
  crioStorageReference,
  runcWrapper,
  signaturePolicy,
} from "./crio_config.ts";
import {
  containerdConfig,
  kubeconfigJson,
  kubeletConfig,
  NAD_CRD_NAME,
  nadCrd,
} from "./manifests.ts";
import { createPki, type Pki } from "./pki.ts";
import { TcpRelay } from "./tcp_relay.ts";
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

/**
 * Where {@linkcode Rig.agentKubeconfig} gets the agent's identity: `deploy/base`'s
 * ServiceAccount, and the pod its token is bound to.
 */
export const AGENT_IDENTITY = {
  namespace: "kube-system",
  serviceAccount: "dynamic-networks-controller",
  pod: "agent-identity",
} as const;

/** The annotation a user edits to request networks. */
export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";
/** The annotation multus (and the controller) write. */
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";
/**
 * The rig's multus cniVersion. multus merges its daemon config into every `/delegate` request's
 * CNI config, so this version replaces the NAD's own there.
 */
export const RIG_CNI_VERSION = "0.3.1";
/** The label the kubelet puts on a pod's sandboxes and containers. */
export const POD_UID_LABEL = "io.kubernetes.pod.uid";
/**
 * The command of a rig pod's container by default: a shell that ends at once on SIGTERM (a
 * graceful deletion takes no longer than the kubelet's own work) and sleeps otherwise.
 */
export const POD_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep infinity & wait"];

const RIG_DIR = new URL(".", import.meta.url).pathname;
/** Pods a rig node takes (the bench runs 110 beside the tests' own). */
const MAX_PODS = 250;
/** How long a pod may take to start, or to go after a deletion, beyond its grace period. */
const POD_TIMEOUT_MS = 90_000;
/** The controllers the rig's kube-controller-manager runs (what a one-node cluster needs). */
const CONTROLLERS = [
  "serviceaccount-token-controller",
  "serviceaccount-controller",
  "namespace-controller",
  "garbage-collector-controller",
  "clusterrole-aggregation-controller",
  "root-ca-certificate-publisher-controller",
  "daemonset-controller",
  "replicaset-controller",
  "deployment-controller",
  "node-lifecycle-controller",
  "pod-garbage-collector-controller",
  "ttl-controller",
];

/** Binaries and images set up by `tests/rig/setup.sh` (its `paths.json`). */
export interface RigBinaries {
  etcd: string;
  containerd: string;
  ctr: string;
  kubeApiserver: string;
  kubectl: string;
  kubelet: string;
  kubeScheduler: string;
  kubeControllerManager: string;
  multusDaemon: string;
  multusShim: string;
  /** CRI-O, built from the pin in `crio/go.mod`. */
  crio: string;
  /** CRI-O's namespace pinner, from the same module. */
  pinns: string;
  /** Debian's conmon, CRI-O's container monitor. */
  conmon: string;
  /** Debian's runc. */
  runc: string;
  /** Debian's skopeo, which puts the images into CRI-O's storage. */
  skopeo: string;
  cniBinDir: string;
  pauseImageTar: string;
  pauseImage: string;
  /** The pods' image: busybox (a shell, sleep, ip …), imported offline. */
  podImageTar: string;
  podImage: string;
  kubeVersion: string;
  multusVersion: string;
  crioVersion: string;
}

const BINARY_KEYS: (keyof RigBinaries)[] = [
  "etcd",
  "containerd",
  "ctr",
  "kubeApiserver",
  "kubectl",
  "kubelet",
  "kubeScheduler",
  "kubeControllerManager",
  "multusDaemon",
  "multusShim",
  "crio",
  "pinns",
  "conmon",
  "runc",
  "skopeo",
  "cniBinDir",
  "pauseImageTar",
  "pauseImage",
  "podImageTar",
  "podImage",
  "kubeVersion",
  "multusVersion",
  "crioVersion",
];

/** The container runtimes a rig runs its pods on. */
export type RigRuntime = "containerd" | "crio";
/** The runtimes a rig runs, in the order the suites run on them. */
export const RIG_RUNTIMES: readonly RigRuntime[] = ["containerd", "crio"];
/** The environment variable that picks the runtime of every rig a process starts. */
export const RIG_RUNTIME_ENV = "DNC_RIG_RUNTIME";

/**
 * The runtime of a rig: `options.runtime`, else `$DNC_RIG_RUNTIME`, else containerd. Throws
 * for another value, naming it and the accepted ones.
 */
export function rigRuntime(options: RigOptions = {}): RigRuntime {
  const value = options.runtime ?? (Deno.env.get(RIG_RUNTIME_ENV) || "containerd");
  if (!(RIG_RUNTIMES as readonly string[]).includes(value)) {
    throw new Error(
      `${options.runtime ? "RigOptions.runtime" : RIG_RUNTIME_ENV} is "${value}"; ` +
        `use ${RIG_RUNTIMES.map((r) => `"${r}"`).join(" or ")}`,
    );
  }
  return value as RigRuntime;
}

/** Options of {@linkcode Rig.start}. */
export interface RigOptions {
  /** Run `tests/rig/setup.sh` first (default true; a warm run takes seconds). */
  setup?: boolean;
  /** Cache directory of the set-up (default `$DNC_RIG_CACHE` or `/var/cache/dnc-rig`). */
  cacheDir?: string;
  /**
   * The node's container runtime (default `$DNC_RIG_RUNTIME`, else `containerd`): `crio` runs
   * CRI-O with every path in the run directory, its own socket, no infra container (its
   * default) and the network namespaces pinned where multus sees them.
   */
  runtime?: RigRuntime;
  /**
   * The `cniVersion` of multus' daemon config (default {@linkcode RIG_CNI_VERSION}, as multus'
   * own manifests ship it). multus puts it into every `/delegate` request's config, so CNI
   * CHECK, which needs 0.4.0 or later, works through `/delegate` only with 0.4.0 or later here.
   */
  multusCniVersion?: string;
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
  /**
   * Keep the pod Pending: an init container waits until {@linkcode Rig.releasePending}.
   * The sandbox runs meanwhile (multus has cold-plugged its networks and written
   * network-status), as for any pod whose init containers have not finished.
   */
  pending?: boolean;
  /** The container's command (default {@linkcode POD_COMMAND}). */
  command?: string[];
  /** `terminationGracePeriodSeconds` (default 30). */
  terminationGracePeriodSeconds?: number;
  /** The container's readiness probe (a core/v1 Probe); none by default. */
  readinessProbe?: Record<string, unknown>;
  /** Pod condition types the pod's readiness waits for (`spec.readinessGates`); none by default. */
  readinessGates?: string[];
  /** The pod's ServiceAccount (default `default`). */
  serviceAccountName?: string;
}

/** A pod the rig's kubelet runs. */
export interface RigPod {
  name: string;
  namespace: string;
  uid: string;
  /**
   * The CRI sandbox ID (multus' and the controller's `CNI_CONTAINERID`) when the pod was
   * read. The kubelet makes a new sandbox when the old one dies: see
   * {@linkcode Rig.refreshPod}.
   */
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

/**
 * The rig's long-running parts; `runtime` is the node's container runtime (containerd or
 * CRI-O, see {@linkcode Rig.runtime}).
 */
export type RigPart =
  | "etcd"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "kube-scheduler"
  | "runtime"
  | "multus"
  | "kubelet";

/** Names of pods and objects, as `{name, namespace}`. */
export interface PodRef {
  name: string;
  namespace?: string;
}

/** The IPv6 ULA of run `id` (six hex digits) on its cluster bridge. */
export function rigIpv6Address(id: string): string {
  return `fd64:646e:63${id.slice(0, 2)}:${id.slice(2, 6)}::1`;
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** A short hash of this checkout's rig directory, naming its own copy of the set-up's paths. */
async function checkoutKey(): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(RIG_DIR));
  return Array.from(new Uint8Array(digest).slice(0, 5), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** The set-up's cache directory: `options.cacheDir`, `$DNC_RIG_CACHE` or `/var/cache/dnc-rig`. */
export function rigCacheDir(options: RigOptions = {}): string {
  return options.cacheDir ?? Deno.env.get("DNC_RIG_CACHE") ?? "/var/cache/dnc-rig";
}

/**
 * Runs `setup.sh` when asked, then reads the paths it wrote. Each checkout has its own copy of
 * them (`paths-<key>.json`): checkouts with other pins share the cache and its `paths.json`.
 */
async function binaries(options: RigOptions): Promise<RigBinaries> {
  const cacheDir = rigCacheDir(options);
  const own = `${cacheDir}/paths-${await checkoutKey()}.json`;
  if (options.setup ?? true) {
    await run(["bash", `${RIG_DIR}setup.sh`], {
      env: { DNC_RIG_CACHE: cacheDir, DNC_RIG_PATHS: own },
      timeoutMs: 90 * 60_000,
    });
  }
  const path = pathExists(own) ? own : `${cacheDir}/paths.json`;
  let bins: Partial<RigBinaries>;
  try {
    bins = JSON.parse(await Deno.readTextFile(path)) as Partial<RigBinaries>;
  } catch (err) {
    throw new Error(`cannot read ${path}; run "bash tests/rig/setup.sh" as root first`, {
      cause: err,
    });
  }
  const missing = BINARY_KEYS.filter((k) => !bins[k]);
  if (missing.length > 0) {
    throw new Error(
      `${path} lacks ${missing.join(", ")} (written by an older set-up); ` +
        `run "bash tests/rig/setup.sh" as root`,
    );
  }
  return bins as RigBinaries;
}

/** The parts of a Pod object the rig reads. */
interface PodObject {
  metadata: {
    uid: string;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    deletionTimestamp?: string;
  };
  spec?: { terminationGracePeriodSeconds?: number };
  status?: {
    phase?: string;
    containerStatuses?: ContainerStatusObject[];
    initContainerStatuses?: ContainerStatusObject[];
  };
  [key: string]: unknown;
}

interface ContainerStatusObject {
  name: string;
  restartCount: number;
  containerID?: string;
  state?: {
    running?: { startedAt?: string };
    waiting?: { reason?: string; message?: string };
    terminated?: { reason?: string; exitCode?: number };
  };
}

/**
 * Waiting reasons after which a container never starts without a change to the pod (others,
 * such as RunContainerError, may pass when the kubelet retries).
 */
const HOPELESS = new Set(["ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"]);

/** A one-line account of a pod's phase and containers, for error messages. */
function describePod(pod: PodObject | undefined): string {
  if (!pod) return "the Pod object is gone";
  const containers = [
    ...(pod.status?.initContainerStatuses ?? []).map((c) => ({ ...c, name: `init:${c.name}` })),
    ...(pod.status?.containerStatuses ?? []),
  ].map((c) => {
    const state = c.state?.running
      ? "running"
      : c.state?.waiting
      ? `waiting (${c.state.waiting.reason ?? ""}${
        c.state.waiting.message ? `: ${c.state.waiting.message}` : ""
      })`
      : c.state?.terminated
      ? `terminated (${c.state.terminated.reason ?? ""}, exit ${c.state.terminated.exitCode})`
      : "unknown";
    return `${c.name} ${state}, ${c.restartCount} restarts`;
  });
  return `phase ${pod.status?.phase ?? "(none)"}; ${containers.join("; ") || "no containers yet"}`;
}

/** Ports of the rig's daemons. */
interface RigPorts {
  etcdClient: number;
  etcdPeer: number;
  api: number;
  kubelet: number;
  kubeletHealthz: number;
  scheduler: number;
  controllerManager: number;
}

/** A running node rig. Create with {@linkcode Rig.start}, end with {@linkcode Rig.stop}. */
export class Rig {
  /** Admin API client (client certificate in `system:masters`). */
  readonly api: KubeApi;
  /**
   * The rig's own CRI client, to find sandboxes and containers beside the kubelet, or to act
   * behind its back where a test needs that.
   */
  readonly cri: CriClient;

  readonly #bins: RigBinaries;
  readonly #pki: Pki;
  readonly #ports: RigPorts;
  readonly #daemons: Record<RigPart, Daemon>;
  #stopped = false;

  private constructor(
    /** Short random ID of this run. */
    readonly id: string,
    /** The run directory. */
    readonly dir: string,
    /** The node's container runtime. */
    readonly runtime: RigRuntime,
    bins: RigBinaries,
    pki: Pki,
    ports: RigPorts,
    /** The `cniVersion` of multus' daemon config ({@linkcode RigOptions.multusCniVersion}). */
    readonly multusCniVersion: string,
  ) {
    this.#bins = bins;
    this.#pki = pki;
    this.#ports = ports;
    const logs = `${dir}/logs`;
    const pids = `${dir}/pids`;
    const etcdUrl = `http://127.0.0.1:${ports.etcdClient}`;
    const peerUrl = `http://127.0.0.1:${ports.etcdPeer}`;
    const daemon = (name: string, command: string[], more: Partial<Daemon["spec"]> = {}) =>
      new Daemon({
        name,
        command,
        logFile: `${logs}/${name}.log`,
        pidFile: `${pids}/${name}.pid`,
        ...more,
      });
    // Both control-plane controllers talk to the API server with their own certificates and
    // serve their health checks on loopback only.
    const controlPlane = (name: string, kubeconfig: string, port: number) => [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${port}`,
      `--cert-dir=${dir}/${name}`,
      "--profiling=false",
    ];
    this.#daemons = {
      etcd: daemon("etcd", [
        bins.etcd,
        "--name=rig",
        `--data-dir=${dir}/etcd`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=rig=${peerUrl}`,
        "--logger=zap",
      ]),
      "kube-apiserver": daemon("kube-apiserver", [
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
        // ServiceAccount is on by default (kube-controller-manager makes the accounts).
        "--enable-admission-plugins=NodeRestriction",
        `--kubelet-client-certificate=${pki.kubeletClientCert}`,
        `--kubelet-client-key=${pki.kubeletClientKey}`,
        // The Node's name resolves nowhere; its InternalIP is the rig's bridge address.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        "--service-cluster-ip-range=10.96.0.0/24",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--profiling=false",
      ], {
        // It stops listening at once but lingers for many seconds afterwards.
        graceMs: 2_000,
      }),
      "kube-controller-manager": daemon("kube-controller-manager", [
        bins.kubeControllerManager,
        ...controlPlane(
          "controller-manager",
          `${dir}/kubeconfig/controller-manager.json`,
          ports.controllerManager,
        ),
        `--service-account-private-key-file=${pki.serviceAccountKey}`,
        `--root-ca-file=${pki.caCert}`,
        // Each controller acts as its own ServiceAccount, bound by the bootstrap RBAC roles.
        "--use-service-account-credentials=true",
        `--controllers=${CONTROLLERS.join(",")}`,
      ]),
      "kube-scheduler": daemon(
        "kube-scheduler",
        [
          bins.kubeScheduler,
          ...controlPlane("scheduler", `${dir}/kubeconfig/scheduler.json`, ports.scheduler),
        ],
      ),
      runtime: runtime === "crio"
        ? daemon("crio", [
          bins.crio,
          "--config",
          `${dir}/crio/crio.conf`,
          "--config-dir",
          `${dir}/crio/crio.conf.d`,
        ], {
          env: {
            CONTAINERS_STORAGE_CONF: `${dir}/crio/storage.conf`,
            CONTAINERS_REGISTRIES_CONF: `${dir}/crio/registries.conf`,
          },
        })
        : daemon("containerd", [bins.containerd, "--config", `${dir}/containerd/config.toml`]),
      multus: daemon(
        "multus",
        [
          // A private mount namespace (slave: later netns mounts still arrive) whose /run is a
          // tmpfs holding the in-cluster ServiceAccount files multus insists on.
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
        {
          env: {
            RIG_SA_DIR: `${dir}/multus/serviceaccount`,
            KUBERNETES_SERVICE_HOST: "127.0.0.1",
            KUBERNETES_SERVICE_PORT: `${ports.api}`,
            MULTUS_NODE_NAME: `rig-${id}`,
          },
        },
      ),
      kubelet: daemon("kubelet", [
        bins.kubelet,
        `--config=${dir}/kubelet-config.json`,
        `--kubeconfig=${dir}/kubeconfig/kubelet.json`,
        `--root-dir=${dir}/kubelet`,
        `--cert-dir=${dir}/kubelet/pki`,
        `--hostname-override=rig-${id}`,
        `--node-ip=${this.nodeIp}`,
        "--v=2",
      ]),
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
   * multus' ServiceAccount), kube-controller-manager and kube-scheduler, the links (macvlan
   * master veth, cluster-network bridge with the node IP), multus, the runtime (containerd or
   * CRI-O, + the images), and the kubelet, which registers the Node. Throws (after undoing what it started) if a
   * part does not come up.
   */
  static async start(options: RigOptions = {}): Promise<Rig> {
    if (!isRoot()) {
      throw new Error(
        "the node rig needs root (the runtime, the kubelet, network namespaces, mounts); run as root",
      );
    }
    const runtime = rigRuntime(options);
    const bins = await binaries(options);
    await cleanDeadRuns();
    const id = randomId();
    const dir = `${RIG_BASE_DIR}/${id}`;
    for (const sub of ["logs", "pids", "pki", "apiserver", "kubeconfig", "pod-logs", "gates"]) {
      await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
    }
    await Deno.writeTextFile(`${dir}/owner.pid`, `${Deno.pid}\n`);
    let rig: Rig | undefined;
    try {
      // The run dir becomes a shared mount, so that netns mounts the runtime makes under it
      // later also appear in multus' private mount namespace.
      await run(["mount", "--bind", dir, dir]);
      await run(["mount", "--make-shared", dir]);
      const pki = await createPki(`${dir}/pki`, `rig-${id}`, [rigIpv6Address(id)]);
      const ports: RigPorts = {
        etcdClient: freePort(),
        etcdPeer: freePort(),
        api: freePort(),
        kubelet: freePort(),
        kubeletHealthz: freePort(),
        scheduler: freePort(),
        controllerManager: freePort(),
      };
      rig = new Rig(
        id,
        dir,
        runtime,
        bins,
        pki,
        ports,
        options.multusCniVersion ?? RIG_CNI_VERSION,
      );
      await rig.#boot();
      return rig;
    } catch (err) {
      if (rig) await rig.stop().catch(() => undefined);
      else await teardownRunDir(dir);
      throw err;
    }
  }

  // ------------------------------------------------------------------ getters

  /** The rig's Node, registered by its kubelet. */
  get nodeName(): string {
    return `rig-${this.id}`;
  }

  /** The cluster network's subnet, picked from the ID so that two rigs rarely share one. */
  get clusterSubnet(): string {
    return `10.${200 + (parseInt(this.id.slice(0, 2), 16) % 50)}.${
      parseInt(this.id.slice(2, 4), 16)
    }.0/24`;
  }

  /**
   * The node's IP (its InternalIP): the gateway address of the cluster network, on the
   * rig's own bridge. The kubelet's API listens there.
   */
  get nodeIp(): string {
    return this.clusterSubnet.replace(/0\/24$/, "1");
  }

  /** The cgroup the kubelet puts its `kubepods` tree under. */
  get cgroupRoot(): string {
    return `/${rigCgroupName(this.id)}`;
  }

  /**
   * The API server as an IPv6 single-stack cluster's agent reaches it: on
   * {@linkcode Rig.ipv6Address} (a ULA on the rig's own bridge, named in the API server's
   * certificate) and a port of its own, relayed to the API server. Started on first use;
   * returns the host and port as `KUBERNETES_SERVICE_HOST` and `_PORT` would say them.
   */
  ipv6ApiEndpoint(): { host: string; port: number } {
    this.#ipv6Relay ??= new TcpRelay(this.ipv6Address, {
      hostname: "127.0.0.1",
      port: this.#ports.api,
    });
    return { host: this.ipv6Address, port: this.#ipv6Relay.port };
  }

  #ipv6Relay: TcpRelay | undefined;

  /** An IPv6 ULA of this run on its cluster bridge (`fd64:…::1`). */
  get ipv6Address(): string {
    return rigIpv6Address(this.id);
  }

  /** `https://127.0.0.1:<port>` */
  get apiServerUrl(): string {
    return `https://127.0.0.1:${this.#ports.api}`;
  }

  /** The admin kubeconfig (client certificate, `system:masters`). */
  get kubeconfig(): string {
    return `${this.dir}/kubeconfig/admin.json`;
  }

  /** PEM file of the cluster CA. */
  get caCertPath(): string {
    return this.#pki.caCert;
  }

  /** The runtime's CRI socket (`<run>/containerd/containerd.sock` or `<run>/crio/crio.sock`). */
  get criSocket(): string {
    return this.runtime === "crio"
      ? `${this.dir}/crio/crio.sock`
      : `${this.dir}/containerd/containerd.sock`;
  }

  /** The prefix of the kubelet's container IDs on this runtime (`containerd://`, `cri-o://`). */
  get #containerIdPrefix(): string {
    return this.runtime === "crio" ? "cri-o://" : "containerd://";
  }

  /** The kubelet's root directory (pods' volumes, plugins, checkpoints). */
  get kubeletRootDir(): string {
    return `${this.dir}/kubelet`;
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

  /** The cluster network's bridge, which holds the node IP. */
  get clusterBridge(): string {
    return `dr${this.id}b`;
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

  /** The CNI plugin directory the runtime and multus use (Debian plugins + multus-shim). */
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

  /**
   * Log file of a part: `etcd`, `kube-apiserver`, `kube-controller-manager`,
   * `kube-scheduler`, `runtime` (`containerd.log` or `crio.log`), `multus` or `kubelet`.
   */
  logFile(part: RigPart): string {
    return this.#daemons[part].spec.logFile;
  }

  // ------------------------------------------------------------------ boot

  async #boot(): Promise<void> {
    const d = this.#daemons;
    d.etcd.start();
    await this.#waitEtcd();
    d["kube-apiserver"].start();
    await this.#waitApiServer();
    await this.#writeKubeconfigs();
    // The controllers come up while the node's parts start.
    d["kube-controller-manager"].start();
    d["kube-scheduler"].start();
    await this.#installNadCrd();
    await this.#prepareMultusCredentials();
    await this.#createLinks();
    await this.#writeCniConfig();
    d.multus.start();
    await this.#waitMultus();
    if (this.runtime === "crio") {
      await this.#writeCrioConfig();
      // Into CRI-O's storage before it starts, so that it finds its pause image at once.
      await this.importImage(this.#bins.pauseImageTar, this.#bins.pauseImage);
      await this.importImage(this.#bins.podImageTar, this.#bins.podImage);
      d.runtime.start();
      await this.#waitRuntime();
    } else {
      await this.#writeContainerdConfig();
      d.runtime.start();
      await this.#waitRuntime();
      await this.importImage(this.#bins.pauseImageTar, this.#bins.pauseImage);
      await this.importImage(this.#bins.podImageTar, this.#bins.podImage);
    }
    await this.#waitControllerManager();
    await this.#waitScheduler();
    await this.#startKubelet();
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
    const apiserver = this.#daemons["kube-apiserver"];
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

  /** A kubeconfig for one client certificate of the rig's PKI. */
  async #writeCertKubeconfig(path: string, user: string, cert: string, key: string) {
    await Deno.writeTextFile(
      path,
      kubeconfigJson(user, this.apiServerUrl, Deno.readTextFileSync(this.#pki.caCert), {
        "client-certificate-data": btoa(Deno.readTextFileSync(cert)),
        "client-key-data": btoa(Deno.readTextFileSync(key)),
      }),
    );
  }

  async #writeKubeconfigs(): Promise<void> {
    const p = this.#pki;
    const k = `${this.dir}/kubeconfig`;
    await this.#writeCertKubeconfig(this.kubeconfig, "rig-admin", p.adminCert, p.adminKey);
    await this.#writeCertKubeconfig(`${k}/kubelet.json`, this.nodeName, p.nodeCert, p.nodeKey);
    await this.#writeCertKubeconfig(
      `${k}/scheduler.json`,
      "kube-scheduler",
      p.schedulerCert,
      p.schedulerKey,
    );
    await this.#writeCertKubeconfig(
      `${k}/controller-manager.json`,
      "kube-controller-manager",
      p.controllerManagerCert,
      p.controllerManagerKey,
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

  async #prepareMultusCredentials(): Promise<void> {
    const token = await this.#serviceAccountToken("multus", "kube-system", "cluster-admin");
    const dir = `${this.dir}/multus/serviceaccount`;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/token`, token);
    await Deno.copyFile(this.#pki.caCert, `${dir}/ca.crt`);
    await Deno.writeTextFile(`${dir}/namespace`, "kube-system");
  }

  async #createLinks(): Promise<void> {
    const bridge = this.clusterBridge;
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
    // The cluster network's bridge exists before any pod, holding the gateway address the
    // bridge plugin would give it (so the plugin keeps it): the node IP the kubelet needs.
    await run(["ip", "link", "add", bridge, "type", "bridge"]);
    await run(["ip", "addr", "add", this.clusterSubnet.replace(/0\/24$/, "1/24"), "dev", bridge]);
    // No duplicate address detection: the bridge has no port yet, and a tentative address
    // cannot be bound.
    await run(["ip", "-6", "addr", "add", `${this.ipv6Address}/64`, "dev", bridge, "nodad"]);
    await run(["ip", "link", "set", bridge, "up"]);
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
    // A single-plugin .conf, not a .conflist: multus v4.2.2 caches a cluster-network conflist
    // loaded from a file without its plugins' settings, and its CNI DEL then fails (the
    // bridge plugin sees no IPAM ranges) and leaks the address.
    const cluster = {
      // multus refuses a primary network of another version than its own.
      cniVersion: this.multusCniVersion,
      name: this.clusterNetworkName,
      type: "bridge",
      bridge: this.clusterBridge,
      isGateway: true,
      ipMasq: false,
      ipam: {
        type: "host-local",
        dataDir: this.ipamDataDir,
        ranges: [[{ subnet: this.clusterSubnet, gateway: this.nodeIp }]],
      },
    };
    await Deno.writeTextFile(
      `${d}/multus/auto/10-${this.clusterNetworkName}.conf`,
      JSON.stringify(cluster, null, 2),
    );
    // multus generates containerd's CNI config (00-multus.conf, type multus-shim) from the
    // first config in multusAutoconfigDir, and removes it when it stops, as on a real node.
    const daemon = {
      cniVersion: this.multusCniVersion,
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

  async #writeCrioConfig(): Promise<void> {
    const d = `${this.dir}/crio`;
    for (const sub of ["crio.conf.d", "hooks", "cdi", "keys", "tmp", "logs", "ns"]) {
      await Deno.mkdir(`${d}/${sub}`, { recursive: true });
    }
    const jq = (await run(["sh", "-c", "command -v jq"])).stdout.trim();
    const hugetlb = cgroupHierarchies().some((h) => h.endsWith("/hugetlb")) ||
      (await Deno.readTextFile(`${CGROUP_FS}/cgroup.controllers`).catch(() => "")).split(/\s+/)
        .includes("hugetlb");
    await Deno.writeTextFile(`${d}/runc-wrapper`, runcWrapper(this.#bins.runc, jq, !hugetlb), {
      mode: 0o755,
    });
    await Deno.writeTextFile(`${d}/policy.json`, signaturePolicy());
    await Deno.writeTextFile(`${d}/storage.conf`, crioStorageConfig(d));
    await Deno.writeTextFile(`${d}/registries.conf`, "unqualified-search-registries = []\n");
    await Deno.writeTextFile(
      `${d}/crio.conf`,
      crioConfig({
        dir: d,
        pauseImage: this.#bins.pauseImage,
        cniBinDir: this.cniBinDir,
        cniConfDir: `${this.dir}/cni/net.d`,
        pinns: this.#bins.pinns,
        conmon: this.#bins.conmon,
        runtimePath: `${d}/runc-wrapper`,
        namespacesDir: `${d}/ns`,
      }),
    );
  }

  /**
   * Puts an OCI image-layout tarball into the node runtime's image store under `ref`, offline:
   * `ctr images import` for containerd, `skopeo copy` into CRI-O's containers-storage.
   */
  async importImage(tar: string, ref: string): Promise<void> {
    if (this.runtime === "containerd") {
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
        tar,
      ], { timeoutMs: 180_000 });
      return;
    }
    const d = `${this.dir}/crio`;
    // skopeo keeps a blob cache in /var/lib/containers: a private mount namespace gives it a
    // throw-away one (and takes any mount its storage makes with it).
    await run([
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      [
        "set -e",
        "mount -t tmpfs -o size=1m,mode=0755 dnc-rig-skopeo /var/lib",
        'exec "$0" "$@"',
      ].join("\n"),
      this.#bins.skopeo,
      "--policy",
      `${d}/policy.json`,
      "copy",
      "--quiet",
      `oci-archive:${tar}`,
      crioStorageReference(d, ref),
    ], {
      env: {
        CONTAINERS_STORAGE_CONF: `${d}/storage.conf`,
        CONTAINERS_REGISTRIES_CONF: `${d}/registries.conf`,
      },
      timeoutMs: 180_000,
    });
  }

  async #waitRuntime(): Promise<void> {
    const runtime = this.#daemons.runtime;
    await waitFor(`${runtime.spec.name}'s CRI`, async () => {
      runtime.assertAlive();
      await this.cri.version();
      return true;
    }, 60_000);
  }

  /** Polls a control-plane component's /healthz (its serving certificate is self-signed). */
  async #waitHealthz(part: RigPart, port: number): Promise<void> {
    const daemon = this.#daemons[part];
    await waitFor(
      `${part} /healthz`,
      async () => {
        daemon.assertAlive();
        const res = await run(
          ["curl", "-sk", "--max-time", "2", `https://127.0.0.1:${port}/healthz`],
          { allowFailure: true },
        );
        return res.stdout.trim() === "ok";
      },
      60_000,
      200,
    );
  }

  async #waitControllerManager(): Promise<void> {
    await this.#waitHealthz("kube-controller-manager", this.#ports.controllerManager);
    // Pods are refused until their namespace's "default" ServiceAccount exists.
    await this.#waitDefaultServiceAccount("default");
  }

  async #waitScheduler(): Promise<void> {
    await this.#waitHealthz("kube-scheduler", this.#ports.scheduler);
  }

  async #waitDefaultServiceAccount(namespace: string): Promise<void> {
    const manager = this.#daemons["kube-controller-manager"];
    await waitFor(`the "default" ServiceAccount of namespace ${namespace}`, async () => {
      manager.assertAlive();
      return await this.api.getOrUndefined(
        `/api/v1/namespaces/${namespace}/serviceaccounts/default`,
      ) !== undefined;
    }, 60_000);
  }

  /** Writes the kubelet's configuration, takes the host state and the cgroups, starts it. */
  async #startKubelet(): Promise<void> {
    await Deno.mkdir(`${this.dir}/kubelet`, { recursive: true });
    const config = kubeletConfig({
      nodeIp: this.nodeIp,
      port: this.#ports.kubelet,
      healthzPort: this.#ports.kubeletHealthz,
      criSocket: this.criSocket,
      cgroupRoot: this.cgroupRoot,
      clientCaFile: this.#pki.caCert,
      podLogsDir: `${this.dir}/pod-logs`,
      volumePluginDir: `${this.dir}/kubelet/volume-plugins`,
      maxPods: MAX_PODS,
    });
    await Deno.writeTextFile(`${this.dir}/kubelet-config.json`, JSON.stringify(config, null, 2));
    // Before the kubelet rewrites any sysctl: the first rig saves them for the last to restore.
    await holdHostState(this.dir);
    await createRigCgroup(this.id);
    this.#daemons.kubelet.start();
    await this.#waitKubelet();
  }

  /** Waits for the kubelet's /healthz and for its Node to be Ready. */
  async #waitKubelet(): Promise<void> {
    const kubelet = this.#daemons.kubelet;
    await waitFor(
      "kubelet /healthz",
      async () => {
        kubelet.assertAlive();
        const res = await fetch(`http://127.0.0.1:${this.#ports.kubeletHealthz}/healthz`);
        return (await res.text()).trim() === "ok";
      },
      60_000,
      200,
    );
    await waitFor(
      `Node ${this.nodeName} to be Ready`,
      async () => {
        kubelet.assertAlive();
        const node = await this.api.getOrUndefined<{
          status?: { conditions?: { type: string; status: string }[] };
        }>(`/api/v1/nodes/${this.nodeName}`);
        return node?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
      },
      60_000,
      200,
    );
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
    return await this.#tokenRequest(name, namespace);
  }

  /**
   * A week-long token of ServiceAccount `namespace/name`. The agent's own
   * ({@linkcode AGENT_IDENTITY}) is bound to a pod on the node, as its DaemonSet pod's is, so
   * that it names the node: the node-confinement policy refuses every write of a token that
   * does not.
   */
  async #tokenRequest(name: string, namespace: string): Promise<string> {
    const agent = name === AGENT_IDENTITY.serviceAccount && namespace === AGENT_IDENTITY.namespace;
    const holder = agent ? await this.#agentIdentityPod() : undefined;
    const res = await this.api.request<{ status: { token: string } }>(
      "POST",
      `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          expirationSeconds: 7 * 24 * 3600,
          ...(holder
            ? {
              boundObjectRef: { apiVersion: "v1", kind: "Pod", name: holder.name, uid: holder.uid },
            }
            : {}),
        },
      },
    );
    return res.status.token;
  }

  /** The pod the agent's tokens are bound to, made on first use. */
  #agentIdentityPod(): Promise<RigPod> {
    this.#identityPod ??= this.createPod({
      name: AGENT_IDENTITY.pod,
      namespace: AGENT_IDENTITY.namespace,
      serviceAccountName: AGENT_IDENTITY.serviceAccount,
    });
    return this.#identityPod;
  }

  #identityPod: Promise<RigPod> | undefined;

  // ------------------------------------------------------------------ cluster helpers

  /**
   * Creates a namespace (no error if it exists) and waits for the `default` ServiceAccount
   * that kube-controller-manager makes in it: until then the API server refuses its pods.
   */
  async createNamespace(name: string): Promise<void> {
    await this.api.createIfMissing("/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name },
    });
    await this.#waitDefaultServiceAccount(name);
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

  /**
   * The agent's identity as its DaemonSet pod has it, for the agent processes the tests run: the
   * ServiceAccount, ClusterRole and binding of `deploy/base` and its node-confinement policy are
   * applied, a pod of that ServiceAccount runs on the node, and a token bound to that pod (so
   * that it names the node, as a DaemonSet pod's does) goes into a kubeconfig. Made on first
   * use; resolves with the kubeconfig's path.
   */
  agentKubeconfig(): Promise<string> {
    this.#agentKubeconfig ??= this.#makeAgentKubeconfig();
    return this.#agentKubeconfig;
  }

  #agentKubeconfig: Promise<string> | undefined;

  async #makeAgentKubeconfig(): Promise<string> {
    const base = new URL("../../deploy/base/", import.meta.url).pathname;
    for (
      const file of [
        "service_account.yaml",
        "cluster_role.yaml",
        "cluster_role_binding.yaml",
        "node_confinement.yaml",
      ]
    ) {
      const applied = await this.kubectl(
        "apply",
        "-n",
        AGENT_IDENTITY.namespace,
        "-f",
        base + file,
      );
      if (applied.code !== 0) throw new Error(`applying deploy/base/${file}: ${applied.stderr}`);
    }
    const token = await this.#tokenRequest(
      AGENT_IDENTITY.serviceAccount,
      AGENT_IDENTITY.namespace,
    );
    const path = `${this.dir}/kubeconfig/agent.json`;
    await Deno.writeTextFile(
      path,
      kubeconfigJson(
        "agent",
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

  // ------------------------------------------------------------------ pods

  /** Where a pending pod's init container looks for its `open` file. */
  #gateDir(namespace: string, name: string): string {
    return `${this.dir}/gates/${namespace}_${name}`;
  }

  /**
   * Creates a Pod bound to this node through the API; the kubelet runs it. Resolves once it
   * is Running with its containers started and (unless hostNetwork) multus has written its
   * `network-status`; with `pending`, once its sandbox runs and its init container waits
   * (phase Pending) instead. The container runs {@linkcode POD_COMMAND} from the busybox
   * image, never pulled.
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
    const image = this.#bins.podImage;
    const gate = this.#gateDir(namespace, options.name);
    if (options.pending) {
      await Deno.remove(gate, { recursive: true }).catch(() => undefined);
      await Deno.mkdir(gate, { recursive: true });
    }
    const created = await this.#postPod(namespace, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: options.name, namespace, labels: options.labels ?? {}, annotations },
      spec: {
        nodeName: this.nodeName,
        hostNetwork,
        // There is no cluster DNS: the host's resolv.conf, and no MissingClusterDNS warning.
        dnsPolicy: "Default",
        enableServiceLinks: false,
        terminationGracePeriodSeconds: options.terminationGracePeriodSeconds ?? 30,
        ...(options.serviceAccountName ? { serviceAccountName: options.serviceAccountName } : {}),
        ...(options.readinessGates
          ? { readinessGates: options.readinessGates.map((conditionType) => ({ conditionType })) }
          : {}),
        ...(options.pending
          ? {
            initContainers: [{
              name: "gate",
              image,
              imagePullPolicy: "Never",
              command: [
                "/bin/sh",
                "-c",
                "trap 'exit 1' TERM INT; until [ -e /gate/open ]; do sleep 0.1; done",
              ],
              volumeMounts: [{ name: "gate", mountPath: "/gate" }],
            }],
            volumes: [{ name: "gate", hostPath: { path: gate, type: "Directory" } }],
          }
          : {}),
        containers: [{
          name: "app",
          image,
          imagePullPolicy: "Never",
          command: options.command ?? POD_COMMAND,
          ...(options.readinessProbe ? { readinessProbe: options.readinessProbe } : {}),
        }],
      },
    });
    const pod: RigPod = {
      name: options.name,
      namespace,
      uid: created.metadata.uid,
      sandboxId: "",
      hostNetwork,
    };
    if (options.pending) {
      await this.#waitPod(
        pod,
        "to start its sandbox and wait in its init container",
        (p) =>
          p.status?.initContainerStatuses?.[0]?.state?.running !== undefined &&
          (hostNetwork || p.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] !== undefined),
      );
    } else {
      await this.#waitRunning(pod, []);
    }
    pod.sandboxId = await this.#currentSandboxId(pod.uid);
    return pod;
  }

  /** Lets a pod made with `pending` start: its init container ends; waits for Running. */
  async releasePending(pod: RigPod): Promise<void> {
    const gate = this.#gateDir(pod.namespace, pod.name);
    if (!pathExists(gate)) {
      throw new Error(
        `pod ${pod.namespace}/${pod.name} was not created with pending: true (no ${gate})`,
      );
    }
    await Deno.writeTextFile(`${gate}/open`, "");
    await this.#waitRunning(pod, []);
  }

  /** POSTs a Pod, retrying while its namespace's `default` ServiceAccount is not made yet. */
  async #postPod(
    namespace: string,
    body: Record<string, unknown>,
  ): Promise<{ metadata: { uid: string } }> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        return await this.api.request<{ metadata: { uid: string } }>(
          "POST",
          `/api/v1/namespaces/${namespace}/pods`,
          body,
        );
      } catch (err) {
        const noAccount = err instanceof ApiError && err.status === 403 &&
          /serviceaccount .* not found/i.test(err.message);
        if (!noAccount || Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
  }

  /**
   * Waits until the pod runs with every container started, none of them one of `old` (their
   * CRI IDs), and multus has written network-status (unless hostNetwork).
   */
  async #waitRunning(pod: RigPod, old: readonly string[]): Promise<PodObject> {
    return await this.#waitPod(pod, "to run", (p) => {
      const containers = p.status?.containerStatuses ?? [];
      return p.status?.phase === "Running" && containers.length > 0 &&
        containers.every((c) =>
          c.state?.running !== undefined && !old.includes(c.containerID ?? "")
        ) &&
        (pod.hostNetwork || p.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] !== undefined);
    });
  }

  /**
   * Polls the Pod until `done` holds. Fails at once if the pod is gone, the kubelet has
   * exited, or a container waits for a reason that needs a change to the pod; on timeout the
   * error tells the pod's state and its Warning events.
   */
  async #waitPod(
    pod: RigPod,
    what: string,
    done: (p: PodObject) => boolean,
    timeoutMs = POD_TIMEOUT_MS,
  ): Promise<PodObject> {
    const deadline = Date.now() + timeoutMs;
    let last: PodObject | undefined;
    for (;;) {
      this.#daemons.kubelet.assertAlive();
      last = await this.#getPod(pod);
      if (!last || last.metadata.uid !== pod.uid) {
        throw new Error(`pod ${pod.namespace}/${pod.name} (uid ${pod.uid}) is gone`);
      }
      if (done(last)) return last;
      const statuses = [
        ...(last.status?.initContainerStatuses ?? []),
        ...(last.status?.containerStatuses ?? []),
      ];
      const hopeless = statuses.find((c) => HOPELESS.has(c.state?.waiting?.reason ?? ""));
      if (hopeless || Date.now() > deadline) {
        const events = await this.#warnings(pod).catch(() => []);
        throw new Error(
          `pod ${pod.namespace}/${pod.name} did not come ${what}: ${describePod(last)}` +
            (events.length ? `; warnings: ${events.join(" | ")}` : "") +
            `; see ${this.logFile("kubelet")}`,
        );
      }
      await sleep(100);
    }
  }

  /** The pod's Warning events, as `reason: message`. */
  async #warnings(pod: RigPod): Promise<string[]> {
    const list = await this.api.request<{
      items: { type: string; reason: string; message: string }[];
    }>("GET", `/api/v1/namespaces/${pod.namespace}/events`, undefined, {
      query: { fieldSelector: `involvedObject.uid=${pod.uid}` },
    });
    return list.items.filter((e) => e.type === "Warning").map((e) => `${e.reason}: ${e.message}`);
  }

  async #getPod(pod: PodRef): Promise<PodObject | undefined> {
    return await this.api.getOrUndefined<PodObject>(
      `/api/v1/namespaces/${pod.namespace ?? "default"}/pods/${pod.name}`,
    );
  }

  /** The pod's sandboxes, newest first. */
  async #sandboxes(uid: string): Promise<SandboxSummary[]> {
    const list = await this.cri.listPodSandbox({ [POD_UID_LABEL]: uid });
    return list.sort((a, b) => (BigInt(b.created_at) > BigInt(a.created_at) ? 1 : -1));
  }

  async #currentSandboxId(uid: string): Promise<string> {
    const ready = (await this.#sandboxes(uid)).find((s) => s.state === "SANDBOX_READY");
    if (!ready) {
      throw new Error(`pod uid ${uid} has no ready sandbox in ${this.criSocket}`);
    }
    return ready.id;
  }

  /** The pod as it is now: its current sandbox (the kubelet makes a new one if it dies). */
  async refreshPod(pod: RigPod): Promise<RigPod> {
    return { ...pod, sandboxId: await this.#currentSandboxId(pod.uid) };
  }

  /**
   * Resolves once the kubelet has stopped every sandbox of the pod: none is ready and none
   * keeps its netns (the runtime removes it after the CNI DEL, the last step of a stop).
   */
  async #waitSandboxesStopped(pod: RigPod): Promise<void> {
    await waitFor(
      `the kubelet to stop the sandboxes of pod ${pod.namespace}/${pod.name}`,
      async () => {
        for (const sandbox of await this.#sandboxes(pod.uid)) {
          if (sandbox.state === "SANDBOX_READY") return false;
          const status = await this.cri.podSandboxStatus(sandbox.id).catch(() => undefined);
          let netns: string | undefined;
          try {
            netns = status && netnsPathFromInfo(status.info);
          } catch {
            // a hostNetwork sandbox
          }
          if (netns && pathExists(netns)) return false;
        }
        return true;
      },
      POD_TIMEOUT_MS,
    );
  }

  async #waitGone(pod: RigPod, timeoutMs: number): Promise<void> {
    await waitFor(`pod ${pod.namespace}/${pod.name} to be gone`, async () => {
      const current = await this.#getPod(pod);
      return current === undefined || current.metadata.uid !== pod.uid;
    }, timeoutMs);
  }

  async #deletePodObject(pod: RigPod, body: Record<string, unknown>): Promise<void> {
    try {
      await this.api.request("DELETE", `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`, {
        apiVersion: "v1",
        kind: "DeleteOptions",
        preconditions: { uid: pod.uid },
        ...body,
      });
    } catch (err) {
      // Gone already, or a pod of the same name that is not this one.
      if (!(err instanceof ApiError && (err.status === 404 || err.status === 409))) throw err;
    }
  }

  /**
   * An ordinary graceful deletion (`kubectl delete pod`): the kubelet stops the containers,
   * tears the sandbox down (multus' CNI DEL) and then removes the object. Resolves once the
   * Pod object is gone.
   */
  async deletePod(pod: RigPod): Promise<void> {
    const current = await this.#getPod(pod);
    if (!current || current.metadata.uid !== pod.uid) return;
    const grace = current.spec?.terminationGracePeriodSeconds ?? 30;
    await this.#deletePodObject(pod, {});
    await this.#waitGone(pod, grace * 1000 + POD_TIMEOUT_MS);
    await this.#waitSandboxesStopped(pod);
  }

  /**
   * A forced deletion (`kubectl delete pod --grace-period=0 --force`): the object goes at
   * once, before anything on the node; the kubelet then tears the sandbox down on its own.
   * Resolves once the object is gone and no sandbox of the pod is ready.
   */
  async forceDeletePod(pod: RigPod): Promise<void> {
    await this.#deletePodObject(pod, { gracePeriodSeconds: 0 });
    await this.#waitGone(pod, POD_TIMEOUT_MS);
    await this.#waitSandboxesStopped(pod);
  }

  /** Running containers of the pod, by name. */
  async #runningContainers(pod: RigPod, name?: string) {
    const labels: Record<string, string> = { [POD_UID_LABEL]: pod.uid };
    if (name) labels["io.kubernetes.container.name"] = name;
    return (await this.cri.listContainers(labels)).filter((c) => c.state === "CONTAINER_RUNNING");
  }

  /**
   * A container crash: SIGKILLs the container's first process. The kubelet restarts the
   * container in the same sandbox; resolves once the new one runs.
   */
  async restartContainer(pod: RigPod, container = "app"): Promise<void> {
    const [running] = await this.#runningContainers(pod, container);
    if (!running) {
      throw new Error(`pod ${pod.namespace}/${pod.name} has no running container ${container}`);
    }
    const pid = await this.cri.containerPid(running.id);
    if (pid <= 0) throw new Error(`container ${running.id} has no PID in its CRI status`);
    Deno.kill(pid, "SIGKILL");
    await this.#waitRunning(pod, [`${this.#containerIdPrefix}${running.id}`]);
  }

  /**
   * Kills the pod's current sandbox and resolves once the runtime reports it not ready,
   * without waiting for the kubelet: with the kubelet stopped, the dead sandbox stays as it
   * is. On containerd it SIGKILLs the pause process. CRI-O runs no infra container (its
   * default, `drop_infra_ctr`): its sandbox is only the pinned namespaces, which nothing can
   * kill, so it is lost the one way it can be, a StopPodSandbox behind the kubelet's back (the
   * runtime's CNI DEL and the end of its containers included). Resolves with its ID.
   */
  async killPause(pod: RigPod): Promise<string> {
    const id = await this.#currentSandboxId(pod.uid);
    if (this.runtime === "crio") {
      await this.cri.stopPodSandbox(id);
    } else {
      const status = await this.cri.podSandboxStatus(id);
      const pid = Number(status.info["pid"] ?? 0);
      if (pid <= 0) throw new Error(`sandbox ${id} has no PID in its CRI status`);
      Deno.kill(pid, "SIGKILL");
    }
    await waitFor(
      `${this.#daemons.runtime.spec.name} to see sandbox ${id} die`,
      async () => (await this.cri.podSandboxStatus(id)).state === "SANDBOX_NOTREADY",
      30_000,
    );
    return id;
  }

  /**
   * Sandbox loss: kills the pod's sandbox ({@linkcode Rig.killPause}). The kubelet stops what is left of the
   * sandbox (multus' CNI DEL), makes a new one (multus' CNI ADD plugs the annotation's
   * networks again and rewrites network-status) and restarts the containers in it. Resolves
   * with the pod and its new sandbox ID once it runs again.
   */
  async killSandbox(pod: RigPod): Promise<RigPod> {
    const oldContainers = (await this.#runningContainers(pod)).map((c) =>
      `${this.#containerIdPrefix}${c.id}`
    );
    const oldId = await this.killPause(pod);
    const newId = await waitFor(
      `the kubelet to make a new sandbox for pod ${pod.namespace}/${pod.name}`,
      async () => {
        this.#daemons.kubelet.assertAlive();
        const id = await this.#currentSandboxId(pod.uid).catch(() => undefined);
        return id !== undefined && id !== oldId ? id : undefined;
      },
      POD_TIMEOUT_MS,
    );
    await this.#waitRunning(pod, oldContainers);
    return { ...pod, sandboxId: newId };
  }

  /**
   * The pod sandbox's network namespace path, from CRI PodSandboxStatus(verbose). Throws for a
   * sandbox in the node's network namespace, whatever path the runtime names for it.
   */
  async podNetns(pod: RigPod): Promise<string> {
    const status = await this.cri.podSandboxStatus(pod.sandboxId);
    if (status.networkMode === "NODE") {
      throw new Error(
        `sandbox ${pod.sandboxId} has no network namespace path of its own: it uses the node's ` +
          "(a hostNetwork pod)",
      );
    }
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
   * Stops one part (SIGTERM, then SIGKILL), e.g. to test behaviour while multus or the
   * kubelet is down. Pod sandboxes survive a containerd or kubelet stop.
   * {@linkcode Rig.startPart} brings it back.
   */
  async stopPart(part: RigPart): Promise<void> {
    if (part === "runtime") this.#closeCri();
    await this.#daemons[part].stop();
  }

  /**
   * Closes the rig's CRI channel before the runtime stops; the next call opens a new one. A
   * stopping CRI-O sends HTTP/2 GOAWAY on open connections, and Deno 2.9's HTTP/2 has been
   * seen to abort the process on it (`nghttp2_session.c: find_stream_on_goaway_func: Assertion
   * stream->closed_next == NULL failed`).
   */
  #closeCri(): void {
    this.cri.close();
  }

  /** Starts a part stopped by {@linkcode Rig.stopPart} and waits until it answers. */
  async startPart(part: RigPart): Promise<void> {
    const daemon = this.#daemons[part];
    if (!daemon.alive) daemon.start();
    await this.#waitPart(part);
  }

  async #waitPart(part: RigPart): Promise<void> {
    switch (part) {
      case "etcd":
        return await this.#waitEtcd();
      case "kube-apiserver":
        return await this.#waitApiServer();
      case "kube-controller-manager":
        return await this.#waitControllerManager();
      case "kube-scheduler":
        return await this.#waitScheduler();
      case "multus":
        return await this.#waitMultus();
      case "runtime":
        return await this.#waitRuntime();
      case "kubelet":
        return await this.#waitKubelet();
    }
  }

  async #restart(part: RigPart): Promise<void> {
    if (part === "runtime") this.#closeCri();
    await this.#daemons[part].stop();
    this.#daemons[part].start();
    await this.#waitPart(part);
  }

  /** Restarts the multus daemon (its socket is recreated) and waits for /healthz. */
  async restartMultus(): Promise<void> {
    await this.#restart("multus");
  }

  /**
   * Restarts the node's runtime (containerd's sandboxes keep running in their shims, CRI-O's
   * containers in their conmons) and waits for its CRI.
   */
  async restartRuntime(): Promise<void> {
    await this.#restart("runtime");
  }

  /** Restarts kube-apiserver on the same port and waits for /readyz. */
  async restartApiServer(): Promise<void> {
    await this.#restart("kube-apiserver");
  }

  /** Restarts the kubelet (pods keep running) and waits for /healthz and a Ready Node. */
  async restartKubelet(): Promise<void> {
    await this.#restart("kubelet");
  }

  /** Waits until every part answers. */
  async ready(): Promise<void> {
    await this.#waitEtcd();
    await this.#waitApiServer();
    await this.#waitControllerManager();
    await this.#waitScheduler();
    await this.#waitMultus();
    await this.#waitRuntime();
    await this.#waitKubelet();
  }

  /**
   * Stops everything and removes what the run made: the kubelet first (so that nothing
   * re-creates pods), pod sandboxes (through the CRI, so CNI DEL runs), the other processes,
   * what is left in the rig's cgroups and the cgroups, mounts (the kubelet's volumes among
   * them), links, the kubelet's container log links, the sysctls the kubelet changed (when
   * no other rig holds them) and the run directory. Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const d = this.#daemons;
    await d.kubelet.stop();
    await d["kube-scheduler"].stop();
    await d["kube-controller-manager"].stop();
    if (d.runtime.alive) await removeSandboxes(this.cri).catch(() => undefined);
    this.cri.close();
    this.api.close();
    this.#ipv6Relay?.close();
    await d.multus.stop();
    await d.runtime.stop();
    await d["kube-apiserver"].stop();
    await d.etcd.stop();
    await keepLogs(this.dir, this.id);
    await teardownRunDir(this.dir);
  }
}

export { RIG_BASE_DIR, RIG_LOG_DIR } from "./run_dir.ts";
export { ApiError, KubeApi } from "./kube_api.ts";
export { CriClient, netnsPathFromInfo } from "./cri_client.ts";
export { sleep, waitFor } from "./daemon.ts";
export { run } from "./exec.ts";
export type { RunResult } from "./exec.ts";
export { unixRequest } from "./unix_http.ts";
export type { UnixHttpResponse } from "./unix_http.ts";
