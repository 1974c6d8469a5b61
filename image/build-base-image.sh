#!/usr/bin/env bash
# Makes the session image's base, `runner-base:bookworm`, with debootstrap and `docker import`: no registry is
# reachable here, so `debian:bookworm-slim` cannot be pulled. Skips itself when the image exists.
set -euo pipefail
IMAGE=${BASE_IMAGE:-runner-base:bookworm}
SUITE=${BASE_SUITE:-bookworm}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "building $IMAGE with debootstrap (about 30 s)" >&2
debootstrap --variant=minbase "$SUITE" "$dir" >"$dir.log" 2>&1 || { cat "$dir.log" >&2; exit 1; }
rm -f "$dir.log"
# Trim what a container never uses: apt lists and caches are refilled by `apt-get update` in Dockerfile.session.
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
tar -C "$dir" -c . | docker import --change 'CMD ["/bin/bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE" >/dev/null
echo "built $IMAGE" >&2
