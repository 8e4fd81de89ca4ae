package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/ingot/ingot/proto/agentpb"
)

// Plain copies of the messages, comparable with reflect.DeepEqual (the
// generated structs carry internal state).
type (
	diskFields struct {
		Name                                      string
		Size                                      uint64
		Model, Vendor, Serial                     string
		Wwn, WwnWithExtension, WwnVendorExtension string
		Rotational                                bool
		Hctl, ByPath                              string
	}
	nicFields struct {
		Name, MAC string
		Carrier   bool
		Speed     uint32
		IPv4      string
	}
)

func disksOf(inv *agentpb.Inventory) []diskFields {
	var out []diskFields
	for _, d := range inv.GetDisks() {
		out = append(out, diskFields{d.GetName(), d.GetSizeBytes(), d.GetModel(), d.GetVendor(), d.GetSerial(),
			d.GetWwn(), d.GetWwnWithExtension(), d.GetWwnVendorExtension(), d.GetRotational(), d.GetHctl(), d.GetByPath()})
	}
	return out
}

func nicsOf(inv *agentpb.Inventory) []nicFields {
	var out []nicFields
	for _, n := range inv.GetInterfaces() {
		out = append(out, nicFields{n.GetName(), n.GetMacAddress(), n.GetHasCarrier(), n.GetSpeedMbps(), n.GetIpv4Address()})
	}
	return out
}

