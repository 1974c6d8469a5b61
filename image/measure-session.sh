#!/usr/bin/env bash
# Measures the session image (the figures of DESIGN.md's prototype, same method): image size; for 5 sessions,
# how long `docker run -d` takes to return and how long until the agent is healthy with its inner daemon ready
# (and the preloads loaded); idle memory by `docker stats --no-stream` 20 s after that (as the bench reads it), with
# each process's anonymous memory. Prints medians.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${SESSION_IMAGE:-runner-session:latest}
RUNS=${RUNS:-5}
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "image size: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
. image/remapped-root.sh
owner=$(remapped_root)
runs=() ready=() mem=() phases=()
for i in $(seq "$RUNS"); do
  name=runner-measure-$$-$i dir=$(mktemp -d)
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/token"
  if [ -n "$owner" ]; then chown -R "$owner" "$dir"; fi
  t0=$(now)
  docker run -d --name "$name" --cap-add SYS_ADMIN --security-opt seccomp=image/seccomp.json \
    --security-opt systempaths=unconfined --device /dev/net/tun --network "${SESSION_NETWORK:-bridge}" --memory 1536m --cpus 1 --pids-limit 2048 \
    -v "$name-docker:/home/learner/.local/share/docker" -v "$dir:/run/runner" "$IMAGE" >/dev/null
  t1=$(now)
  until curl -sf --unix-socket "$dir/agent.sock" -H "Authorization: Bearer $(cat "$dir/token")" http://s/health 2>/dev/null |
    grep -q '"status":"healthy"'; do sleep 0.02; done
  t2=$(now)
  runs+=("$(awk "BEGIN {printf \"%.2f\", $t1 - $t0}")") ready+=("$(awk "BEGIN {printf \"%.2f\", $t2 - $t1}")")
  # Where the time went, from the container's start and the agent's own log times.
  phases+=("$(docker logs "$name" 2>&1 | node -e '
    const started = Date.parse(process.argv[1]);
    const at = {};
    for (const line of require("fs").readFileSync(0, "utf8").split("\n")) {
      try { const { msg, time } = JSON.parse(line); at[msg] ??= time; } catch {}
    }
    const s = (from, to) => ((at[to] - from) / 1000).toFixed(2);
    console.log(`agent listening ${s(started, "agent listening on unix socket")} s, dockerd ready ${s(at["starting dockerd"], "dockerd ready")} s after its start, preload ${s(at["dockerd ready"], "preloaded images")} s`);
  ' "$(docker inspect -f '{{.State.StartedAt}}' "$name")")")
  sleep 20
  mem+=("$(docker stats --no-stream --format '{{.MemUsage}}' "$name" | awk '{print $1}')")
  # Anonymous memory (what docker stats counts, besides kernel memory) by process, MiB.
  anon=$(docker exec "$name" sh -c 'cat /proc/[0-9]*/status 2>/dev/null' |
    awk '/^Name:/ {n=$2} /^RssAnon:/ && n != "sh" && n != "cat" {a[n]+=$2} END {for (k in a) printf "%s %.1f\n", k, a[k]/1024}' |
    sort -k2 -nr | paste -sd, | sed 's/,/, /g')
  docker rm -f "$name" >/dev/null && docker volume rm "$name-docker" >/dev/null && rm -rf "$dir"
  echo "run $i: docker run -d ${runs[-1]} s, healthy ${ready[-1]} s after it, idle ${mem[-1]} ($anon); ${phases[-1]}"
done
echo "median docker run -d: $(printf '%s\n' "${runs[@]}" | median) s"
echo "median run → healthy with inner daemon ready: $(printf '%s\n' "${ready[@]}" | median) s"
echo "idle memory: ${mem[*]}"
echo "median idle memory: $(printf '%s\n' "${mem[@]}" | sed 's/MiB$//' | median) MiB"
