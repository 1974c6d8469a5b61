#!/usr/bin/env bash
# Builds the images the tests and the runner use. Each step skips itself when its image is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
bash image/build-busybox-image.sh
bash image/build-base-image.sh
bash image/build-session-image.sh
