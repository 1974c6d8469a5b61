#!/usr/bin/env bash
# Installs the npm dependencies when package-lock.json changed since the last install (node-pty builds from source).
# A node_modules that is a link to an install elsewhere (shared by several checkouts) is never reinstalled from
# here: `npm ci` would empty the install every other checkout uses.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -L node_modules ]; then
  if [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "install-deps: node_modules links to $(readlink -f node_modules), older than package-lock.json: install there" >&2
  fi
  exit 0
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
