#!/usr/bin/env bash
# Makes `runner-busybox:latest`, a tiny image from Debian's busybox-static (no registry is reachable here).
# Tests build FROM it; the session image preloads it into every inner daemon.
set -euo pipefail
IMAGE=${BUSYBOX_IMAGE:-runner-busybox:latest}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
if [ ! -x /bin/busybox ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
cp /bin/busybox "$dir/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$dir/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
echo 'root:x:0:' >"$dir/etc/group"
tar -C "$dir" -c . | docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null
echo "built $IMAGE" >&2
