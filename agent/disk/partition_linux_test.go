package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"strings"
	"testing"
)

const (
	typeESP   = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeLinux = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

func TestCreatePartitions(t *testing.T) {
	iso := makeISO(t, "config-2", `{"uuid":"a"}`, 0)
	tests := []struct {
		name   string
		disk   layout // what the disk held before
		l      PartitionLayout
		efiMiB int64 // 0: no ESP
		// the root partition expected, in MiB
		rootStart, rootMiB int64
	}{
		{
			name:   "ESP of the default size and a 100 MiB root, over a GPT",
			disk:   layout{sizeMiB: 512, label: "gpt", parts: map[int][2]int{1: {1, 300}, 2: {301, 100}, 3: {401, 100}}},
			l:      PartitionLayout{RootMiB: 100, EFISystemPartition: true},
			efiMiB: 200, rootStart: 201, rootMiB: 100,
		},
		{
			name: "ESP of 16 MiB, root to the end, over an MBR",
			disk: layout{sizeMiB: 200, label: "dos", parts: map[int][2]int{1: {1, 50}, 2: {51, 149}}},
			l:    PartitionLayout{EFISystemPartition: true, EFIMiB: 16},
			// (200 MiB - the backup GPT - 64 MiB) rounded down to a MiB
			efiMiB: 16, rootStart: 17, rootMiB: 135 - 17,
		},
		{
			name:      "no ESP, root to the end of a blank disk",
			disk:      layout{sizeMiB: 100},
			l:         PartitionLayout{EFIMiB: 50}, // ignored without EFISystemPartition
			rootStart: 1, rootMiB: 35 - 1,
		},
		{
			name:      "no ESP, the largest root_mib that fits",
			disk:      layout{sizeMiB: 100, label: "gpt", parts: map[int][2]int{1: {1, 98}}},
			l:         PartitionLayout{RootMiB: 34},
			rootStart: 1, rootMiB: 34,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := makeDisk(t, tt.disk)
			got, err := CreatePartitions(context.Background(), path, tt.l)
			if err != nil {
				t.Fatal(err)
			}
			root := Partition{Number: 1, Start: tt.rootStart * mib, Size: tt.rootMiB * mib}
			want := Partitions{Root: root}
			if tt.efiMiB != 0 {
				want.EFI = Partition{Number: 1, Start: mib, Size: tt.efiMiB * mib}
				want.Root.Number = 2
			}
			if got != want {
				t.Fatalf("CreatePartitions = %+v, want %+v", got, want)
			}

			table, parts := partitions(t, path)
			if table.Label != "gpt" || table.SectorSize != 512 {
				t.Fatalf("table %+v, want a GPT of 512-byte sectors", table)
			}
			if len(parts) != 1+btoi(tt.efiMiB != 0) {
				t.Fatalf("partitions %+v, want only the new ones", table.Partitions)
			}
			check := func(p Partition, typ string) {
				t.Helper()
				s := parts[p.Number]
				if s.Start*512 != p.Start || s.Size*512 != p.Size || s.Type != typ {
					t.Errorf("partition %d: sfdisk says %+v, want bytes %d+%d of type %s", p.Number, s, p.Start, p.Size, typ)
				}
			}
			if tt.efiMiB != 0 {
				check(want.EFI, typeESP)
				if digest(t, path, mib, mib) != sha256.Sum256(make([]byte, mib)) {
					t.Error("the ESP's first MiB was not wiped")
				}
			}
			check(want.Root, typeLinux)
			if fi, _ := os.Stat(path); fi.Size() != int64(tt.disk.sizeMiB)*mib {
				t.Errorf("the disk is now %d bytes", fi.Size())
			}
			out := run(t, "", requireTool(t, "sgdisk", "gdisk"), "-p", path)
			if !strings.Contains(out, " 8300  root") || (tt.efiMiB != 0) != strings.Contains(out, " EF00  EFI system partition") {
				t.Errorf("sgdisk -p:\n%s", out)
			}
			verifyTable(t, path, "gpt")

			// The config drive fits after the root partition.
			n, err := InstallConfigDrive(context.Background(), path, bytes.NewReader(iso), int64(len(iso)))
			if err != nil {
				t.Fatalf("config drive after the layout: %v", err)
			}
			if n != want.Root.Number+1 {
				t.Errorf("config drive in partition %d, want %d", n, want.Root.Number+1)
			}
			table, parts = partitions(t, path)
			checkAtEnd(t, path, table, parts[n], 64)
			if cd := parts[n].Start * 512; cd < want.Root.Start+want.Root.Size {
				t.Errorf("config drive at byte %d, inside the root partition", cd)
			}
			check(want.Root, typeLinux)
			verifyTable(t, path, "gpt")
		})
	}
}

func TestCreatePartitionsTooSmall(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sizeMiB int
		l       PartitionLayout
		want    string
	}{
		{"root_mib one MiB too large", 100, PartitionLayout{RootMiB: 35}, "too small for a 35 MiB root partition"},
		{"no room for root after the ESP", 265, PartitionLayout{EFISystemPartition: true},
			"too small for a 200 MiB EFI system partition and a root partition"},
		{"an absurd root_mib", 100, PartitionLayout{RootMiB: 1 << 62}, "too small"},
		{"an absurd efi_mib", 100, PartitionLayout{EFISystemPartition: true, EFIMiB: 1 << 63}, "too small"},
		{"smaller than the config drive's room", 32, PartitionLayout{}, "(33554432 bytes, 32 MiB) is too small"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := makeDisk(t, layout{sizeMiB: tt.sizeMiB, label: "gpt", parts: map[int][2]int{1: {1, 10}}})
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = CreatePartitions(context.Background(), path, tt.l)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "create partitions on "+path) {
				t.Fatalf("CreatePartitions: %v, want an error saying %q", err, tt.want)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("the disk changed")
			}
		})
	}
}

func TestCreatePartitionsMissingOrCancelled(t *testing.T) {
	if _, err := CreatePartitions(context.Background(), "/nonexistent/vda", PartitionLayout{}); err == nil {
		t.Error("no error for a missing disk")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CreatePartitions(ctx, makeDisk(t, layout{sizeMiB: 100}), PartitionLayout{}); err == nil {
		t.Error("no error when cancelled")
	}
}

// On a disk over 2 TiB the protective MBR covers what 32 bits can say.
func TestProtectiveMBR(t *testing.T) {
	for _, tt := range []struct {
		sectors int64
		want    uint32
	}{
		{204800, 204799},
		{1 << 33, 0xffffffff},
	} {
		mbr := protectiveMBR(tt.sectors)
		e := mbr[mbrTable:]
		if e[4] != 0xee || le.Uint32(e[8:]) != 1 || le.Uint32(e[12:]) != tt.want || mbr[510] != 0x55 || mbr[511] != 0xaa {
			t.Errorf("%d sectors: protective MBR entry % x", tt.sectors, e[:16])
		}
	}
}
