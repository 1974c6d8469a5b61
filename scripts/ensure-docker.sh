#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock: installs Debian's docker.io and starts dockerd
# when none runs. A running engine is used as it is and never restarted: when it is unhealthy this says what is
# wrong and fails. A new one remaps user namespaces (`--userns-remap=default`), so that a session's root is not the
# host's root; DOCKERD_USERNS_REMAP= (empty) starts one without. The engine runs in a session of its own (setsid), so
# a Ctrl-C of the command that called this never reaches it. Its one log is /var/log/dockerd.log. Idempotent; safe to
# call before every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
REMAP=${DOCKERD_USERNS_REMAP-default}
SOCKET=/var/run/docker.sock
PID_FILE=/var/run/docker.pid
LOG=/var/log/dockerd.log

fail() {
  echo "ensure-docker: $*" >&2
  exit 1
}

bridge_lost() {
  # The default bridge's interface can vanish under a running dockerd (another dockerd on the host that managed
  # docker0 removed it); containers then fail with "could not find bridge docker0" until dockerd is restarted.
  [ "$(docker network inspect bridge --format '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null)" = docker0 ] &&
    [ ! -e /sys/class/net/docker0 ]
}

# The pid in the pid file when that process is a dockerd that still runs.
running_engine_pid() {
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null || true)
  [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = dockerd ] && echo "$pid"
}

wait_for_engine() {
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

if docker info >/dev/null 2>&1; then
  if bridge_lost; then
    # Restarting the engine would stop every container on this host: that is the operator's call, not ours.
    fail "the engine runs but its docker0 interface is gone, so new containers cannot start; restart dockerd yourself (e.g. systemctl restart docker)"
  fi
  exit 0
fi

# Never a second engine beside one that runs but does not answer (starting up, or stuck).
pid=$(running_engine_pid || true)
if [ -n "$pid" ]; then
  wait_for_engine || fail "dockerd (pid $pid, from $PID_FILE) runs but does not answer on $SOCKET; see its log (e.g. $LOG)"
  exit 0
fi
if [ -S "$SOCKET" ] && curl -s --max-time 5 --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1; then
  fail "something answers on $SOCKET but \`docker info\` fails: check who serves it and whether this user may use it"
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
  echo "ensure-docker: starting dockerd with --userns-remap=default (a session's root is host uid $root_uid); log: $LOG" >&2
else
  echo "ensure-docker: starting dockerd; log: $LOG" >&2
fi
# setsid: its own session and process group, so no signal to ours (Ctrl-C, a hang-up) reaches it.
setsid dockerd "${flags[@]}" </dev/null >"$LOG" 2>&1 &
engine=$!
if ! wait_for_engine; then
  # A half-started engine is stopped again: nothing is left running beside the one log.
  kill "$engine" 2>/dev/null || true
  tail -n 20 "$LOG" >&2 || true
  fail "dockerd did not answer within 30 s; its log is $LOG"
fi
