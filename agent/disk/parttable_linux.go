package disk

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// The partition tables a whole-disk image carries, read and extended just
// enough to add one partition at the end of the disk: the ramdisk has
// neither parted nor sgdisk, and go-diskfs rewrites whole tables (every
// header field and entry it understands, its own way), where this changes
// one entry and the checksums.

// errNoTable is wrapped when a disk has no MBR or GPT.
var errNoTable = errors.New("no partition table")

var le = binary.LittleEndian

// part is one partition of a table, in bytes (end exclusive).
type part struct {
	num        int
	start, end int64
}

func (p part) size() int64 { return p.end - p.start }

// partTable is a disk's MBR or GPT as read, and where a partition may be
// added: the sector range [firstUsable, lastUsable] and the entry slot.
type partTable struct {
	gpt                     bool
	ss                      int64 // logical sector size
	diskSize                int64
	parts                   []part
	freeSlot                int // number of the first unused entry, 0 if none
	firstUsable, lastUsable int64

	mbr []byte // sector 0

	// GPT only: the primary header (one sector) and the entry array.
	hdr     []byte
	entries []byte
}

const (
	mbrTable      = 446
	mbrEntrySize  = 16
	mbrProtective = 0xee
	mbrLinux      = 0x83
	// mbrMaxLBA is the last sector an MBR entry can address (32-bit LBAs).
	mbrMaxLBA = 1<<32 - 1

	gptSignature      = "EFI PART"
	gptHeaderSize     = 12
	gptHeaderCRC      = 16
	gptMyLBA          = 24
	gptAlternateLBA   = 32
	gptFirstUsableLBA = 40
	gptLastUsableLBA  = 48
	gptEntryLBA       = 72
	gptNumEntries     = 80
	gptEntrySize      = 84
	gptEntriesCRC     = 88
	gptMinHeaderSize  = 92
	gptMaxEntries     = 4 << 20 // bytes of entry array accepted
)

// gptLinuxData is the "Linux filesystem data" type GUID
// (0FC63DAF-8483-4772-8E79-3D69D8477DE4) in its on-disk byte order; sgdisk
// gives new partitions this type.
var gptLinuxData = [16]byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}

// readPartTable reads the MBR or GPT of a disk of diskSize bytes. ss is
// the device's logical sector size, or 0 for a regular file, whose GPT
// says which (LBA 1 at 512 or at 4096 bytes).
func readPartTable(r io.ReaderAt, diskSize, ss int64) (*partTable, error) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, errNoTable
	}
	protective := false
	for i := range 4 {
		if mbr[mbrTable+i*mbrEntrySize+4] == mbrProtective {
			protective = true
		}
	}
	if protective {
		sizes := []int64{ss}
		if ss == 0 {
			sizes = []int64{512, 4096}
		}
		for _, s := range sizes {
			hdr := make([]byte, s)
			if _, err := r.ReadAt(hdr, s); err != nil {
				return nil, fmt.Errorf("read the GPT header: %w", err)
			}
			if string(hdr[:8]) == gptSignature {
				return readGPT(r, mbr, hdr, diskSize, s)
			}
		}
		return nil, errors.New("the MBR is a GPT's protective MBR but there is no GPT header at LBA 1")
	}
	if ss == 0 {
		ss = 512
	}
	return readMBR(mbr, diskSize, ss)
}

func readMBR(mbr []byte, diskSize, ss int64) (*partTable, error) {
	t := &partTable{ss: ss, diskSize: diskSize, mbr: mbr}
	sectors := diskSize / ss
	for i := range 4 {
		e := mbr[mbrTable+i*mbrEntrySize:][:mbrEntrySize]
		if e[4] == 0 {
			if t.freeSlot == 0 {
				t.freeSlot = i + 1
			}
			continue
		}
		start, n := int64(le.Uint32(e[8:])), int64(le.Uint32(e[12:]))
		// A boot sector of a bare filesystem (FAT, NTFS) ends in 55 AA
		// too: its "entries" are code and fail these checks.
		if e[0]&0x7f != 0 || start == 0 || n == 0 || start+n > sectors {
			return nil, fmt.Errorf("%w: sector 0 ends like an MBR but entry %d (type %#02x, sectors %d+%d) is not a valid partition of a disk of %d sectors",
				errNoTable, i+1, e[4], start, n, sectors)
		}
		// An extended partition is listed as the range it spans, which
		// holds its logical partitions: nothing is added inside it.
		t.parts = append(t.parts, part{num: i + 1, start: start * ss, end: (start + n) * ss})
	}
	t.firstUsable = mib / ss
	t.lastUsable = min(sectors, mbrMaxLBA+1) - 1
	return t, nil
}

