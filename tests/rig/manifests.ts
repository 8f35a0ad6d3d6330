/**
 * Documents the rig writes or sends: the NetworkAttachmentDefinition CRD, containerd's
 * config, the kubelet's configuration and kubeconfigs.
 *
 * @module
 */

/** Name of the NetworkAttachmentDefinition CRD. */
export const NAD_CRD_NAME = "network-attachment-definitions.k8s.cni.cncf.io";

/** The NetworkAttachmentDefinition CRD (k8s.cni.cncf.io/v1, namespaced, `spec.config` string). */
export function nadCrd(): Record<string, unknown> {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: NAD_CRD_NAME },
    spec: {
      group: "k8s.cni.cncf.io",
      scope: "Namespaced",
      names: {
        plural: "network-attachment-definitions",
        singular: "network-attachment-definition",
        kind: "NetworkAttachmentDefinition",
        shortNames: ["net-attach-def", "nad"],
      },
      versions: [{
        name: "v1",
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: "object",
            description: "A request to attach a pod to a network, with its CNI configuration.",
            properties: {
              apiVersion: { type: "string" },
              kind: { type: "string" },
              metadata: { type: "object" },
              spec: {
                type: "object",
                properties: { config: { type: "string" } },
              },
            },
          },
        },
      }],
    },
  };
}

/** Where containerd keeps its state, and what its CRI plugin runs. */
export interface ContainerdConfigOptions {
  /** containerd's own directory: root, state, sockets, runc state. */
  dir: string;
  /** The sandbox ("pause") image reference, imported from a tarball. */
  pauseImage: string;
  /** CNI plugin directory (the Debian plugins and multus-shim). */
  cniBinDir: string;
  /** CNI config directory, where multus writes 00-multus.conf. */
  cniConfDir: string;
}

/** containerd's config.toml: private dirs and sockets, the CRI plugin with multus as CNI. */
export function containerdConfig(o: ContainerdConfigOptions): string {
  return `version = 2
root = "${o.dir}/root"
state = "${o.dir}/state"
oom_score = 0

[grpc]
  address = "${o.dir}/containerd.sock"

[ttrpc]
  address = "${o.dir}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "${o.dir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${o.pauseImage}"
  disable_apparmor = true
  # This machine lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below 0.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "${o.dir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${o.cniBinDir}"
    conf_dir = "${o.cniConfDir}"
    max_conf_num = 1
`;
}

/** What the rig's kubelet runs on and where it keeps its files. */
export interface KubeletConfigOptions {
  /** The node IP (an address the rig owns); the kubelet's API listens there. */
  nodeIp: string;
  /** The kubelet's API port (exec, logs), on `nodeIp`. */
  port: number;
  /** Its /healthz port, on 127.0.0.1. */
  healthzPort: number;
  /** containerd's CRI socket. */
  criSocket: string;
  /** The cgroup the kubelet puts `kubepods` under, e.g. `/dnc-rig-ab12cd`. */
  cgroupRoot: string;
  /** The CA whose client certificates the kubelet's API accepts (the API server's). */
  clientCaFile: string;
  /** Where containers' logs go (instead of /var/log/pods). */
  podLogsDir: string;
  /** Where FlexVolume plugins would be (instead of /usr/libexec/kubernetes). */
  volumePluginDir: string;
  /** Pods the node takes. */
  maxPods: number;
}

/**
 * A KubeletConfiguration (kubelet.config.k8s.io/v1beta1, as JSON) for a rig node: containerd
 * through cgroupfs under the rig's own cgroup root, on a host without systemd, swap checks or
 * CAP_SYS_RESOURCE; its API authenticated by client certificate or token and authorized by
 * the API server; nothing of the host's own paths; no eviction or image collection that could
 * take the rig's offline images or pods.
 */
export function kubeletConfig(o: KubeletConfigOptions): Record<string, unknown> {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    address: o.nodeIp,
    port: o.port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: o.healthzPort,
    containerRuntimeEndpoint: `unix://${o.criSocket}`,
    // containerd's runc uses cgroupfs, and there is no systemd.
    cgroupDriver: "cgroupfs",
    cgroupRoot: o.cgroupRoot,
    failSwapOn: false,
    failCgroupV1: false,
    // Lowering its own oom_score_adj needs CAP_SYS_RESOURCE, which this host withholds.
    oomScoreAdj: 0,
    // No kube-proxy, and the host's iptables are not the rig's to change.
    makeIPTablesUtilChains: false,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: o.clientCaFile },
    },
    authorization: { mode: "Webhook" },
    podLogsDir: o.podLogsDir,
    volumePluginDir: o.volumePluginDir,
    maxPods: o.maxPods,
    // Shared hosts run near full; the rig's pods must not be evicted for that.
    evictionHard: {
      "memory.available": "100Mi",
      "nodefs.available": "1%",
      "nodefs.inodesFree": "1%",
      "imagefs.available": "1%",
    },
    // The images are imported offline: never collect them.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // No cluster DNS: pods use dnsPolicy Default (the host's resolv.conf).
    resolvConf: "/etc/resolv.conf",
    clusterDomain: "cluster.local",
  };
}

/** A kubeconfig (JSON, which kubectl and client libraries read as YAML) for one user. */
export function kubeconfigJson(
  name: string,
  server: string,
  caPem: string,
  user: Record<string, string>,
): string {
  const b64 = (s: string) => btoa(s);
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "dnc-rig",
        cluster: { server, "certificate-authority-data": b64(caPem) },
      }],
      users: [{ name, user }],
      contexts: [{ name, context: { cluster: "dnc-rig", user: name } }],
      "current-context": name,
    },
    null,
    2,
  ) + "\n";
}
