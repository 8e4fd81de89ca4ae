package kmod

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tree lays out a /lib/modules/<release>/ with the fixture modules.dep,
// an empty file per module and a modules.builtin.
func tree(t *testing.T, builtin ...string) string {
	t.Helper()
	dir := t.TempDir()
	dep, err := os.ReadFile("testdata/modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), dep, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := ParseDeps(strings.NewReader(string(dep)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range d {
		for _, p := range append([]string{e.Path}, e.Deps...) {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(dir, p), []byte(p), 0o644)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(strings.Join(builtin, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoad(t *testing.T) {
	for _, tt := range []struct {
		name     string
		want     []string
		builtin  []string
		present  []string         // already in /sys/module
		results  map[string]error // finit's answer per module (default nil)
		calls    []string         // modules finit was asked to load, in order
		loaded   []string
		errParts []string
	}{
		{name: "virtio in order",
			want:   []string{"virtio_pci", "virtio_net", "virtio_blk"},
			calls:  []string{"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci", "failover", "net_failover", "virtio_net", "virtio_blk"},
			loaded: []string{"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci", "failover", "net_failover", "virtio_net", "virtio_blk"}},
		{name: "missing and built-in modules are skipped",
			want:    []string{"e1000", "nvme", "button"},
			builtin: []string{"kernel/drivers/nvme/host/nvme.ko", "kernel/drivers/nvme/host/nvme-core.ko"},
			calls:   []string{"button"}, loaded: []string{"button"}},
		{name: "modules already loaded are not loaded again",
			want: []string{"virtio_blk"}, present: []string{"virtio_ring", "virtio"},
			calls: []string{"virtio_blk"}, loaded: []string{"virtio_blk"}},
		{name: "EEXIST is success but not counted as loaded",
			want: []string{"virtio_blk"}, results: map[string]error{"virtio": unix.EEXIST},
			calls: []string{"virtio_ring", "virtio", "virtio_blk"}, loaded: []string{"virtio_ring", "virtio_blk"}},
		{name: "a failure skips what needs it, not the others",
			want:     []string{"virtio_net", "virtio_blk", "evdev"},
			results:  map[string]error{"failover": unix.ENOEXEC},
			calls:    []string{"failover", "virtio_ring", "virtio", "virtio_blk", "evdev"},
			loaded:   []string{"virtio_ring", "virtio", "virtio_blk", "evdev"},
			errParts: []string{"module failover: finit_module ", "kernel/net/core/failover.ko: exec format error", "module net_failover: needs failover", "module virtio_net: needs net_failover"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree(t, tt.builtin...)
			sys := t.TempDir()
			for _, m := range tt.present {
				os.Mkdir(filepath.Join(sys, m), 0o755)
			}
			var calls []string
			l := &Loader{
				Dir:       dir,
				Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
				sysModule: sys,
				finit: func(f *os.File, flags int) error {
					if flags != 0 {
						t.Errorf("flags %d for an uncompressed module", flags)
					}
					// The file opened is the module's own.
					b, _ := io.ReadAll(f)
					name := Name(string(b))
					if Name(f.Name()) != name {
						t.Errorf("opened %s for %s", f.Name(), name)
					}
					calls = append(calls, name)
					return tt.results[name]
				},
			}
			loaded, err := l.Load(context.Background(), tt.want...)
			if !slices.Equal(calls, tt.calls) {
				t.Errorf("finit calls\n got %v\nwant %v", calls, tt.calls)
			}
			if !slices.Equal(loaded, tt.loaded) {
				t.Errorf("loaded\n got %v\nwant %v", loaded, tt.loaded)
			}
			if len(tt.errParts) == 0 && err != nil {
				t.Errorf("unexpected error %v", err)
			}
			for _, part := range tt.errParts {
				if err == nil || !strings.Contains(err.Error(), part) {
					t.Errorf("error %v lacks %q", err, part)
				}
			}
		})
	}
}

func TestLoadNoTree(t *testing.T) {
	l := &Loader{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := l.Load(context.Background(), "virtio_net"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("want a not-exist error without modules.dep, got %v", err)
	}
}
