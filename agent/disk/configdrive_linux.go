package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ConfigDriveLabel is the volume label of an OpenStack config drive: how
// cloud-init finds it, and how InstallConfigDrive finds one to replace.
const ConfigDriveLabel = "config-2"

// configDrivePartSize is the size of a new config drive partition unless
// the image is larger: Ironic's 64 MiB maximum, so that a rebuild with a
// larger drive still fits the partition made the first time.
const configDrivePartSize = 64 * mib

// isoVD is where an ISO 9660 image's first volume descriptor is, after
// the 32 KiB system area; its label is 32 bytes at 40 into it.
const (
	isoVD      = 32 << 10
	isoVDSize  = 2048
	isoLabel   = 40
	isoLabelSz = 32
)

// InstallConfigDrive writes the config drive iso (an ISO 9660 image of
// size bytes) to a partition of dev (a block device, or a regular file
// standing in for one), as Ironic's agent does, and returns the
// partition's number.
//
// If dev has a partition holding an ISO labelled config-2 (this node's
// previous deployment, or one the image ships), the drive replaces it;
// otherwise a partition of 64 MiB (more if the image is larger, in whole
// MiB) is added at the end of the disk, in the first free MBR slot or GPT
// entry, after every existing partition and before the backup GPT. No
// existing partition's sectors are written. The image goes in first and
// the table is changed last, so a failure leaves the table as it was.
// A disk without a partition table is an error: whole-disk images carry
// one, and a config drive written over a bare filesystem would destroy
// it.
func InstallConfigDrive(ctx context.Context, dev string, iso io.ReaderAt, size int64) (partition int, err error) {
	n, err := installConfigDrive(ctx, dev, iso, size)
	if err != nil {
		return 0, fmt.Errorf("install config drive on %s: %w", dev, err)
	}
	return n, nil
}

func installConfigDrive(ctx context.Context, dev string, iso io.ReaderAt, isoSize int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkISO(iso, isoSize); err != nil {
		return 0, err
	}
	// No O_CREATE: a mistyped name must fail, not become a file in /dev.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	diskSize, err := size(f)
	if err != nil {
		return 0, err
	}
	ss, err := sectorSize(f)
	if err != nil {
		return 0, err
	}
	t, err := readPartTable(f, diskSize, ss)
	if errors.Is(err, errNoTable) {
		return 0, fmt.Errorf("%w (a config drive goes into a partition of the MBR or GPT that whole-disk images carry)", err)
	}
	if err != nil {
		return 0, fmt.Errorf("read the partition table: %w", err)
	}

	p, found, err := findConfigDrive(f, t)
	if err != nil {
		return 0, err
	}
	if found && p.size() < isoSize {
		return 0, fmt.Errorf("the config drive image (%d bytes) is larger than the existing config drive partition %d (%d bytes)",
			isoSize, p.num, p.size())
	}
	if !found {
		want := max(configDrivePartSize, (isoSize+mib-1)/mib*mib)
		if p, err = t.placeAtEnd(want); err != nil {
			return 0, err
		}
	}
	if err := writeConfigDrive(ctx, f, iso, isoSize, p); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	if !found {
		if err := t.add(f, f.Sync, p); err != nil {
			return 0, fmt.Errorf("add partition %d to the %s: %w", p.num, t.kind(), err)
		}
	}
	if err := rereadPartitions(f); err != nil {
		return 0, err
	}
	return p.num, f.Close()
}

// checkISO refuses what is not an ISO 9660 image: written to the disk it
// would be a partition nothing can read.
func checkISO(iso io.ReaderAt, n int64) error {
	if n < isoVD+isoVDSize {
		return fmt.Errorf("the config drive image is %d bytes, too small for an ISO 9660 image", n)
	}
	vd := make([]byte, isoVDSize)
	if _, err := iso.ReadAt(vd, isoVD); err != nil {
		return fmt.Errorf("read the config drive image: %w", err)
	}
	if string(vd[1:6]) != "CD001" {
		return errors.New("the config drive image is not an ISO 9660 image (no CD001 signature at byte 32769)")
	}
	return nil
}

// isConfigDrive reports whether vd, the 2 KiB at 32 KiB into a partition,
// is the primary volume descriptor of an ISO labelled config-2. Labels
// are padded with spaces (NULs by some writers); cloud-init also accepts
// CONFIG-2.
func isConfigDrive(vd []byte) bool {
	return vd[0] == 1 && string(vd[1:6]) == "CD001" &&
		strings.EqualFold(strings.TrimRight(string(vd[isoLabel:isoLabel+isoLabelSz]), " \x00"), ConfigDriveLabel)
}

// findConfigDrive returns the first partition of t that holds a config
// drive. Logical partitions inside an MBR extended partition are not
// searched.
func findConfigDrive(r io.ReaderAt, t *partTable) (part, bool, error) {
	vd := make([]byte, isoVDSize)
	for _, p := range t.parts {
		if p.size() < isoVD+isoVDSize {
			continue
		}
		if _, err := r.ReadAt(vd, p.start+isoVD); err != nil {
			return part{}, false, fmt.Errorf("read partition %d: %w", p.num, err)
		}
		if isConfigDrive(vd) {
			return p, true, nil
		}
	}
	return part{}, false, nil
}

// writeConfigDrive copies the image to the start of p and zeroes the rest
// of p: whatever was there before (a filesystem of an earlier image, a
// backup GPT left in what is now free space) must not make blkid see two
// signatures, or none, where cloud-init looks for config-2.
func writeConfigDrive(ctx context.Context, f *os.File, iso io.ReaderAt, isoSize int64, p part) error {
	buf := make([]byte, mib)
	for off := int64(0); off < isoSize; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:min(int64(len(buf)), isoSize-off)]
		n, err := iso.ReadAt(b, off)
		if n < len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read the config drive image at %d of %d bytes: %w", off, isoSize, err)
		}
		if _, err := f.WriteAt(b, p.start+off); err != nil {
			return fmt.Errorf("write partition %d: %w", p.num, err)
		}
		off += int64(len(b))
	}
	clear(buf)
	for off := p.start + isoSize; off < p.end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:min(int64(len(buf)), p.end-off)]
		if _, err := f.WriteAt(b, off); err != nil {
			return fmt.Errorf("zero the rest of partition %d: %w", p.num, err)
		}
		off += int64(len(b))
	}
	return nil
}

// sectorSize is a block device's logical sector size, or 0 for a regular
// file (which has none: its partition table tells).
func sectorSize(f *os.File) (int64, error) {
	blk, err := isBlockDevice(f)
	if err != nil || !blk {
		return 0, err
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, fmt.Errorf("logical sector size (BLKSSZGET): %w", err)
	}
	return int64(ss), nil
}
