package httpboot

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// fileFixture is an agent kernel and initramfs and an image directory
// with one image, a hidden file, a subdirectory and a link out of it.
type fileFixture struct {
	srv                   *httptest.Server
	kernel, initrd, image []byte
	kernelPath, imageDir  string
}

func newFileFixture(t *testing.T) *fileFixture {
	t.Helper()
	dir := t.TempDir()
	f := &fileFixture{
		kernel:     randBytes(t, 300_000),
		initrd:     randBytes(t, 70_000),
		image:      randBytes(t, 1<<20),
		kernelPath: filepath.Join(dir, "vmlinuz"),
		imageDir:   filepath.Join(dir, "images"),
	}
	for _, d := range []string{f.imageDir, filepath.Join(f.imageDir, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for path, data := range map[string][]byte{
		f.kernelPath:                                     f.kernel,
		filepath.Join(dir, "initramfs.cpio.gz"):          f.initrd,
		filepath.Join(dir, "secret"):                     []byte("secret\n"),
		filepath.Join(f.imageDir, "debian-12.raw"):       f.image,
		filepath.Join(f.imageDir, ".debian-13.raw.part"): []byte("partial"),
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(f.imageDir, "escape.raw")); err != nil {
		t.Fatal(err)
	}
	f.srv = newTestServer(t, Config{
		AgentKernel:    f.kernelPath,
		AgentInitramfs: filepath.Join(dir, "initramfs.cpio.gz"),
		ImageDir:       f.imageDir,
	}, &fakeBooter{})
	return f
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStaticFiles(t *testing.T) {
	f := newFileFixture(t)
	n := len(f.kernel)
	for _, tt := range []struct {
		name, path, rangeHdr string
		status               int
		want                 []byte
		contentRange         string
	}{
		{"kernel", "/images/agent/kernel", "", 200, f.kernel, ""},
		{"initramfs", "/images/agent/initramfs", "", 200, f.initrd, ""},
		{"image", "/images/cache/debian-12.raw", "", 200, f.image, ""},
		{"range", "/images/agent/kernel", "bytes=100-199", 206, f.kernel[100:200], fmt.Sprintf("bytes 100-199/%d", n)},
		{"open range", "/images/agent/kernel", fmt.Sprintf("bytes=%d-", n-1000), 206, f.kernel[n-1000:], fmt.Sprintf("bytes %d-%d/%d", n-1000, n-1, n)},
		{"suffix range", "/images/agent/kernel", "bytes=-10", 206, f.kernel[n-10:], fmt.Sprintf("bytes %d-%d/%d", n-10, n-1, n)},
		{"image range", "/images/cache/debian-12.raw", "bytes=4096-8191", 206, f.image[4096:8192], fmt.Sprintf("bytes 4096-8191/%d", len(f.image))},
		{"range past the end", "/images/agent/kernel", fmt.Sprintf("bytes=%d-", n), 416, nil, fmt.Sprintf("bytes */%d", n)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.rangeHdr != "" {
				hdr = []string{"Range", tt.rangeHdr}
			}
			resp, body := get(t, f.srv.URL+tt.path, hdr...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.contentRange {
				t.Errorf("Content-Range %q, want %q", got, tt.contentRange)
			}
			if tt.want != nil && !bytes.Equal(body, tt.want) {
				t.Errorf("got %d bytes, not the %d expected", len(body), len(tt.want))
			}
			if tt.status < 300 {
				if got := resp.Header.Get("Content-Length"); got != fmt.Sprint(len(tt.want)) {
					t.Errorf("Content-Length %q, want %d", got, len(tt.want))
				}
				if resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
					t.Errorf("headers %v lack Last-Modified or Accept-Ranges", resp.Header)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
					t.Errorf("Content-Type %q", ct)
				}
			}
		})
	}
}

// TestHead reads a HEAD response off the wire: http.Client drops HEAD
// bodies itself, so only the raw bytes show none was sent.
func TestHead(t *testing.T) {
	f := newFileFixture(t)
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "HEAD /images/agent/kernel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of headers in %q", raw)
	}
	if len(body) != 0 {
		t.Errorf("HEAD sent %d body bytes", len(body))
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(append(head, "\r\n\r\n"...))), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != fmt.Sprint(len(f.kernel)) {
		t.Errorf("HEAD: %d, Content-Length %q, want 200 and %d", resp.StatusCode, resp.Header.Get("Content-Length"), len(f.kernel))
	}
}

func TestConditional(t *testing.T) {
	f := newFileFixture(t)
	url := f.srv.URL + "/images/agent/kernel"
	resp, _ := get(t, url)
	lastMod, etag := resp.Header.Get("Last-Modified"), resp.Header.Get("ETag")
	if lastMod == "" || etag == "" {
		t.Fatalf("no validators: %v", resp.Header)
	}
	if resp, _ := get(t, url, "If-Modified-Since", lastMod); resp.StatusCode != 304 {
		t.Errorf("If-Modified-Since: %d, want 304", resp.StatusCode)
	}
	// If-Range with the current validator resumes...
	for _, v := range []string{lastMod, etag} {
		if resp, body := get(t, url, "Range", "bytes=10-19", "If-Range", v); resp.StatusCode != 206 || !bytes.Equal(body, f.kernel[10:20]) {
			t.Errorf("If-Range %s: %d", v, resp.StatusCode)
		}
	}
	// ...and once the file changed, sends it whole.
	newer := time.Now().Add(time.Hour)
	if err := os.Chtimes(f.kernelPath, newer, newer); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{lastMod, etag} {
		if resp, body := get(t, url, "Range", "bytes=10-19", "If-Range", v); resp.StatusCode != 200 || !bytes.Equal(body, f.kernel) {
			t.Errorf("stale If-Range %s: %d, want the whole file", v, resp.StatusCode)
		}
	}
}

