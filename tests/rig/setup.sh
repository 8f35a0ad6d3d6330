#!/usr/bin/env bash
# Installs and builds everything the node rig needs, then writes the paths the rig uses to
# $DNC_RIG_CACHE/paths.json (and to $DNC_RIG_PATHS if set). Idempotent: a warm run only
# checks and takes seconds.
#
#   Debian packages   etcd-server, containerd, runc, containernetworking-plugins, iproute2, jq, gcc …
#   kube-apiserver    built from the Go module proxy, pinned in tests/rig/kube/go.mod
#   kubectl, kubelet, kube-scheduler, kube-controller-manager
#                     same pin, same flags
#   multus            multus-daemon and multus-shim, pinned in tests/rig/multus/go.mod
#   CRI-O             crio and pinns, pinned in tests/rig/crio/go.mod; conmon, runc and skopeo
#                     (to put the images into its storage) from Debian
#   pause image       a static C pause packed as an OCI tarball, no registry needed
#   pod image         Debian's busybox-static (a shell and sleep), packed the same way
#
# Builds land in $DNC_RIG_CACHE (default /var/cache/dnc-rig), in a directory named by the pinned
# version and a hash of go.mod, go.sum and the build flags: a new pin rebuilds, an unchanged one
# is reused. Build logs stay in $DNC_RIG_CACHE/logs. Each step prints its time.
set -euo pipefail

