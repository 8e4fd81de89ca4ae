package disk

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDisk writes a regular file of n bytes standing in for a disk: random
// data everywhere, with the signatures a real disk would carry written over
// it. It returns the path and the contents.
func fakeDisk(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	put := func(off int, b []byte) {
		if off >= 0 && off+len(b) <= n {
			copy(data[off:], b)
		}
	}
	put(510, []byte{0x55, 0xaa})                 // protective MBR
	put(512, []byte("EFI PART"))                 // primary GPT header
	put(1080, []byte{0x53, 0xef})                // ext4 s_magic
	put(64<<10+64, []byte("_BHRfS_M"))           // btrfs
	put(2*mib, []byte("SKUL\xba\xbe"))           // LUKS2 secondary header
	put(n-8<<10, []byte{0xfc, 0x4e, 0x2b, 0xa9}) // md 1.0 superblock
	put(n-512, []byte("EFI PART"))               // backup GPT header
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func TestEraseMetadata(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		zeros [][2]int // ranges expected zero afterwards; the rest unchanged
	}{
		{"8 MiB", 8 * mib, [][2]int{
			{0, mib}, {mib, mib + 4096}, {2 * mib, 2*mib + 4096}, {4 * mib, 4*mib + 4096}, {7 * mib, 8 * mib}}},
		{"3 MiB: LUKS2 offsets partly beyond the end", 3 * mib, [][2]int{
			{0, mib}, {mib, mib + 4096}, {2 * mib, 3 * mib}}},
		{"1.5 MiB: ends overlap", 3 * mib / 2, [][2]int{{0, 3 * mib / 2}}},
		{"100 KiB: smaller than a MiB", 100 << 10, [][2]int{{0, 100 << 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, before := fakeDisk(t, tt.size)
			if err := EraseMetadata(context.Background(), path); err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("size changed: %d → %d", len(before), len(after))
			}
			want := bytes.Clone(before)
			for _, r := range tt.zeros {
				clear(want[r[0]:r[1]])
			}
			if i := firstDiff(after, want); i >= 0 {
				t.Fatalf("byte %d is %#x, want %#x", i, after[i], want[i])
			}
		})
	}
}

func TestEraseMetadataErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "sdz")
	err := EraseMetadata(context.Background(), missing)
	if err == nil || !strings.HasPrefix(err.Error(), "erase metadata on "+missing+": ") {
		t.Errorf("missing device: err = %v", err)
	}
	if _, statErr := os.Stat(missing); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("EraseMetadata created %s", missing)
	}

	path, before := fakeDisk(t, 2*mib)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := EraseMetadata(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("cancelled EraseMetadata wrote")
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
