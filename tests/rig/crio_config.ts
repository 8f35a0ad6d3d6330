/**
 * The files a rig's private CRI-O runs with: its `crio.conf`, its `storage.conf`, the
 * signature policy that lets it (and skopeo) take the rig's offline images, and the runc
 * wrapper that keeps `oomScoreAdj` where this host allows it. Every path is inside the run's
 * `crio` directory, the run's CNI directories or the set-up's binaries: nothing of the host's
 * `/etc/crio`, `/var/lib/containers`, `/run/crio` or `/var/run/nri` is used.
 *
 * @module
 */

/** What a rig's CRI-O runs and where it keeps its state. */
export interface CrioConfigOptions {
  /** CRI-O's own directory: storage, sockets, pinned namespaces, exit files. */
  dir: string;
  /** The sandbox ("pause") image reference, copied into CRI-O's storage by skopeo. */
  pauseImage: string;
  /** CNI plugin directory (the Debian plugins and multus-shim). */
  cniBinDir: string;
  /** CNI config directory, where multus writes its multus-shim config. */
  cniConfDir: string;
  /** The set-up's `pinns`. */
  pinns: string;
  /** Debian's `conmon`. */
  conmon: string;
  /** The runc CRI-O runs containers with: the wrapper of {@linkcode runcWrapper}. */
  runtimePath: string;
  /** Where the network namespaces are pinned (`<dir>/netns/<uuid>`); multus must see it. */
  namespacesDir: string;
}

/** CRI-O's `storage.conf`: overlay in the run directory (also read by skopeo). */
export function crioStorageConfig(dir: string): string {
  return `[storage]
driver = "overlay"
graphroot = "${dir}/root"
runroot = "${dir}/runroot"
`;
}

/** The containers-storage reference of `image` in the run's CRI-O storage, for skopeo. */
export function crioStorageReference(dir: string, image: string): string {
  return `containers-storage:[overlay@${dir}/root+${dir}/runroot]${image}`;
}

/** A signature policy that accepts every image: the rig's images are local and unsigned. */
export function signaturePolicy(): string {
  return JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }, null, 2) + "\n";
}

/**
 * A runc wrapper for CRI-O, which hands over to runc after fixing two things in the bundle's
 * `config.json` before `create` and `run`, where this host differs from what CRI-O assumes:
 *
 * - it withholds CAP_SYS_RESOURCE, so runc cannot lower a process's `oom_score_adj` below the
 *   runtime's own; the kubelet asks for -997 for critical pods (the agent's DaemonSet is
 *   `system-node-critical`). containerd clamps it (`restrict_oom_score_adj`); CRI-O has no such
 *   setting, so the wrapper clamps `oomScoreAdj`;
 * - with `dropHugepageLimits`: the kernel has the hugetlb controller (CRI-O reads
 *   `/proc/cgroups`) but no hierarchy mounts it, and runc fails `cannot set hugetlb limit`
 *   for the limits the kubelet sends; containerd leaves them out by default
 *   (`disable_hugetlb_controller`), the wrapper removes them.
 */
export function runcWrapper(runc: string, jq: string, dropHugepageLimits: boolean): string {
  const hugepages = dropHugepageLimits ? " | del(.linux.resources.hugepageLimits)" : "";
  return `#!/bin/sh
command=""
bundle=""
previous=""
for arg in "$@"; do
  case "$previous" in
    --bundle|-b) bundle=$arg ;;
  esac
  case "$arg" in
    --bundle=*) bundle=\${arg#--bundle=} ;;
    create|run) [ -z "$command" ] && command=$arg ;;
  esac
  previous=$arg
done
if [ -n "$command" ] && [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  floor=$(cat /proc/self/oom_score_adj)
  ${jq} --argjson floor "$floor" \\
    '(if (.process.oomScoreAdj // $floor) < $floor then .process.oomScoreAdj = $floor else . end)${hugepages}' \\
    "$bundle/config.json" > "$bundle/config.json.rig" && mv "$bundle/config.json.rig" "$bundle/config.json"
fi
exec ${runc} "$@"
`;
}

/**
 * CRI-O's `crio.conf`: its own socket and state in the run directory, cgroupfs (the kubelet's
 * driver; there is no systemd), the network namespaces pinned where multus sees them, the
 * multus-shim config as its network, no infra container (CRI-O's default: the sandbox is the
 * pinned namespaces), no NRI, AppArmor, SELinux or metrics, and the offline pause image.
 */
export function crioConfig(o: CrioConfigOptions): string {
  const d = o.dir;
  return `[crio]
root = "${d}/root"
runroot = "${d}/runroot"
storage_driver = "overlay"
log_dir = "${d}/logs"
version_file = "${d}/version"
version_file_persist = "${d}/version-persist"
clean_shutdown_file = "${d}/clean.shutdown"

[crio.api]
listen = "${d}/crio.sock"
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
drop_infra_ctr = true
namespaces_dir = "${o.namespacesDir}"
pinns_path = "${o.pinns}"
container_exits_dir = "${d}/exits"
container_attach_socket_dir = "${d}/attach"
hooks_dir = ["${d}/hooks"]
cdi_spec_dirs = ["${d}/cdi"]
decryption_keys_path = "${d}/keys"
irqbalance_config_file = "${d}/irqbalance"
irqbalance_config_restore_file = "disable"
apparmor_profile = "unconfined"
selinux = false
log_to_journald = false

[crio.runtime.runtimes.runc]
runtime_path = "${o.runtimePath}"
runtime_type = "oci"
runtime_root = "${d}/runc-state"
monitor_path = "${o.conmon}"
monitor_cgroup = "pod"

[crio.image]
pause_image = "${o.pauseImage}"
signature_policy = "${d}/policy.json"
signature_policy_dir = "${d}/policies"
big_files_temporary_dir = "${d}/tmp"

[crio.network]
network_dir = "${o.cniConfDir}"
plugin_dirs = ["${o.cniBinDir}"]

[crio.nri]
enable_nri = false

[crio.metrics]
enable_metrics = false
`;
}
