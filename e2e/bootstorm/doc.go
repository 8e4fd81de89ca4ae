// Package bootstorm benchmarks network boot under a boot storm: 1,000
// simulated PXE clients, each with its own enrolled MAC, get an address
// and their iPXE script URL from the coordinator's DHCP server, fetch the
// script and then a 64 MiB initramfs from the httpboot handler, all over
// a real L2 link between two throwaway network namespaces. The same run
// fetches the same file from a plain static file server as the baseline.
//
// It is a benchmark only, so `go test ./...` never runs it:
//
//	go test -run '^$' -bench BootStorm -benchtime 1x ./e2e/bootstorm
//
// It needs root, iproute2, curl and redis-server; without them it skips,
// or fails if INGOT_REQUIRE_TOOLS is set. INGOT_BOOTSTORM_CLIENTS,
// INGOT_BOOTSTORM_PARALLEL and INGOT_BOOTSTORM_MIB change the number of
// clients (1000), how many run at once (50) and the file size (64).
package bootstorm
