#!/usr/bin/env bash
# Makes the rig's pod image root filesystem from Debian's busybox-static package: the static
# /bin/busybox, a link in /bin for each applet it has (sh, sleep, ip, cat …), the passwd and
# group files that tools look users up in, and a world-writable /tmp.
# usage: busybox_rootfs.sh BUSYBOX_STATIC.deb ROOTFS_DIR
set -euo pipefail
deb=$1 rootfs=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work"
busybox=$work/bin/busybox
[ -x "$busybox" ] || { echo "busybox_rootfs.sh: $deb has no /bin/busybox" >&2; exit 1; }

mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
# The package's own binary lists its applets; each becomes a relative link next to it.
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
  >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$rootfs/etc/group"
