#!/usr/bin/env bash
# Starts one session by hand, for debugging the image, with the least-privilege flags of DESIGN.md (the same
# as controller/runtime/session-security.ts gives the controller). The agent's socket and token land in a host folder;
# the paths inside the session are core/session-layout.ts's.
#   bash image/run-session.sh [name]        then follow the printed curl commands
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-runner-debug-$$}
IMAGE=${SESSION_IMAGE:-runner-session:latest}
DIR=${SESSION_DIR:-/run/runner-sessions/$NAME}

mkdir -p "$DIR" && chmod 700 "$DIR"
# The token lives in a root-only file in the mounted folder: never in an environment the learner could read.
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/token")
. image/remapped-root.sh
owner=$(remapped_root)
if [ -n "$owner" ]; then chown -R "$owner" "$DIR"; fi

# --cap-add SYS_ADMIN                      rootlesskit mounts and makes namespaces for the inner daemon
# --security-opt seccomp=image/seccomp.json  Docker's default profile plus keyctl and pivot_root
# --security-opt systempaths=unconfined   /proc unmasked, so the inner runc can mount a fresh procfs
# --device /dev/net/tun                    slirp4netns gives the inner daemon its network through a tap device
# --cgroupns private                       the agent puts learner processes in a child cgroup (own pids, CPU share)
# -v NAME-docker:/home/learner/.local/share/docker   the inner data root on a volume: overlay2 needs it
# tini (the image's entrypoint)            reaps the orphans each inner `docker run` leaves
docker run -d --name "$NAME" \
  --cap-add SYS_ADMIN \
  --security-opt seccomp=image/seccomp.json \
  --security-opt systempaths=unconfined \
  --device /dev/net/tun \
  --cgroupns private \
  --network "${SESSION_NETWORK:-bridge}" \
  --memory "${CONTAINER_MEMORY_LIMIT:-1536m}" --cpus "${CONTAINER_CPU_LIMIT:-1}" --pids-limit "${CONTAINER_PIDS_LIMIT:-2048}" \
  -v "$NAME-docker:/home/learner/.local/share/docker" \
  -v "$DIR:/run/runner" \
  "$IMAGE" >/dev/null

cat <<MSG
session $NAME started; agent socket $DIR/agent.sock
  TOKEN=\$(cat $DIR/token)
  curl --unix-socket $DIR/agent.sock -H "Authorization: Bearer \$TOKEN" http://session/health
  curl --unix-socket $DIR/agent.sock -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       -d '{"command":["docker","info","--format","{{.SecurityOptions}}"]}' http://session/exec
  docker exec -it -u learner $NAME bash -l   # a login shell as the learner (/etc/profile.d sets DOCKER_HOST)
stop and clean up:
  docker rm -f $NAME && docker volume rm $NAME-docker && rm -rf $DIR
MSG
