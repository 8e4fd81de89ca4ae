package imagecache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const mib = 1 << 20

// imageServer serves images over loopback and counts requests per path.
type imageServer struct {
	*httptest.Server
	mu      sync.Mutex
	files   map[string][]byte
	special map[string]http.HandlerFunc
	hits    map[string]int
	gate    chan struct{} // when set, requests wait until it is closed
}

func newImageServer(t testing.TB) *imageServer {
	s := &imageServer{files: map[string][]byte{}, special: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *imageServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	data, ok := s.files[r.URL.Path]
	h := s.special[r.URL.Path]
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case h != nil:
		h(w, r)
	case ok:
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	default:
		http.NotFound(w, r)
	}
}

// add serves data at path and returns its URL.
func (s *imageServer) add(path string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = data
	return s.URL + path
}

func (s *imageServer) handle(path string, h http.HandlerFunc) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.special[path] = h
	return s.URL + path
}

func (s *imageServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func newCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randBytes returns n reproducible pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func sha512Hex(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }
func md5Hex(b []byte) string    { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// dirFiles lists the cache directory.
func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// checkEntry checks that e is a raw image cached with exactly want as its
// content.
func checkEntry(t testing.TB, c *Cache, e Entry, want []byte) {
	t.Helper()
	f, err := c.Open(e.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("cached %s: %d bytes differ from the %d expected", e.Name, len(got), len(want))
	}
	if e.Format != FormatRaw || e.Size != int64(len(want)) || e.RawSize != e.Size || e.SHA256 != sha256Hex(want) || e.SHA512 != sha512Hex(want) {
		t.Fatalf("entry %+v: want raw, size %d sha256 %s sha512 %s", e, len(want), sha256Hex(want), sha512Hex(want))
	}
	if e.Path != filepath.Join(c.dir, e.Name) || filepath.Base(e.Name) != e.Name {
		t.Fatalf("entry %+v: path not the flat name in the cache directory", e)
	}
}

// waitFor polls cond, which the cache's tests use to reach a state that
// no event announces (waiters queued, a torn-down fetch cleaned up).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *Cache) waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.flights {
		n += f.waiters
	}
	return n
}

func TestConcurrentGetsShareOneDownload(t *testing.T) {
	srv := newImageServer(t)
	data := randBytes(3*mib, 1)
	src := Source{URL: srv.add("/img.raw", data), Checksum: sha256Hex(data)}
	c := newCache(t, Config{})

	// Every Get is queued on the download before the server answers, so
	// this proves the sharing of one download, not just the cache.
	srv.gate = make(chan struct{})
	const n = 20
	entries := make([]Entry, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { entries[i], errs[i] = c.Get(t.Context(), src) })
	}
	waitFor(t, "20 waiters", func() bool { return c.waiters() == n })
	close(srv.gate)
	wg.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Get %d: %v", i, errs[i])
		}
		if entries[i] != entries[0] {
			t.Fatalf("Get %d: %+v, Get 0: %+v", i, entries[i], entries[0])
		}
	}
	if got := srv.count("/img.raw"); got != 1 {
		t.Fatalf("%d requests reached the server, want 1", got)
	}
	checkEntry(t, c, entries[0], data)

	e, err := c.Get(t.Context(), src)
	if err != nil || e != entries[0] {
		t.Fatalf("later Get: %+v, %v", e, err)
	}
	st := c.Stats()
	if st.Hits != 1 || st.Misses != n || st.Fetches != 1 || st.Entries != 1 || st.Bytes != int64(len(data)) || srv.count("/img.raw") != 1 {
		t.Fatalf("stats %+v, requests %d", st, srv.count("/img.raw"))
	}
}

