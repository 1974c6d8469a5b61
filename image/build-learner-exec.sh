#!/usr/bin/env bash
# Builds learner-exec (image/learner-exec/learner-exec.c), the program every exec starts as, statically linked
# against musl: no dynamic loader runs in it while it is root, and it starts in a fifth of a millisecond. Compiled
# on the host, like node-pty, into .build/learner-exec/ (again only when its source changed); with a path, copies it
# there too. Prints nothing on success. Installs gcc and musl-tools (musl-gcc) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
src=image/learner-exec/learner-exec.c
bin=.build/learner-exec/learner-exec
mkdir -p "$(dirname "$bin")"
# Test workers build it at once: one compiles, the others wait and find it done.
exec 9>"$(dirname "$bin")/.lock"
flock 9
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$0" -nt "$bin" ]; then
  if ! command -v musl-gcc >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc musl-tools >/dev/null
  fi
  # -static with musl: no PT_INTERP, no loader; test/unit/agent/exec/learner-exec.test.ts checks that.
  musl-gcc -static -Os -s -Wall -Wextra -Werror -o "$bin.$$" "$src"
  mv "$bin.$$" "$bin"
fi
if [ $# -gt 0 ]; then install -D -m 755 "$bin" "$1"; fi
