#!/usr/bin/env bash
# Ingot's quickstart: provisions one QEMU machine end to end. It makes a
# network namespace with a boot network (192.0.2.0/24) and a link to this
# host (198.51.100.0/30), starts the coordinator in it (with its embedded
# redis-server) and one QEMU machine behind its virtual BMC, enrols the
# machine with the baremetal CLI, deploys the test image with a config
# drive, and shows the node's states, the image write's progress, each
# phase's duration and the machine's own boot message. The coordinator
# and the machine keep running so you can go on with the baremetal CLI;
# `make demo-down` (scripts/demo.sh down) stops everything.
#
# Environment: DEMO_IMAGE_MIB (default 256) is the test image's size;
# DEMO_ACCEL (default tcg) is QEMU's accelerator (kvm where it works).
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)
DEMO=$ROOT/.demo
NS=ingot-demo
HOST_LINK=demo-ingot0
API_IP=198.51.100.2
ENDPOINT=http://$API_IP:6385
BMC_ADDR=192.0.2.1
BMC_PORT=6230
BMC_USER=admin
BMC_PASS=demo-$(hostname | md5sum | cut -c1-8)
MAC=52:54:00:de:00:01
IMAGE_MIB=${DEMO_IMAGE_MIB:-256}
ACCEL=${DEMO_ACCEL:-tcg}
KERNEL=$ROOT/build/initramfs/vmlinuz
INITRAMFS=$ROOT/build/initramfs/initramfs.cpio.gz
BM=(baremetal --os-endpoint "$ENDPOINT" --os-auth-type none)
export OS_BAREMETAL_API_VERSION=1.82

