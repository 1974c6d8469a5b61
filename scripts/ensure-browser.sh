#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing (no browser download: puppeteer-core drives
# the system's /usr/bin/chromium). Idempotent; safe to call before every test run.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
echo "ensure-browser: installing chromium" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
