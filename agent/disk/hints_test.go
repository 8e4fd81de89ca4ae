package disk

import (
	"errors"
	"strings"
	"testing"

	"github.com/ingot/ingot/proto/agentpb"
)

const gib = 1 << 30

// testDisks is a mixed machine, listed out of name order on purpose.
func testDisks() []*agentpb.Disk {
	return []*agentpb.Disk{
		{Name: "/dev/vdb", SizeBytes: 4 * gib, Vendor: "0x1af4", Rotational: true,
			ByPath: "/dev/disk/by-path/pci-0000:00:05.0"},
		{Name: "/dev/sdaa", SizeBytes: 480103981056, Model: "SAMSUNG MZ7LH480", Vendor: "ATA",
			Serial: "S45NNA0M999999", Hctl: "7:0:0:0"},
		{Name: "/dev/sdb", SizeBytes: 900185481216, Model: "LOGICAL VOLUME", Vendor: "HPE",
			Serial: "PDNLH0BRH8E0KP", Wwn: "0x600508b1001c4d5e",
			WwnWithExtension: "0x600508b1001c4d5e6f7a8b9c0d1e2f30", WwnVendorExtension: "0x6f7a8b9c0d1e2f30",
			Rotational: true, Hctl: "1:1:0:0", ByPath: "/dev/disk/by-path/pci-0000:5e:00.0-scsi-0:1:0:0"},
		{Name: "/dev/sda", SizeBytes: 480103981056, Model: "SAMSUNG MZ7LH480", Vendor: "ATA",
			Serial: "S45NNA0M123456", Wwn: "0x5000c500a1b2c3d4", WwnWithExtension: "0x5000c500a1b2c3d4",
			Hctl: "0:0:0:0", ByPath: "/dev/disk/by-path/pci-0000:00:17.0-ata-1"},
		{Name: "/dev/sdd", SizeBytes: 2 * gib, Model: "Cruzer Blade", Vendor: "SanDisk", Rotational: true,
			Wwn: "0x4000cca77fc4dba1", WwnWithExtension: "0x4000cca77fc4dba1", Hctl: "6:0:0:0"},
		{Name: "/dev/nvme0n1", SizeBytes: 1000204886016, Model: "Samsung SSD 970 EVO Plus 1TB",
			Serial: "S4EWNX0R123456", Wwn: "eui.0025385b71b2c3d4",
			ByPath: "/dev/disk/by-path/pci-0000:3b:00.0-nvme-1"},
		{Name: "/dev/vda", SizeBytes: 20 * gib, Vendor: "0x1af4", Serial: "ingot-root", Rotational: true,
			ByPath: "/dev/disk/by-path/pci-0000:00:04.0"},
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name  string
		hints map[string]string
		want  string // disk name, or "" when an error is expected
		err   string // substring of the error
	}{
		// No hints: Ironic's smallest disk of at least 4 GiB (sdd is 2 GiB).
		{"no hints", nil, "/dev/vdb", ""},
		{"empty hints", map[string]string{}, "/dev/vdb", ""},

		// Ironic documentation examples.
		{"doc wwn", map[string]string{"wwn": "0x4000cca77fc4dba1"}, "/dev/sdd", ""},
		{"doc size range", map[string]string{"size": "<range-in> ( 10 100 )"}, "/dev/vda", ""},
		{"doc by_path", map[string]string{"by_path": "/dev/disk/by-path/pci-0000:00:17.0-ata-1"}, "/dev/sda", ""},
		{"doc by_path short", map[string]string{"by_path": "pci-0000:3b:00.0-nvme-1"}, "/dev/nvme0n1", ""},
		{"doc spec >=", map[string]string{"size": ">= 60"}, "/dev/nvme0n1", ""},
		{"doc spec <or>", map[string]string{"vendor": "<or> HPE <or> Dell"}, "/dev/sdb", ""},
		{"doc spec <in>", map[string]string{"model": "<in> samsung"}, "/dev/nvme0n1", ""},

		// name: with and without /dev/, operators, and kernel order.
		{"name", map[string]string{"name": "/dev/sdb"}, "/dev/sdb", ""},
		{"name without /dev", map[string]string{"name": "sdb"}, "/dev/sdb", ""},
		{"name s==", map[string]string{"name": "s== vda"}, "/dev/vda", ""},
		{"name s!=", map[string]string{"name": "s!= nvme0n1"}, "/dev/sda", ""},
		{"name <or>", map[string]string{"name": "<or> sdx <or> /dev/vdb"}, "/dev/vdb", ""},
		{"name <in>", map[string]string{"name": "<in> nvme"}, "/dev/nvme0n1", ""},
		{"name s<", map[string]string{"name": "s< /dev/sda"}, "/dev/nvme0n1", ""},
		{"name s>", map[string]string{"name": "s> /dev/sdd"}, "/dev/vda", ""},
		{"name s>=", map[string]string{"name": "s>= /dev/vdb"}, "/dev/vdb", ""},
		{"name s<=", map[string]string{"name": "s<= /dev/nvme0n1"}, "/dev/nvme0n1", ""},
		{"sdb before sdaa", map[string]string{"model": "samsung mz7lh480"}, "/dev/sda", ""},
		{"sdz order", map[string]string{"serial": "<or> S45NNA0M999999 <or> PDNLH0BRH8E0KP"}, "/dev/sdb", ""},

		// size in GiB, compared exactly (447.13 GiB is not 447).
		{"size default ==", map[string]string{"size": "20"}, "/dev/vda", ""},
		{"size ==", map[string]string{"size": "== 4"}, "/dev/vdb", ""},
		{"size not exact", map[string]string{"size": "447"}, "", "no disk matches"},
		{"size !=", map[string]string{"size": "!= 931", "rotational": "true"}, "/dev/sdb", ""},
		{"size >", map[string]string{"size": "> 900"}, "/dev/nvme0n1", ""},
		{"size <", map[string]string{"size": "< 4"}, "/dev/sdd", ""},
		{"size <=", map[string]string{"size": "<= 4"}, "/dev/sdd", ""},
		{"size = means >=", map[string]string{"size": "= 900"}, "/dev/nvme0n1", ""},
		{"size <or>", map[string]string{"size": "<or> 4 <or> 20"}, "/dev/vda", ""},
		{"size <range-in> inclusive", map[string]string{"size": "<range-in> [4 4]"}, "/dev/vdb", ""},
		{"size <range-in> exclusive", map[string]string{"size": "<range-in> (4 20)"}, "", "no disk matches"},
		{"size <range-in> half", map[string]string{"size": "<range-in> (4 20]"}, "/dev/vda", ""},

		// Strings: case-insensitive, trimmed; every operator.
		{"model default s==", map[string]string{"model": "  Logical Volume "}, "/dev/sdb", ""},
		{"model s!=", map[string]string{"model": "s!= samsung ssd 970 evo plus 1tb"}, "/dev/sda", ""},
		{"model <all-in>", map[string]string{"model": "<all-in> samsung 480"}, "/dev/sda", ""},
		{"model <all-in> none", map[string]string{"model": "<all-in> samsung 123"}, "", "no disk matches"},
		{"vendor", map[string]string{"vendor": "ata"}, "/dev/sda", ""},
		{"vendor <in> virtio id", map[string]string{"vendor": "<in> 1af4"}, "/dev/vda", ""},
		{"serial", map[string]string{"serial": "S4EWNX0R123456"}, "/dev/nvme0n1", ""},
		{"wwn", map[string]string{"wwn": "0x600508B1001C4D5E"}, "/dev/sdb", ""},
		{"wwn eui", map[string]string{"wwn": "eui.0025385b71b2c3d4"}, "/dev/nvme0n1", ""},
		{"wwn_with_extension", map[string]string{"wwn_with_extension": "0x600508b1001c4d5e6f7a8b9c0d1e2f30"}, "/dev/sdb", ""},
		{"wwn_vendor_extension", map[string]string{"wwn_vendor_extension": "0x6f7a8b9c0d1e2f30"}, "/dev/sdb", ""},
		{"hctl", map[string]string{"hctl": "6:0:0:0"}, "/dev/sdd", ""},
		{"hctl s>=", map[string]string{"hctl": "s>= 1:0:0:0"}, "/dev/sdb", ""},

		// An empty device value never matches, whatever the operator.
		{"empty value s!=", map[string]string{"model": "s!= x", "size": "20"}, "", "no disk matches"},

		// rotational: oslo's strict Booleans.
		{"rotational true", map[string]string{"rotational": "true"}, "/dev/sdb", ""},
		{"rotational 0", map[string]string{"rotational": "0"}, "/dev/nvme0n1", ""},
		{"rotational off + size", map[string]string{"rotational": "off", "size": "<= 500"}, "/dev/sda", ""},
		{"rotational yes + vendor", map[string]string{"rotational": "Yes", "vendor": "0x1af4"}, "/dev/vda", ""},

		// All hints must match.
		{"all hints", map[string]string{"vendor": "ata", "serial": "S45NNA0M999999"}, "/dev/sdaa", ""},
		{"all hints none", map[string]string{"vendor": "ata", "serial": "S4EWNX0R123456"}, "", "no disk matches"},

		// Malformed hints are errors, never "no match".
		{"unknown key", map[string]string{"tran": "sas", "size": "20"}, "", `hints ["tran"] are invalid`},
		{"size not integer", map[string]string{"size": "big"}, "", "not a positive integer"},
		{"size zero", map[string]string{"size": "0"}, "", "not a positive integer"},
		{"size negative", map[string]string{"size": ">= -5"}, "", "not a positive integer"},
		{"size string op", map[string]string{"size": "s== 20"}, "", "does not apply to numbers"},
		{"size <in>", map[string]string{"size": "<in> 20"}, "", "does not apply to numbers"},
		{"size bad range", map[string]string{"size": "<range-in> 10 20"}, "", "takes a range"},
		{"size reversed range", map[string]string{"size": "<range-in> [20 10]"}, "", "low <= high"},
		{"model numeric op", map[string]string{"model": ">= 3"}, "", "compares numbers"},
		{"empty expression", map[string]string{"serial": "  "}, "", "is empty"},
		{"operator without value", map[string]string{"serial": "s=="}, "", "has no value"},
		{"rotational not bool", map[string]string{"rotational": "maybe"}, "", "not a Boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Match(testDisks(), tt.hints)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Match(%v) = %v, %v; want error containing %q", tt.hints, got.GetName(), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Match(%v): %v", tt.hints, err)
			}
			if got.GetName() != tt.want {
				t.Errorf("Match(%v) = %s, want %s", tt.hints, got.GetName(), tt.want)
			}
		})
	}
}

