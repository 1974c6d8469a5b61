#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock: installs Debian's docker.io and starts dockerd
# in the background when none runs. Idempotent; safe to call before every test run.
set -euo pipefail

if docker info >/dev/null 2>&1; then exit 0; fi

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
