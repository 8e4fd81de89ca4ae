package imagewrite

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// testImage is deterministic, partly random (incompressible), partly text,
// with zero runs at zeroRuns (offset, length) and a size that is not a
// multiple of 4096, so the unaligned tail is always exercised.
func testImage(size int, seed uint64, zeroRuns ...[2]int) []byte {
	img := make([]byte, size)
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
	for off := 0; off < size; off += 64 << 10 {
		chunk := img[off:min(off+64<<10, size)]
		if (off/(64<<10))%2 == 0 {
			for i := range chunk {
				chunk[i] = byte(r.Uint32())
			}
		} else {
			copy(chunk, bytes.Repeat([]byte(fmt.Sprintf("block %d of a filesystem; ", off)), len(chunk)))
		}
	}
	for _, z := range zeroRuns {
		clear(img[z[0] : z[0]+z[1]])
	}
	return img
}

func sum(alg string, b []byte) string {
	if alg == "sha512" {
		s := sha512.Sum512(b)
		return hex.EncodeToString(s[:])
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func compress(t testing.TB, format string, raw []byte) []byte {
	t.Helper()
	switch format {
	case FormatZstd:
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		return enc.EncodeAll(raw, nil)
	case FormatGzip:
		var b bytes.Buffer
		z := gzip.NewWriter(&b)
		z.Write(raw)
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	return raw
}

// serve serves data with Range support, as the coordinator's httpboot does.
func serve(t testing.TB, data []byte) *httptest.Server {
	t.Helper()
	mod := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "image", mod, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// emptyTarget creates an empty regular file standing in for a disk.
func emptyTarget(t testing.TB, dir string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "disk")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func readTarget(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteFormats(t *testing.T) {
	raw := testImage(3<<20+123, 1)
	for _, tc := range []struct {
		format, alg string
		size        int64
		buf         int
	}{
		{FormatRaw, "sha256", 0, 0},
		{FormatRaw, "sha512", int64(len(raw)), 256 << 10},
		{FormatZstd, "sha256", int64(len(raw)), 256 << 10},
		{FormatZstd, "sha512", 0, 1000}, // rounded up to 4096
		{FormatGzip, "sha256", 0, 256 << 10},
	} {
		t.Run(fmt.Sprintf("%s/%s/size=%d/buf=%d", tc.format, tc.alg, tc.size, tc.buf), func(t *testing.T) {
			srv := serve(t, compress(t, tc.format, raw))
			tgt := emptyTarget(t, t.TempDir(), 0)
			res, err := Write(context.Background(), Config{
				URL: srv.URL, Format: tc.format, Algorithm: tc.alg, Checksum: strings.ToUpper(sum(tc.alg, raw)),
				Size: tc.size, Target: tgt, BufferSize: tc.buf,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != sum(tc.alg, raw) || res.Written != int64(len(raw)) || res.Skipped != 0 {
				t.Errorf("result %+v, want digest %s and %d bytes written", res, sum(tc.alg, raw), len(raw))
			}
			// Byte-identical, and nothing written past the image's end.
			if got := readTarget(t, tgt); !bytes.Equal(got, raw) {
				t.Errorf("target differs from the image (%d bytes, want %d)", len(got), len(raw))
			}
		})
	}
}

func TestChecksumMismatch(t *testing.T) {
	raw := testImage(1<<20, 2)
	srv := serve(t, raw)
	wrong := sum("sha256", []byte("another image"))
	_, err := Write(context.Background(), Config{
		URL: srv.URL, Format: FormatRaw, Algorithm: "sha256", Checksum: wrong, Target: emptyTarget(t, t.TempDir(), 0),
	})
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	for _, s := range []string{wrong, sum("sha256", raw), "already written"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestInvalidConfigAndSize(t *testing.T) {
	raw := testImage(1<<20, 3)
	srv := serve(t, raw)
	good := sum("sha256", raw)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"format", Config{Format: "qcow2", Algorithm: "sha256", Checksum: good}, "unsupported image format"},
		{"algorithm", Config{Format: FormatRaw, Algorithm: "md5", Checksum: good}, "unsupported checksum algorithm"},
		{"checksum", Config{Format: FormatRaw, Algorithm: "sha512", Checksum: good}, "not a sha512 hex digest"},
		{"image larger than Size", Config{Format: FormatRaw, Algorithm: "sha256", Checksum: good, Size: 1<<20 - 1}, "larger than its declared size"},
		{"image smaller than Size", Config{Format: FormatRaw, Algorithm: "sha256", Checksum: good, Size: 1<<20 + 1}, "expected 1048577"},
		{"not found", Config{URL: httptest.NewServer(http.NotFoundHandler()).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: good}, "404"},
		{"no target", Config{Format: FormatRaw, Algorithm: "sha256", Checksum: good, Target: "/nonexistent/disk"}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.URL == "" {
				tc.cfg.URL = srv.URL
			}
			if tc.cfg.Target == "" {
				tc.cfg.Target = emptyTarget(t, t.TempDir(), 0)
			}
			_, err := Write(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// flakyServer writes responses by hand over a hijacked connection so it
// can cut them short, as a dropped link or a restarted coordinator does.
type flakyServer struct {
	data        []byte
	dropAfter   int  // body bytes sent per response before closing; 0 = all
	ignoreRange bool // answer 200 with the whole image to Range requests
	failResumes bool // close resumed requests without an answer
	noLength    bool // no Content-Length (body delimited by closing)

	mu     sync.Mutex
	ranges []string
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rng := r.Header.Get("Range")
	s.mu.Lock()
	s.ranges = append(s.ranges, rng)
	s.mu.Unlock()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	status, start := "200 OK", 0
	hdr := ""
	if rng != "" && !s.ignoreRange {
		if s.failResumes {
			return
		}
		start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		status = "206 Partial Content"
		hdr = fmt.Sprintf("Content-Range: bytes %d-%d/%d\r\n", start, len(s.data)-1, len(s.data))
	}
	body := s.data[start:]
	if !s.noLength {
		hdr += fmt.Sprintf("Content-Length: %d\r\n", len(body))
	}
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\n%sConnection: close\r\n\r\n", status, hdr)
	if s.dropAfter > 0 {
		body = body[:min(s.dropAfter, len(body))]
	}
	bw.Write(body)
	bw.Flush()
}

func (s *flakyServer) start(t *testing.T) string {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestResumeAfterDroppedConnection(t *testing.T) {
	raw := testImage(3<<20+5, 4)
	for _, format := range []string{FormatRaw, FormatZstd} {
		t.Run(format, func(t *testing.T) {
			data := compress(t, format, raw)
			s := &flakyServer{data: data, dropAfter: len(data)/3 + 1000}
			tgt := emptyTarget(t, t.TempDir(), 0)
			res, err := Write(context.Background(), Config{
				URL: s.start(t), Format: format, Algorithm: "sha256", Checksum: sum("sha256", raw),
				Target: tgt, Retries: 1, BufferSize: 256 << 10,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := readTarget(t, tgt); !bytes.Equal(got, raw) || res.Digest != sum("sha256", raw) {
				t.Fatalf("target differs from the image after resuming")
			}
			// Offsets are in the stream as served (compressed for zstd).
			want := []string{"", fmt.Sprintf("bytes=%d-", s.dropAfter), fmt.Sprintf("bytes=%d-", 2*s.dropAfter)}
			if fmt.Sprint(s.ranges) != fmt.Sprint(want) {
				t.Errorf("Range headers %q, want %q", s.ranges, want)
			}
		})
	}
}

func TestResumeFailures(t *testing.T) {
	raw := testImage(2<<20, 5)
	zst := compress(t, FormatZstd, raw)
	for _, tc := range []struct {
		name    string
		format  string
		srv     *flakyServer
		retries int
		want    string
		is      error
	}{
		{"200 to a Range request", FormatRaw, &flakyServer{data: raw, dropAfter: 1 << 20, ignoreRange: true}, 3, "200 OK", ErrRangeNotSupported},
		{"retries exhausted", FormatRaw, &flakyServer{data: raw, dropAfter: 1 << 20, failResumes: true}, 2, "truncated at byte 1048576 of 2097152 and not resumed after 2 retries", nil},
		{"no retries", FormatRaw, &flakyServer{data: raw, dropAfter: 1 << 20}, 0, "truncated at byte 1048576 of 2097152 and not resumed after 0 retries", nil},
		{"zstd retries exhausted", FormatZstd, &flakyServer{data: zst, dropAfter: len(zst) / 2, failResumes: true}, 1, "not resumed after 1 retries", nil},
		// Without a length the cut is only visible to the decompressor.
		{"zstd cut, no Content-Length", FormatZstd, &flakyServer{data: zst, dropAfter: len(zst) / 2, noLength: true}, 3, "unexpected EOF", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Write(context.Background(), Config{
				URL: tc.srv.start(t), Format: tc.format, Algorithm: "sha256", Checksum: sum("sha256", raw),
				Target: emptyTarget(t, t.TempDir(), 0), Retries: tc.retries,
			})
			if err == nil {
				t.Fatalf("truncated download succeeded: %+v", res)
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if res.Written+res.Skipped >= int64(len(raw)) {
				t.Errorf("result claims the whole image: %+v", res)
			}
		})
	}
}

func TestTargetZeroed(t *testing.T) {
	const bs = 64 << 10
	// Zero runs: two whole buffers, one partly zero buffer (must be
	// written), and the end of the image.
	raw := testImage(2<<20+100, 6, [2]int{4 * bs, 2 * bs}, [2]int{10*bs + 10, bs}, [2]int{2<<20 - bs, bs + 100})
	for _, tc := range []struct {
		name    string
		presize bool
	}{
		{"sparse target of image size", true},
		{"empty target file", false}, // the skipped tail must still read as zeros
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := int64(0)
			if tc.presize {
				size = int64(len(raw))
			}
			tgt := emptyTarget(t, t.TempDir(), size)
			res, err := Write(context.Background(), Config{
				URL: serve(t, raw).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", raw),
				Target: tgt, TargetZeroed: true, BufferSize: bs,
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(3*bs + 100); res.Skipped != want || res.Written+res.Skipped != int64(len(raw)) {
				t.Errorf("written %d, skipped %d; want %d skipped of %d", res.Written, res.Skipped, want, len(raw))
			}
			if !bytes.Equal(readTarget(t, tgt), raw) {
				t.Error("target differs from the image")
			}
		})
	}
}

// directSupported reports whether dir's filesystem takes O_DIRECT writes.
func directSupported(t *testing.T, dir string) bool {
	p := filepath.Join(dir, "probe")
	defer os.Remove(p)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_DIRECT, 0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	bufs, free, err := allocBuffers(1, directAlign)
	if err != nil {
		t.Fatal(err)
	}
	defer free()
	_, err = f.WriteAt(bufs[0], 0)
	return err == nil
}

// TestDirectIO writes on the real filesystems at hand, expecting O_DIRECT
// wherever the filesystem takes it, and on one that refuses it at open with
// EINVAL (tmpfs before Linux 6.6), simulated when none is mounted here.
func TestDirectIO(t *testing.T) {
	raw := testImage(2<<20+777, 7)
	type dir struct {
		name, path string
		refuse     bool
	}
	dirs := []dir{{"TempDir", t.TempDir(), false}}
	if shm, err := os.MkdirTemp("/dev/shm", "imagewrite"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, dir{"tmpfs", shm, false})
	}
	dirs = append(dirs, dir{"EINVAL at open", t.TempDir(), true})
	for _, d := range dirs {
		t.Run(d.name, func(t *testing.T) {
			want := !d.refuse && directSupported(t, d.path)
			if d.refuse {
				orig := openDirect
				openDirect = func(p string) (*os.File, error) {
					return nil, &os.PathError{Op: "open", Path: p, Err: unix.EINVAL}
				}
				defer func() { openDirect = orig }()
			}
			tgt := emptyTarget(t, d.path, 0)
			res, err := Write(context.Background(), Config{
				URL: serve(t, raw).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", raw),
				Target: tgt, BufferSize: 512 << 10,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: O_DIRECT expected %v, used %v", d.path, want, res.Direct)
			if res.Direct != want {
				t.Errorf("Direct = %v, want %v", res.Direct, want)
			}
			if !bytes.Equal(readTarget(t, tgt), raw) {
				t.Error("target differs from the image")
			}
		})
	}
}

func TestCancel(t *testing.T) {
	raw := testImage(1<<20, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(4*len(raw)))
		w.Write(raw)
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // stall, as a hung coordinator would
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var canceledAt time.Time
	res, err := Write(ctx, Config{
		URL: srv.URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", raw),
		Target: emptyTarget(t, t.TempDir(), 0), BufferSize: 64 << 10, Retries: 5,
		Progress: func(p Progress) {
			if p.Done > 0 && canceledAt.IsZero() {
				canceledAt = time.Now()
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(canceledAt); d > time.Second {
		t.Errorf("Write returned %v after cancellation", d)
	}
	if res.Written >= int64(len(raw)) {
		t.Errorf("written %d", res.Written)
	}
}

func TestProgress(t *testing.T) {
	raw := testImage(3<<20, 9)
	var got []Progress
	_, err := Write(context.Background(), Config{
		URL: serve(t, raw).URL, Format: FormatRaw, Algorithm: "sha256", Checksum: sum("sha256", raw),
		Target: emptyTarget(t, t.TempDir(), 0), BufferSize: 64 << 10,
		Progress: func(p Progress) { got = append(got, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 3 {
		t.Fatalf("progress %+v", got)
	}
	// Throttled: far fewer calls than the 48 buffers written.
	if len(got) > 20 {
		t.Errorf("%d progress calls for a sub-second write", len(got))
	}
	for i, p := range got {
		if p.Total != int64(len(raw)) || (i > 0 && p.Done < got[i-1].Done) || p.BytesPerSecond < 0 {
			t.Errorf("progress[%d] = %+v after %+v", i, p, got[max(i-1, 0)])
		}
	}
	last := got[len(got)-1]
	if last.Phase != PhaseDone || last.Done != int64(len(raw)) {
		t.Errorf("last progress %+v, want phase done at %d", last, len(raw))
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 100-199/200", 100, 200, true},
		{"bytes 0-0/*", 0, -1, true},
		{"bytes */200", 0, 0, false},
		{"items 1-2/3", 0, 0, false},
		{"", 0, 0, false},
	} {
		start, total, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || start != tc.start || total != tc.total {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", tc.in, start, total, err)
		}
	}
}

func TestIsZero(t *testing.T) {
	b := make([]byte, 200<<10)
	if !isZero(b) || !isZero(nil) {
		t.Fatal("zero buffer not seen as zero")
	}
	for _, i := range []int{0, 7, 64<<10 - 1, 64 << 10, len(b) - 1} {
		b[i] = 1
		if isZero(b) {
			t.Errorf("byte %d set but isZero", i)
		}
		b[i] = 0
	}
}