if [ -t 1 ]; then
	B=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' R=$'\e[0m'
else
	B='' DIM='' RED='' GREEN='' R=''
fi
say() { printf '%s\n' "$*"; }
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$R"; }
die() {
	printf '\n%sdemo: error: %s%s\n' "$RED$B" "$*" "$R" >&2
	for f in "$DEMO/coordinator.log" "$DEMO/node-0/console.log"; do
		if [ -s "$f" ]; then
			printf '\n--- last 25 lines of %s ---\n' "$f" >&2
			tail -n 25 "$f" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' >&2
		fi
	done
	printf '\nLogs are in %s; stop everything with: make demo-down\n' "$DEMO" >&2
	exit 1
}
trap 'die "unexpected failure (line $LINENO): $BASH_COMMAND"' ERR
now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
secs() { printf '%d.%01d s' $(($1 / 1000)) $((($1 % 1000) / 100)); }

# stop PIDFILE NAME: SIGTERM, then SIGKILL after 15 s.
stop() {
	local pid
	[ -f "$1" ] || return 0
	pid=$(tr -dc '0-9' <"$1")
	rm -f "$1"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || { say "stopped $2 (pid $pid)"; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	say "killed $2 (pid $pid)"
}

down() {
	stop "$DEMO/coordinator.pid" coordinator
	stop "$DEMO/vbmc.pid" "virtual BMC and its machine"
	if ip netns list 2>/dev/null | grep -qw "$NS"; then
		ip netns del "$NS"
		say "removed network namespace $NS"
	fi
	ip link del "$HOST_LINK" 2>/dev/null || true
}

# node_json prints the node's API view.
node_json() { curl -fsS -H "X-OpenStack-Ironic-API-Version: 1.82" "$ENDPOINT/v1/nodes/demo-node"; }

# field EXPR: evaluates a Python expression on the node (n).
field() {
	node_json | python3 -c "import json,sys; n=json.load(sys.stdin); v=$1; print('' if v is None else v)"
}

# watch_until STATE TIMEOUT: prints the node's provision states as they
# change, with a progress bar while the agent writes the image, until the
# node rests in STATE; dies on a failed state.
watch_until() {
	local want=$1 timeout=$2 t0 last='' line state target err progress pct lastpct=-1
	t0=$(now_ms)
	while :; do
		line=$(node_json | python3 -c '
import json, sys
n = json.load(sys.stdin)
p = (n.get("driver_internal_info") or {}).get("agent_progress") or {}
pr = json.loads(p.get("progress") or "{}")
done, total = int(pr.get("bytesDone", 0)), int(pr.get("bytesTotal", 0))
bar = ""
if total and p.get("state") == "RUNNING":
    w = 30; k = w * done // total
    bar = "[%s%s] %3d%% %d/%d MiB %.1f MB/s" % ("#" * k, "." * (w - k), 100 * done // total, done >> 20, total >> 20, pr.get("bytesPerSecond", 0) / 1e6)
print("%s|%s|%s|%s" % (n["provision_state"], n.get("target_provision_state") or "", (n.get("last_error") or "").replace("|", "/"), bar))
') || line="?|||"
		IFS='|' read -r state target err progress <<<"$line"
		if [ "$state" != "$last" ]; then
			[ -n "$last" ] && printf '\n'
			printf '    %s%8s%s  %s' "$DIM" "$(secs $(($(now_ms) - t0)))" "$R" "$state${target:+ -> $target}"
			last=$state
		elif [ -n "$progress" ]; then
			if [ -t 1 ]; then
				printf '\r    %s%8s%s  %s  %s' "$DIM" "$(secs $(($(now_ms) - t0)))" "$R" "$state" "$progress"
			else
				# Not a terminal: a line per quarter, not a redrawn bar.
				pct=${progress#*] }
				pct=${pct%%%*}
				pct=$((${pct// /} / 25))
				if [ "$pct" != "$lastpct" ]; then
					printf '\n    %8s  %s  %s' "$(secs $(($(now_ms) - t0)))" "$state" "$progress"
					lastpct=$pct
				fi
			fi
		fi
		if [ "$state" = "$want" ] && [ -z "$target" ]; then
			printf '\n'
			return 0
		fi
		case $state in *failed | error)
			[ -z "$target" ] && { printf '\n'; die "the node ended in '$state': $err"; } ;;
		esac
		[ $(($(now_ms) - t0)) -lt $((timeout * 1000)) ] || { printf '\n'; die "the node did not reach '$want' within $timeout s"; }
		sleep 0.3
	done
}

up() {
	[ "$(id -u)" = 0 ] || die "the demo needs root (network namespaces, taps)"
	for f in bin/coordinator bin/vbmc "$KERNEL" "$INITRAMFS"; do
		[ -e "$f" ] || die "$f is missing: run make demo"
	done
	step "Cleaning up a previous demo"
	down
	rm -rf "$DEMO/data" "$DEMO/node-0"
	mkdir -p "$DEMO/node-0" "$DEMO/images"

	step "Building the ${IMAGE_MIB} MiB test image (a bootable disk that prints its node's UUID)"
	local img=$DEMO/images/testimage-${IMAGE_MIB}M.raw
	if [ ! -s "$img" ] || [ ! -s "$img.sha256" ]; then
		go run ./e2e/testimage/cmd/testimage -dir "$DEMO/images" -size "$IMAGE_MIB" | awk '$1 == "sha256" {print $2}' >"$img.sha256.new"
		mv "$img.sha256.new" "$img.sha256"
	fi
	local sum
	sum=$(cat "$img.sha256")
	say "    $img (sha256 ${sum:0:16}...)"

	step "Network: namespace $NS, boot network 192.0.2.0/24 on br0, API on $API_IP"
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	ip -n "$NS" link add br0 type bridge
	ip -n "$NS" link set br0 type bridge forward_delay 0
	ip -n "$NS" addr add 192.0.2.1/24 dev br0
	ip -n "$NS" link set br0 up
	ip -n "$NS" tuntap add dev tap0 mode tap
	ip -n "$NS" link set tap0 master br0 up
	ip link add "$HOST_LINK" type veth peer name uplink netns "$NS"
	ip addr add 198.51.100.1/30 dev "$HOST_LINK"
	ip link set "$HOST_LINK" up
	ip -n "$NS" addr add "$API_IP/30" dev uplink
	ip -n "$NS" link set uplink up

	step "Starting a QEMU machine ($ACCEL) behind its virtual BMC on $BMC_ADDR:$BMC_PORT (IPMI)"
	truncate -s 4G "$DEMO/node-0/disk.raw"
	setsid ip netns exec "$NS" bin/vbmc --listen "$BMC_ADDR:$BMC_PORT" --user "$BMC_USER" --password "$BMC_PASS" \
		--qemu-accel "$ACCEL" --qemu-dir "$DEMO/node-0" --qemu-args "-m 1024 -smp 2 -cpu max \
-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=$MAC \
-drive file=$DEMO/node-0/disk.raw,if=virtio,format=raw,cache=none,aio=native -boot reboot-timeout=2000" \
		>"$DEMO/node-0/bmc.log" 2>&1 </dev/null &
	echo $! >"$DEMO/vbmc.pid"

	step "Starting the coordinator (embedded redis-server; DHCP, TFTP, HTTP boot and agent service on br0)"
	setsid ip netns exec "$NS" bin/coordinator --listen "$API_IP:6385" --data-dir "$DEMO/data" \
		--boot-interface br0 --dhcp-range 192.0.2.100-192.0.2.150 \
		--agent-kernel "$KERNEL" --agent-initramfs "$INITRAMFS" --agent-heartbeat-interval 2s \
		--image-dir "$DEMO/images" --image-cache-dir "$DEMO/data/image-cache" \
		>"$DEMO/coordinator.log" 2>&1 </dev/null &
	echo $! >"$DEMO/coordinator.pid"
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$ENDPOINT/v1" 2>/dev/null && break
		kill -0 "$(cat "$DEMO/coordinator.pid")" 2>/dev/null || die "the coordinator exited at start"
		sleep 0.2
	done
	say "    API: $ENDPOINT"

	step "Enrolling the machine: ${DIM}baremetal node create --driver ipmi ...; baremetal port create $MAC ...$R"
	"${BM[@]}" node create --driver ipmi --name demo-node \
		--driver-info ipmi_address=$BMC_ADDR --driver-info ipmi_port=$BMC_PORT \
		--driver-info ipmi_username=$BMC_USER --driver-info ipmi_password="$BMC_PASS" -f value -c uuid >"$DEMO/node.uuid"
	local uuid
	uuid=$(cat "$DEMO/node.uuid")
	"${BM[@]}" port create "$MAC" --node "$uuid" --pxe-enabled true -f value -c uuid >/dev/null
	say "    node $uuid"

	step "Manage (verify the BMC), then provide (the agent cleans the disk)"
	"${BM[@]}" node manage demo-node
	watch_until manageable 60
	"${BM[@]}" node provide demo-node
	watch_until available 600

	step "Deploy: ${DIM}baremetal node deploy demo-node --config-drive '{\"meta_data\": ...}'$R"
	"${BM[@]}" node set demo-node --instance-info image_source="$(basename "$img")" --instance-info image_checksum="$sum"
	local offset t0
	offset=$(stat -c %s "$DEMO/node-0/console.log" 2>/dev/null || echo 0)
	t0=$(now_ms)
	"${BM[@]}" node deploy demo-node --config-drive '{"meta_data": {"hostname": "demo-node"}}'
	watch_until active 900
	local t_active
	t_active=$(($(now_ms) - t0))

	step "The machine boots its disk"
	local marker=''
	for _ in $(seq 600); do
		marker=$(tail -c +"$((offset + 1))" "$DEMO/node-0/console.log" 2>/dev/null | tr -d '\r' | grep -a -m1 -o 'INGOT-INSTANCE-BOOTED.*' || true)
		[ -n "$marker" ] && break
		sleep 0.2
	done
	[ -n "$marker" ] || die "the machine did not print its boot marker within 120 s of going active"
	local t_marker
	t_marker=$(($(now_ms) - t0))
	printf '    %s%s%s\n' "$GREEN" "$marker" "$R"
	[[ $marker == *"uuid=$uuid"* ]] || die "the machine printed another UUID than its node's ($uuid)"

	step "Phase timings of the deploy"
	node_json | python3 -c '
import json, sys
from datetime import datetime
n = json.load(sys.stdin)
t = (n.get("driver_internal_info") or {}).get("agent_timings") or {}
order = ["power_on", "agent_lookup", "write_image", "install_config_drive", "reboot_to_instance"]
names = {"power_on": "powered on, network boot starts", "agent_lookup": "agent looked up its node",
         "write_image": "image written and verified", "install_config_drive": "config drive written",
         "reboot_to_instance": "rebooted to the disk"}
prev = None
for k in order:
    if k not in t:
        continue
    at = datetime.fromisoformat(t[k].replace("Z", "+00:00"))
    d = "" if prev is None else "+%.1f s" % (at - prev).total_seconds()
    print("    %-36s %10s" % (names[k], d))
    prev = at
'
	printf '    %-36s %10s\n' "deploy request -> active" "$(secs "$t_active")"
	printf '    %-36s %10s\n' "deploy request -> instance booted" "$(secs "$t_marker")"

	step "Done"
	cat <<EOF
    The coordinator and the machine keep running. Try:
      ${BM[*]} node show demo-node
      ${BM[*]} node undeploy demo-node
    Logs: $DEMO/coordinator.log, serial console: $DEMO/node-0/console.log
    Stop everything: make demo-down
EOF
}

case ${1:-up} in
up) up ;;
down) down ;;
*) die "usage: scripts/demo.sh [up|down]" ;;
esac