func TestCollect(t *testing.T) {
	qemuFlags := []string{"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "hypervisor"}
	dellFlags := []string{"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr",
		"sse", "sse2", "ht", "syscall", "nx", "lm", "avx512f"}
	tests := []struct {
		fixture  string
		model    string
		count    uint32
		flags    []string
		memTotal uint64
		physMB   uint64
		disks    []diskFields
		nics     []nicFields
		vendor   [4]string
		bootMode string
	}{{
		fixture:  "qemu",
		model:    "Intel Xeon Processor (Cascadelake)",
		count:    2,
		flags:    qemuFlags,
		memTotal: 4026152 * 1024,
		physMB:   4096, // four online 1 GiB blocks; memory4 is offline
		disks: []diskFields{
			// sr0 (CD-ROM) and loop0 are left out.
			{Name: "/dev/vda", Size: 20 << 30, Vendor: "0x1af4", Serial: "ingot-root", Rotational: true,
				ByPath: "/dev/disk/by-path/pci-0000:00:04.0"},
			{Name: "/dev/vdb", Size: 4 << 30, Vendor: "0x1af4", Rotational: true,
				ByPath: "/dev/disk/by-path/pci-0000:00:05.0"},
		},
		nics: []nicFields{
			// lo and br0 (no device link) are left out; ens4 is down.
			{Name: "ens4", MAC: "52:54:00:ab:cd:02"},
			{Name: "eth0", MAC: "52:54:00:ab:cd:01", Carrier: true},
		},
		vendor:   [4]string{"QEMU", "Standard PC (Q35 + ICH9, 2009)", "", "8a5c1f3e-2b4d-4c6e-9f10-112233445566"},
		bootMode: "bios",
	}, {
		fixture:  "baremetal",
		model:    "Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz",
		count:    4,
		flags:    dellFlags,
		memTotal: 65538908 * 1024,
		physMB:   64128, // 64002.8 MiB rounded up to 128 MiB
		disks: []diskFields{
			// dm-0, md127, zram0 and the hidden nvme0c0n1 are left out.
			{Name: "/dev/nvme0n1", Size: 1953525168 * 512, Model: "Samsung SSD 970 EVO Plus 1TB",
				Serial: "S4EWNX0R123456", Wwn: "eui.0025385b71b2c3d4",
				ByPath: "/dev/disk/by-path/pci-0000:3b:00.0-nvme-1"},
			{Name: "/dev/sda", Size: 937703088 * 512, Model: "SAMSUNG MZ7LH480", Vendor: "ATA",
				Serial: "S45NNA0M123456", Wwn: "0x5000c500a1b2c3d4", WwnWithExtension: "0x5000c500a1b2c3d4",
				Hctl: "0:0:0:0", ByPath: "/dev/disk/by-path/pci-0000:00:17.0-ata-1"},
			{Name: "/dev/sdb", Size: 1758174768 * 512, Model: "LOGICAL VOLUME", Vendor: "HPE",
				Serial: "600508b1001c4d5e6f7a8b9c0d1e2f30", Wwn: "0x600508b1001c4d5e",
				WwnWithExtension: "0x600508b1001c4d5e6f7a8b9c0d1e2f30", WwnVendorExtension: "0x6f7a8b9c0d1e2f30",
				Rotational: true, Hctl: "1:1:0:0", ByPath: "/dev/disk/by-path/pci-0000:5e:00.0-scsi-0:1:0:0"},
			{Name: "/dev/sdc", Size: 30031872 * 512, Model: "Cruzer Blade", Vendor: "SanDisk",
				Serial: "4C530001231108115042", Rotational: true, Hctl: "6:0:0:0",
				ByPath: "/dev/disk/by-path/pci-0000:00:14.0-usb-0:4:1.0-scsi-0:0:0:0"},
		},
		nics: []nicFields{
			// bond0 is left out.
			{Name: "eno1", MAC: "3c:fd:fe:aa:bb:01", Carrier: true, Speed: 10000},
			{Name: "eno2", MAC: "3c:fd:fe:aa:bb:02"},
		},
		vendor:   [4]string{"Dell Inc.", "PowerEdge R640", "ABC1234", "4c4c4544-0042-3110-8052-b4c04f323132"},
		bootMode: "uefi",
	}}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			inv, err := Collect(buildFixture(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			cpu := inv.GetCpu()
			for _, c := range []struct {
				field     string
				got, want any
			}{
				{"cpu model", cpu.GetModelName(), tt.model},
				{"cpu count", cpu.GetCount(), tt.count},
				{"cpu architecture", cpu.GetArchitecture(), architecture(runtime.GOARCH)},
				{"cpu flags", cpu.GetFlags(), tt.flags},
				{"memory total", inv.GetMemory().GetTotalBytes(), tt.memTotal},
				{"memory physical", inv.GetMemory().GetPhysicalMb(), tt.physMB},
				{"manufacturer", inv.GetSystemVendor().GetManufacturer(), tt.vendor[0]},
				{"product name", inv.GetSystemVendor().GetProductName(), tt.vendor[1]},
				{"serial number", inv.GetSystemVendor().GetSerialNumber(), tt.vendor[2]},
				{"uuid", inv.GetSystemVendor().GetUuid(), tt.vendor[3]},
				{"boot mode", inv.GetBootMode(), tt.bootMode},
			} {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s = %#v, want %#v", c.field, c.got, c.want)
				}
			}
			got := disksOf(inv)
			if len(got) != len(tt.disks) {
				t.Errorf("disks:\n got %+v\nwant %+v", got, tt.disks)
			}
			for i := range min(len(got), len(tt.disks)) {
				if got[i] != tt.disks[i] {
					t.Errorf("disk %d:\n got %+v\nwant %+v", i, got[i], tt.disks[i])
				}
			}
			if nics := nicsOf(inv); !reflect.DeepEqual(nics, tt.nics) {
				t.Errorf("interfaces:\n got %+v\nwant %+v", nics, tt.nics)
			}
		})
	}
}

func TestCollectBestEffort(t *testing.T) {
	root := t.TempDir()
	if _, err := Collect(root); !errors.Is(err, ErrNoCPU) {
		t.Fatalf("empty root: err = %v, want ErrNoCPU", err)
	}
	// Only a cpuinfo: everything else is empty, not an error.
	write(t, filepath.Join(root, "proc/cpuinfo"), []byte("processor\t: 0\n"))
	inv, err := Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	if inv.GetCpu().GetCount() != 1 || inv.GetCpu().GetModelName() != "" ||
		inv.GetMemory().GetTotalBytes() != 0 || inv.GetMemory().GetPhysicalMb() != 0 ||
		len(inv.GetDisks()) != 0 || len(inv.GetInterfaces()) != 0 ||
		inv.GetSystemVendor().GetManufacturer() != "" || inv.GetBootMode() != "bios" {
		t.Errorf("sparse inventory = %v", inv)
	}
}