func TestHTTPFailuresAreNotCached(t *testing.T) {
	srv := newImageServer(t)
	full := randBytes(mib, 2)
	half := full[:mib/2]
	// The body is cut after half the promised length; the checksum given
	// is that of the half, so only the length check can catch it.
	srv.handle("/truncated", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", len(full))
		buf.Write(half)
		buf.Flush()
	})
	srv.handle("/reset", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
	})
	srv.handle("/500", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	// A chunked body cut before its last chunk: no Content-Length to
	// compare, the missing terminator must still count as an error.
	srv.handle("/chunked-truncated", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(half))
		buf.Write(half)
		buf.WriteString("\r\n")
		buf.Flush()
	})

	for _, tt := range []struct {
		path, want string
	}{
		{"/missing", "404 Not Found"},
		{"/500", "500 Internal Server Error"},
		{"/truncated", "unexpected EOF"},
		{"/chunked-truncated", "unexpected EOF"},
		{"/reset", "EOF"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			c := newCache(t, Config{})
			src := Source{URL: srv.URL + tt.path + "?token=secret", Checksum: sha256Hex(half)}
			for range 2 {
				_, err := c.Get(t.Context(), src)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Get: %v, want an error with %q", err, tt.want)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error shows the URL's query: %v", err)
				}
				if files := dirFiles(t, c.dir); len(files) != 0 {
					t.Fatalf("left in the cache: %v", files)
				}
			}
			// Failures are not remembered: the second Get tried again.
			if got := srv.count(tt.path); got != 2 {
				t.Fatalf("%d requests, want 2", got)
			}
			if st := c.Stats(); st.Entries != 0 || st.Failures != 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestEviction(t *testing.T) {
	srv := newImageServer(t)
	imgs := map[string][]byte{}
	srcs := map[string]Source{}
	for i, name := range []string{"a", "b", "c", "d"} {
		imgs[name] = randBytes(mib, uint64(10+i))
		srcs[name] = Source{URL: srv.add("/"+name, imgs[name]), Checksum: sha256Hex(imgs[name])}
	}
	c := newCache(t, Config{MaxBytes: 3 * mib})
	get := func(name string) Entry {
		t.Helper()
		e, err := c.Get(t.Context(), srcs[name])
		if err != nil {
			t.Fatalf("Get %s: %v", name, err)
		}
		checkEntry(t, c, e, imgs[name])
		return e
	}
	cached := func(want ...string) {
		t.Helper()
		var got []string
		for _, name := range []string{"a", "b", "c", "d"} {
			o, err := c.resolve(srcs[name])
			if err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			_, ok := c.lru.items[o.name]
			c.mu.Unlock()
			if _, err := os.Stat(filepath.Join(c.dir, o.name)); ok != (err == nil) {
				t.Fatalf("%s: in the index %v, file: %v", name, ok, err)
			}
			if ok {
				got = append(got, name)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("cached %v, want %v", got, want)
		}
		if n := len(dirFiles(t, c.dir)); n != 2*len(want) {
			t.Fatalf("%d files in the cache directory, want %d", n, 2*len(want))
		}
	}

	get("a")
	b := get("b")
	get("c")
	cached("a", "b", "c") // exactly at the bound: nothing evicted
	get("a")              // a is now used more recently than b and c
	get("d")
	cached("a", "c", "d")
	if _, err := c.Open(b.Name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open evicted: %v", err)
	}
	// An image open for reading can be evicted and is still read whole.
	// Serving counts as a use: c becomes the most recent (c, d, a).
	ce, _ := c.Get(t.Context(), srcs["c"])
	f, err := c.Open(ce.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	get("b") // evicts a
	get("a") // evicts d
	get("d") // evicts c
	get("b") // hit
	cached("a", "b", "d")
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, imgs["c"]) {
		t.Fatalf("reading an evicted image: %d bytes, %v", len(got), err)
	}
	if st := c.Stats(); st.Evictions != 4 || st.Bytes != 3*mib || srv.count("/b") != 2 || srv.count("/a") != 2 || srv.count("/c") != 1 {
		t.Fatalf("stats %+v, requests a %d b %d c %d", st, srv.count("/a"), srv.count("/b"), srv.count("/c"))
	}
}

func TestTooLarge(t *testing.T) {
	srv := newImageServer(t)
	big := randBytes(2*mib, 3)
	srv.add("/big", big)
	// Without a Content-Length the limit is found while reading.
	srv.handle("/big-chunked", func(w http.ResponseWriter, r *http.Request) {
		bw := bufio.NewWriterSize(w, 64<<10)
		bw.Write(big)
		bw.Flush()
	})
	// Within the slack a qcow2 image gets, but raw: it is cached as it
	// is, so it must fit as it is.
	slightly := randBytes(mib+4096, 3)
	srv.add("/slightly-big", slightly)
	for _, tt := range []struct {
		path, format string
		data         []byte
	}{
		{"/big", "raw", big},
		{"/big-chunked", "raw", big},
		{"/slightly-big", "", slightly},
	} {
		t.Run(tt.path, func(t *testing.T) {
			c := newCache(t, Config{MaxBytes: mib})
			_, err := c.Get(t.Context(), Source{URL: srv.URL + tt.path, Checksum: sha256Hex(tt.data), DiskFormat: tt.format})
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Get: %v, want ErrTooLarge", err)
			}
			if files := dirFiles(t, c.dir); len(files) != 0 {
				t.Fatalf("left in the cache: %v", files)
			}
		})
	}
}

