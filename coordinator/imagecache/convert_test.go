package imagecache

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireTool skips the test when prog is missing, unless
// INGOT_REQUIRE_TOOLS is set (CI must not skip silently).
func requireTool(t *testing.T, prog string) string {
	t.Helper()
	path, err := exec.LookPath(prog)
	if err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (INGOT_REQUIRE_TOOLS is set): %v", prog, err)
		}
		t.Skipf("%s not installed (apt-get install qemu-utils)", prog)
	}
	return path
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestQcow2(t *testing.T) {
	requireTool(t, "qemu-img")
	work := t.TempDir()
	// Data, a hole, data: the conversion must keep both and the zeros.
	raw := append(append(randBytes(mib, 30), make([]byte, 2*mib)...), randBytes(mib, 31)...)
	rawPath := filepath.Join(work, "disk.raw")
	if err := os.WriteFile(rawPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	qcowPath := filepath.Join(work, "disk.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", rawPath, qcowPath)
	qcow := readFile(t, qcowPath)
	if bytes.Equal(qcow, raw) || string(qcow[:4]) != qcow2Magic {
		t.Fatal("qemu-img did not make a qcow2 image")
	}
	backingPath := filepath.Join(work, "backing.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-b", rawPath, "-F", "raw", backingPath)
	dataFilePath := filepath.Join(work, "datafile.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-o", "data_file="+rawPath, dataFilePath, "4M")

	srv := newImageServer(t)
	qcowURL := srv.add("/disk.qcow2", qcow)
	rawURL := srv.add("/disk.raw", raw)
	backingURL := srv.add("/backing.qcow2", readFile(t, backingPath))
	dataFileURL := srv.add("/datafile.qcow2", readFile(t, dataFilePath))

	for _, tt := range []struct {
		name string
		src  Source
		cfg  Config
		want string // error text, or "" for the raw image
	}{
		{name: "detected", src: Source{URL: qcowURL, Checksum: sha256Hex(qcow)}},
		{name: "declared", src: Source{URL: qcowURL, Checksum: sha512Hex(qcow), DiskFormat: "qcow2"}},
		{name: "local file", src: Source{URL: "disk.qcow2"}, cfg: Config{ImageDir: work}},
		{name: "declared raw, is qcow2", src: Source{URL: qcowURL, Checksum: sha256Hex(qcow), DiskFormat: "raw"}, want: "declared raw but its content is qcow2"},
		{name: "declared qcow2, is raw", src: Source{URL: rawURL, Checksum: sha256Hex(raw), DiskFormat: "qcow2"}, want: "declared qcow2 but its content is raw"},
		{name: "backing file", src: Source{URL: backingURL, Checksum: sha256Hex(readFile(t, backingPath))}, want: "backing file are refused"},
		{name: "data file", src: Source{URL: dataFileURL, Checksum: sha256Hex(readFile(t, dataFilePath))}, want: "external data file are refused"},
		{name: "raw larger than the cache", src: Source{URL: qcowURL, Checksum: sha256Hex(qcow)}, cfg: Config{MaxBytes: 3 * mib}, want: ErrTooLarge.Error()},
		{name: "no qemu-img", src: Source{URL: qcowURL, Checksum: sha256Hex(qcow)}, cfg: Config{QemuImg: "/nonexistent/qemu-img"}, want: "apt-get install qemu-utils"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, tt.cfg)
			e, err := c.Get(t.Context(), tt.src)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkEntry(t, c, e, raw)
				if n := len(dirFiles(t, c.dir)); n != 2 {
					t.Fatalf("%d files in the cache, want the image and its metadata", n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Get: %v, want an error with %q", err, tt.want)
			}
			if files := dirFiles(t, c.dir); len(files) != 0 {
				t.Fatalf("left in the cache: %v", files)
			}
		})
	}
}
