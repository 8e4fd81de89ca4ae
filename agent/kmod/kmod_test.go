package kmod

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func fixture(t *testing.T) Deps {
	t.Helper()
	f, err := os.Open("testdata/modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ParseDeps(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// names turns module files into names, for short expectations.
func names(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = Name(f)
	}
	return out
}

func TestOrder(t *testing.T) {
	d := fixture(t)
	for _, tt := range []struct {
		name        string
		want        []string
		order       []string
		missing     []string
		firstLoaded string // the path of the first file, when it matters
	}{
		{name: "nothing"},
		{name: "no dependencies", want: []string{"button"}, order: []string{"button"}},
		{name: "virtio_net after failover and virtio",
			want:  []string{"virtio_net"},
			order: []string{"failover", "net_failover", "virtio_ring", "virtio", "virtio_net"}},
		{name: "the virtio set: shared dependencies once",
			want: []string{"virtio_pci", "virtio_net", "virtio_blk"},
			order: []string{"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci",
				"failover", "net_failover", "virtio_net", "virtio_blk"}},
		{name: "a dependency with no line of its own is loaded from its dependent's path",
			want: []string{"sd_mod"}, order: []string{"scsi_common", "scsi_mod", "sd_mod"},
			firstLoaded: "kernel/drivers/scsi/scsi_common.ko"},
		{name: "dashes and underscores are one",
			want: []string{"nvme", "nvme-core"}, order: []string{"nvme_core", "nvme"},
			firstLoaded: "kernel/drivers/nvme/host/nvme-core.ko"},
		{name: "a wanted module that is also a dependency",
			want: []string{"virtio", "virtio_blk", "virtio_ring"}, order: []string{"virtio_ring", "virtio", "virtio_blk"}},
		{name: "missing modules are reported once and skipped",
			want:    []string{"e1000", "evdev", "e1000", "ahci"},
			order:   []string{"evdev"},
			missing: []string{"e1000", "ahci"}},
		{name: "the agent's list on the cloud kernel",
			want: Agent,
			order: []string{"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci",
				"failover", "net_failover", "virtio_net", "virtio_blk", "scsi_common", "scsi_mod", "virtio_scsi",
				"nvme_core", "nvme", "sd_mod", "button", "evdev"},
			missing: []string{"e1000", "e1000e", "ahci"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files, missing, err := d.Order(tt.want...)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(files); !slices.Equal(got, tt.order) {
				t.Errorf("order\n got %v\nwant %v", got, tt.order)
			}
			if !slices.Equal(missing, tt.missing) {
				t.Errorf("missing: got %v, want %v", missing, tt.missing)
			}
			if tt.firstLoaded != "" && (len(files) == 0 || files[0] != tt.firstLoaded) {
				t.Errorf("first file: got %v, want %s", files, tt.firstLoaded)
			}
			assertTopological(t, d, files)
		})
	}
}

// assertTopological checks that every file comes after all its
// dependencies, whatever order the expectation chose.
func assertTopological(t *testing.T, d Deps, files []string) {
	t.Helper()
	at := map[string]int{}
	for i, f := range files {
		at[Name(f)] = i
	}
	for i, f := range files {
		for _, dep := range d[Name(f)].Deps {
			if j, ok := at[Name(dep)]; !ok || j > i {
				t.Errorf("%s (at %d) comes before its dependency %s (at %d, present %v)", f, i, dep, j, ok)
			}
		}
	}
}

func TestOrderCycle(t *testing.T) {
	d, err := ParseDeps(strings.NewReader("a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Order("a"); err == nil || !strings.Contains(err.Error(), "a -> b -> c -> a") {
		t.Errorf("want a cycle error naming the chain, got %v", err)
	}
}

func TestParseDepsErrors(t *testing.T) {
	for _, in := range []string{"kernel/a.ko\n", ": kernel/b.ko\n"} {
		if _, err := ParseDeps(strings.NewReader(in)); err == nil {
			t.Errorf("ParseDeps(%q): want an error", in)
		}
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/net/virtio_net.ko":         "virtio_net",
		"kernel/drivers/nvme/host/nvme-core.ko":    "nvme_core",
		"kernel/drivers/net/virtio_net.ko.xz":      "virtio_net",
		"kernel/drivers/net/virtio_net.ko.zst":     "virtio_net",
		"nvme-core":                                "nvme_core",
		"kernel/drivers/net/ethernet/e1000e.ko.gz": "e1000e",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

// Resolve, from .modinfo's direct dependencies, lists for every module
// what depmod listed (its order among independent modules may differ),
// with each dependency before what it needs itself, so that loading a
// line from its end works, as modprobe does.
func TestResolveMatchesDepmod(t *testing.T) {
	d := fixture(t)
	want, _, err := d.Closure("virtio_pci", "virtio_net", "virtio_blk", "button")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for name, dep := range want {
		files[name] = dep.Path
	}
	// The direct dependencies, as `modinfo -F depends` prints them.
	depends := map[string][]string{
		"virtio":       {"virtio_ring"},
		"virtio_pci":   {"virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"},
		"virtio_blk":   {"virtio", "virtio_ring"},
		"virtio_net":   {"virtio_ring", "virtio", "net_failover"},
		"net_failover": {"failover"},
	}
	got, err := Resolve(files, depends)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("Resolve gave %d modules, want %d", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if g.Path != w.Path || !sameSet(g.Deps, w.Deps) {
			t.Errorf("%s: got %+v, want %+v", name, g, w)
		}
		line := slices.Clone(g.Deps)
		slices.Reverse(line)
		assertTopological(t, got, line)
	}

	// What it writes reads back the same.
	var buf bytes.Buffer
	if _, err := got.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ParseDeps(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(got) {
		t.Errorf("round trip: %d modules, want %d", len(back), len(got))
	}
	for name, g := range got {
		if b := back[name]; b.Path != g.Path || !slices.Equal(b.Deps, g.Deps) {
			t.Errorf("round trip of %s: got %+v, want %+v", name, b, g)
		}
	}

	if _, err := Resolve(map[string]string{"a": "a.ko"}, map[string][]string{"a": {"b"}}); err == nil {
		t.Error("Resolve with a dependency that is not there: want an error")
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestReadModInfo(t *testing.T) {
	ko := fakeModule(t, "name=nvme\x00depends=nvme-core,crc32c\x00license=GPL\x00intree=Y\x00")
	mi, err := ReadModInfo(bytes.NewReader(ko))
	if err != nil {
		t.Fatal(err)
	}
	if mi.Name != "nvme" || !slices.Equal(mi.Depends, []string{"nvme-core", "crc32c"}) {
		t.Errorf("got %+v", mi)
	}
	mi, err = ReadModInfo(bytes.NewReader(fakeModule(t, "name=button\x00depends=\x00")))
	if err != nil || mi.Name != "button" || len(mi.Depends) != 0 {
		t.Errorf("no dependencies: got %+v, %v", mi, err)
	}
	if _, err := ReadModInfo(strings.NewReader("not an ELF file at all, not at all")); err == nil {
		t.Error("want an error for a file that is not ELF")
	}
}

// A real module of the fetched Debian kernel, when there is one.
func TestReadModInfoDebian(t *testing.T) {
	files, _ := filepath.Glob("../../build/kernel/modules/*/kernel/drivers/net/virtio_net.ko")
	if len(files) == 0 {
		t.Skip("no kernel fetched (scripts/fetch-kernel.sh)")
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mi, err := ReadModInfo(f)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(mi.Depends)
	if mi.Name != "virtio_net" || !slices.Equal(mi.Depends, []string{"net_failover", "virtio", "virtio_ring"}) {
		t.Errorf("got %+v", mi)
	}
}

// fakeModule writes the smallest ELF64 file with a .modinfo section.
func fakeModule(t *testing.T, modinfo string) []byte {
	t.Helper()
	const ehsize, shentsize = 64, 64
	shstrtab := "\x00.shstrtab\x00.modinfo\x00"
	dataOff := uint64(ehsize)
	shstrOff := dataOff + uint64(len(modinfo))
	shOff := shstrOff + uint64(len(shstrtab))
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1 /* version */, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(1))  // ET_REL, as modules are
	binary.Write(&b, le, uint16(62)) // EM_X86_64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, shOff)     // shoff
	binary.Write(&b, le, uint32(0)) // flags
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0)) // phentsize
	binary.Write(&b, le, uint16(0)) // phnum
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(3)) // shnum
	binary.Write(&b, le, uint16(1)) // shstrndx
	b.WriteString(modinfo)
	b.WriteString(shstrtab)
	section := func(name, typ uint32, off, size uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(0)) // flags
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0)) // link
		binary.Write(&b, le, uint32(0)) // info
		binary.Write(&b, le, uint64(1)) // addralign
		binary.Write(&b, le, uint64(0)) // entsize
	}
	section(0, 0, 0, 0)                                             // SHN_UNDEF
	section(1, 3 /* SHT_STRTAB */, shstrOff, uint64(len(shstrtab))) // .shstrtab
	section(11, 1 /* SHT_PROGBITS */, dataOff, uint64(len(modinfo)))
	return b.Bytes()
}
