package imagewrite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The 2 GiB benchmark: BenchmarkWrite2GiB for `go test -bench`, and
// TestBenchBaselines (INGOT_BENCH=1) which times the same writes beside dd
// and curl pipelines in one run. Both keep their 2 GiB image (and its zstd
// form) in $INGOT_BENCH_DIR (default $TMPDIR/ingot-imagewrite-bench), made
// once, and write their target file next to it: on this machine's disk,
// not tmpfs, so it is a real write path.

const benchSize = 2 << 30

type benchFiles struct {
	dir, raw, zst, target, sha256 string
}

// benchImage makes (once) a 2 GiB image shaped like an OS image: in every
// 32 MiB, 12 MiB random (compressed binaries, already-compressed data),
// 12 MiB of text-like data and 8 MiB of zeros (free space). zstd -3 takes
// it to 44% of its size.
func benchImage(tb testing.TB) benchFiles {
	tb.Helper()
	dir := os.Getenv("INGOT_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ingot-imagewrite-bench")
	}
	f := benchFiles{dir: dir, raw: filepath.Join(dir, "image.raw"), zst: filepath.Join(dir, "image.raw.zst"),
		target: filepath.Join(dir, "target")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	sumFile := f.raw + ".sha256"
	if b, err := os.ReadFile(sumFile); err == nil {
		if fi, err := os.Stat(f.zst); err == nil && fi.Size() > 0 {
			f.sha256 = strings.TrimSpace(string(b))
			return f
		}
	}
	tb.Logf("creating the 2 GiB benchmark image in %s", dir)
	out, err := os.Create(f.raw)
	if err != nil {
		tb.Fatal(err)
	}
	h := sha256.New()
	w := io.MultiWriter(out, h)
	r := rand.New(rand.NewChaCha8([32]byte{42}))
	chunk := make([]byte, 4<<20)
	words := []string{"usr", "lib", "x86_64", "linux", "gnu", "share", "doc", "libc.so.6", "ELF", "systemd", "0x00401000", "\n"}
	for i := range benchSize / len(chunk) {
		switch i % 8 {
		case 0, 1, 2:
			for j := 0; j < len(chunk); j += 8 {
				v := r.Uint64()
				for k := range 8 {
					chunk[j+k] = byte(v >> (8 * k))
				}
			}
		case 3, 4, 5:
			b := chunk[:0]
			for len(b) < len(chunk) {
				b = append(b, words[r.IntN(len(words))]...)
				b = append(b, '/')
			}
			chunk = chunk[:cap(chunk)]
		default:
			clear(chunk)
		}
		if _, err := w.Write(chunk); err != nil {
			tb.Fatal(err)
		}
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
	in, err := os.Open(f.raw)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	zf, err := os.Create(f.zst)
	if err != nil {
		tb.Fatal(err)
	}
	enc, err := zstd.NewWriter(zf, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(enc, in); err != nil {
		tb.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := zf.Close(); err != nil {
		tb.Fatal(err)
	}
	f.sha256 = hex.EncodeToString(h.Sum(nil))
	if err := os.WriteFile(sumFile, []byte(f.sha256+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f benchFiles) server(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.FileServer(http.Dir(f.dir)))
	tb.Cleanup(srv.Close)
	return srv
}

// freshTarget removes the previous target so every run allocates its
// blocks anew, as dd (which truncates) does.
func (f benchFiles) freshTarget(tb testing.TB) {
	os.Remove(f.target)
	if err := os.WriteFile(f.target, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
}

func (f benchFiles) write(tb testing.TB, srv *httptest.Server, format string) {
	name := "/image.raw"
	if format == FormatZstd {
		name = "/image.raw.zst"
	}
	res, err := Write(context.Background(), Config{
		URL: srv.URL + name, Format: format, Algorithm: "sha256", Checksum: f.sha256, Size: benchSize, Target: f.target,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if res.Written != benchSize {
		tb.Fatalf("wrote %d bytes", res.Written)
	}
}

func BenchmarkWrite2GiB(b *testing.B) {
	f := benchImage(b)
	srv := f.server(b)
	defer os.Remove(f.target)
	for _, format := range []string{FormatRaw, FormatZstd} {
		b.Run(format, func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				b.StopTimer()
				f.freshTarget(b)
				b.StartTimer()
				f.write(b, srv, format)
			}
		})
	}
}

// TestBenchBaselines runs, three times interleaved, Write (raw and zstd,
// sha256 verified, fsynced) and the shell pipelines it replaces, writing
// the same 2 GiB to the same target file, and prints MB/s (10^6 bytes/s)
// with medians.
func TestBenchBaselines(t *testing.T) {
	if os.Getenv("INGOT_BENCH") != "1" {
		t.Skip("set INGOT_BENCH=1 to run the 2 GiB benchmark against dd and curl")
	}
	for _, tool := range []string{"dd", "curl", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	f := benchImage(t)
	srv := f.server(t)
	defer os.Remove(f.target)
	oflag := ""
	if directSupported(t, f.dir) {
		oflag = " oflag=direct"
	}
	shell := func(cmd string) func(t *testing.T) {
		return func(t *testing.T) {
			if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
		}
	}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Write raw, sha256", func(t *testing.T) { f.write(t, srv, FormatRaw) }},
		{"dd bs=4M" + oflag, shell(fmt.Sprintf("dd if=%s of=%s bs=4M%s status=none", f.raw, f.target, oflag))},
		{"curl | dd bs=4M conv=fsync", shell(fmt.Sprintf("curl -sS %s/image.raw | dd of=%s bs=4M conv=fsync status=none", srv.URL, f.target))},
		{"curl | dd bs=4M (no fsync)", shell(fmt.Sprintf("curl -sS %s/image.raw | dd of=%s bs=4M status=none", srv.URL, f.target))},
		{"Write zstd, sha256", func(t *testing.T) { f.write(t, srv, FormatZstd) }},
		{"curl | zstd -d | dd bs=4M conv=fsync", shell(fmt.Sprintf("curl -sS %s/image.raw.zst | zstd -dc | dd of=%s bs=4M conv=fsync status=none", srv.URL, f.target))},
		{"curl | zstd -d | dd bs=4M (no fsync)", shell(fmt.Sprintf("curl -sS %s/image.raw.zst | zstd -dc | dd of=%s bs=4M status=none", srv.URL, f.target))},
	}
	rates := make([][]float64, len(cases))
	for round := range 3 {
		for i, c := range cases {
			f.freshTarget(t)
			// Let writeback of the previous run settle so it is not
			// charged to this one.
			exec.Command("sync").Run()
			start := time.Now()
			c.run(t)
			d := time.Since(start)
			rates[i] = append(rates[i], benchSize/1e6/d.Seconds())
			t.Logf("round %d: %-40s %7.1f MB/s (%v)", round+1, c.name, rates[i][len(rates[i])-1], d.Round(time.Millisecond))
		}
	}
	for i, c := range cases {
		r := slices.Clone(rates[i])
		slices.Sort(r)
		t.Logf("median %-40s %7.1f MB/s  %.1f", c.name, r[1], rates[i])
	}
}

// BenchmarkSHA256 is the ceiling of the raw path: one sha256 stream on one
// core, with nothing else running.
func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, 4<<20)
	h := sha256.New()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		h.Write(buf)
	}
}
