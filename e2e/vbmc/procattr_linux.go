package vbmc

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill QEMU if the process that started it
// dies, so a crashed test or vbmc leaves no emulator behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
