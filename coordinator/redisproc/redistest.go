package redisproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireEnv, when set to anything, turns "redis-server is not installed"
// from a skip into a failure, so CI cannot silently skip Redis-backed tests.
const requireEnv = "INGOT_REQUIRE_REDIS"

// StartForTest starts a throwaway, non-persistent redis-server in a temporary
// directory and stops it when the test ends. It skips the test if
// redis-server is not in PATH, unless INGOT_REQUIRE_REDIS is set, in which
// case (like any other start failure) it fails the test.
func StartForTest(t testing.TB) *Server {
	t.Helper()
	bin := requireRedisBinary(t)
	srv, err := Start(t.Context(), Config{Binary: bin, Dir: socketSafeTempDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("redisproc: %v", err)
		}
	})
	return srv
}

// requireRedisBinary returns the path of redis-server, skipping the test if
// it is not installed and INGOT_REQUIRE_REDIS is unset, failing it otherwise.
func requireRedisBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(requireEnv) == "" {
			t.Skipf("redis-server not installed (set %s=1 to make this a failure): %v", requireEnv, err)
		}
		t.Fatalf("redis-server not installed and %s is set: %v", requireEnv, err)
	}
	return bin
}

// socketSafeTempDir returns t.TempDir(), unless the socket path inside it
// would not fit in 104 bytes (sun_path on macOS, the smallest; test names
// and macOS's $TMPDIR make t.TempDir paths long), in which case it returns a
// short directory directly under os.TempDir() (or /tmp if even that is too
// long), removed when the test ends.
func socketSafeTempDir(t testing.TB) string {
	t.Helper()
	fits := func(dir string) bool { return len(filepath.Join(dir, socketName)) < 104 }
	dir := t.TempDir()
	if fits(dir) {
		return dir
	}
	parent := os.TempDir()
	if !fits(filepath.Join(parent, "redis0123456789")) { // MkdirTemp adds up to 10 digits
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "redis")
	if err != nil {
		t.Fatalf("redisproc: create short temp dir: %v", err)
	}
	// Registered before Stop's cleanup, so it runs after it (LIFO).
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
