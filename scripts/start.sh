#!/usr/bin/env bash
# The README's start command: installs what is missing (Docker engine, npm dependencies), builds the images
# (the session image included), then starts the controller on :8080. Configure it by environment (README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
bash scripts/install-deps.sh
bash scripts/build-images.sh
bash scripts/build-console.sh
if [ -z "${RUNNER_API_TOKEN:-}" ]; then
  echo "start: RUNNER_API_TOKEN is not set: the controller listens on 127.0.0.1 only, without authentication" >&2
fi
# exec: the controller itself receives SIGTERM and shuts down cleanly (sessions keep running).
# --initial-old-space-size: V8 skips full garbage collections while the old generation is below 96 MiB. Every 64 KiB
# a file transfer moves is a fresh buffer outside the heap, and V8 counts up to 32 MiB of them, dead but not yet
# collected, against the heap's headroom: with the few MiB it leaves a 30 MiB heap by itself, a transfer kept it
# marking the whole heap over and over, two thirds of the controller's CPU per byte (docs/benchmarks.md).
exec node --initial-old-space-size=96 --import tsx controller/main.ts
