package imagewrite

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// A whole-disk GPT image carries its backup GPT (partition entries, then a
// header in the last LBA) at the end of the image. Written to a larger
// disk, that backup sits in the middle, the primary header points at it,
// and firmware and tools complain that the disk is corrupt (parted offers
// to "fix" it interactively, sgdisk -v reports problems). repairGPT does
// what `sgdisk -e` does: move the backup to the end of the disk and extend
// LastUsableLBA so partitions can grow into the new space.

const gptSignature = "EFI PART"

// Offsets of the header fields used here (UEFI 2.10, table 5.21).
const (
	gptHeaderSize     = 12
	gptHeaderCRC      = 16
	gptMyLBA          = 24
	gptAlternateLBA   = 32
	gptLastUsableLBA  = 48
	gptEntryLBA       = 72
	gptNumEntries     = 80
	gptEntrySize      = 84
	gptEntriesCRC     = 88
	gptMinHeaderSize  = 92
	gptMaxEntriesSize = 4 << 20
)

var le = binary.LittleEndian

// gptHeaderChecksum is the CRC32 of the header's first HeaderSize bytes
// with its own CRC field taken as zero.
func gptHeaderChecksum(h []byte) uint32 {
	n := le.Uint32(h[gptHeaderSize:])
	c := crc32.NewIEEE()
	c.Write(h[:gptHeaderCRC])
	c.Write([]byte{0, 0, 0, 0})
	c.Write(h[gptHeaderCRC+4 : n])
	return c.Sum32()
}

// repairGPT moves the backup GPT of an image of imageSize bytes to the end
// of the target when the target is larger and the image has a GPT. Images
// without one (MBR, a bare filesystem) are left alone.
func repairGPT(t *target, imageSize int64) error {
	disk, err := t.diskSize()
	if err != nil {
		return err
	}
	if disk <= imageSize {
		return nil
	}
	sizes := []int{t.sectorSize}
	if !t.isDevice && t.sectorSize != 4096 {
		// A file has no sector size of its own: the image's GPT says
		// which (LBA 1 at 512 or at 4096).
		sizes = append(sizes, 4096)
	}
	for _, ss := range sizes {
		if int64(2*ss) > imageSize {
			continue
		}
		hdr := make([]byte, ss)
		if err := t.readAt(hdr, int64(ss)); err != nil {
			return err
		}
		if string(hdr[:8]) == gptSignature {
			return moveBackupGPT(t, hdr, ss, disk)
		}
	}
	return nil
}

func moveBackupGPT(t *target, primary []byte, ss int, disk int64) error {
	hsize := le.Uint32(primary[gptHeaderSize:])
	if hsize < gptMinHeaderSize || int(hsize) > ss {
		return fmt.Errorf("GPT header size %d is invalid", hsize)
	}
	if got, want := gptHeaderChecksum(primary), le.Uint32(primary[gptHeaderCRC:]); got != want {
		return fmt.Errorf("image's primary GPT header is corrupt (CRC %08x, computed %08x)", want, got)
	}
	if my := le.Uint64(primary[gptMyLBA:]); my != 1 {
		return fmt.Errorf("primary GPT header claims to be at LBA %d", my)
	}
	num, esize := le.Uint32(primary[gptNumEntries:]), le.Uint32(primary[gptEntrySize:])
	if esize < 128 || esize%8 != 0 || uint64(num)*uint64(esize) > gptMaxEntriesSize {
		return fmt.Errorf("GPT partition entry array of %d × %d bytes is invalid", num, esize)
	}
	entries := make([]byte, int(num)*int(esize))
	if err := t.readAt(entries, int64(le.Uint64(primary[gptEntryLBA:]))*int64(ss)); err != nil {
		return err
	}
	if got, want := crc32.ChecksumIEEE(entries), le.Uint32(primary[gptEntriesCRC:]); got != want {
		return fmt.Errorf("image's GPT partition entries are corrupt (CRC %08x, computed %08x)", want, got)
	}

	lastLBA := uint64(disk/int64(ss)) - 1
	oldAlt := le.Uint64(primary[gptAlternateLBA:])
	if oldAlt == lastLBA {
		return nil
	}
	entrySectors := (uint64(len(entries)) + uint64(ss) - 1) / uint64(ss)
	backupEntryLBA := lastLBA - entrySectors
	lastUsable := backupEntryLBA - 1
	if lastUsable < le.Uint64(primary[gptLastUsableLBA:]) {
		return fmt.Errorf("disk of %d bytes is smaller than the image's GPT claims", disk)
	}

	backup := append([]byte(nil), primary...)
	le.PutUint64(backup[gptMyLBA:], lastLBA)
	le.PutUint64(backup[gptAlternateLBA:], 1)
	le.PutUint64(backup[gptEntryLBA:], backupEntryLBA)
	le.PutUint64(backup[gptLastUsableLBA:], lastUsable)
	le.PutUint32(backup[gptHeaderCRC:], gptHeaderChecksum(backup))

	le.PutUint64(primary[gptAlternateLBA:], lastLBA)
	le.PutUint64(primary[gptLastUsableLBA:], lastUsable)
	le.PutUint32(primary[gptHeaderCRC:], gptHeaderChecksum(primary))

	// Backup first, synced, then the primary that points at it: a crash in
	// between leaves a valid primary pointing at the old backup.
	padded := make([]byte, entrySectors*uint64(ss))
	copy(padded, entries)
	if err := t.writeCached(padded, int64(backupEntryLBA)*int64(ss)); err != nil {
		return err
	}
	if err := t.writeCached(backup, int64(lastLBA)*int64(ss)); err != nil {
		return err
	}
	if err := t.sync(); err != nil {
		return err
	}
	if err := t.writeCached(primary, int64(ss)); err != nil {
		return err
	}
	if err := clearOldBackup(t, ss, oldAlt, lastUsable); err != nil {
		return err
	}
	if err := fixProtectiveMBR(t, lastLBA); err != nil {
		return err
	}
	return t.sync()
}

// clearOldBackup erases the image's backup header, now inside the usable
// area: a stale "EFI PART" there could later be taken for a GPT by tools
// that scan for one, after a partition grows over it.
func clearOldBackup(t *target, ss int, oldAlt, lastUsable uint64) error {
	if oldAlt <= 1 || oldAlt > lastUsable {
		return nil
	}
	hdr := make([]byte, ss)
	if err := t.readAt(hdr, int64(oldAlt)*int64(ss)); err != nil {
		return err
	}
	if string(hdr[:8]) != gptSignature || le.Uint64(hdr[gptMyLBA:]) != oldAlt {
		return nil
	}
	return t.writeCached(make([]byte, ss), int64(oldAlt)*int64(ss))
}

// fixProtectiveMBR makes a plain protective MBR (one 0xEE partition from
// LBA 1) cover the whole disk, as the UEFI spec asks. Hybrid MBRs are left
// alone: their other entries mean something to someone.
func fixProtectiveMBR(t *target, lastLBA uint64) error {
	mbr := make([]byte, 512)
	if err := t.readAt(mbr, 0); err != nil {
		return err
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil
	}
	const table = 446
	if mbr[table+4] != 0xee || le.Uint32(mbr[table+8:]) != 1 {
		return nil
	}
	for i := 1; i < 4; i++ {
		if mbr[table+16*i+4] != 0 {
			return nil
		}
	}
	size := uint32(min(lastLBA, 0xffffffff))
	if le.Uint32(mbr[table+12:]) == size {
		return nil
	}
	le.PutUint32(mbr[table+12:], size)
	return t.writeCached(mbr, 0)
}