# The whole script is one function, so bash has read all of it before running any:
# editing the file while a set-up runs cannot derail it.
main() {
  rig_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  cache=${DNC_RIG_CACHE:-/var/cache/dnc-rig}
  mkdir -p "$cache/bin" "$cache/logs" "$cache/image"

  now_ms() { date +%s%3N; }
  setup_start=$(now_ms)
  step_start=$setup_start
  step_name=""
  begin() {
    step_name=$1
    step_start=$(now_ms)
  }
  done_step() { printf 'rig set-up: %-40s %6d ms\n' "$step_name${1:+ ($1)}" $(($(now_ms) - step_start)); }
  fail() {
    echo "rig set-up: $*" >&2
    exit 1
  }

  if [ "$(id -u)" != 0 ]; then
    echo "rig set-up: skipped, not root (the rig runs containerd, netns and mounts, which need root)"
    exit 0
  fi

  # One set-up at a time: a second caller waits here, then finds everything cached.
  exec 9>"$cache/.setup.lock"
  flock 9

  # ---------------------------------------------------------------------------------------------
  begin "Debian packages"
  packages=(etcd-server containerd runc containernetworking-plugins iproute2 jq gcc libc6-dev
    openssl util-linux tar coreutils curl make conmon skopeo libseccomp-dev libsqlite3-dev)
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "rig set-up: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >"$cache/logs/apt.log" 2>&1 ||
      { apt-get update >>"$cache/logs/apt.log" 2>&1 &&
        apt-get install -y --no-install-recommends "${missing[@]}" >>"$cache/logs/apt.log" 2>&1; } ||
      fail "apt-get install ${missing[*]} failed; see $cache/logs/apt.log"
    done_step "installed ${missing[*]}"
  else
    done_step "present"
  fi

  # ---------------------------------------------------------------------------------------------
  # Go builds. GOTOOLCHAIN=local: use the installed Go, never download another toolchain.
  export GOTOOLCHAIN=local GOFLAGS=-mod=mod
  command -v go >/dev/null || fail "go is not installed; install Go 1.24 or newer (https://go.dev/dl/) and re-run"

  # Prints the version a go.mod requires for a module.
  pinned() { awk -v m="$2" '$1 == "require" && $2 == m { print $3 } $1 == m && $2 ~ /^v/ { print $2 }' "$1" | head -n1; }

  kube_version=$(pinned "$rig_dir/kube/go.mod" k8s.io/kubernetes)
  multus_version=$(pinned "$rig_dir/multus/go.mod" gopkg.in/k8snetworkplumbingwg/multus-cni.v4)
  crio_version=$(pinned "$rig_dir/crio/go.mod" github.com/cri-o/cri-o)
  [ -n "$kube_version" ] || fail "no k8s.io/kubernetes requirement in $rig_dir/kube/go.mod"
  [ -n "$multus_version" ] || fail "no multus-cni.v4 requirement in $rig_dir/multus/go.mod"
  [ -n "$crio_version" ] || fail "no github.com/cri-o/cri-o requirement in $rig_dir/crio/go.mod"
  # Version stamps, as the upstream release builds set them (kubectl version, /version).
  kube_minor=$(echo "$kube_version" | cut -d. -f2)
  kube_ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
    kube_ldflags+=" -X $pkg.gitTreeState=clean"
  done
  multus_ldflags="-s -w -X gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.version=$multus_version"

  # The cache directory is keyed by the pin (go.mod, go.sum) and the flags: a change rebuilds.
  key() { cat "$1/go.mod" "$1/go.sum" 2>/dev/null | cat - <(echo "$2") | sha256sum | cut -c1-10; }
  kube_bin=$cache/bin/kube-$kube_version-$(key "$rig_dir/kube" "$kube_ldflags")
  multus_bin=$cache/bin/multus-$multus_version-$(key "$rig_dir/multus" "$multus_ldflags")
  # CRI-O's own release build tags, less what needs libraries Debian's runtime lacks (btrfs,
  # ostree, gpgme); seccomp and sqlite link against Debian's libseccomp and libsqlite3.
  crio_tags="containers_image_ostree_stub containers_image_openpgp exclude_graphdriver_btrfs btrfs_noversion seccomp libsqlite3"
  crio_ldflags="-s -w"
  crio_bin=$cache/bin/crio-$crio_version-$(key "$rig_dir/crio" "$crio_ldflags $crio_tags")

  # Builds one Go command from a module dir into the cache, unless it is already there.
  build() {
    local module_dir=$1 package=$2 out=$3 ldflags=$4 tags=${5:-} log
    log=$cache/logs/build-$(basename "$(dirname "$out")")-$(basename "$out").log
    begin "build $(basename "$out")"
    if [ -x "$out" ]; then
      done_step "cached"
      return
    fi
    mkdir -p "$(dirname "$out")"
    echo "rig set-up: building $package (log: $log); a cold build takes minutes"
    if ! (cd "$module_dir" && go build -trimpath -tags="$tags" -ldflags="$ldflags" -o "$out.tmp" "$package") >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      fail "go build $package failed in $module_dir; full log in $log"
    fi
    mv "$out.tmp" "$out"
    done_step "built"
  }

  build "$rig_dir/kube" k8s.io/kubernetes/cmd/kube-apiserver "$kube_bin/kube-apiserver" "$kube_ldflags"
  build "$rig_dir/kube" k8s.io/kubernetes/cmd/kubectl "$kube_bin/kubectl" "$kube_ldflags"
  build "$rig_dir/kube" k8s.io/kubernetes/cmd/kubelet "$kube_bin/kubelet" "$kube_ldflags"
  build "$rig_dir/kube" k8s.io/kubernetes/cmd/kube-scheduler "$kube_bin/kube-scheduler" "$kube_ldflags"
  build "$rig_dir/kube" k8s.io/kubernetes/cmd/kube-controller-manager \
    "$kube_bin/kube-controller-manager" "$kube_ldflags"
  build "$rig_dir/multus" gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus-daemon \
    "$multus_bin/multus-daemon" "$multus_ldflags"
  build "$rig_dir/multus" gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus-shim \
    "$multus_bin/multus-shim" "$multus_ldflags"
  # GOSUMDB=off: the checksum database answers 404 for one of CRI-O's modules
  # (github.com/CloudNativeAI/model-spec); go.sum, committed, still pins every hash.
  CGO_ENABLED=1 GOSUMDB=off build "$rig_dir/crio" github.com/cri-o/cri-o/cmd/crio \
    "$crio_bin/crio" "$crio_ldflags" "$crio_tags"

  # pinns (CRI-O's helper that pins namespaces to files) is C with a Makefile in the module;
  # the module cache is read-only, so it is built from a copy.
  begin "build pinns"
  if [ -x "$crio_bin/pinns" ]; then
    done_step "cached"
  else
    crio_module=$(cd "$rig_dir/crio" && GOSUMDB=off go list -m -f '{{.Dir}}' github.com/cri-o/cri-o)
    [ -d "$crio_module/pinns" ] || fail "no pinns/ in $crio_module; check tests/rig/crio/go.mod"
    work=$(mktemp -d)
    cp -r "$crio_module/pinns" "$work/pinns"
    chmod -R u+w "$work"
    make -C "$work/pinns" >"$cache/logs/build-pinns.log" 2>&1 ||
      { tail -n 30 "$cache/logs/build-pinns.log" >&2; fail "make pinns failed; full log in $cache/logs/build-pinns.log"; }
    mv "$work/bin/pinns" "$crio_bin/pinns"
    rm -rf "$work"
    done_step "built"
  fi

  # ---------------------------------------------------------------------------------------------
  # The pause image, keyed by the hash of its sources so a change rebuilds it.
  begin "pause image"
  image_key=$(cat "$rig_dir/image/pause.c" "$rig_dir/image/make_image.sh" | sha256sum | cut -c1-12)
  pause_tar=$cache/image/pause-$image_key.tar
  if [ -s "$pause_tar" ]; then
    done_step "cached"
  else
    work=$(mktemp -d)
    gcc -Os -static -o "$work/pause" "$rig_dir/image/pause.c"
    mkdir -p "$work/rootfs"
    cp "$work/pause" "$work/rootfs/pause"
    bash "$rig_dir/image/make_image.sh" localhost/dnc-rig/pause:"$image_key" "$work/rootfs" '["/pause"]' "$pause_tar"
    rm -rf "$work"
    done_step "built"
  fi

  # ---------------------------------------------------------------------------------------------
  # The pod image: Debian's busybox-static (a shell, sleep and the usual tools), keyed by the
  # package version and the scripts that pack it. apt-get download needs no install.
  begin "pod image"
  # apt-cache takes half a second here (no package cache file): its answer is kept until the
  # package lists change.
  lists_stamp=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0)
  read -r known_stamp busybox_version 2>/dev/null <"$cache/image/busybox-static.version" || true
  if [ "${known_stamp:-}" != "$lists_stamp" ] || [ -z "${busybox_version:-}" ]; then
    busybox_version=$(apt-cache show --no-all-versions busybox-static 2>/dev/null | awk '$1 == "Version:" { print $2; exit }')
    if [ -z "$busybox_version" ]; then
      apt-get update >>"$cache/logs/apt.log" 2>&1 || fail "apt-get update failed; see $cache/logs/apt.log"
      lists_stamp=$(stat -c %Y /var/lib/apt/lists)
      busybox_version=$(apt-cache show --no-all-versions busybox-static | awk '$1 == "Version:" { print $2; exit }')
    fi
    [ -n "$busybox_version" ] || fail "apt-cache knows no busybox-static; check /etc/apt/sources.list"
    echo "$lists_stamp $busybox_version" >"$cache/image/busybox-static.version"
  fi
  pod_key=$(cat "$rig_dir/image/busybox_rootfs.sh" "$rig_dir/image/make_image.sh" <(echo "$busybox_version") |
    sha256sum | cut -c1-12)
  pod_tar=$cache/image/busybox-$pod_key.tar
  if [ -s "$pod_tar" ]; then
    done_step "cached"
  else
    work=$(mktemp -d)
    (cd "$work" && apt-get download "busybox-static=$busybox_version") >>"$cache/logs/apt.log" 2>&1 ||
      fail "apt-get download busybox-static=$busybox_version failed; see $cache/logs/apt.log"
    bash "$rig_dir/image/busybox_rootfs.sh" "$work"/busybox-static_*.deb "$work/rootfs"
    bash "$rig_dir/image/make_image.sh" localhost/dnc-rig/busybox:"$pod_key" "$work/rootfs" '["/bin/sh"]' "$pod_tar"
    rm -rf "$work"
    done_step "built from busybox-static $busybox_version"
  fi

  # ---------------------------------------------------------------------------------------------
  begin "paths"
  cni_bin=/usr/lib/cni
  for plugin in bridge host-local macvlan static tuning loopback; do
    [ -x "$cni_bin/$plugin" ] || fail "CNI plugin $cni_bin/$plugin is missing; reinstall containernetworking-plugins"
  done
  jq -n \
    --arg etcd "$(command -v etcd)" \
    --arg containerd "$(command -v containerd)" \
    --arg ctr "$(command -v ctr)" \
    --arg kubeApiserver "$kube_bin/kube-apiserver" \
    --arg kubectl "$kube_bin/kubectl" \
    --arg kubelet "$kube_bin/kubelet" \
    --arg kubeScheduler "$kube_bin/kube-scheduler" \
    --arg kubeControllerManager "$kube_bin/kube-controller-manager" \
    --arg multusDaemon "$multus_bin/multus-daemon" \
    --arg multusShim "$multus_bin/multus-shim" \
    --arg crio "$crio_bin/crio" \
    --arg pinns "$crio_bin/pinns" \
    --arg conmon "$(command -v conmon)" \
    --arg runc "$(command -v runc)" \
    --arg skopeo "$(command -v skopeo)" \
    --arg cniBinDir "$cni_bin" \
    --arg pauseImageTar "$pause_tar" \
    --arg pauseImage "localhost/dnc-rig/pause:$image_key" \
    --arg podImageTar "$pod_tar" \
    --arg podImage "localhost/dnc-rig/busybox:$pod_key" \
    --arg kubeVersion "$kube_version" \
    --arg multusVersion "$multus_version" \
    --arg crioVersion "$crio_version" \
    '$ARGS.named' >"$cache/paths.json.tmp"
  # A copy where the caller asked (the rig keeps one per checkout: checkouts with other pins
  # share this cache, and each set-up rewrites paths.json).
  if [ -n "${DNC_RIG_PATHS:-}" ]; then
    cp "$cache/paths.json.tmp" "$DNC_RIG_PATHS.tmp"
    mv "$DNC_RIG_PATHS.tmp" "$DNC_RIG_PATHS"
  fi
  mv "$cache/paths.json.tmp" "$cache/paths.json"
  done_step "$cache/paths.json"

  printf 'rig set-up: %-40s %6d ms\n' "total" $(($(now_ms) - setup_start))
}

main "$@"
