//go:build unix && !linux

package redisproc

import "syscall"

// maxSocketPath is the longest unix socket path: sizeof(sockaddr_un.sun_path)
// is 104 on the BSDs and macOS, minus the trailing NUL.
const maxSocketPath = 103

// sysProcAttr puts redis-server in its own process group so a terminal
// Ctrl-C reaches only the coordinator. There is no Pdeathsig outside Linux:
// an orphaned redis-server is detected on the next Start (it still answers
// PING on the socket) and refused rather than clobbered.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
