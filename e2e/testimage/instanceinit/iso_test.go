package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// makeISO runs genisoimage over a config drive tree holding meta, with
// the given naming extensions (-J Joliet, -r Rock Ridge).
func makeISO(t *testing.T, label, meta string, ext ...string) string {
	t.Helper()
	if _, err := exec.LookPath("genisoimage"); err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") == "1" {
			t.Fatalf("genisoimage is required: %v", err)
		}
		t.Skip("genisoimage not installed")
	}
	dir := t.TempDir()
	latest := filepath.Join(dir, "tree", "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(latest, "meta_data.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	// A long name, so Joliet and Rock Ridge names differ from 8.3 ones.
	if err := os.WriteFile(filepath.Join(latest, "network_data.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "cd.iso")
	args := append(append([]string{"-quiet"}, ext...), "-V", label, "-o", iso, filepath.Join(dir, "tree"))
	if out, err := exec.Command("genisoimage", args...).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

func TestReadISOFile(t *testing.T) {
	const meta = `{"uuid":"7c1b0a3e-0d6f-4a52-9d8e-3f2a8b1c9e01","name":"test-node"}`
	for _, tc := range []struct {
		name string
		ext  []string
	}{
		{"joliet+rockridge", []string{"-J", "-r"}},
		{"rockridge", []string{"-r"}},
		{"joliet", []string{"-J"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iso := makeISO(t, "config-2", meta, tc.ext...)
			dev, got, err := scan([]string{filepath.Join(t.TempDir(), "missing"), os.Args[0], iso})
			if err != nil {
				t.Fatal(err)
			}
			if dev != iso || got.UUID != "7c1b0a3e-0d6f-4a52-9d8e-3f2a8b1c9e01" || got.Name != "test-node" {
				t.Fatalf("scan = %s %+v", dev, got)
			}
		})
	}
}

func TestScanIgnoresOtherISOs(t *testing.T) {
	iso := makeISO(t, "cidata", `{}`, "-J", "-r")
	f, err := os.Open(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if label, ok := isoVolumeID(f); !ok || label != "cidata" {
		t.Fatalf("isoVolumeID = %q, %v", label, ok)
	}
	if _, _, err := scan([]string{iso}); err == nil || !strings.Contains(err.Error(), "no config-2 filesystem") {
		t.Fatalf("scan error = %v", err)
	}
}

// Without Joliet or Rock Ridge the 8.3 names cannot match: the error
// must say what was missing rather than return something else.
func TestReadISOFilePlainNames(t *testing.T) {
	iso := makeISO(t, "config-2", `{}`)
	_, _, err := scan([]string{iso})
	if err == nil || !strings.Contains(err.Error(), "not found in the primary tree") {
		t.Fatalf("scan error = %v", err)
	}
}
