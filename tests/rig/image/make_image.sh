#!/usr/bin/env bash
# Builds a single-layer OCI image-layout tarball, importable with `ctr images import`,
# from a directory, without any registry.
# usage: make_image.sh IMAGE_REF ROOTFS_DIR ENTRYPOINT_JSON OUT.tar [ENV_JSON [WORKDIR]]
#   ENV_JSON: the image's environment as a JSON list of "NAME=value" (default: a PATH)
set -euo pipefail
ref=$1 rootfs=$2 entrypoint=$3 out=$4
env_json=${5:-'["PATH=/bin:/usr/bin:/sbin"]'} workdir=${6:-/}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/blobs/sha256"

# Stores a file as a content-addressed blob and prints "<digest> <size>".
blob() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$work/blobs/sha256/$digest"
  echo "$digest $size"
}

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
read -r layer_digest layer_size < <(blob "$work/layer.tar")

jq -cn --arg diff "sha256:$layer_digest" --argjson entrypoint "$entrypoint" \
  --argjson env "$env_json" --arg workdir "$workdir" \
  '{architecture: "amd64", os: "linux",
    config: {Entrypoint: $entrypoint, Env: $env, WorkingDir: $workdir},
    rootfs: {type: "layers", diff_ids: [$diff]}}' >"$work/config.json"
read -r config_digest config_size < <(blob "$work/config.json")

jq -cn --arg config "sha256:$config_digest" --argjson config_size "$config_size" \
  --arg layer "sha256:$layer_digest" --argjson layer_size "$layer_size" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $config, size: $config_size},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $layer, size: $layer_size}]}' \
  >"$work/manifest.json"
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")

jq -cn --arg manifest "sha256:$manifest_digest" --argjson manifest_size "$manifest_size" \
  --arg ref "$ref" --arg tag "${ref##*:}" \
  '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: $manifest, size: $manifest_size, platform: {architecture: "amd64", os: "linux"},
    annotations: {"io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": $tag}}]}' \
  >"$work/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