// TestCollectHost reads this machine: read only, and addresses come from
// the kernel since root is "/".
func TestCollectHost(t *testing.T) {
	if _, err := os.Stat("/proc/cpuinfo"); err != nil {
		t.Skip("no /proc")
	}
	inv, err := Collect("/")
	if err != nil {
		t.Fatal(err)
	}
	if inv.GetCpu().GetCount() == 0 || inv.GetMemory().GetTotalBytes() == 0 {
		t.Errorf("host inventory has no CPU or memory: %v", inv)
	}
	for _, d := range inv.GetDisks() {
		if d.GetSizeBytes() == 0 {
			t.Errorf("disk %s has no size", d.GetName())
		}
	}
}

func TestArchitecture(t *testing.T) {
	for goarch, want := range map[string]string{
		"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "riscv64": "riscv64", "mips64": "mips64",
	} {
		if got := architecture(goarch); got != want {
			t.Errorf("architecture(%s) = %s, want %s", goarch, got, want)
		}
	}
}

func TestParseWWID(t *testing.T) {
	tests := []struct{ wwid, wwn, with, vendor string }{
		{"naa.5000c500a1b2c3d4", "0x5000c500a1b2c3d4", "0x5000c500a1b2c3d4", ""},
		{"naa.600508B1001C4D5E6F7A8B9C0D1E2F30\n", "0x600508b1001c4d5e", "0x600508b1001c4d5e6f7a8b9c0d1e2f30", "0x6f7a8b9c0d1e2f30"},
		{"eui.0025385b71b2c3d4", "eui.0025385b71b2c3d4", "", ""},
		{"nvme.144d-5334-53616d73756e67-00000001", "nvme.144d-5334-53616d73756e67-00000001", "", ""},
		{"t10.ATA     QEMU HARDDISK   QM00001", "", "", ""},
		{"naa.not-hex", "", "", ""},
		{"", "", "", ""},
	}
	for _, tt := range tests {
		w, x, v := parseWWID(tt.wwid)
		if w != tt.wwn || x != tt.with || v != tt.vendor {
			t.Errorf("parseWWID(%q) = %q, %q, %q; want %q, %q, %q", tt.wwid, w, x, v, tt.wwn, tt.with, tt.vendor)
		}
	}
}

func TestParseVPD80(t *testing.T) {
	tests := []struct {
		page []byte
		want string
	}{
		{append([]byte{0, 0x80, 0, 6}, "ABC123"...), "ABC123"},
		{append([]byte{0, 0x80, 0, 8}, "  XY9   "...), "XY9"},
		{append([]byte{0, 0x80, 0, 20}, "SHORT"...), "SHORT"}, // length beyond the data
		{append([]byte{0, 0x83, 0, 6}, "ABC123"...), ""},      // another page
		{[]byte{0, 0x80}, ""},
	}
	for _, tt := range tests {
		if got := parseVPD80(tt.page); got != tt.want {
			t.Errorf("parseVPD80(%q) = %q, want %q", tt.page, got, tt.want)
		}
	}
}

func TestComputeByPath(t *testing.T) {
	tests := []struct{ link, nsid, want string }{
		{"../devices/pci0000:00/0000:00:04.0/virtio1/block/vda", "", "/dev/disk/by-path/pci-0000:00:04.0"},
		// Behind a PCIe bridge: the function closest to the disk.
		{"../devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio4/block/vdc", "", "/dev/disk/by-path/pci-0000:01:00.0"},
		{"../devices/pci0000:00/0000:00:1d.0/0000:3b:00.0/nvme/nvme0/nvme0n1", "1", "/dev/disk/by-path/pci-0000:3b:00.0-nvme-1"},
		{"../devices/pci0000:00/0000:00:1d.0/0000:3b:00.0/nvme/nvme0/nvme0n2", "2", "/dev/disk/by-path/pci-0000:3b:00.0-nvme-2"},
		{"../devices/pci0000:00/0000:00:1d.0/0000:3b:00.0/nvme/nvme0/nvme0n1", "", ""},
		// SCSI behind virtio-scsi, SATA, USB: udev's names need more than sysfs.
		{"../devices/pci0000:00/0000:00:05.0/virtio3/host2/target2:0:0/2:0:0:0/block/sda", "", ""},
		{"../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda", "", ""},
		{"../devices/virtual/block/loop0", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := computeByPath(tt.link, tt.nsid); got != tt.want {
			t.Errorf("computeByPath(%q, %q) = %q, want %q", tt.link, tt.nsid, got, tt.want)
		}
	}
}
