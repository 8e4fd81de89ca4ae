package inventory

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildFixture turns testdata/<name>.txtar into a /sys and /proc tree in a
// temporary directory and returns its root. The trees are kept as text
// because sysfs paths are full of colons and symlinks, which Go module zips
// do not carry.
//
// "-- path --" starts a file whose content is the lines up to the next
// header; "-- path -> target --" is a symlink, "-- path/ --" an empty
// directory, "-- path [hex] --" a file whose content is hex-encoded.
// Text before the first header is a comment.
func buildFixture(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".txtar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root := t.TempDir()

	var file string // current file, "" before the first header
	var content strings.Builder
	isHex := false
	flush := func() {
		if file == "" {
			return
		}
		data := []byte(content.String())
		if isHex {
			var err error
			if data, err = hex.DecodeString(strings.TrimSpace(string(data))); err != nil {
				t.Fatalf("%s: %s: %v", name, file, err)
			}
		}
		write(t, filepath.Join(root, file), data)
		file, isHex = "", false
		content.Reset()
	}

	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		header, isHeader := strings.CutPrefix(line, "-- ")
		header, closed := strings.CutSuffix(header, " --")
		if !isHeader || !closed {
			if file != "" {
				content.WriteString(line + "\n")
			}
			continue
		}
		flush()
		p := filepath.Join(root, filepath.FromSlash(strings.Fields(header)[0]))
		switch {
		case strings.Contains(header, " -> "):
			src, target, _ := strings.Cut(header, " -> ")
			p = filepath.Join(root, filepath.FromSlash(src))
			mkdir(t, filepath.Dir(p))
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(header, "/"):
			mkdir(t, p)
		default:
			file, isHex = strings.TrimSuffix(header, " [hex]"), strings.HasSuffix(header, " [hex]")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return root
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// write creates a file; its directory may be reached through a symlink
// made earlier (sys/block/vda → ../devices/…), as in sysfs.
func write(t *testing.T, p string, data []byte) {
	t.Helper()
	mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
