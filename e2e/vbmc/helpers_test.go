package vbmc

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testUser     = "admin"
	testPassword = "pw"
)

// requireTool returns the path of a client program, skipping the test
// when it is missing unless INGOT_REQUIRE_TOOLS is set.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (INGOT_REQUIRE_TOOLS is set): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// testLogger sends the BMC's log to the test's log, so a failure shows
// what the BMC saw.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startBMC serves m on an ephemeral loopback port until the test ends.
func startBMC(t *testing.T, m Machine) *BMC {
	t.Helper()
	b, err := New(Config{
		Users:   map[string]string{testUser: testPassword, "operator": "op-secret"},
		Machine: m,
		Logger:  testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t.Context())
	t.Cleanup(func() { b.Close() })
	return b
}

// ipmitool runs ipmitool against b and returns its combined output and
// whether it exited zero.
func ipmitool(t *testing.T, b *BMC, user, password, suite string, args ...string) (string, bool) {
	t.Helper()
	bin := requireTool(t, "ipmitool")
	full := []string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(int(b.Addr().Port())), "-U", user, "-P", password,
		"-N", "1", "-R", "4"}
	if suite != "" {
		full = append(full, "-C", suite)
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("ipmitool %v: %v", args, err)
		}
	}
	return string(out), err == nil
}
