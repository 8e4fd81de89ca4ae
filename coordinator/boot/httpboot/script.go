package httpboot

import (
	"fmt"
	"net"
	"strings"
)

// downloadTries is how often the agent script tries each download before
// giving up and rebooting (which also asks the boot policy again).
const downloadTries = 5

// retryDelay is the pause between download attempts, in seconds.
const retryDelay = 5

// agentScript boots the agent ramdisk. Each download is retried: a
// coordinator restarting or a congested link must not leave a machine
// sitting at an iPXE prompt. When the retries run out the machine
// reboots, falling back to exit (back to the firmware's next boot
// device) as stock iPXE builds lack the reboot command. "cmd ||" marks a
// failure as handled, which keeps a missing optional command (reboot,
// and sleep in stripped builds) from aborting the script.
//
// Image names are fixed with --name so that initrd=initramfs on the
// command line finds the ramdisk when booting through the EFI stub (BIOS
// boot ignores the argument).
func (h *Handler) agentScript(mac net.HardwareAddr, node string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!ipxe")
	if node != "" {
		w("# Ingot: boot the agent for node %s (%s).", node, mac)
	} else {
		w("# Ingot: boot the agent to discover an unknown machine (%s).", mac)
	}
	retry := func(label, command string) {
		w("set ingot-try:int32 0")
		w(":%s", label)
		w("%s && goto %s-done ||", command, label)
		w("inc ingot-try")
		w("iseq ${ingot-try} %d && goto failed ||", downloadTries)
		w("echo Ingot: %s download failed, retrying in %d seconds", label, retryDelay)
		w("sleep %d ||", retryDelay)
		w("goto %s", label)
		w(":%s-done", label)
	}
	retry("kernel", "kernel --name kernel "+h.base+"/images/agent/kernel "+strings.Join(h.cmdline(mac, node), " "))
	retry("initrd", "initrd --name initramfs "+h.base+"/images/agent/initramfs")
	w("boot ||")
	w(":failed")
	w("echo Ingot: could not boot the agent, rebooting in %d seconds", 6*retryDelay)
	w("sleep %d ||", 6*retryDelay)
	w("reboot ||")
	w("exit")
	return b.String()
}

// cmdline is the agent kernel's command line. Empty settings are left
// out rather than passed empty, so the agent can tell "not configured"
// from a bad value.
func (h *Handler) cmdline(mac net.HardwareAddr, node string) []string {
	args := []string{"initrd=initramfs"}
	if node != "" {
		args = append(args, "ingot.node="+node)
	}
	if h.cfg.CoordinatorGRPC != "" {
		args = append(args, "ingot.coordinator="+h.cfg.CoordinatorGRPC)
	}
	if h.cfg.CAFingerprint != "" {
		args = append(args, "ingot.ca="+h.cfg.CAFingerprint)
	}
	args = append(args, "BOOTIF="+bootIF(mac))
	return append(args, h.extraArgs...)
}

// localDiskScript boots the machine's own disk: for BIOS by booting drive
// 0x80 through the BIOS (without describing it as a SAN disk to the OS),
// for UEFI by returning to the firmware, which moves on to its next boot
// entry. iPXE tells the two apart with ${platform} ("pcbios" or "efi").
func localDiskScript(mac net.HardwareAddr, node string) string {
	return fmt.Sprintf(`#!ipxe
# Ingot: node %s (%s) is deployed; boot its local disk.
iseq ${platform} efi && goto efi ||
sanboot --no-describe --drive 0x80 || exit
:efi
exit
`, node, mac)
}

// safeArg reports whether s can go on an iPXE command line as one word
// with no surprises: printable ASCII without spaces, quotes, backslashes
// or "$" (iPXE expands ${...} settings everywhere on a line).
func safeArg(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' || strings.IndexByte(`$"'\`, c) >= 0 {
			return false
		}
	}
	return true
}

// safeNode reports whether a node ID from the boot policy is plain (a
// UUID): it ends up in a script line and in a comment.
func safeNode(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-':
		default:
			return false
		}
	}
	return true
}
