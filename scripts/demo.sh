#!/usr/bin/env bash
# Ingot's quickstart until real QEMU provisioning lands: starts bin/coordinator
# (with its embedded redis-server) in the background, walks one
# fake-hardware node through its whole lifecycle with the baremetal CLI,
# and leaves both running so you can keep playing with them.
#
# Usage: scripts/demo.sh        start (or reuse) the coordinator, run the demo
#        scripts/demo.sh down   stop the coordinator started by the demo
#
# Environment: DEMO_PORT (default 6385) is the port the coordinator listens
# on, on 127.0.0.1.
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

PORT=${DEMO_PORT:-6385}
LISTEN="127.0.0.1:$PORT"
ENDPOINT="http://$LISTEN"
DEMO_DIR=.demo
DATA_DIR=$DEMO_DIR/data
LOG=$DEMO_DIR/coordinator.log
PIDFILE=$DEMO_DIR/coordinator.pid
COORDINATOR=bin/coordinator
START_TIMEOUT=30 # seconds for the API to answer after start
STOP_TIMEOUT=15  # seconds between SIGTERM and SIGKILL
BM=(baremetal --os-endpoint "$ENDPOINT" --os-auth-type none)

if [ -t 1 ]; then
	B=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' R=$'\e[0m'
else
	B='' DIM='' RED='' GREEN='' R=''
fi

say() { printf '%s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

# die prints the error and the end of the coordinator's log (unless
# show_log=0: errors found before the demo started or reused a coordinator),
# and exits 1.
show_log=0
die() {
	printf '\n%sdemo: error: %s%s\n' "$RED$B" "$*" "$R" >&2
	if [ "$show_log" = 1 ] && [ -s "$LOG" ]; then
		printf '\n--- last 30 lines of %s ---\n' "$LOG" >&2
		tail -n 30 "$LOG" >&2
		printf -- '--- end of %s ---\n' "$LOG" >&2
	fi
	if [ -n "${started_or_reused:-}" ]; then
		printf '\nThe coordinator is still running; stop it with: make demo-down\n' >&2
	fi
	exit 1
}
trap 'die "unexpected failure (line $LINENO): $BASH_COMMAND"' ERR
trap 'trap - ERR; show_log=0; die "interrupted"' INT TERM

now_ms() {
	local t=${EPOCHREALTIME//[.,]/}
	echo $((t / 1000))
}

# --- the coordinator process ---------------------------------------------

# Never-failing readers of /proc (failures inside $(...) would trip the ERR trap).
cmdline_of() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }
comm_of() { cat "/proc/$1/comm" 2>/dev/null || true; }

# is_ours PID: PID is a live bin/coordinator started by this script from
# this checkout (checked by its command line and working directory, so a
# recycled pid is never mistaken for it).
is_ours() {
	local pid=$1 cmd cwd
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	cmd=$(cmdline_of "$pid")
	cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
	[[ $cmd == "$COORDINATOR "*"--data-dir=$DATA_DIR "* && $cwd == "$ROOT" ]]
}

# pidfile_pid prints the pid in the pid file if it is a coordinator of ours.
pidfile_pid() {
	local pid
	[ -f "$PIDFILE" ] || return 1
	pid=$(tr -dc '0-9' <"$PIDFILE")
	is_ours "$pid" || return 1
	echo "$pid"
}

# orphan_pid prints the pid of a coordinator of ours whose pid file is gone.
orphan_pid() {
	local pid
	for pid in $(pgrep -x coordinator 2>/dev/null || true); do
		if is_ours "$pid"; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

api_answers() {
	curl -fsS -o /dev/null --connect-timeout 1 -m 3 "$ENDPOINT/v1" 2>/dev/null
}

# port_holder prints what listens on $PORT (empty if nothing does).
port_holder() {
	if command -v ss >/dev/null; then
		ss -Hltnp "sport = :$PORT" 2>/dev/null || true
	elif api_answers; then
		echo "something answers on $ENDPOINT"
	fi
}

# stop_coordinator PID: SIGTERM, wait up to $STOP_TIMEOUT s, then SIGKILL.
# The coordinator stops its embedded redis-server on the way out (and the
# kernel kills it, via PR_SET_PDEATHSIG, if the coordinator is killed).
stop_coordinator() {
	local pid=$1 t0 waited=0
	t0=$(now_ms)
	kill -TERM "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null; do
		if [ $waited -ge $((STOP_TIMEOUT * 10)) ]; then
			say "coordinator (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM: sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
			break
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	say "stopped coordinator (pid $pid) in $(($(now_ms) - t0)) ms"
	rm -f "$PIDFILE"
	# Report the embedded redis-server too: its pid is in the log.
	local rpid
	rpid=$(grep -o 'msg="redis-server started" pid=[0-9]*' "$LOG" 2>/dev/null | tail -n 1 | grep -o '[0-9]*$' || true)
	if [ -n "$rpid" ]; then
		for _ in $(seq 50); do
			[ "$(comm_of "$rpid")" = redis-server ] || break
			sleep 0.1
		done
		if [ "$(comm_of "$rpid")" = redis-server ]; then
			say "warning: its redis-server (pid $rpid) is still running" >&2
		else
			say "its embedded redis-server (pid $rpid) stopped with it"
		fi
	fi
}

down() {
	local pid
	if pid=$(pidfile_pid); then
		say "stopping the demo coordinator (pid $pid, from $PIDFILE)"
		stop_coordinator "$pid"
	elif pid=$(orphan_pid); then
		say "no live pid in $PIDFILE, but a demo coordinator from this checkout runs as pid $pid: stopping it"
		stop_coordinator "$pid"
	else
		if [ -f "$PIDFILE" ]; then
			rm -f "$PIDFILE"
			say "no demo coordinator running (removed stale $PIDFILE)"
		else
			say "no demo coordinator running: nothing to stop"
		fi
	fi
}

start_coordinator() {
	local pid holder
	[ -x "$COORDINATOR" ] || die "$COORDINATOR not found: run make build (or make demo)"
	command -v redis-server >/dev/null || die "redis-server not installed: run scripts/setup.sh test"
	mkdir -p "$DATA_DIR"

	if pid=$(pidfile_pid) || pid=$(orphan_pid); then
		if [[ "$(cmdline_of "$pid")" != *" --listen=$LISTEN "* ]]; then
			say "the demo coordinator (pid $pid) listens elsewhere than $LISTEN: restarting it"
			stop_coordinator "$pid"
		elif api_answers; then
			echo "$pid" >"$PIDFILE"
			say "reusing the demo coordinator already running from a previous demo (pid $pid, $ENDPOINT)"
			started_or_reused=1 show_log=1
			return 0
		else
			say "the demo coordinator (pid $pid) does not answer on $ENDPOINT/v1: restarting it"
			stop_coordinator "$pid"
		fi
	elif [ -f "$PIDFILE" ]; then
		say "removing stale $PIDFILE (pid $(cat "$PIDFILE") is not a running demo coordinator)"
		rm -f "$PIDFILE"
	fi

	holder=$(port_holder)
	if [ -n "$holder" ]; then
		die "port $PORT is already in use by a process this demo did not start:
    $holder
Stop that process, or run the demo on another port: DEMO_PORT=16385 scripts/demo.sh"
	fi

	# Remember where this run's output starts, to read only its lines.
	local offset=0
	[ -f "$LOG" ] && offset=$(stat -c %s "$LOG")
	printf '\n==== demo.sh: starting coordinator at %s ====\n' "$(date -Is)" >>"$LOG"
	offset=$((offset + 1))
	local cmd=("$COORDINATOR" "--listen=$LISTEN" "--data-dir=$DATA_DIR" --redis-url= --auth-strategy=noauth)
	say "starting: ${cmd[*]}"
	note "${DIM}log: $LOG${R}"
	# setsid: its own session, so a Ctrl-C in this terminal leaves it running.
	setsid "${cmd[@]}" >>"$LOG" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$PIDFILE"
	started_or_reused=1 show_log=1

	local t0 deadline
	t0=$(now_ms)
	deadline=$((t0 + START_TIMEOUT * 1000))
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PIDFILE"
			started_or_reused=
			wait "$pid" 2>/dev/null && rc=0 || rc=$?
			if tail -c "+$offset" "$LOG" | grep -q 'address already in use'; then
				die "the coordinator exited (status $rc): port $PORT is taken by another process: $(port_holder)"
			fi
			local why
			why=$(tail -c "+$offset" "$LOG" | grep -o 'err=.*' | tail -n 1 || true)
			die "the coordinator exited during start-up (status $rc)${why:+: $why}; see $LOG"
		fi
		if api_answers && tail -c "+$offset" "$LOG" | grep -q 'msg="coordinator ready"'; then
			break
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			say "no answer from $ENDPOINT/v1 after ${START_TIMEOUT}s: stopping the coordinator" >&2
			stop_coordinator "$pid" >&2 || true
			started_or_reused=
			die "the coordinator did not answer on $ENDPOINT/v1 within ${START_TIMEOUT}s; see $LOG"
		fi
		sleep 0.2
	done
	say "coordinator ready (pid $pid) on $ENDPOINT in $(($(now_ms) - t0)) ms"
}

# --- the lifecycle walk ---------------------------------------------------

phase_names=()
phase_ms=()
phase_no=0
PHASES=12

# phase NAME DESCRIPTION: prints the phase's header and starts its clock.
phase() {
	phase_no=$((phase_no + 1))
	phase_name=$1
	printf '\n%s==> [%d/%d] %s: %s%s\n' "$B" "$phase_no" "$PHASES" "$1" "$2" "$R"
	phase_start=$(now_ms)
}

phase_done() {
	local ms=$(($(now_ms) - phase_start))
	phase_names+=("$phase_name")
	phase_ms+=("$ms")
	note "${DIM}took $ms ms${R}"
}

# bm ARGS...: shows and runs one baremetal command, indenting its output;
# on failure, dies with that output. Sets $out.
bm() {
	printf '    %s$ baremetal %s%s\n' "$DIM" "$*" "$R"
	if ! out=$("${BM[@]}" "$@" 2>&1); then
		[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/      /'
		die "baremetal $* failed"
	fi
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/      /'
	return 0
}

# query ARGS...: runs a baremetal command silently; prints its output.
query() {
	local o
	o=$("${BM[@]}" "$@" 2>&1) || die "baremetal $* failed: $o"
	printf '%s\n' "$o"
}

# show_state NODE [WANT_PROVISION]: prints the node's provision and power
# state; dies if the provision state is not WANT_PROVISION.
show_state() {
	local node=$1 want=${2:-} prov="" power="" target="" err="" line k v
	while IFS= read -r line; do
		k=${line%%=*} v=${line#*=} v=${v#\"} v=${v%\"}
		case $k in
		provision_state) prov=$v ;;
		power_state) power=$v ;;
		target_provision_state) target=$v ;;
		last_error) err=$v ;;
		esac
	done < <(query node show "$node" -f shell -c provision_state -c power_state -c target_provision_state -c last_error)
	local extra=""
	[ "$target" != None ] && [ -n "$target" ] && extra=" (target: $target)"
	note "${GREEN}state: provision_state=$prov$extra power_state=$power${R}"
	[ "$err" != None ] && [ -n "$err" ] && note "last_error: $err"
	if [ -n "$want" ] && [ "$prov" != "$want" ]; then
		die "node $node is in provision state '$prov', expected '$want'"
	fi
	return 0
}

# power NODE on|off: asks for the change, then polls until it shows.
power() {
	local node=$1 to=$2 got deadline
	bm node power "$to" "$node"
	note "${DIM}polling power_state until it is 'power $to' (max 10 s)${R}"
	deadline=$(($(now_ms) + 10000))
	while :; do
		got=$(query node show "$node" -f value -c power_state)
		[ "$got" = "power $to" ] && break
		[ "$(now_ms)" -ge "$deadline" ] && die "node $node still '$got' 10 s after power $to"
		sleep 0.5
	done
}

demo() {
	command -v baremetal >/dev/null || die "the baremetal CLI is not installed: run scripts/setup.sh test (python3-ironicclient)"
	command -v curl >/dev/null || die "curl is not installed"
	mkdir -p "$DEMO_DIR"

	printf '%sIngot demo: one fake-hardware node through its whole lifecycle%s\n' "$B" "$R"
	start_coordinator

	local node mac t_all
	node="demo-node-$(date +%H%M%S)-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
	mac=52:54:00$(od -An -N3 -tx1 /dev/urandom | tr ' ' ':' | tr -d '\n')
	say ""
	say "node: $node   mac: $mac"
	note "${DIM}every command below runs as: ${BM[*]} ...${R}"
	t_all=$(now_ms)

	phase enroll "create the node with the fake-hardware driver"
	bm node create --driver fake-hardware --name "$node" \
		--property cpus=4 --property memory_mb=8192 --property local_gb=100 --property cpu_arch=x86_64 \
		-f value -c uuid
	phase_done
	show_state "$node" enroll

	phase port "add its NIC (a random locally administered MAC)"
	bm port create --node "$node" "$mac" -f value -c uuid
	phase_done
	show_state "$node" enroll

	phase manage "enroll -> verifying -> manageable"
	bm node manage "$node" --wait 30
	phase_done
	show_state "$node" manageable

	phase provide "manageable -> cleaning -> available"
	bm node provide "$node" --wait 30
	phase_done
	show_state "$node" available

	phase instance_info "choose the image to deploy"
	note "${DIM}(the fake driver never fetches it: no traffic is sent)${R}"
	bm node set "$node" --instance-info image_source=http://example.invalid/demo.img
	phase_done
	show_state "$node" available

	phase deploy "available -> deploying -> active"
	bm node deploy "$node" --wait 30
	phase_done
	show_state "$node" active

	phase show "the deployed node"
	bm node show "$node" -c uuid -c name -c driver -c provision_state -c power_state \
		-c properties -c instance_info -c conductor -c provision_updated_at
	phase_done

	phase power-off "power the node off (and wait for it)"
	power "$node" off
	phase_done
	show_state "$node" active

	phase power-on "power it on again"
	power "$node" on
	phase_done
	show_state "$node" active

	local has_history=0
	"${BM[@]}" node history list --help >/dev/null 2>&1 && has_history=1
	phase history "the node's recorded events"
	if [ $has_history = 1 ]; then
		bm node history list "$node"
	else
		note "this baremetal CLI has no 'node history list' (its --help failed): skipped"
	fi
	phase_done

	phase undeploy "active -> deleting -> cleaning -> available"
	bm node undeploy "$node" --wait 30
	phase_done
	show_state "$node" available

	phase final "the node, left available for you"
	bm node list
	phase_done

	local total=$(($(now_ms) - t_all)) i
	printf '\n%sPhase timings%s %s(each includes the baremetal CLI'"'"'s start-up)%s\n' "$B" "$R" "$DIM" "$R"
	printf '    %-15s %10s\n' PHASE TIME
	for i in "${!phase_names[@]}"; do
		printf '    %-15s %7d ms\n' "${phase_names[$i]}" "${phase_ms[$i]}"
	done
	printf '    %-15s %7d ms  (wall clock, with state checks)\n' total "$total"

	cat <<EOF

${B}Done.${R} Node $node is available, and the coordinator is still running (pid $(cat "$PIDFILE")).
Try the CLI against it:
    baremetal --os-endpoint $ENDPOINT --os-auth-type none node list
Coordinator log: $LOG
Stop it with:    make demo-down
EOF
}

case "${1:-}" in
"") demo ;;
down) down ;;
-h | --help | help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
*)
	echo "usage: $0 [down]" >&2
	exit 2
	;;
esac
