package imagewrite

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// gptImage builds a whole-disk image of the given number of 512-byte
// sectors, laid out as sfdisk or sgdisk would: protective MBR, primary GPT
// at LBA 1 with 128 entries at LBA 2, two partitions, backup entries and
// header at the end. Written field by field from the UEFI spec, apart from
// the code under test.
func gptImage(sectors int) []byte {
	const ss = 512
	img := testImage(sectors*ss, 10)
	put32, put64 := binary.LittleEndian.PutUint32, binary.LittleEndian.PutUint64
	clear(img[:34*ss])
	clear(img[(sectors-33)*ss:])

	mbr := img[:ss]
	mbr[446+4] = 0xee
	put32(mbr[446+8:], 1)
	put32(mbr[446+12:], uint32(sectors-1))
	mbr[510], mbr[511] = 0x55, 0xaa

	entries := make([]byte, 128*128)
	linuxFS := []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}
	for i, p := range [][2]uint64{{2048, 4095}, {4096, uint64(sectors) - 34}} {
		e := entries[i*128:]
		copy(e, linuxFS)
		copy(e[16:], bytes.Repeat([]byte{byte(i + 1)}, 16)) // partition GUID
		put64(e[32:], p[0])
		put64(e[40:], p[1])
		copy(e[56:], []byte{'r', 0, 'o', 0, 'o', 0, 't', 0})
	}
	last := uint64(sectors - 1)
	header := func(my, alt, entryLBA uint64) []byte {
		h := make([]byte, ss)
		copy(h, "EFI PART")
		put32(h[8:], 0x00010000)
		put32(h[12:], 92)
		put64(h[24:], my)
		put64(h[32:], alt)
		put64(h[40:], 34)
		put64(h[48:], last-33)
		copy(h[56:], bytes.Repeat([]byte{0x42}, 16)) // disk GUID
		put64(h[72:], entryLBA)
		put32(h[80:], 128)
		put32(h[84:], 128)
		put32(h[88:], crc32.ChecksumIEEE(entries))
		put32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	copy(img[ss:], header(1, last, 2))
	copy(img[2*ss:], entries)
	copy(img[(last-32)*ss:], entries)
	copy(img[last*ss:], header(last, 1, last-32))
	return img
}

type parsedGPT struct {
	my, alt, lastUsable, entryLBA uint64
	entries                       []byte
}

// parseGPT reads and checks a GPT header at lba and its entries.
func parseGPT(t *testing.T, disk []byte, lba uint64) parsedGPT {
	t.Helper()
	le := binary.LittleEndian
	h := append([]byte(nil), disk[lba*512:lba*512+92]...)
	if string(h[:8]) != "EFI PART" {
		t.Fatalf("no GPT header at LBA %d", lba)
	}
	crc := le.Uint32(h[16:])
	clear(h[16:20])
	if crc32.ChecksumIEEE(h) != crc {
		t.Fatalf("GPT header at LBA %d: bad CRC", lba)
	}
	g := parsedGPT{my: le.Uint64(h[24:]), alt: le.Uint64(h[32:]), lastUsable: le.Uint64(h[48:]), entryLBA: le.Uint64(h[72:])}
	g.entries = disk[g.entryLBA*512 : g.entryLBA*512+128*128]
	if crc32.ChecksumIEEE(g.entries) != le.Uint32(h[88:]) {
		t.Fatalf("GPT entries at LBA %d: bad CRC", g.entryLBA)
	}
	return g
}

func TestGPTBackupRepair(t *testing.T) {
	const imageSectors, diskSectors = 8192, 32768 // 4 MiB image, 16 MiB disk
	img := gptImage(imageSectors)
	srv := serve(t, compress(t, FormatZstd, img))
	tgt := emptyTarget(t, t.TempDir(), diskSectors*512)
	if _, err := Write(context.Background(), Config{
		URL: srv.URL, Format: FormatZstd, Algorithm: "sha256", Checksum: sum("sha256", img), Target: tgt,
	}); err != nil {
		t.Fatal(err)
	}
	disk := readTarget(t, tgt)
	if len(disk) != diskSectors*512 {
		t.Fatalf("target is %d bytes, want %d", len(disk), diskSectors*512)
	}

	const last = diskSectors - 1
	primary, backup := parseGPT(t, disk, 1), parseGPT(t, disk, last)
	if primary.my != 1 || primary.alt != last || primary.lastUsable != last-33 || primary.entryLBA != 2 {
		t.Errorf("primary header %+v", primary)
	}
	if backup.my != last || backup.alt != 1 || backup.lastUsable != last-33 || backup.entryLBA != last-32 {
		t.Errorf("backup header %+v", backup)
	}
	if !bytes.Equal(primary.entries, backup.entries) {
		t.Error("backup partition entries differ from the primary ones")
	}
	if got := binary.LittleEndian.Uint32(disk[446+12:]); got != last {
		t.Errorf("protective MBR covers %d sectors, want %d", got, last)
	}
	if bytes.Contains(disk[(imageSectors-1)*512:imageSectors*512], []byte("EFI PART")) {
		t.Error("the image's old backup header is still in the middle of the disk")
	}
	// Everything but the GPT structures is the image, untouched.
	if !bytes.Equal(disk[34*512:(imageSectors-33)*512], img[34*512:(imageSectors-33)*512]) {
		t.Error("partition data changed")
	}

	// Independent checks, where the tools are installed.
	if sgdisk, err := exec.LookPath("sgdisk"); err == nil {
		out, err := exec.Command(sgdisk, "-v", tgt).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("sgdisk -v: %v\n%s", err, out)
		}
	}
	if sfdisk, err := exec.LookPath("sfdisk"); err == nil {
		out, err := exec.Command(sfdisk, "--verify", tgt).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No errors detected") {
			t.Errorf("sfdisk --verify: %v\n%s", err, out)
		}
	}
}

// An image exactly the size of the disk, or without a GPT, is written
// byte for byte.
func TestGPTLeftAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		img  []byte
		disk int64
	}{
		{"GPT image filling the disk", gptImage(4096), 4096 * 512},
		{"no GPT, larger disk", testImage(2<<20, 11), 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := emptyTarget(t, t.TempDir(), tc.disk)
			if _, err := Write(context.Background(), Config{
				URL: serve(t, tc.img).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", tc.img), Target: tgt,
			}); err != nil {
				t.Fatal(err)
			}
			disk := readTarget(t, tgt)
			if !bytes.Equal(disk[:len(tc.img)], tc.img) || int64(len(disk)) != tc.disk {
				t.Error("target is not the image")
			}
		})
	}
}

// Sanity check of the test itself: the synthetic image is a valid GPT disk
// to sgdisk, and the unrepaired write is what sgdisk complains about.
func TestGPTImageIsValid(t *testing.T) {
	sgdisk, err := exec.LookPath("sgdisk")
	if err != nil {
		t.Skip("sgdisk not installed")
	}
	dir := t.TempDir()
	img := gptImage(8192)
	p := emptyTarget(t, dir, 0)
	if err := os.WriteFile(p, img, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sgdisk, "-v", p).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v on the image: %v\n%s", err, out)
	}
	if err := os.Truncate(p, 32768*512); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(sgdisk, "-v", p).CombinedOutput(); strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v finds no problem with a backup GPT in the middle of the disk:\n%s", out)
	}
}
