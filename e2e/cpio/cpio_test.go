package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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
