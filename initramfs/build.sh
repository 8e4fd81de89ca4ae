#!/usr/bin/env bash
# Builds the agent's ramdisk (`make initramfs`): the Debian cloud kernel
# and a u-root initramfs whose /init is the agent, with the kernel modules
# it loads and a few u-root commands for debugging. See README.md here.
#
#   initramfs/build.sh [out]     (default build/initramfs)
#
# Outputs, never committed: <out>/vmlinuz and <out>/initramfs.cpio.gz;
# intermediate files are under <out>/work. Fast when up to date: the
# u-root busybox, the slow part (~40 s), is rebuilt only when its module
# or command list changes, and the archive is recompressed only when its
# content changed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/build/initramfs}" && cd "${1:-$root/build/initramfs}" && pwd)
kernel=${INGOT_KERNEL_DIR:-$root/build/kernel}
GO=${GO:-go}
export GOWORK=off CGO_ENABLED=0

# The u-root commands shipped for debugging (through rdinit=/bbin/init,
# see README.md): u-root's init and shell, and a few tools to look at
# the machine.
cmds=(init gosh ls cat dmesg ip mount ps lsmod ping free df)

work=$out/work
mkdir -p "$work"
exec 9>"$work/lock"
flock 9 # one build at a time in this directory

"$root/scripts/fetch-kernel.sh" "$kernel"
kvers=("$kernel"/modules/*)
if [ ${#kvers[@]} -ne 1 ] || [ ! -d "${kvers[0]}" ]; then
	echo "build.sh: want exactly one kernel release under $kernel/modules, found: ${kvers[*]}" >&2
	exit 1
fi
kver=$(basename "${kvers[0]}")

# The agent, static, from the main module.
version=$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)
(cd "$root" && $GO build -trimpath -ldflags "-s -w -X main.version=$version" -o "$work/agent" ./agent)

# The modules the agent loads and what they need, with their modules.dep.
(cd "$root" && $GO run ./initramfs/mkmodules -from "$kernel/modules/$kver" -to "$work/modules/$kver")

# u-root's busybox of the debugging commands, from the pinned module in
# uroot/. The agent is PID 1; /bin/uinit points at it so that u-root's
# init can run it too (rdinit=/bbin/init).
uroot() {
	local status
	set +e
	# Without u-root's warning that it was tested with older Go versions.
	(cd "$root/initramfs/uroot" && $GO tool u-root "$@") 2>&1 |
		grep -v -e 'recommended Go versions' -e 'Some packages may not compile' -e 'golang.org/doc/install' -e 'golang.org/dl/go1' >&2
	status=${PIPESTATUS[0]}
	set -e
	return "$status"
}
stamp=$( (cat "$root/initramfs/uroot/go.mod" "$root/initramfs/uroot/go.sum"; echo "${cmds[*]}"; $GO version) | sha256sum | cut -d' ' -f1)
if [ ! -s "$work/uroot.cpio" ] || [ "$(cat "$work/uroot.stamp" 2>/dev/null)" != "$stamp" ]; then
	echo "build.sh: building u-root commands: ${cmds[*]}" >&2
	rm -f "$work/uroot.cpio" "$work/uroot.cpio.new" "$work/uroot.stamp"
	uroot -o "$work/uroot.cpio.new" -initcmd="" -uinitcmd="/init -early-boot" -defaultsh=gosh \
		"${cmds[@]/#/github.com/u-root/u-root/cmds/core/}"
	mv "$work/uroot.cpio.new" "$work/uroot.cpio"
	echo "$stamp" >"$work/uroot.stamp"
fi

# The whole archive: the busybox, the agent as /init, the modules.
rm -f "$work/initramfs.cpio.new"
uroot -nocmd -base "$work/uroot.cpio" -initcmd="" -uinitcmd="" -defaultsh="" -skip-ldd \
	-files "$work/agent:init" -files "$work/modules:lib/modules" -o "$work/initramfs.cpio.new"
if [ -s "$out/initramfs.cpio.gz" ] && cmp -s "$work/initramfs.cpio.new" "$work/initramfs.cpio"; then
	rm "$work/initramfs.cpio.new"
else
	mv "$work/initramfs.cpio.new" "$work/initramfs.cpio"
	gzip -9 -n -c "$work/initramfs.cpio" >"$out/initramfs.cpio.gz.new"
	mv "$out/initramfs.cpio.gz.new" "$out/initramfs.cpio.gz"
fi
cmp -s "$kernel/vmlinuz" "$out/vmlinuz" || cp "$kernel/vmlinuz" "$out/vmlinuz"

size() { du -sb "$1" | awk '{printf "%.1f MiB", $1/1048576}'; }
echo "build.sh: $(cat "$kernel/version") ($kver), agent $version" >&2
echo "  $out/vmlinuz            $(size "$out/vmlinuz")"
echo "  $out/initramfs.cpio.gz  $(size "$out/initramfs.cpio.gz") ($(size "$work/initramfs.cpio") unpacked: agent $(size "$work/agent"), u-root $(size "$work/uroot.cpio"), modules $(size "$work/modules"))"
