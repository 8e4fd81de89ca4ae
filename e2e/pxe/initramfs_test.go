package pxe

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ingot/ingot/e2e/cpio"
)

// buildTestInitramfs builds testinit statically and packs it as /init with
// a /dev/console node, into dir; it returns the archive's path.
func buildTestInitramfs(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-o", bin, "./testinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testinit: %v\n%s", err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	archive := cpio.Newc([]cpio.Entry{
		{Name: "dev", Mode: cpio.Dir},
		{Name: "dev/console", Mode: cpio.CharDev, Major: 5, Minor: 1},
		{Name: "proc", Mode: cpio.Dir},
		{Name: "init", Mode: cpio.Exec, Data: init},
	})
	path := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
