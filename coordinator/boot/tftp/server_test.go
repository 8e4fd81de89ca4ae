package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/ingot/ingot/pkg/testlog"
)

// startServer runs a server on a loopback port for the test's lifetime.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return s
}

// testRoot builds a root with files of known content, a symbolic link
// inside it and links leading out of it.
func testRoot(t *testing.T) (root string, files map[string][]byte) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files = map[string][]byte{
		"small.bin":     randBytes(t, 3000),
		"big.bin":       randBytes(t, 600_000),
		"sub/inner.bin": randBytes(t, 1468*2), // exact multiple of the block size
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"abs-escape": filepath.Join(outside, "secret"),
		"rel-escape": "../outside/secret",
		"inlink":     "small.bin",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	files["inlink"] = files["small.bin"]
	return root, files
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newClient(t *testing.T, s *Server) *tftp.Client {
	t.Helper()
	c, err := tftp.NewClient(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(time.Second)
	c.SetRetries(2)
	c.SetBackoff(func(int) time.Duration { return 10 * time.Millisecond })
	return c
}

// fetch downloads name with pin/tftp's client; size is the tsize the
// server reported (-1 when none).
func fetch(c *tftp.Client, name string) (data []byte, size int64, err error) {
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, -1, err
	}
	size = -1
	if n, ok := wt.(tftp.IncomingTransfer).Size(); ok {
		size = n
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, size, err
	}
	return buf.Bytes(), size, nil
}

func TestDownloadAndOptions(t *testing.T) {
	root, files := testRoot(t)
	s := startServer(t, Config{Root: root})
	for _, tt := range []struct {
		file    string
		blksize int
		tsize   bool
	}{
		{"small.bin", 0, false},
		{"small.bin", 0, true},
		{"big.bin", 1468, true},
		{"big.bin", 8192, false},
		{"sub/inner.bin", 1468, true},
		{"inlink", 512, true},
	} {
		t.Run(fmt.Sprintf("%s/blksize=%d/tsize=%v", tt.file, tt.blksize, tt.tsize), func(t *testing.T) {
			c := newClient(t, s)
			if tt.blksize > 0 {
				c.SetBlockSize(tt.blksize)
			}
			c.RequestTSize(tt.tsize)
			got, size, err := fetch(c, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, files[tt.file]) {
				t.Fatalf("got %d bytes, differing from the %d of the file", len(got), len(files[tt.file]))
			}
			switch {
			case tt.tsize && size != int64(len(files[tt.file])):
				t.Errorf("tsize %d, want %d", size, len(files[tt.file]))
			case !tt.tsize && size != -1:
				t.Errorf("tsize %d reported though not asked for", size)
			}
		})
	}
}

// TestOACK reads the option acknowledgement off the wire: pin/tftp's
// client does not expose the negotiated block size.
func TestOACK(t *testing.T) {
	root, files := testRoot(t)
	s := startServer(t, Config{Root: root})
	conn := dialRaw(t)
	sendRRQ(t, conn, s, "big.bin", "blksize", "1468", "tsize", "0")
	pkt, from := readPacket(t, conn)
	if op := binary.BigEndian.Uint16(pkt); op != 6 {
		t.Fatalf("opcode %d (%q), want OACK", op, pkt)
	}
	opts := parseOpts(pkt[2:])
	want := map[string]string{"blksize": "1468", "tsize": fmt.Sprint(len(files["big.bin"]))}
	if fmt.Sprint(opts) != fmt.Sprint(want) {
		t.Errorf("OACK options %v, want %v", opts, want)
	}
	send(t, conn, from, 4, 0) // ACK 0 accepts the options
	pkt, _ = readPacket(t, conn)
	if op, blk := binary.BigEndian.Uint16(pkt), binary.BigEndian.Uint16(pkt[2:]); op != 3 || blk != 1 {
		t.Fatalf("got opcode %d block %d, want DATA 1", op, blk)
	}
	if n := len(pkt) - 4; n != 1468 {
		t.Errorf("first block carries %d bytes, want 1468", n)
	}
	if !bytes.Equal(pkt[4:], files["big.bin"][:1468]) {
		t.Error("first block differs from the file")
	}
	send(t, conn, from, 5, 0, 'd', 'o', 'n', 'e', 0) // ERROR 0 "done" ends the transfer
}

func TestRefused(t *testing.T) {
	root, _ := testRoot(t)
	s := startServer(t, Config{Root: root})
	for _, tt := range []struct{ name, want string }{
		{"missing.bin", "file not found"},
		{"sub", "file not found"}, // a directory
		{"../outside/secret", "access denied"},
		{"sub/../../outside/secret", "access denied"},
		{"/etc/passwd", "access denied"},
		{root + "/small.bin", "access denied"},
		{"..\\outside\\secret", "access denied"},
		{"abs-escape", "access denied"},
		{"rel-escape", "access denied"},
		// A NUL cannot reach the handler: it ends the name on the wire.
		// resolve refuses it anyway (TestResolve, FuzzResolve).
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, _, err := fetch(newClient(t, s), tt.name)
			if err == nil {
				t.Fatalf("served %d bytes", len(data))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestAllowList(t *testing.T) {
	root, files := testRoot(t)
	s := startServer(t, Config{Root: root, Files: []string{"small.bin", "sub/inner.bin"}})
	c := newClient(t, s)
	for name, ok := range map[string]bool{"small.bin": true, "sub/inner.bin": true, "big.bin": false, "inlink": false} {
		data, _, err := fetch(c, name)
		if ok && (err != nil || !bytes.Equal(data, files[name])) {
			t.Errorf("%s: %v", name, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "file not found")) {
			t.Errorf("%s: err %v, want file not found", name, err)
		}
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", Root: root, Files: []string{"../x"}}); err == nil {
		t.Error("New accepted an allowed file outside the root")
	}
}

func TestWriteRefused(t *testing.T) {
	root, _ := testRoot(t)
	s := startServer(t, Config{Root: root})
	c := newClient(t, s)
	rf, err := c.Send("upload.bin", "octet")
	if err == nil {
		_, err = rf.ReadFrom(strings.NewReader("payload"))
	}
	if err == nil {
		t.Fatal("write accepted")
	}
	if _, err := os.Stat(filepath.Join(root, "upload.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upload.bin: %v", err)
	}
}

// TestTransferLimit fills every slot with clients that stop ACKing, checks
// that further requests are refused at once, that the stalled transfers
// are dropped after Timeout, and that a burst of clients over the limit
// all finish (served or refused) without hanging.
func TestTransferLimit(t *testing.T) {
	root, files := testRoot(t)
	const limit = 2
	s := startServer(t, Config{Root: root, MaxTransfers: limit, Timeout: time.Second})

	for range limit {
		conn := dialRaw(t)
		sendRRQ(t, conn, s, "big.bin")
		if pkt, _ := readPacket(t, conn); binary.BigEndian.Uint16(pkt) != 3 {
			t.Fatalf("stalling client got %q, want DATA", pkt)
		}
		// Never ACK: the transfer holds its slot.
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_, _, err := fetch(newClient(t, s), "small.bin")
			if err == nil || !strings.Contains(err.Error(), "busy") {
				t.Errorf("with all slots held: err %v, want busy", err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("refusals took %v", d)
	}

	// The stalled transfers give up after about Timeout.
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _, err := fetch(newClient(t, s), "small.bin")
		if err == nil {
			if !bytes.Equal(data, files["small.bin"]) {
				t.Fatal("wrong bytes")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots never freed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A burst over the limit: every client ends, served or refused.
	const clients = 8
	results := make(chan error, clients)
	for range clients {
		go func() {
			c := newClient(t, s)
			c.SetBlockSize(1468)
			data, _, err := fetch(c, "big.bin")
			if err == nil && !bytes.Equal(data, files["big.bin"]) {
				err = errors.New("wrong bytes")
			}
			results <- err
		}()
	}
	served, refused := 0, 0
	timeout := time.After(30 * time.Second)
	for range clients {
		select {
		case err := <-results:
			switch {
			case err == nil:
				served++
			case strings.Contains(err.Error(), "busy"):
				refused++
			default:
				t.Errorf("burst client: %v", err)
			}
		case <-timeout:
			t.Fatalf("burst clients hang: %d served, %d refused", served, refused)
		}
	}
	t.Logf("burst of %d over a limit of %d: %d served, %d refused", clients, limit, served, refused)
	if served == 0 {
		t.Error("no burst client was served")
	}
}

func TestShutdownWithStalledClient(t *testing.T) {
	root, _ := testRoot(t)
	s, err := New(Config{Addr: "127.0.0.1:0", Root: root, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	conn := dialRaw(t)
	sendRRQ(t, conn, s, "big.bin")
	readPacket(t, conn)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := s.Serve(context.Background()); err == nil {
		t.Error("second Serve succeeded")
	}
}

// TestNotFoundLoggedOnce checks that a client retrying a missing file
// logs one line, not one per request.
func TestNotFoundLoggedOnce(t *testing.T) {
	root, _ := testRoot(t)
	var logs testlog.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startServer(t, Config{Root: root, Logger: logger})
	c := newClient(t, s)
	for range 3 {
		if _, _, err := fetch(c, "pxelinux.0"); err == nil {
			t.Fatal("missing file served")
		}
	}
	if n := strings.Count(logs.String(), `msg="file not found"`); n != 1 {
		t.Errorf("%d log lines for a missing file, want 1:\n%s", n, logs.String())
	}
}

// TestCurl downloads the real iPXE boot loaders with curl, the way a
// user would check a deployment.
func TestCurl(t *testing.T) {
	requireCurlTFTP(t)
	root := ipxeRoot(t)
	s := startServer(t, Config{Root: root})
	port := s.Addr().(*net.UDPAddr).Port
	dir := t.TempDir()
	for _, tt := range []struct{ file, blksize string }{
		{"undionly.kpxe", ""},
		{"undionly.kpxe", "1468"},
		{"snponly.efi", "1468"},
	} {
		src, err := os.ReadFile(filepath.Join(root, tt.file))
		if err != nil {
			t.Logf("%s: %v", tt.file, err)
			continue
		}
		out := filepath.Join(dir, tt.file+tt.blksize)
		args := []string{"-sS", "--max-time", "20", fmt.Sprintf("tftp://127.0.0.1:%d/%s", port, tt.file), "-o", out}
		if tt.blksize != "" {
			args = append(args, "--tftp-blksize", tt.blksize)
		}
		if b, err := exec.Command("curl", args...).CombinedOutput(); err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s (blksize %q): %d bytes, differing from the %d of the source", tt.file, tt.blksize, len(got), len(src))
		}
	}

	for _, path := range []string{"../../../etc/passwd", "/etc/passwd", "no-such-file"} {
		out := filepath.Join(dir, "refused")
		os.Remove(out)
		url := fmt.Sprintf("tftp://127.0.0.1:%d/%s", port, path)
		cmd := exec.Command("curl", "-sS", "--max-time", "10", "--path-as-is", url, "-o", out)
		b, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("curl %s succeeded", url)
		}
		if got, _ := os.ReadFile(out); len(got) > 0 {
			t.Errorf("curl %s wrote %d bytes", url, len(got))
		}
		t.Logf("curl %s: %v: %s", url, err, bytes.TrimSpace(b))
	}
}

func requireCurlTFTP(t *testing.T) {
	t.Helper()
	out, err := exec.Command("curl", "--version").Output()
	if err == nil && bytes.Contains(out, []byte(" tftp")) {
		return
	}
	if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
		t.Fatalf("curl with tftp support is required (INGOT_REQUIRE_TOOLS): %v", err)
	}
	t.Skip("curl with tftp support not installed")
}

// ipxeRoot is the real boot loader directory (apt-get install ipxe).
func ipxeRoot(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(DefaultRoot, "undionly.kpxe")); err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatalf("iPXE boot loaders are required (INGOT_REQUIRE_TOOLS; apt-get install ipxe): %v", err)
		}
		t.Skipf("iPXE boot loaders not installed: %v", err)
	}
	return DefaultRoot
}

// Raw TFTP packets, for what clients do not expose or do not do (stall).

func dialRaw(t *testing.T) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func sendRRQ(t *testing.T, conn *net.UDPConn, s *Server, name string, opts ...string) {
	t.Helper()
	pkt := []byte{0, 1}
	for _, f := range append([]string{name, "octet"}, opts...) {
		pkt = append(append(pkt, f...), 0)
	}
	if _, err := conn.WriteTo(pkt, s.Addr()); err != nil {
		t.Fatal(err)
	}
}

func readPacket(t *testing.T, conn *net.UDPConn) ([]byte, *net.UDPAddr) {
	t.Helper()
	buf := make([]byte, 65536)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Fatalf("short packet %q", buf[:n])
	}
	return buf[:n], from
}

// send sends opcode op, then the 16-bit number n (a block or an error
// code), then rest.
func send(t *testing.T, conn *net.UDPConn, to *net.UDPAddr, op, n uint16, rest ...byte) {
	t.Helper()
	pkt := binary.BigEndian.AppendUint16(nil, op)
	pkt = binary.BigEndian.AppendUint16(pkt, n)
	if _, err := conn.WriteToUDP(append(pkt, rest...), to); err != nil {
		t.Fatal(err)
	}
}

func parseOpts(b []byte) map[string]string {
	fields := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	opts := make(map[string]string)
	for i := 0; i+1 < len(fields); i += 2 {
		opts[fields[i]] = fields[i+1]
	}
	return opts
}
