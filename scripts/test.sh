#!/usr/bin/env bash
# The README's test command: from a fresh machine, install what is missing, build the images, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh
bash scripts/install-deps.sh
bash scripts/ensure-browser.sh
bash scripts/build-images.sh
bash scripts/build-console.sh
npx tsc --noEmit -p .
npx vitest run "$@"
