#!/usr/bin/env bash
# Builds `runner-controller:latest` (Dockerfile.controller): the controller bundled with esbuild, as the agent is
# for the session image, on the same base image and with the session image's Node. Builds those first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${CONTROLLER_IMAGE:-runner-controller:latest}
BASE_IMAGE=${BASE_IMAGE:-runner-base:bookworm}
SESSION_IMAGE=${SESSION_IMAGE:-runner-session:latest}
bash scripts/build-images.sh

out=.build/controller
rm -rf "$out" && mkdir -p "$out/controller"
# The deps are CommonJS inside an ESM bundle: give them require and __dirname (the same banner as the agent's).
banner="import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url';"
banner+=" const require = __cr(import.meta.url); const __filename = __fu(import.meta.url);"
banner+=" const __dirname = __fu(new URL('.', import.meta.url));"
node_modules/.bin/esbuild controller/main.ts --bundle --platform=node --target=node20 --format=esm --log-level=warning \
  --legal-comments=none --external:cpu-features '--external:*.node' \
  --banner:js="$banner" --outfile="$out/controller/main.js"
echo '{"type":"module"}' >"$out/controller/package.json"
# The browser pages' files, beside the bundle where controller/web-assets.ts looks for them.
bash scripts/build-console.sh
mkdir -p "$out/controller/console"
cp -r controller/console/dist "$out/controller/console/dist"
cp -r node_modules/@fastify/swagger-ui/static "$out/controller/swagger-ui"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
DOCKER_BUILDKIT=0 docker build -f Dockerfile.controller --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg SESSION_IMAGE="$SESSION_IMAGE" -t "$IMAGE" "$out" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
echo "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))" >&2
