package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// The archive must unpack with the real cpio tool, names, modes and
// contents intact.
func TestNewcUnpacks(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatal("cpio is not installed")
		}
		t.Skip("cpio is not installed")
	}
	archive := Newc([]Entry{
		{Name: "dev", Mode: Dir},
		{Name: "init", Mode: Exec, Data: []byte("#!/bin/sh\necho hi\n")},
		{Name: "etc", Mode: Dir},
		{Name: "etc/odd", Mode: File, Data: []byte("abc")}, // needs padding
	})
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for name, want := range map[string]string{"init": "#!/bin/sh\necho hi\n", "etc/odd": "abc"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("init mode = %v, %v; want 0755", fi.Mode(), err)
	}
}

// TestCpio reads the archive back by the newc rules the kernel applies:
// 110-byte ASCII header, NUL-terminated name, name and data each padded to
// 4 bytes, ending with TRAILER!!!.
func TestCpio(t *testing.T) {
	in := []Entry{
		{Name: "dev", Mode: 0o040755},
		{Name: "dev/console", Mode: 0o020600, Major: 5, Minor: 1},
		{Name: "init", Mode: 0o100755, Data: []byte("hello")},
	}
	b := Newc(in)
	var names []string
	for off := 0; ; {
		if len(b)-off < 110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header field %d at offset %d: %v", i, off, err)
			}
			return int(v)
		}
		mode, size, rmajor, rminor, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		off = (off + 110 + namesize + 3) &^ 3
		data := b[off : off+size]
		off = (off + size + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			break
		}
		e := in[len(names)]
		if name != e.Name || uint32(mode) != e.Mode || !bytes.Equal(data, e.Data) ||
			uint32(rmajor) != e.Major || uint32(rminor) != e.Minor {
			t.Fatalf("entry %d: name %q mode %o data %q dev %d:%d, want %+v", len(names), name, mode, data, rmajor, rminor, e)
		}
		names = append(names, name)
	}
	if len(names) != len(in) {
		t.Fatalf("read %d entries, want %d", len(names), len(in))
	}
}
