package imagecache

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

const benchSize = 64 * mib

// BenchmarkGetCold fetches a 64 MiB raw image over loopback into an empty
// cache entry each time: download, sha256 verification in the same pass,
// fsync and commit. Compare with BenchmarkPlainDownload for the cost of
// verification.
func BenchmarkGetCold(b *testing.B) {
	srv := newImageServer(b)
	data := randBytes(benchSize, 40)
	url := srv.add("/img", data)
	sum := sha256Hex(data)
	// Room for two images: each iteration's entry evicts the previous one,
	// so the disk use stays flat.
	c := newCache(b, Config{MaxBytes: 2 * benchSize, Logger: slog.New(slog.DiscardHandler)})
	b.SetBytes(benchSize)
	for i := 0; b.Loop(); i++ {
		// A new query string is a new source: always a cold fetch.
		e, err := c.Get(b.Context(), Source{URL: fmt.Sprintf("%s?i=%d", url, i), Checksum: sum, DiskFormat: "raw"})
		if err != nil {
			b.Fatal(err)
		}
		if e.Size != benchSize {
			b.Fatalf("size %d", e.Size)
		}
	}
}

// BenchmarkPlainDownload is the same transfer with io.Copy to a file and
// nothing else: no hashing, no fsync.
func BenchmarkPlainDownload(b *testing.B) {
	srv := newImageServer(b)
	url := srv.add("/img", randBytes(benchSize, 40))
	dir := b.TempDir()
	b.SetBytes(benchSize)
	for b.Loop() {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, "img"))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(f, resp.Body)
		resp.Body.Close()
		f.Close()
		if err != nil || n != benchSize {
			b.Fatalf("%d bytes: %v", n, err)
		}
	}
}
