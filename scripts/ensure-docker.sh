#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock: installs Debian's docker.io and starts dockerd
# in the background when none runs. A running engine is used as it is. A new one remaps user namespaces
# (`--userns-remap=default`), so that a session's root is not the host's root; DOCKERD_USERNS_REMAP= (empty)
# starts one without. Idempotent; safe to call before every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
REMAP=${DOCKERD_USERNS_REMAP-default}

bridge_lost() {
  # The default bridge's interface can vanish under a running dockerd (another dockerd on the host that managed
  # docker0 removed it); containers then fail with "could not find bridge docker0" until dockerd is restarted.
  [ "$(docker network inspect bridge --format '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null)" = docker0 ] &&
    [ ! -e /sys/class/net/docker0 ]
}

wait_for_engine() {
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "ensure-docker: dockerd did not answer within 30 s; see /var/log/dockerd.log" >&2
  return 1
}

if docker info >/dev/null 2>&1; then
  if ! bridge_lost; then exit 0; fi
  echo "ensure-docker: docker0 is gone; restarting dockerd with its own arguments to recreate it" >&2
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  [ -n "$pid" ] || { echo "ensure-docker: no /var/run/docker.pid: restart dockerd by hand" >&2; exit 1; }
  mapfile -d '' args </proc/"$pid"/cmdline
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  nohup "${args[@]}" >>/var/log/dockerd.log 2>&1 &
  wait_for_engine
  exit
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

flags=()
if [ -n "$REMAP" ]; then
  [ "$REMAP" = default ] || { echo "ensure-docker: DOCKERD_USERNS_REMAP must be 'default' or empty" >&2; exit 2; }
  root_uid=$(bash scripts/prepare-userns-remap.sh)
  flags+=(--userns-remap=default)
  echo "ensure-docker: starting dockerd with --userns-remap=default (a session's root is host uid $root_uid)" >&2
else
  echo "ensure-docker: starting dockerd" >&2
fi
nohup dockerd "${flags[@]}" >/var/log/dockerd.log 2>&1 &
wait_for_engine
