#!/usr/bin/env bash
# Builds `runner-session:latest` from Dockerfile.session on the local base image. Skips itself when the image's
# `runner.content-hash` label matches the hash of everything that goes into it (agent, core and shared sources, the
# lock file, the Dockerfile and build scripts, the base and busybox images), so every `npm test` may call it.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${SESSION_IMAGE:-runner-session:latest}
BASE_IMAGE=${BASE_IMAGE:-runner-base:bookworm}
BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-runner-busybox:latest}
NODE_MAJOR=${NODE_MAJOR:-24}

hash=$({
  find agent core shared -type f -name '*.ts' -print0 | sort -z | xargs -0 sha256sum
  sha256sum Dockerfile.session image/build-agent.sh image/bundle-agent.mjs image/build-session-image.sh package-lock.json \
    image/seccomp.json image/agent-stubs/* image/build-learner-exec.sh image/learner-exec/*
  docker image inspect -f '{{.Id}}' "$BASE_IMAGE" "$BUSYBOX_IMAGE"
  echo "node $NODE_MAJOR"
} | sha256sum | cut -c1-16)
old=$(docker image inspect -f '{{.Id}} {{index .Config.Labels "runner.content-hash"}}' "$IMAGE" 2>/dev/null || true)
if [ "${old#* }" = "$hash" ]; then exit 0; fi

echo "building $IMAGE (content $hash)" >&2
bash image/build-agent.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The classic builder (the CLI has no buildx here) warns that it is deprecated: show its output only on failure.
DOCKER_BUILDKIT=0 docker build -f Dockerfile.session --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --label runner.content-hash="$hash" -t "$IMAGE" .build/session >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
# The replaced image is garbage now, unless a running session still uses it.
if [ -n "$old" ]; then docker image rm "${old%% *}" >/dev/null 2>&1 || true; fi
echo "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))" >&2
