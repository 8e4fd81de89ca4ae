//go:build linux

package redisproc

import "syscall"

// maxSocketPath is the longest unix socket path the kernel accepts:
// sizeof(sockaddr_un.sun_path) is 108 on Linux, minus the trailing NUL.
const maxSocketPath = 107

// sysProcAttr puts redis-server in its own process group, so a terminal
// Ctrl-C (SIGINT to the foreground group) reaches only the coordinator,
// which then stops Redis itself once it no longer needs it. Pdeathsig makes
// the kernel send SIGTERM (a clean shutdown that fsyncs the AOF) if the
// coordinator dies without stopping Redis, even by SIGKILL, so no orphan
// keeps the socket and data directory.
//
// Pdeathsig fires when the forking *thread* exits, not the process; run
// pins the spawning goroutine to its thread for the child's whole life so
// the Go scheduler cannot retire that thread under a live child.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