func TestLocalFiles(t *testing.T) {
	imageDir, outside := t.TempDir(), t.TempDir()
	data := randBytes(mib, 4)
	for _, p := range []string{filepath.Join(imageDir, "img.raw"), filepath.Join(imageDir, "sub", "x.raw"), filepath.Join(outside, "secret.raw")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "secret.raw"), filepath.Join(imageDir, "link.raw")); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, Config{ImageDir: imageDir})
	for _, tt := range []struct {
		name, path, checksum string
		want                 string // error text, or "" for success
	}{
		{"relative", "img.raw", sha256Hex(data), ""},
		{"absolute", filepath.Join(imageDir, "img.raw"), sha256Hex(data), ""},
		{"file URL", "file://" + filepath.Join(imageDir, "sub", "x.raw"), "", ""},
		{"no checksum", "sub/x.raw", "", ""},
		{"dotdot inside", "sub/../img.raw", sha512Hex(data), ""},
		{"wrong checksum", "img.raw", sha256Hex(data[1:]), "checksum mismatch"},
		{"dotdot escape", "../" + filepath.Base(outside) + "/secret.raw", "", ErrOutsideImageDir.Error()},
		{"deep escape", "sub/../../x", "", ErrOutsideImageDir.Error()},
		{"absolute outside", filepath.Join(outside, "secret.raw"), "", ErrOutsideImageDir.Error()},
		{"the directory itself", imageDir, "", "not a regular file"},
		{"symlink out", "link.raw", "", "escapes"},
		{"missing", "nope.raw", "", "no such file"},
		{"directory", "sub", "", "not a regular file"},
		{"other scheme", "glance://1234", "", "not supported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := c.Get(t.Context(), Source{URL: tt.path, Checksum: tt.checksum})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkEntry(t, c, e, data)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Get: %v, want an error with %q", err, tt.want)
			}
		})
	}

	// Without a checksum, a file replaced in place is read again.
	before, _ := c.Get(t.Context(), Source{URL: "sub/x.raw"})
	changed := randBytes(mib, 5)
	if err := os.WriteFile(filepath.Join(imageDir, "sub", "x.raw"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := c.Get(t.Context(), Source{URL: "sub/x.raw"})
	if err != nil {
		t.Fatal(err)
	}
	if after.Name == before.Name {
		t.Fatal("a replaced file was served from the cache")
	}
	checkEntry(t, c, after, changed)

	noDir := newCache(t, Config{})
	if _, err := noDir.Get(t.Context(), Source{URL: filepath.Join(imageDir, "img.raw")}); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("file source without an image directory: %v", err)
	}
}