func TestMatchErrorListsHintsAndDisks(t *testing.T) {
	_, err := Match(testDisks(), map[string]string{"serial": "NOPE", "size": ">= 100"})
	if !errors.Is(err, ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
	for _, want := range []string{
		`serial="NOPE"`, `size=">= 100"`,
		`/dev/sda (447.13 GiB, model "SAMSUNG MZ7LH480", serial "S45NNA0M123456")`,
		`/dev/vda (20.00 GiB, model "", serial "ingot-root")`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestMatchNoHintsNothingBigEnough(t *testing.T) {
	small := []*agentpb.Disk{{Name: "/dev/sdd", SizeBytes: 2 * gib}}
	if _, err := Match(small, nil); !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "/dev/sdd") {
		t.Fatalf("err = %v, want ErrNoMatch naming /dev/sdd", err)
	}
	if _, err := Match(nil, map[string]string{"size": "20"}); !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "disks seen: none") {
		t.Fatalf("err = %v, want ErrNoMatch with no disks", err)
	}
}

func TestMatchDoesNotReorderInput(t *testing.T) {
	disks := testDisks()
	first := disks[0]
	if _, err := Match(disks, nil); err != nil {
		t.Fatal(err)
	}
	if disks[0] != first {
		t.Error("Match reordered the caller's slice")
	}
}

func TestSort(t *testing.T) {
	names := []string{"/dev/sdaa", "/dev/vdb", "/dev/nvme10n1", "/dev/sdz", "/dev/sda", "/dev/nvme2n1",
		"/dev/nvme0n2", "/dev/nvme0n1", "/dev/vda", "/dev/sdab", "/dev/hda", "/dev/mmcblk0", "/dev/xvda"}
	want := []string{"/dev/hda", "/dev/mmcblk0", "/dev/nvme0n1", "/dev/nvme0n2", "/dev/nvme2n1", "/dev/nvme10n1",
		"/dev/sda", "/dev/sdz", "/dev/sdaa", "/dev/sdab", "/dev/vda", "/dev/vdb", "/dev/xvda"}
	disks := make([]*agentpb.Disk, len(names))
	for i, n := range names {
		disks[i] = &agentpb.Disk{Name: n}
	}
	Sort(disks)
	for i, d := range disks {
		if d.GetName() != want[i] {
			t.Fatalf("position %d: %s, want %s (all: %v)", i, d.GetName(), want[i], disks)
		}
	}
}