func gptHeaderChecksum(h []byte) uint32 {
	n := le.Uint32(h[gptHeaderSize:])
	c := crc32.NewIEEE()
	c.Write(h[:gptHeaderCRC])
	c.Write([]byte{0, 0, 0, 0})
	c.Write(h[gptHeaderCRC+4 : n])
	return c.Sum32()
}

func readGPT(r io.ReaderAt, mbr, hdr []byte, diskSize, ss int64) (*partTable, error) {
	sectors := diskSize / ss
	hsize := le.Uint32(hdr[gptHeaderSize:])
	if hsize < gptMinHeaderSize || int64(hsize) > ss {
		return nil, fmt.Errorf("the GPT header size %d is invalid", hsize)
	}
	if got, want := gptHeaderChecksum(hdr), le.Uint32(hdr[gptHeaderCRC:]); got != want {
		return nil, fmt.Errorf("the primary GPT header is corrupt (CRC %08x, computed %08x)", want, got)
	}
	num, esize := le.Uint32(hdr[gptNumEntries:]), le.Uint32(hdr[gptEntrySize:])
	if esize < 128 || esize%8 != 0 || uint64(num)*uint64(esize) > gptMaxEntries {
		return nil, fmt.Errorf("the GPT partition entry array of %d × %d bytes is invalid", num, esize)
	}
	entries := make([]byte, int(num)*int(esize))
	if _, err := r.ReadAt(entries, int64(le.Uint64(hdr[gptEntryLBA:]))*ss); err != nil {
		return nil, fmt.Errorf("read the GPT partition entries: %w", err)
	}
	if got, want := crc32.ChecksumIEEE(entries), le.Uint32(hdr[gptEntriesCRC:]); got != want {
		return nil, fmt.Errorf("the GPT partition entries are corrupt (CRC %08x, computed %08x)", want, got)
	}
	t := &partTable{gpt: true, ss: ss, diskSize: diskSize, mbr: mbr, hdr: hdr, entries: entries}
	alt := int64(le.Uint64(hdr[gptAlternateLBA:]))
	t.firstUsable = int64(le.Uint64(hdr[gptFirstUsableLBA:]))
	t.lastUsable = int64(le.Uint64(hdr[gptLastUsableLBA:]))
	// The backup entries go just before the backup header, after the last
	// usable sector; a header saying otherwise is not one to extend.
	if le.Uint64(hdr[gptMyLBA:]) != 1 || alt >= sectors || alt <= 1 ||
		t.lastUsable >= alt-t.entrySectors() || t.firstUsable > t.lastUsable {
		return nil, fmt.Errorf("the GPT header (backup at LBA %d, usable LBAs %d–%d) does not fit a disk of %d sectors",
			alt, t.firstUsable, t.lastUsable, sectors)
	}
	var zero [16]byte
	for i := range int(num) {
		e := entries[i*int(esize):][:esize]
		if [16]byte(e[:16]) == zero {
			if t.freeSlot == 0 {
				t.freeSlot = i + 1
			}
			continue
		}
		first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
		if first > last || last >= sectors {
			return nil, fmt.Errorf("GPT partition %d (LBAs %d–%d) is not on a disk of %d sectors", i+1, first, last, sectors)
		}
		t.parts = append(t.parts, part{num: i + 1, start: first * ss, end: (last + 1) * ss})
	}
	return t, nil
}

// entrySectors is how many sectors a GPT's entry array takes.
func (t *partTable) entrySectors() int64 {
	return (int64(len(t.entries)) + t.ss - 1) / t.ss
}

func (t *partTable) kind() string {
	if t.gpt {
		return "GPT"
	}
	return "MBR"
}

