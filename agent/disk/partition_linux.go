package disk

import (
	"context"
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// DefaultEFIMiB is the size of an EFI system partition whose size is not
// given: Ironic's efi_system_partition_size default.
const DefaultEFIMiB = 200

// ConfigDriveReserve is what CreatePartitions leaves free at the end of
// the disk, before the backup GPT: room for the config drive partition
// InstallConfigDrive adds later (64 MiB, Ironic's maximum).
const ConfigDriveReserve = configDrivePartSize

// PartitionLayout is the GPT a partition image goes into, as Ironic lays
// it out: an optional EFI system partition at 1 MiB, then the root
// partition.
type PartitionLayout struct {
	// RootMiB is the root partition's size; 0 means up to the end of the
	// disk, less ConfigDriveReserve.
	RootMiB uint64
	// EFISystemPartition asks for an EFI system partition of EFIMiB
	// (DefaultEFIMiB when 0) before the root partition. It is not
	// formatted.
	EFISystemPartition bool
	EFIMiB             uint64
}

// Partition is one partition CreatePartitions made, in bytes.
type Partition struct {
	Number      int
	Start, Size int64
}

// Partitions are the partitions CreatePartitions made; EFI.Number is 0
// when the layout has no EFI system partition.
type Partitions struct {
	EFI, Root Partition
}

// CreatePartitions replaces the partition table of dev (a block device,
// or a regular file standing in for one) with a new GPT, protective MBR
// included, laid out as l says: partitions start on MiB boundaries, and
// ConfigDriveReserve plus the backup GPT stay free at the end so that
// InstallConfigDrive can add its partition there. The old table is wiped
// at both ends of the disk (with the other signatures EraseMetadata
// removes there), as is the first MiB of the EFI system partition; the
// root partition's contents are left for the image to overwrite. A disk
// too small for the layout is an error, and then nothing is written.
func CreatePartitions(ctx context.Context, dev string, l PartitionLayout) (Partitions, error) {
	p, err := createPartitions(ctx, dev, l)
	if err != nil {
		return Partitions{}, fmt.Errorf("create partitions on %s: %w", dev, err)
	}
	return p, nil
}

func createPartitions(ctx context.Context, dev string, l PartitionLayout) (Partitions, error) {
	if err := ctx.Err(); err != nil {
		return Partitions{}, err
	}
	// No O_CREATE: a mistyped name must fail, not become a file in /dev.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return Partitions{}, err
	}
	defer f.Close()
	diskSize, err := size(f)
	if err != nil {
		return Partitions{}, err
	}
	ss, err := sectorSize(f)
	if err != nil {
		return Partitions{}, err
	}
	if ss == 0 {
		ss = 512 // a regular file
	}
	parts, err := planPartitions(diskSize, ss, l)
	if err != nil {
		return Partitions{}, err
	}

	zeros := make([]byte, mib)
	wipe := metadataRanges(diskSize)
	if parts.EFI.Number != 0 {
		wipe = append(wipe, [2]int64{parts.EFI.Start, parts.EFI.Start + mib})
	}
	for _, r := range wipe {
		if err := ctx.Err(); err != nil {
			return Partitions{}, err
		}
		if _, err := f.WriteAt(zeros[:r[1]-r[0]], r[0]); err != nil {
			return Partitions{}, fmt.Errorf("wipe the old partition table: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return Partitions{}, fmt.Errorf("sync: %w", err)
	}

	table := &gpt.Table{LogicalSectorSize: int(ss), PhysicalSectorSize: int(ss)}
	add := func(p Partition, typ gpt.Type, name string) {
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: p.Number, Type: typ, Name: name,
			Start: uint64(p.Start / ss), End: uint64((p.Start+p.Size)/ss - 1),
		})
	}
	if parts.EFI.Number != 0 {
		add(parts.EFI, gpt.EFISystemPartition, "EFI system partition")
	}
	add(parts.Root, gpt.LinuxFilesystem, "root")
	// go-diskfs writes the backup GPT, then the primary, each synced.
	if err := table.Write(f, diskSize); err != nil {
		return Partitions{}, fmt.Errorf("write the GPT: %w", err)
	}
	// The protective MBR is ours: go-diskfs truncates its size to 32 bits
	// instead of capping it on disks over 2 TiB.
	if _, err := f.WriteAt(protectiveMBR(diskSize/ss), 0); err != nil {
		return Partitions{}, fmt.Errorf("write the protective MBR: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Partitions{}, fmt.Errorf("sync: %w", err)
	}
	if err := rereadPartitions(f); err != nil {
		return Partitions{}, err
	}
	return parts, f.Close()
}

// gptEntryArray is the size of the entry array go-diskfs writes: 128
// entries of 128 bytes.
const gptEntryArray = 128 * 128

// planPartitions places l's partitions on a disk of diskSize bytes with sectors
// of ss bytes.
func planPartitions(diskSize, ss int64, l PartitionLayout) (Partitions, error) {
	efiMiB := uint64(0)
	if l.EFISystemPartition {
		efiMiB = l.EFIMiB
		if efiMiB == 0 {
			efiMiB = DefaultEFIMiB
		}
	}
	// The first sector after the partitions' room, as readGPT will see
	// it (LastUsableLBA + 1), then the config drive's room before it, on
	// a MiB boundary as placeAtEnd will put it.
	usableEnd := (diskSize/ss - 1 - (gptEntryArray+ss-1)/ss) * ss
	limit := (usableEnd - ConfigDriveReserve) / mib * mib
	tooSmall := func() error {
		root := "a root partition"
		if l.RootMiB != 0 {
			root = fmt.Sprintf("a %d MiB root partition", l.RootMiB)
		}
		efi := ""
		if efiMiB != 0 {
			efi = fmt.Sprintf("a %d MiB EFI system partition and ", efiMiB)
		}
		return fmt.Errorf("the disk (%d bytes, %d MiB) is too small for %s%s: partitions start at 1 MiB, and %d MiB plus the backup GPT stay free at the end for a config drive",
			diskSize, diskSize/mib, efi, root, ConfigDriveReserve/mib)
	}
	// Sizes beyond the disk, checked before they can overflow.
	if efiMiB > uint64(max(limit, 0)/mib) || l.RootMiB > uint64(max(limit, 0)/mib) {
		return Partitions{}, tooSmall()
	}
	var p Partitions
	next, num := int64(mib), 1
	if efiMiB != 0 {
		p.EFI = Partition{Number: num, Start: next, Size: int64(efiMiB) * mib}
		next, num = next+p.EFI.Size, num+1
	}
	rootSize := int64(l.RootMiB) * mib
	if rootSize == 0 {
		rootSize = limit - next
	}
	if rootSize < mib || next+rootSize > limit {
		return Partitions{}, tooSmall()
	}
	p.Root = Partition{Number: num, Start: next, Size: rootSize}
	return p, nil
}

// protectiveMBR is the MBR of a GPT disk of n sectors: one partition of
// type EE from sector 1 over the whole disk, or as much as 32 bits can
// say, with the CHS addresses sgdisk writes.
func protectiveMBR(n int64) []byte {
	mbr := make([]byte, 512)
	e := mbr[mbrTable:][:mbrEntrySize]
	copy(e[1:4], []byte{0x00, 0x02, 0x00})
	e[4] = mbrProtective
	copy(e[5:8], []byte{0xff, 0xff, 0xff})
	le.PutUint32(e[8:], 1)
	le.PutUint32(e[12:], uint32(min(n-1, mbrMaxLBA)))
	mbr[510], mbr[511] = 0x55, 0xaa
	return mbr
}
