package disk

import (
	"context"
	"fmt"
	"os"
)

const mib = 1 << 20

// metadataRanges are the byte ranges EraseMetadata zeroes on a device of
// the given size: together they hold every partition table, filesystem and
// RAID signature wipefs and sgdisk -Z would remove.
//
//   - The first MiB: MBR, primary GPT header and entries, the superblocks
//     of ext2/3/4 (1 KiB), XFS (0), btrfs (64 KiB), ISO 9660 (32 KiB), swap,
//     LVM2 labels (sectors 0–3), md 1.1/1.2, bcache, LUKS1/2 primary
//     headers, ZFS labels L0/L1.
//   - 4 KiB at 1, 2 and 4 MiB: the farther LUKS2 secondary header offsets
//     (blkid finds a LUKS2 volume by them once the primary is gone), and
//     the VMFS volume and filesystem magics (at 1 and 2 MiB).
//   - The last MiB: backup GPT, md 0.90/1.0 superblocks, ZFS labels L2/L3,
//     DDF/IMSM RAID anchors, NTFS backup boot sector, NILFS2 secondary
//     superblock.
//
// ext4 backup superblocks deeper in are not signatures (blkid never reports
// them) and are left, as wipefs leaves them. Ranges are clipped to the
// device and may overlap on small devices.
func metadataRanges(size int64) [][2]int64 {
	var rs [][2]int64
	add := func(off, n int64) {
		end := min(off+n, size)
		if off < 0 {
			off = 0
		}
		if off < end {
			rs = append(rs, [2]int64{off, end})
		}
	}
	add(0, mib)
	for _, off := range []int64{1 * mib, 2 * mib, 4 * mib} {
		add(off, 4096)
	}
	add(size-mib, mib)
	return rs
}

// EraseMetadata makes dev (a block device, or a regular file standing in
// for one) look blank to anything that probes for partition tables,
// filesystems or RAID members: Ironic's automated metadata cleaning
// (wipefs, sgdisk -Z and zeroing both GPT ends) done natively, since the
// ramdisk has none of those tools. It zeroes the ranges metadataRanges
// lists, syncs, and makes the kernel forget the old partitions.
func EraseMetadata(ctx context.Context, dev string) error {
	if err := eraseMetadata(ctx, dev); err != nil {
		return fmt.Errorf("erase metadata on %s: %w", dev, err)
	}
	return nil
}

func eraseMetadata(ctx context.Context, dev string) error {
	// No O_CREATE: a mistyped name must fail, not become a file in /dev.
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := size(f)
	if err != nil {
		return err
	}
	zeros := make([]byte, mib)
	for _, r := range metadataRanges(n) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.WriteAt(zeros[:r[1]-r[0]], r[0]); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := rereadPartitions(f); err != nil {
		return err
	}
	return f.Close()
}
