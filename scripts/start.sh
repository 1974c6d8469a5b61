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
exec node --import tsx controller/main.ts
