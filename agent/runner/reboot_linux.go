package runner

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// reboot syncs and reboots or powers off the node. There is nothing to
// shut down cleanly in the ramdisk; the sync is for the disk just written.
func reboot(_ context.Context, poweroff bool) error {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_RESTART
	if poweroff {
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	}
	if err := unix.Reboot(cmd); err != nil {
		return fmt.Errorf("reboot(2): %w", err)
	}
	return nil
}
