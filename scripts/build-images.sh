#!/usr/bin/env bash
# Builds the images the tests and the runner use. Each step skips itself when its image is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
# One build at a time: two test runs at once would stage .build/session over each other.
mkdir -p .build
exec 9>.build/build-images.lock
flock 9
bash image/build-busybox-image.sh
bash image/build-base-image.sh
bash image/build-session-image.sh