// placeAtEnd returns where a partition of size bytes (a multiple of a
// MiB) goes: starting on a MiB boundary, as late as the table allows, and
// after every existing partition.
func (t *partTable) placeAtEnd(size int64) (part, error) {
	if t.freeSlot == 0 {
		if t.gpt {
			return part{}, fmt.Errorf("all %d GPT partition entries are in use", len(t.entries)/int(le.Uint32(t.hdr[gptEntrySize:])))
		}
		return part{}, errors.New("the MBR has no free primary partition slot (all 4 are in use)")
	}
	align := mib / t.ss
	if align == 0 {
		align = 1
	}
	sectors := size / t.ss
	start := (t.lastUsable + 1 - sectors) / align * align
	used := t.firstUsable * t.ss
	for _, p := range t.parts {
		used = max(used, p.end)
	}
	if start*t.ss < used {
		return part{}, fmt.Errorf("not enough free space at the end of the disk for a %d MiB config drive partition: "+
			"the partitions end at byte %d, and the %s leaves %d bytes usable up to byte %d",
			size/mib, used, t.kind(), max(0, (t.lastUsable+1)*t.ss-used), (t.lastUsable+1)*t.ss)
	}
	return part{num: t.freeSlot, start: start * t.ss, end: (start + sectors) * t.ss}, nil
}

// add records p (from placeAtEnd) in the table and writes it: for a GPT
// the backup first, synced, then the primary, so that a crash half way
// leaves one valid copy that tools restore the other from.
func (t *partTable) add(w io.WriterAt, sync func() error, p part) error {
	if !t.gpt {
		e := t.mbr[mbrTable+(p.num-1)*mbrEntrySize:][:mbrEntrySize]
		first, n := p.start/t.ss, p.size()/t.ss
		e[0] = 0 // not bootable
		copy(e[1:4], chs(first))
		e[4] = mbrLinux
		copy(e[5:8], chs(first+n-1))
		le.PutUint32(e[8:], uint32(first))
		le.PutUint32(e[12:], uint32(n))
		if _, err := w.WriteAt(t.mbr, 0); err != nil {
			return fmt.Errorf("write the MBR: %w", err)
		}
		return sync()
	}

	esize := int(le.Uint32(t.hdr[gptEntrySize:]))
	e := t.entries[(p.num-1)*esize:][:esize]
	clear(e)
	copy(e[:16], gptLinuxData[:])
	if _, err := rand.Read(e[16:32]); err != nil {
		return err
	}
	e[16+7] = e[16+7]&0x0f | 0x40 // version 4 (the field is little-endian)
	e[16+8] = e[16+8]&0x3f | 0x80 // RFC 4122 variant
	le.PutUint64(e[32:], uint64(p.start/t.ss))
	le.PutUint64(e[40:], uint64(p.end/t.ss-1))
	for i, c := range utf16.Encode([]rune("config-2")) {
		le.PutUint16(e[56+2*i:], c)
	}
	le.PutUint32(t.hdr[gptEntriesCRC:], crc32.ChecksumIEEE(t.entries))
	le.PutUint32(t.hdr[gptHeaderCRC:], gptHeaderChecksum(t.hdr))

	// The backup header is the primary with the locations swapped; its
	// entries sit right before it.
	alt := le.Uint64(t.hdr[gptAlternateLBA:])
	backup := append([]byte(nil), t.hdr...)
	backupEntries := alt - uint64(t.entrySectors())
	le.PutUint64(backup[gptMyLBA:], alt)
	le.PutUint64(backup[gptAlternateLBA:], 1)
	le.PutUint64(backup[gptEntryLBA:], backupEntries)
	le.PutUint32(backup[gptHeaderCRC:], gptHeaderChecksum(backup))

	writes := []struct {
		what string
		b    []byte
		lba  uint64
	}{
		{"backup GPT entries", t.entries, backupEntries},
		{"backup GPT header", backup, alt},
		{"", nil, 0}, // sync
		{"GPT entries", t.entries, le.Uint64(t.hdr[gptEntryLBA:])},
		{"GPT header", t.hdr, 1},
	}
	for _, wr := range writes {
		if wr.b == nil {
			if err := sync(); err != nil {
				return err
			}
			continue
		}
		if _, err := w.WriteAt(wr.b, int64(wr.lba)*t.ss); err != nil {
			return fmt.Errorf("write the %s: %w", wr.what, err)
		}
	}
	return sync()
}

// chs is the CHS address of an LBA as fdisk writes it (255 heads, 63
// sectors a track), or the 1023/254/63 that says "use the LBA" beyond
// what CHS can reach.
func chs(lba int64) []byte {
	const heads, spt = 255, 63
	c, h, s := lba/(heads*spt), lba/spt%heads, lba%spt+1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	return []byte{byte(h), byte(s) | byte(c>>8&3)<<6, byte(c)}
}
