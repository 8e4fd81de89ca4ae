package pxe

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// cpioEntry is one file of a newc cpio archive.
type cpioEntry struct {
	name  string
	mode  uint32 // type and permission bits
	data  []byte
	major uint32 // device numbers, for /dev/console
	minor uint32
}

// writeCpio writes a newc ("070701") archive, the format the kernel
// unpacks as an initramfs.
func writeCpio(entries []cpioEntry) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for i, e := range append(entries, cpioEntry{name: "TRAILER!!!"}) {
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			i+1, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, e.major, e.minor, len(e.name)+1, 0)
		b.WriteString(e.name)
		b.WriteByte(0)
		pad()
		b.Write(e.data)
		pad()
	}
	return b.Bytes()
}

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
	archive := writeCpio([]cpioEntry{
		{name: "dev", mode: 0o040755},
		{name: "dev/console", mode: 0o020600, major: 5, minor: 1},
		{name: "proc", mode: 0o040755},
		{name: "init", mode: 0o100755, data: init},
	})
	path := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