// TestResume breaks a download off part way, then fetches the rest with
// a Range request, as iPXE-less clients (curl -C -, the agent) resume.
func TestResume(t *testing.T) {
	f := newFileFixture(t)
	url := f.srv.URL + "/images/cache/debian-12.raw"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 300_001)
	if _, err := io.ReadFull(resp.Body, part); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the connection drops mid-transfer
	resp, rest := get(t, url, "Range", fmt.Sprintf("bytes=%d-", len(part)))
	if resp.StatusCode != 206 {
		t.Fatalf("resume: status %d", resp.StatusCode)
	}
	if got := append(part, rest...); !bytes.Equal(got, f.image) {
		t.Errorf("resumed download: %d bytes, not byte-identical to the %d of the image", len(got), len(f.image))
	}
}

func TestImageNames(t *testing.T) {
	f := newFileFixture(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/images/cache/debian-12.raw", 200},
		{"/images/cache/..%2Fsecret", 400},
		{"/images/cache/..%2F..%2F..%2Fetc%2Fpasswd", 400},
		{"/images/cache/%2e%2e", 400},
		{"/images/cache/%2Fetc%2Fpasswd", 400},
		{"/images/cache/..%5Csecret", 400},
		{"/images/cache/.debian-13.raw.part", 400},
		{"/images/cache/debian%00.raw", 400},
		{"/images/cache/sub", 404}, // a directory: no listing
		{"/images/cache/", 404},    // no listing
		{"/images/cache/missing.raw", 404},
		{"/images/cache/escape.raw", 403}, // a link out of the directory
		{"/images/cache/sub/x", 404},      // not flat
		{"/images/cache/../../etc/passwd", 400},
		{"/images/agent/../../etc/passwd", 400},
		{"/images/agent/..%2F..%2Fetc%2Fpasswd", 400},
		{"/boot/..%2F..%2Fetc%2Fpasswd.ipxe", 400},
		{"/images/cache/./debian-12.raw", 307}, // ServeMux cleans the path
		{"/images/cache//debian-12.raw", 307},
		{"/images/agent/", 404},
		{"/images/agent/kernel/x", 404},
	} {
		// Build the request by hand: url.Parse would not keep these paths
		// as sent.
		req, err := http.NewRequest(http.MethodGet, f.srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = tt.path
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d: %.100q", tt.path, resp.StatusCode, tt.status, body)
		}
		if tt.status != 200 && (bytes.Contains(body, []byte("secret")) || bytes.Contains(body, []byte("root:"))) {
			t.Errorf("%s: leaked %q", tt.path, body)
		}
		if loc := resp.Header.Get("Location"); tt.status == 307 && loc != "/images/cache/debian-12.raw" {
			t.Errorf("%s: redirect to %q", tt.path, loc)
		}
	}
}

func TestUnsetFiles(t *testing.T) {
	srv := newTestServer(t, Config{AgentKernel: filepath.Join(t.TempDir(), "not-built-yet")}, &fakeBooter{})
	for _, p := range []string{"/images/agent/kernel", "/images/agent/initramfs", "/images/cache/debian-12.raw"} {
		if resp, _ := get(t, srv.URL+p); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/images/agent/kernel", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

// TestCurl checks ranges and resume with the curl a user would try.
func TestCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatal("curl is required (INGOT_REQUIRE_TOOLS)")
		}
		t.Skip("curl not installed")
	}
	f := newFileFixture(t)
	dir := t.TempDir()
	curl := func(args ...string) {
		t.Helper()
		args = append([]string{"-sS", "--fail", "--max-time", "20"}, args...)
		if out, err := exec.Command("curl", args...).CombinedOutput(); err != nil {
			t.Fatalf("curl %q: %v\n%s", args, err, out)
		}
	}
	readFile := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	out := filepath.Join(dir, "range")
	curl("-r", "100-199", "-o", out, f.srv.URL+"/images/agent/kernel")
	if got := readFile(out); !bytes.Equal(got, f.kernel[100:200]) {
		t.Errorf("curl -r 100-199: %d bytes, not bytes 100-199", len(got))
	}

	// A download cut off at an odd place, then resumed.
	out = filepath.Join(dir, "resume")
	if err := os.WriteFile(out, f.image[:123_457], 0o644); err != nil {
		t.Fatal(err)
	}
	curl("-C", "-", "-o", out, f.srv.URL+"/images/cache/debian-12.raw")
	if got := readFile(out); !bytes.Equal(got, f.image) {
		t.Errorf("curl -C -: %d bytes, not byte-identical to the %d of the image", len(got), len(f.image))
	}

	// HEAD: headers only.
	cmd := exec.Command("curl", "-sS", "--fail", "-I", f.srv.URL+"/images/agent/kernel")
	head, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bytes.ToLower(head), []byte(fmt.Sprintf("content-length: %d", len(f.kernel)))) {
		t.Errorf("curl -I:\n%s", head)
	}
}
