#!/usr/bin/env bash
# The README's start command. Until the controller lands it starts the agent alone against the host's Docker
# engine, on TCP 127.0.0.1:8080 with a token printed below, and a workspace in ./.dev-workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
bash scripts/install-deps.sh
bash scripts/build-images.sh
export AGENT_WORKSPACE=${AGENT_WORKSPACE:-$PWD/.dev-workspace}
export AGENT_LISTEN=${AGENT_LISTEN:-127.0.0.1:8080}
export AGENT_TOKEN=${AGENT_TOKEN:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')}
mkdir -p "$AGENT_WORKSPACE"
echo "agent on http://$AGENT_LISTEN, workspace $AGENT_WORKSPACE, token: $AGENT_TOKEN" >&2
exec npx tsx agent/main.ts
