#!/usr/bin/env bash
# Builds the operator console the controller serves at /console into controller/console/dist (git-ignored): the
# page's script bundled with esbuild (xterm.js and its addons from npm), its styles with xterm's, and its HTML.
set -euo pipefail
cd "$(dirname "$0")/.."
src=controller/console/ui
out=controller/console/dist
mkdir -p .build
# One build at a time: two test runs at once would write the same folder.
exec 8>.build/build-console.lock
flock 8
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
node_modules/.bin/esbuild "$src/console.ts" "$src/console.css" --bundle --format=esm --target=es2022 --minify \
  --legal-comments=linked --log-level=warning --entry-names='[name]' --outdir="$out.tmp"
cp "$src/index.html" "$out.tmp/"
rm -rf "$out" && mv "$out.tmp" "$out"
