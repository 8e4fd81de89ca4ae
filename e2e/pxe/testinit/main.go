// Command testinit is the /init of the tiny initramfs the PXE test boots:
// it proves the machine booted the kernel and initramfs the coordinator's
// iPXE script named, by printing a marker and the kernel command line on
// the console, then powers the machine off.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	if err := os.MkdirAll("/proc", 0o755); err == nil {
		syscall.Mount("proc", "/proc", "proc", 0, "")
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		console = os.Stdout
	}
	fmt.Fprintf(console, "\nINGOT-TESTINIT-BOOTED cmdline=%s\n", cmdline)
	console.Sync()
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
