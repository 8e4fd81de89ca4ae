package imagecache

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zstdCompress returns raw compressed as one zstd frame.
func zstdCompress(t testing.TB, raw []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(raw, nil)
}

// checkZstdEntry checks that e is the zstd image comp, whose
// decompression is raw, cached as it was downloaded.
func checkZstdEntry(t testing.TB, c *Cache, e Entry, comp, raw []byte) {
	t.Helper()
	if e.Format != FormatZstd || e.Size != int64(len(comp)) || e.RawSize != int64(len(raw)) || e.SHA256 != sha256Hex(raw) || e.SHA512 != sha512Hex(raw) {
		t.Fatalf("entry %+v: want zstd, size %d, raw size %d, sha256 %s, sha512 %s", e, len(comp), len(raw), sha256Hex(raw), sha512Hex(raw))
	}
	f, err := c.Open(e.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), comp) {
		t.Fatalf("cached %s: %d bytes, not the %d compressed bytes downloaded", e.Name, got.Len(), len(comp))
	}
}

func TestZstd(t *testing.T) {
	// Compressible (zeros) and incompressible parts, over many blocks.
	raw := append(append(randBytes(mib, 50), make([]byte, 2*mib)...), randBytes(mib/2, 51)...)
	comp := zstdCompress(t, raw)
	if len(comp) >= len(raw) || string(comp[:4]) != zstdMagic {
		t.Fatalf("compressed %d bytes into %d", len(raw), len(comp))
	}
	// zstd frames may be concatenated; the raw image is their joining.
	raw2 := randBytes(mib/4, 52)
	multi := append(slices.Clip(comp), zstdCompress(t, raw2)...)
	rawMulti := append(slices.Clip(raw), raw2...)
	// A bomb: 1 GiB of zeros from a few kilobytes, as frames of 1 MiB.
	bomb := bytes.Repeat(zstdCompress(t, make([]byte, mib)), 1024)
	qcowInside := zstdCompress(t, append([]byte(qcow2Magic), randBytes(mib, 53)...))
	// A sound frame header (2 MiB window), then garbage blocks: random
	// bytes right after the magic could as well ask for a huge window.
	corrupt := append([]byte(zstdMagic+"\x00\x58"), randBytes(64<<10, 54)...)
	truncated := comp[:len(comp)/2]
	trailing := append(slices.Clip(comp), "not a frame"...)
	// A frame header asking for a 256 MiB window (Window_Descriptor
	// exponent 18: 1 << (10+18)), then one raw block of 4 bytes.
	bigWindow := []byte(zstdMagic + "\x00\x90" + "\x21\x00\x00" + "abcd")
	fakeQcow := append([]byte(qcow2Magic), randBytes(4096, 55)...)

	imageDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(imageDir, "disk.raw.zst"), comp, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := newImageServer(t)
	for _, tt := range []struct {
		name string
		body []byte // served over HTTP; nil for a file source (comp)
		src  Source // the URL of body is set in it
		cfg  Config
		raw  []byte // the raw image cached; nil when an error is wanted
		want string // error text
		is   error  // sentinel error wrapped, if any
	}{
		{name: "detected", body: comp, src: Source{Checksum: sha256Hex(comp)}, raw: raw},
		{name: "declared zstd", body: comp, src: Source{HashAlgo: "sha512", HashValue: sha512Hex(comp), DiskFormat: "zstd"}, raw: raw},
		{name: "declared raw", body: comp, src: Source{Checksum: sha256Hex(comp), DiskFormat: "raw"}, raw: raw},
		{name: "frames", body: multi, src: Source{Checksum: sha256Hex(multi)}, raw: rawMulti},
		{name: "local file", src: Source{URL: "disk.raw.zst"}, cfg: Config{ImageDir: imageDir}, raw: raw},
		{name: "raw size at the bound", body: comp, src: Source{Checksum: sha256Hex(comp)}, cfg: Config{MaxRawBytes: int64(len(raw)), MaxBytes: int64(len(comp))}, raw: raw},

		// The operator's digest is of the compressed file, not of the
		// raw image it holds.
		{name: "checksum of the raw image", body: comp, src: Source{Checksum: sha256Hex(raw)}, want: "sha256 expected " + sha256Hex(raw) + ", got " + sha256Hex(comp)},
		{name: "corrupt", body: corrupt, src: Source{Checksum: sha256Hex(corrupt)}, want: "corrupt zstd stream"},
		{name: "truncated", body: truncated, src: Source{Checksum: sha256Hex(truncated)}, want: "corrupt zstd stream"},
		{name: "trailing garbage", body: trailing, src: Source{Checksum: sha256Hex(trailing)}, want: "corrupt zstd stream"},
		{name: "declared qcow2", body: comp, src: Source{Checksum: sha256Hex(comp), DiskFormat: "qcow2"}, want: "declared qcow2 but its content is zstd"},
		{name: "declared zstd, is raw", body: raw, src: Source{Checksum: sha256Hex(raw), DiskFormat: "zstd"}, want: "declared zstd but its content is raw"},
		{name: "declared zstd, is qcow2", body: fakeQcow, src: Source{Checksum: sha256Hex(fakeQcow), DiskFormat: "zstd"}, want: "declared zstd but its content is qcow2"},
		{name: "compressed qcow2", body: qcowInside, src: Source{Checksum: sha256Hex(qcowInside)}, want: "zstd-compressed qcow2"},
		{name: "raw size over the bound", body: comp, src: Source{Checksum: sha256Hex(comp)}, cfg: Config{MaxRawBytes: int64(len(raw)) - 1}, want: "decompresses to over", is: ErrRawTooLarge},
		{name: "bomb", body: bomb, src: Source{Checksum: sha256Hex(bomb)}, cfg: Config{MaxRawBytes: 8 * mib}, want: "decompresses to over", is: ErrRawTooLarge},
		{name: "window too large", body: bigWindow, src: Source{Checksum: sha256Hex(bigWindow)}, want: "zstd window larger than the 128 MiB"},
		{name: "file over MaxBytes", body: comp, src: Source{Checksum: sha256Hex(comp)}, cfg: Config{MaxBytes: int64(len(comp)) - 1}, want: "larger than the image cache", is: ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, served := tt.src, tt.body
			path := "/" + strings.ReplaceAll(tt.name, " ", "-")
			if served != nil {
				src.URL = srv.add(path, served)
			} else {
				served = comp
			}
			c := newCache(t, tt.cfg)
			e, err := c.Get(t.Context(), src)
			if tt.raw != nil {
				if err != nil {
					t.Fatal(err)
				}
				checkZstdEntry(t, c, e, served, tt.raw)
				if n := len(dirFiles(t, c.dir)); n != 2 {
					t.Fatalf("%d files in the cache, want the image and its metadata", n)
				}
				// Cached once: the next Get neither downloads nor decodes.
				again, err := c.Get(t.Context(), src)
				if err != nil || again != e {
					t.Fatalf("second Get: %+v, %v; first %+v", again, err, e)
				}
				if st := c.Stats(); st.Fetches != 1 || st.Hits != 1 || st.Bytes != e.Size {
					t.Fatalf("stats %+v", st)
				}
				if tt.body != nil && srv.count(path) != 1 {
					t.Fatalf("%d requests, want 1", srv.count(path))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Get: %v, want an error with %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("Get: %v, want it to wrap %q", err, tt.is)
			}
			if files := dirFiles(t, c.dir); len(files) != 0 {
				t.Fatalf("left in the cache: %v", files)
			}
			if st := c.Stats(); st.Entries != 0 || st.Failures != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestZstdRestart(t *testing.T) {
	srv := newImageServer(t)
	raw := append(randBytes(mib, 60), make([]byte, mib)...)
	comp := zstdCompress(t, raw)
	plain := randBytes(mib, 61)
	srcZ := Source{URL: srv.add("/z", comp), Checksum: sha256Hex(comp)}
	srcP := Source{URL: srv.add("/p", plain), Checksum: sha256Hex(plain)}
	dir := t.TempDir()

	c1 := newCache(t, Config{Dir: dir})
	ez, err := c1.Get(t.Context(), srcZ)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := c1.Get(t.Context(), srcP)
	if err != nil {
		t.Fatal(err)
	}

	c2 := newCache(t, Config{Dir: dir})
	if st := c2.Stats(); st.Entries != 2 || st.Bytes != ez.Size+ep.Size {
		t.Fatalf("after restart: %+v", st)
	}
	gz, err := c2.Get(t.Context(), srcZ)
	if err != nil || gz != ez {
		t.Fatalf("zstd image after restart: %+v, %v; before %+v", gz, err, ez)
	}
	checkZstdEntry(t, c2, gz, comp, raw)
	gp, err := c2.Get(t.Context(), srcP)
	if err != nil || gp != ep {
		t.Fatalf("raw image after restart: %+v, %v; before %+v", gp, err, ep)
	}
	checkEntry(t, c2, gp, plain)
	if srv.count("/z") != 1 || srv.count("/p") != 1 {
		t.Fatalf("requests: z %d, p %d; want 1 each", srv.count("/z"), srv.count("/p"))
	}

	// Metadata without a sha512, as older versions wrote it: the raw
	// image's as the version before zstd wrote it (no format, no raw
	// size), the zstd image's as the version before sha512 did. Those
	// images are dropped at scan, and fetched again when next asked for.
	metaP := filepath.Join(dir, strings.TrimSuffix(ep.Name, rawExt)+metaExt)
	metaZ := filepath.Join(dir, strings.TrimSuffix(ez.Name, rawExt)+metaExt)
	for path, m := range map[string]map[string]any{
		metaP: {"source": "/p", "size": ep.Size, "sha256": ep.SHA256},
		metaZ: {"source": "/z", "size": ez.Size, "sha256": ez.SHA256, "format": FormatZstd, "raw_size": ez.RawSize},
	} {
		old, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c3 := newCache(t, Config{Dir: dir})
	if st := c3.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("after restart with metadata without sha512: %+v", st)
	}
	if files := dirFiles(t, dir); len(files) != 0 {
		t.Fatalf("left in the cache: %v", files)
	}
	gz, err = c3.Get(t.Context(), srcZ)
	if err != nil || gz != ez {
		t.Fatalf("zstd image fetched again: %+v, %v; first %+v", gz, err, ez)
	}
	checkZstdEntry(t, c3, gz, comp, raw)
	gp, err = c3.Get(t.Context(), srcP)
	if err != nil || gp != ep {
		t.Fatalf("raw image fetched again: %+v, %v; first %+v", gp, err, ep)
	}
	checkEntry(t, c3, gp, plain)
	if srv.count("/z") != 2 || srv.count("/p") != 2 {
		t.Fatalf("requests: z %d, p %d; want 2 each", srv.count("/z"), srv.count("/p"))
	}

	// Metadata naming a format this version does not know is not trusted:
	// the image is dropped rather than served as something it is not.
	b, err := os.ReadFile(metaZ)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaZ, bytes.Replace(b, []byte(`"format":"zstd"`), []byte(`"format":"lz4"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	c4 := newCache(t, Config{Dir: dir})
	if st := c4.Stats(); st.Entries != 1 || st.Bytes != ep.Size {
		t.Fatalf("after restart with an unknown format: %+v", st)
	}
	if _, err := os.Stat(ez.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("image of unknown format kept: %v", err)
	}
}
