package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// isBlockDevice tells a real disk from the regular files tests use.
func isBlockDevice(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	return fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0, nil
}

// size works for block devices and regular files alike: seeking to the end
// of a block device yields its capacity.
func size(f *os.File) (int64, error) {
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size: %w", err)
	}
	return n, nil
}

// rereadPartitions asks the kernel to drop the partitions it knows about
// (BLKRRPART) so that /dev/sda1 and friends of the erased table go away.
// Regular files answer ENOTTY and devices that cannot hold partitions
// (partitions themselves, loop devices without partscan) EINVAL: neither
// has a table to re-read.
func rereadPartitions(f *os.File) error {
	blk, err := isBlockDevice(f)
	if err != nil || !blk {
		return err
	}
	err = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("re-read partition table: %w", err)
	}
	return nil
}

// discard throws away the whole device: BLKDISCARD on a block device, a
// punched hole on a regular file (what a thin-provisioned virtual disk does
// with a discard). Neither promises that the blocks read back as zeroes;
// FullErase checks.
func discard(f *os.File, n int64) error {
	blk, err := isBlockDevice(f)
	if err != nil {
		return err
	}
	if !blk {
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, n); err != nil {
			return fmt.Errorf("punch hole: %w", err)
		}
		return nil
	}
	// BLKDISCARD takes a pointer to {offset, length}; x/sys has no wrapper.
	r := [2]uint64{0, uint64(n)}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r)))
	if errno != 0 {
		return fmt.Errorf("BLKDISCARD: %w", errno)
	}
	return nil
}
