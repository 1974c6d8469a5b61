#!/usr/bin/env bash
# Prepares the host for an engine started with `dockerd --userns-remap=default`, before it starts (an engine reads
# the ranges only at its start). Idempotent; prints the remapped root's uid.
# - The `dockremap` user (created as dockerd would) gets at least 165536 subordinate uids and gids: a session's
#   learner owns sub-ids up to 165535 inside the session (the image's /etc/subuid), so with dockerd's own default
#   of 65536 the inner daemon fails in newuidmap.
# - /dev/net/tun is made 0666, udev's default: a remapped container gets the host's node bind-mounted (it may not
#   make device nodes), so a root-only node is closed to the session and its inner daemon has no network.
set -euo pipefail
USER_NAME=dockremap
NEEDED=165536
FIRST=100000

if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --shell /bin/false "$USER_NAME"
fi
touch /etc/subuid /etc/subgid
if [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi

# The start of the user's first range in FILE when that range holds at least NEEDED ids, else nothing.
big_enough() {
  awk -F: -v u="$USER_NAME" -v n="$NEEDED" '$1 == u { if ($3 >= n) print $2; exit }' "$1"
}

uid_start=$(big_enough /etc/subuid)
gid_start=$(big_enough /etc/subgid)
if [ -n "$uid_start" ] && [ "$uid_start" = "$gid_start" ]; then
  echo "$uid_start"
  exit 0
fi

# Replace the user's ranges with one past every other user's, the same in both files.
for file in /etc/subuid /etc/subgid; do
  awk -F: -v u="$USER_NAME" '$1 != u' "$file" >"$file.tmp" && cat "$file.tmp" >"$file" && rm -f "$file.tmp"
done
start=$(cat /etc/subuid /etc/subgid | awk -F: -v s="$FIRST" 'NF == 3 && $2 + $3 > s { s = $2 + $3 } END { print s }')
echo "$USER_NAME:$start:$NEEDED" >>/etc/subuid
echo "$USER_NAME:$start:$NEEDED" >>/etc/subgid
echo "prepare-userns-remap: $USER_NAME maps to $start:$NEEDED in /etc/subuid and /etc/subgid" >&2
echo "$start"
