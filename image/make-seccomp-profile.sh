#!/usr/bin/env bash
# Regenerates image/seccomp.json: Docker's default seccomp profile, as Debian ships it for the same dockerd
# version the session image runs (golang-github-docker-docker-dev), plus `keyctl` and `pivot_root`, which
# rootless dockerd needs inside a session (runc joins a session keyring; rootlesskit pivots into its root).
# The result is committed; run this only to follow a new Docker release.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt downloads as the _apt user
(cd "$work" && apt-get download -qq golang-github-docker-docker-dev && dpkg-deb -x ./*.deb root)
version=$(dpkg-deb -f "$work"/*.deb Version)
node - "$work/root/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json" "$version" >seccomp.json <<'JS'
const [, , path, version] = process.argv;
const profile = JSON.parse(require('node:fs').readFileSync(path, 'utf8'));
profile.syscalls.push({
  names: ['keyctl', 'pivot_root'],
  action: 'SCMP_ACT_ALLOW',
  comment: `runner: added to Docker ${version}'s default profile for rootless dockerd inside a session`,
});
process.stdout.write(JSON.stringify(profile, null, 2) + '\n');
JS
echo "wrote image/seccomp.json from Docker $version's default profile" >&2
