package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// requireTool skips the test when prog is missing, unless
// INGOT_REQUIRE_TOOLS is set (CI must not skip silently).
func requireTool(t *testing.T, prog, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (INGOT_REQUIRE_TOOLS is set; apt-get install %s): %v", prog, pkg, err)
		}
		t.Skipf("%s not installed (apt-get install %s)", prog, pkg)
	}
	return p
}

func run(t *testing.T, stdin, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeISO makes an ISO as openstacksdk does (genisoimage -r -V label)
// holding openstack/latest/meta_data.json and, if pad > 0, a file of pad
// random bytes to make it larger.
func makeISO(t *testing.T, label, meta string, pad int) []byte {
	t.Helper()
	genisoimage := requireTool(t, "genisoimage", "genisoimage")
	dir := t.TempDir()
	latest := filepath.Join(dir, "src", "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(latest, "meta_data.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	if pad > 0 {
		b := make([]byte, pad)
		rand.NewChaCha8([32]byte{2}).Read(b)
		if err := os.WriteFile(filepath.Join(latest, "pad"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "cd.iso")
	run(t, "", genisoimage, "-o", out, "-quiet", "-r", "-V", label, filepath.Join(dir, "src"))
	iso, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return iso
}

// layout is a disk to make: its size, table ("dos", "gpt" or none) and
// partitions (number → start and size in MiB).
type layout struct {
	sizeMiB int
	label   string
	parts   map[int][2]int
	// configDrive, if not nil, is written to that partition (a config
	// drive already on the disk).
	configDrive map[int][]byte
}

// makeDisk writes the layout to a sparse file: each partition is filled
// with random bytes (or its config drive), and the last 8 MiB with 0xAA
// so that stale data where the config drive goes shows.
func makeDisk(t *testing.T, l layout) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(l.sizeMiB) * mib); err != nil {
		t.Fatal(err)
	}
	tail := bytes.Repeat([]byte{0xaa}, 8*mib)
	if _, err := f.WriteAt(tail, int64(l.sizeMiB-8)*mib); err != nil {
		t.Fatal(err)
	}
	switch l.label {
	case "dos":
		script := "label: dos\n"
		for n, p := range l.parts {
			script += fmt.Sprintf("%s%d : start=%d, size=%d, type=83\n", path, n, p[0]*2048, p[1]*2048)
		}
		run(t, script, requireTool(t, "sfdisk", "fdisk"), "-q", path)
	case "gpt":
		args := []string{"-o"}
		for n, p := range l.parts {
			args = append(args, "-n", fmt.Sprintf("%d:%d:%d", n, p[0]*2048, (p[0]+p[1])*2048-1), "-t", fmt.Sprintf("%d:8300", n))
		}
		run(t, "", requireTool(t, "sgdisk", "gdisk"), append(args, path)...)
	}
	r := rand.NewChaCha8([32]byte{1})
	for n, p := range l.parts {
		b := make([]byte, p[1]*mib)
		r.Read(b)
		copy(b, l.configDrive[n])
		if _, err := f.WriteAt(b, int64(p[0])*mib); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type sfdiskPart struct {
	Node  string `json:"node"`
	Start int64  `json:"start"`
	Size  int64  `json:"size"`
	Type  string `json:"type"`
}

type sfdiskTable struct {
	Label      string       `json:"label"`
	LastLBA    int64        `json:"lastlba"`
	SectorSize int64        `json:"sectorsize"`
	Partitions []sfdiskPart `json:"partitions"`
}

// partitions reads the table back with sfdisk, by partition number.
func partitions(t *testing.T, path string) (sfdiskTable, map[int]sfdiskPart) {
	t.Helper()
	var out struct {
		PartitionTable sfdiskTable `json:"partitiontable"`
	}
	js := run(t, "", requireTool(t, "sfdisk", "fdisk"), "--json", path)
	if err := json.Unmarshal([]byte(js), &out); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, js)
	}
	byNum := map[int]sfdiskPart{}
	for _, p := range out.PartitionTable.Partitions {
		n, err := strconv.Atoi(strings.TrimPrefix(p.Node, path))
		if err != nil {
			t.Fatalf("sfdisk node %q", p.Node)
		}
		byNum[n] = p
	}
	return out.PartitionTable, byNum
}

func digest(t *testing.T, path string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestInstallConfigDrive(t *testing.T) {
	blkid := requireTool(t, "blkid", "util-linux")
	small := makeISO(t, "config-2", `{"uuid":"a"}`, 0)
	other := makeISO(t, "config-2", `{"uuid":"b"}`, 0)
	upper := makeISO(t, "CONFIG-2", `{"uuid":"c"}`, 0)
	large := makeISO(t, "config-2", `{"uuid":"d"}`, 66*mib) // a 67 MiB partition
	tests := []struct {
		name     string
		disk     layout
		iso      []byte
		wantPart int
		wantNew  bool  // a partition was added, at the end
		wantMiB  int64 // its size
	}{
		{
			name: "MBR: new partition 2 at the end",
			disk: layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 20}}},
			iso:  small, wantPart: 2, wantNew: true, wantMiB: 64,
		},
		{
			name: "MBR: the first free slot, after the last partition",
			disk: layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 20}, 3: {21, 10}}},
			iso:  small, wantPart: 2, wantNew: true, wantMiB: 64,
		},
		{
			name: "GPT: new partition 2 before the backup GPT",
			disk: layout{sizeMiB: 100, label: "gpt", parts: map[int][2]int{1: {1, 20}}},
			iso:  small, wantPart: 2, wantNew: true, wantMiB: 64,
		},
		{
			name: "GPT: an ISO over 64 MiB gets a partition its size, in MiB",
			disk: layout{sizeMiB: 100, label: "gpt", parts: map[int][2]int{1: {1, 20}}},
			iso:  large, wantPart: 2, wantNew: true, wantMiB: (int64(len(large)) + mib - 1) / mib,
		},
		{
			name: "MBR: the image's config drive partition is reused",
			disk: layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 20}, 2: {21, 4}, 3: {25, 20}}, configDrive: map[int][]byte{2: other}},
			iso:  small, wantPart: 2,
		},
		{
			name: "GPT: a CONFIG-2 partition is reused",
			disk: layout{sizeMiB: 100, label: "gpt", parts: map[int][2]int{1: {1, 20}, 3: {21, 4}}, configDrive: map[int][]byte{3: upper}},
			iso:  small, wantPart: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := makeDisk(t, tt.disk)
			before, _ := partitions(t, path)
			sums := map[int][32]byte{}
			for n, p := range tt.disk.parts {
				if n != tt.wantPart {
					sums[n] = digest(t, path, int64(p[0])*mib, int64(p[1])*mib)
				}
			}

			for i, iso := range [][]byte{tt.iso, other} {
				got, err := InstallConfigDrive(context.Background(), path, bytes.NewReader(iso), int64(len(iso)))
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.wantPart {
					t.Errorf("install %d: partition %d, want %d", i+1, got, tt.wantPart)
				}
				table, parts := partitions(t, path)
				if len(table.Partitions) != len(before.Partitions)+btoi(tt.wantNew) {
					t.Fatalf("install %d: partitions %+v, was %+v", i+1, table.Partitions, before.Partitions)
				}
				p := parts[tt.wantPart]
				ss := table.SectorSize
				if tt.wantNew {
					checkAtEnd(t, path, table, p, tt.wantMiB)
				}
				if got := strings.TrimSpace(run(t, "", blkid, "-p", "-O", fmt.Sprint(p.Start*ss), "-o", "value", "-s", "LABEL", path)); !strings.EqualFold(got, "config-2") {
					t.Errorf("install %d: blkid LABEL = %q", i+1, got)
				}
				if digest(t, path, p.Start*ss, int64(len(iso))) != sha256.Sum256(iso) {
					t.Errorf("install %d: the partition does not hold the ISO", i+1)
				}
				if rest := p.Size*ss - int64(len(iso)); digest(t, path, p.Start*ss+int64(len(iso)), rest) != sha256.Sum256(make([]byte, rest)) {
					t.Errorf("install %d: the partition is not zeroed after the ISO", i+1)
				}
				for n, sum := range sums {
					q := tt.disk.parts[n]
					if digest(t, path, int64(q[0])*mib, int64(q[1])*mib) != sum {
						t.Errorf("install %d: partition %d changed", i+1, n)
					}
				}
				verifyTable(t, path, table.Label)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkAtEnd checks that p is as large as asked, starts on a MiB and ends
// within a MiB of the last sector a partition may use.
func checkAtEnd(t *testing.T, path string, table sfdiskTable, p sfdiskPart, sizeMiB int64) {
	t.Helper()
	ss := table.SectorSize
	if p.Size*ss != sizeMiB*mib {
		t.Errorf("new partition of %d sectors, want %d MiB", p.Size, sizeMiB)
	}
	if p.Start*ss%mib != 0 {
		t.Errorf("new partition starts at sector %d, not on a MiB", p.Start)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	last := fi.Size()/ss - 1
	if table.Label == "gpt" {
		if want := last - 33; table.LastLBA != want {
			t.Errorf("GPT last usable LBA %d, want %d", table.LastLBA, want)
		}
		last = table.LastLBA
	}
	if end := p.Start + p.Size - 1; end > last || last-end >= mib/ss {
		t.Errorf("new partition ends at sector %d, last usable %d", end, last)
	}
	if p.Type != "83" && p.Type != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" {
		t.Errorf("new partition of type %s", p.Type)
	}
}

// verifyTable has sfdisk (and for a GPT sgdisk) check the whole table:
// CRCs, overlaps, the backup GPT.
func verifyTable(t *testing.T, path, label string) {
	t.Helper()
	run(t, "", requireTool(t, "sfdisk", "fdisk"), "--verify", path)
	if label == "gpt" {
		out := run(t, "", requireTool(t, "sgdisk", "gdisk"), "-v", path)
		if !strings.Contains(out, "No problems found") {
			t.Errorf("sgdisk -v:\n%s", out)
		}
	}
}

func TestInstallConfigDriveErrors(t *testing.T) {
	small := makeISO(t, "config-2", `{}`, 0)
	big := makeISO(t, "config-2", `{}`, 2*mib)
	tests := []struct {
		name    string
		disk    layout
		iso     []byte
		wantErr string
	}{
		{"no partition table", layout{sizeMiB: 100}, small, "no partition table"},
		{"MBR: no room at the end", layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 40}}}, small,
			"not enough free space at the end of the disk for a 64 MiB config drive partition"},
		{"GPT: no room at the end", layout{sizeMiB: 100, label: "gpt", parts: map[int][2]int{1: {1, 20}, 2: {60, 10}}}, small,
			"not enough free space at the end of the disk"},
		{"MBR: all four slots used", layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 4}, 2: {5, 4}, 3: {9, 4}, 4: {13, 4}}}, small,
			"no free primary partition slot"},
		{"existing config drive too small", layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 20}, 2: {21, 1}}, configDrive: map[int][]byte{2: small}}, big,
			"larger than the existing config drive partition 2"},
		{"not an ISO", layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 20}}}, bytes.Repeat([]byte{1}, 64<<10),
			"not an ISO 9660 image"},
		{"ISO too short", layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 20}}}, small[:isoVD],
			"too small for an ISO 9660 image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := makeDisk(t, tt.disk)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = InstallConfigDrive(context.Background(), path, bytes.NewReader(tt.iso), int64(len(tt.iso)))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "install config drive on "+path+": ") {
				t.Errorf("err = %q does not name the disk", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Error("the failed install wrote to the disk")
			}
		})
	}
}

func TestInstallConfigDriveMissingOrCancelled(t *testing.T) {
	iso := makeISO(t, "config-2", `{}`, 0)
	missing := filepath.Join(t.TempDir(), "sdz")
	if _, err := InstallConfigDrive(context.Background(), missing, bytes.NewReader(iso), int64(len(iso))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing disk: err = %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("InstallConfigDrive created %s", missing)
	}

	path := makeDisk(t, layout{sizeMiB: 100, label: "dos", parts: map[int][2]int{1: {1, 20}}})
	before, _ := os.ReadFile(path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := InstallConfigDrive(ctx, path, bytes.NewReader(iso), int64(len(iso))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("the cancelled install wrote to the disk")
	}
}
