#!/usr/bin/env bash
# Installs the Debian packages Ingot's build, tests and demo need.
# Idempotent: packages already present are skipped, and apt runs only when
# something is missing. Usage: scripts/setup.sh [test|demo|proto|all]
set -euo pipefail

profile=${1:-test}
pkgs_test=(gcc iproute2 redis-server python3-ironicclient ipmitool qemu-system-x86 qemu-utils ipxe curl busybox gdisk fdisk syslinux syslinux-common mtools dosfstools genisoimage cpio)
pkgs_demo=(iproute2 curl redis-server python3-ironicclient qemu-system-x86 qemu-utils ipxe ipxe-qemu ipmitool syslinux syslinux-common mtools dosfstools fdisk)

case "$profile" in
test) want=("${pkgs_test[@]}") ;;
proto) want=(protobuf-compiler) ;;
demo|all) want=("${pkgs_demo[@]}") ;;
*) echo "usage: $0 [test|demo|proto|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts redis-server as a service on install; Ingot runs its own, so
# the system one only wastes memory and port 6379.
if [ -d /run/systemd/system ]; then
	$sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
