#!/usr/bin/env bash
# Measures a real coordinator with its embedded redis-server: starts
# bin/coordinator on a free loopback port with a fresh data directory, runs
# bin/load against it (arguments are passed on to bin/load, e.g. --json or
# --nodes 2000) and stops everything on exit. Builds nothing: run
# `make build` (go build -o bin/ ./coordinator ./e2e/load) first.
# Results go to stdout, progress to stderr. Figures: docs/benchmarks.md.
# INGOT_BENCH_COORDINATOR=path measures another coordinator binary (a
# baseline built from an older commit) with the same load tool.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/bin
for b in coordinator load; do
	if [ ! -x "$bin/$b" ]; then
		echo "bench: $bin/$b missing: run make build first" >&2
		exit 1
	fi
done

# port_free reports whether nothing listens on 127.0.0.1:$1.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port=${INGOT_BENCH_PORT:-16385}
while ! port_free "$port"; do
	port=$((port + 1))
done
url=http://127.0.0.1:$port

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ingot-bench.XXXXXX")
coord_pid=""
redis_pid=""

cleanup() {
	local rc=$?
	if [ -n "$coord_pid" ] && kill -0 "$coord_pid" 2>/dev/null; then
		kill -TERM "$coord_pid" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$coord_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$coord_pid" 2>/dev/null || true
		wait "$coord_pid" 2>/dev/null || true
	fi
	# The coordinator stops its redis-server; make sure of it.
	if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
		kill -TERM "$redis_pid" 2>/dev/null || true
		sleep 0.5
		kill -KILL "$redis_pid" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$tmp/coordinator.log" ]; then
		echo "bench: failed; last lines of the coordinator's log:" >&2
		tail -n 20 "$tmp/coordinator.log" >&2 || true
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --redis-url= and --auth-strategy are explicit so that INGOT_* variables in
# the environment cannot point the coordinator elsewhere.
"${INGOT_BENCH_COORDINATOR:-$bin/coordinator}" --listen "127.0.0.1:$port" --data-dir "$tmp/data" --redis-url= \
	--auth-strategy noauth --log-level warn 2>"$tmp/coordinator.log" &
coord_pid=$!

# ready waits for GET /v1 to answer.
ready() {
	for _ in $(seq 300); do
		if ! kill -0 "$coord_pid" 2>/dev/null; then
			echo "bench: the coordinator exited during startup" >&2
			return 1
		fi
		if curl -fsS -o /dev/null -H 'X-OpenStack-Ironic-API-Version: 1.82' "$url/v1" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: the coordinator did not answer $url/v1 within 30 s" >&2
	return 1
}
ready

# The API answers only after the embedded redis-server is up, so it is
# already a child of the coordinator.
redis_pid=$(pgrep -P "$coord_pid" redis-server | head -n 1 || true)
if [ -z "$redis_pid" ]; then
	echo "bench: no redis-server child of coordinator $coord_pid" >&2
	exit 1
fi

echo "bench: coordinator pid $coord_pid at $url, redis-server pid $redis_pid, data in $tmp/data" >&2
start=$SECONDS
"$bin/load" --url "$url" --coordinator-pid "$coord_pid" --redis-pid "$redis_pid" "$@"
echo "bench: load finished in $((SECONDS - start)) s" >&2
