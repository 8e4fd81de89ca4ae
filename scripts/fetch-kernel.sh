#!/usr/bin/env bash
# Fetches the current Debian cloud kernel, and its modules, into a build
# directory (default build/kernel), once: vmlinuz, modules/ and version.
# Kernels are downloaded at build time and never committed.
set -euo pipefail

out=${1:-build/kernel}
if [ -s "$out/vmlinuz" ] && [ -s "$out/version" ]; then
	exit 0
fi

pkg_of() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(pkg_of || true)
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(pkg_of)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1); then
	apt-get update -qq
	(cd "$tmp" && apt-get download "$pkg" >/dev/null)
fi
dpkg -x "$tmp"/*.deb "$tmp/x"
mkdir -p "$out"
cp "$tmp"/x/boot/vmlinuz-* "$out/vmlinuz.new"
rm -rf "$out/modules"
cp -r "$tmp"/x/lib/modules "$out/modules"
mv "$out/vmlinuz.new" "$out/vmlinuz"
echo "$pkg" >"$out/version"
echo "fetch-kernel: $pkg in $out" >&2
