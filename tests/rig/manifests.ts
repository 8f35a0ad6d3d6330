/**
 * Documents the rig writes or sends: the NetworkAttachmentDefinition CRD, containerd's
 * config and kubeconfigs.
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