func TestRestartReusesCache(t *testing.T) {
	srv := newImageServer(t)
	a, b := randBytes(mib, 6), randBytes(mib, 7)
	srcA := Source{URL: srv.add("/a", a), HashAlgo: "sha512", HashValue: sha512Hex(a)}
	srcB := Source{URL: srv.add("/b", b), Checksum: sha256Hex(b)}
	dir := t.TempDir()

	c1 := newCache(t, Config{Dir: dir})
	ea, err := c1.Get(t.Context(), srcA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Get(t.Context(), srcB); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // distinct modification times
	if _, err := c1.Get(t.Context(), srcA); err != nil {
		t.Fatal(err)
	}
	// What a coordinator killed mid-way leaves behind.
	for name, content := range map[string]string{
		partialPrefix + "123":        "half a download",
		"0123abcd" + rawExt:          "an image whose metadata was never written",
		"4567cdef" + metaExt:         `{"size":3,"sha256":"00"}`,
		"not-ours.txt":               "left alone",
		partialPrefix + "9" + rawExt: "half a conversion",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The new cache's bound holds one image: the one used last stays.
	c2 := newCache(t, Config{Dir: dir, MaxBytes: mib + mib/2})
	if st := c2.Stats(); st.Entries != 1 || st.Bytes != mib || st.Evictions != 1 {
		t.Fatalf("after restart: %+v", st)
	}
	got, err := c2.Get(t.Context(), srcA)
	if err != nil {
		t.Fatal(err)
	}
	if got != ea {
		t.Fatalf("after restart %+v, before %+v", got, ea)
	}
	checkEntry(t, c2, got, a)
	if srv.count("/a") != 1 {
		t.Fatalf("%d requests for a, want 1", srv.count("/a"))
	}
	files := dirFiles(t, dir)
	slices.Sort(files)
	want := []string{strings.TrimSuffix(ea.Name, rawExt) + metaExt, ea.Name, "not-ours.txt"}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Fatalf("cache directory %v, want %v", files, want)
	}
}

func TestCancel(t *testing.T) {
	t.Run("one waiter of two", func(t *testing.T) {
		srv := newImageServer(t)
		data := randBytes(mib, 8)
		src := Source{URL: srv.add("/img", data), Checksum: sha256Hex(data)}
		c := newCache(t, Config{})
		srv.gate = make(chan struct{})

		ctx1, cancel1 := context.WithCancel(t.Context())
		err1 := make(chan error)
		go func() { _, err := c.Get(ctx1, src); err1 <- err }()
		waitFor(t, "the first waiter", func() bool { return c.waiters() == 1 })
		type result struct {
			e   Entry
			err error
		}
		res2 := make(chan result)
		go func() { e, err := c.Get(t.Context(), src); res2 <- result{e, err} }()
		waitFor(t, "the second waiter", func() bool { return c.waiters() == 2 })

		// The caller that started the download gives up; the other still
		// gets the image, from that same download.
		cancel1()
		if err := <-err1; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Get: %v", err)
		}
		close(srv.gate)
		r := <-res2
		if r.err != nil {
			t.Fatal(r.err)
		}
		checkEntry(t, c, r.e, data)
		if srv.count("/img") != 1 {
			t.Fatalf("%d requests, want 1", srv.count("/img"))
		}
	})

	t.Run("every waiter", func(t *testing.T) {
		srv := newImageServer(t)
		data := randBytes(mib, 9)
		aborted := make(chan struct{})
		// Half the image, then the server stalls until the client leaves.
		url := srv.handle("/stall", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			close(aborted)
		})
		c := newCache(t, Config{})
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error)
		go func() { _, err := c.Get(ctx, Source{URL: url, Checksum: sha256Hex(data)}); errc <- err }()
		waitFor(t, "a partial download", func() bool { return len(dirFiles(t, c.dir)) == 1 })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Get: %v", err)
		}
		select {
		case <-aborted:
		case <-time.After(10 * time.Second):
			t.Fatal("the download went on after every waiter left")
		}
		waitFor(t, "the partial file removed", func() bool { return len(dirFiles(t, c.dir)) == 0 })
		waitFor(t, "the failure counted", func() bool { return c.Stats().Failures == 1 })
	})
}

func TestOpenUnknownName(t *testing.T) {
	c := newCache(t, Config{})
	for _, name := range []string{"", "x.raw", "../x.raw", "/etc/passwd", "."} {
		if _, err := c.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q): %v, want fs.ErrNotExist", name, err)
		}
	}
}
