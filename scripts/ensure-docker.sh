#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock: installs Debian's docker.io and starts dockerd
# in the background when none runs. Idempotent; safe to call before every test run.
set -euo pipefail

bridge_lost() {
  # The default bridge's interface can vanish under a running dockerd (another dockerd on the host that managed
  # docker0 removed it); containers then fail with "could not find bridge docker0" until dockerd is restarted.
  [ "$(docker network inspect bridge --format '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null)" = docker0 ] &&
    [ ! -e /sys/class/net/docker0 ]
}

if docker info >/dev/null 2>&1; then
  if ! bridge_lost; then exit 0; fi
  echo "ensure-docker: docker0 is gone; restarting dockerd to recreate it" >&2
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

echo "ensure-docker: starting dockerd" >&2
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "ensure-docker: dockerd did not answer within 30 s; see /var/log/dockerd.log" >&2
exit 1
