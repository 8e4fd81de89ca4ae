package redisproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// do sends one command as a RESP array of bulk strings and returns the reply
// as a string: the payload of a simple string, integer or bulk string, or an
// error for a RESP error. A nil bulk string comes back as ("", errNil).
func do(sock string, args ...string) (string, error) {
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return "", errNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unsupported reply %q", line)
}

var errNil = errors.New("nil reply")

// serverPid asks the server at sock for its process id via INFO server.
func serverPid(sock string) (int, error) {
	info, err := do(sock, "INFO", "server")
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("no process_id in INFO")
}

// requireRedis skips (or fails) the test exactly like StartForTest.
func requireRedis(t *testing.T) { t.Helper(); requireRedisBinary(t) }

func TestStartPing(t *testing.T) {
	srv := StartForTest(t)
	if got, err := do(srv.SocketPath(), "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", got, err)
	}
	if want := "unix://" + srv.SocketPath(); srv.URL() != want {
		t.Errorf("URL() = %q, want %q", srv.URL(), want)
	}
	if pid, err := serverPid(srv.SocketPath()); err != nil || pid != srv.Pid() {
		t.Errorf("server pid = %d, %v; want %d", pid, err, srv.Pid())
	}
	fi, err := os.Stat(srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("socket mode = %v, want 0700", perm)
	}

	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	select {
	case <-srv.Exited():
	default:
		t.Fatal("Exited not closed after Stop")
	}
	if err := srv.Err(); err != nil {
		t.Errorf("Err after clean Stop = %v, want nil", err)
	}
	if _, err := do(srv.SocketPath(), "PING"); err == nil {
		t.Error("server still answers PING after Stop")
	}
}

func TestPersistAcrossRestart(t *testing.T) {
	requireRedis(t)
	cfg := Config{Dir: socketSafeTempDir(t), Persist: true}
	ctx := t.Context()

	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if got, err := do(srv.SocketPath(), "SET", "greeting", "hello world"); err != nil || got != "OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	srv2, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Stop() })
	if got, err := do(srv2.SocketPath(), "GET", "greeting"); err != nil || got != "hello world" {
		t.Fatalf("GET after restart = %q, %v; want %q", got, err, "hello world")
	}
}

func TestNoPersistDoesNotKeepData(t *testing.T) {
	requireRedis(t)
	cfg := Config{Dir: socketSafeTempDir(t)}
	srv, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := do(srv.SocketPath(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	srv, err = Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if got, err := do(srv.SocketPath(), "GET", "k"); !errors.Is(err, errNil) {
		t.Fatalf("GET k = %q, %v; want nil reply", got, err)
	}
}

func TestStartRefusesLiveOwner(t *testing.T) {
	srv := StartForTest(t)
	_, err := Start(t.Context(), Config{Dir: filepath.Dir(srv.SocketPath())})
	if err == nil {
		t.Fatal("second Start in the same Dir succeeded")
	}
	if !strings.Contains(err.Error(), "already answers PING") {
		t.Errorf("error = %v; want it to mention the live server", err)
	}
	if got, err := do(srv.SocketPath(), "PING"); err != nil || got != "PONG" {
		t.Fatalf("first server broken after refused Start: %q, %v", got, err)
	}
}

// A redis-server that is not ours (no lock held, e.g. orphaned by a crashed
// coordinator) must be detected by PING alone.
func TestStartRefusesUnlockedLiveOwner(t *testing.T) {
	srv := StartForTest(t)
	dir := filepath.Dir(srv.SocketPath())
	// Simulate the owner not holding the lock: move its lock file away so a
	// fresh flock succeeds.
	if err := os.Rename(filepath.Join(dir, lockName), filepath.Join(dir, "moved.lock")); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "already answers PING") {
		t.Fatalf("Start = %v; want refusal because of the live server", err)
	}
}

func TestStartRemovesStaleSocket(t *testing.T) {
	requireRedis(t)
	dir := socketSafeTempDir(t)
	sock := filepath.Join(dir, socketName)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // leave the socket file behind, like a crashed server
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	srv, err := Start(t.Context(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Start with stale socket: %v", err)
	}
	t.Cleanup(func() { srv.Stop() })
	if got, err := do(sock, "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
}

func TestStartFailureIncludesLogTail(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-redis")
	script := "#!/bin/sh\necho 'FATAL: pretend config error' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Config{Binary: fake, Dir: filepath.Join(dir, "data")})
	if err == nil {
		t.Fatal("Start of a failing binary succeeded")
	}
	if !strings.Contains(err.Error(), "pretend config error") {
		t.Errorf("error lacks log tail: %v", err)
	}
	if !strings.HasPrefix(err.Error(), "start redis-server: ") {
		t.Errorf("error lacks context: %v", err)
	}
}

func TestStartContextCancel(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-redis")
	// Never answers PING; exec so the signal reaches sleep itself.
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Start(ctx, Config{Binary: fake, Dir: filepath.Join(dir, "data")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v; want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Start took %v after ctx expired", d)
	}
}

func TestSuperviseRestartsKilledChild(t *testing.T) {
	requireRedis(t)
	ctx := t.Context()
	srv, stop, err := Supervise(ctx, Config{Dir: socketSafeTempDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	sock := srv.SocketPath()
	oldPid := srv.Pid()

	if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("Exited not closed after SIGKILL")
	}
	if srv.Err() == nil {
		t.Error("Err() = nil after SIGKILL")
	}

	deadline := time.Now().Add(15 * time.Second)
	var newPid int
	for {
		pid, err := serverPid(sock)
		if err == nil && pid != oldPid {
			newPid = pid
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no restarted server on %s: pid %d, %v", sock, pid, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("restarted: pid %d -> %d", oldPid, newPid)

	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := do(sock, "PING"); err == nil {
		t.Error("server still answers after stop")
	}
	if err := syscall.Kill(newPid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("restarted child %d still exists after stop (kill 0: %v)", newPid, err)
	}
}

// Server.Stop on a supervised server is a deliberate shutdown, not a crash.
func TestSuperviseDoesNotRestartDeliberateStop(t *testing.T) {
	requireRedis(t)
	srv, stop, err := Supervise(t.Context(), Config{Dir: socketSafeTempDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * minBackoff)
	if _, err := do(srv.SocketPath(), "PING"); err == nil {
		t.Fatal("supervisor restarted a deliberately stopped server")
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

func TestQuoteConf(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/a b":    `"/tmp/a b"`,
		`/x/"q"\z`:    `"/x/\"q\"\\z"`,
		"/d/\u00e9\n": `"/d/\xc3\xa9\x0a"`,
	} {
		if got := quoteConf(in); got != want {
			t.Errorf("quoteConf(%q) = %s, want %s", in, got, want)
		}
	}
}

// A Dir with spaces and non-ASCII must reach redis-server intact.
func TestStartOddDir(t *testing.T) {
	requireRedis(t)
	dir := filepath.Join(socketSafeTempDir(t), "a b \"é\"")
	srv, err := Start(t.Context(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if got, err := do(filepath.Join(dir, socketName), "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
}

// TestHelperProcess is not a real test: TestChildDiesWithParent re-executes
// the test binary to run it as a parent that starts redis-server and then
// blocks until it is SIGKILLed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("REDISPROC_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestChildDiesWithParent")
	}
	if _, err := Start(context.Background(), Config{Dir: dir, Persist: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	select {}
}

func TestChildDiesWithParent(t *testing.T) {
	requireRedis(t)
	dir := socketSafeTempDir(t)
	sock := filepath.Join(dir, socketName)
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	helper.Env = append(os.Environ(), "REDISPROC_HELPER_DIR="+dir)
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })

	var pid int
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		if pid, err = serverPid(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper's redis-server never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Its own process group, so a terminal Ctrl-C does not reach it.
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("redis-server pgid = %d, %v; want its own group %d", pgid, err, pid)
	}
	if got, err := do(sock, "SET", "k", "v"); err != nil || got != "OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}

	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	for {
		if !processAlive(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server %d survived its parent's SIGKILL", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Pdeathsig is SIGTERM, a clean shutdown: the write made it to the AOF.
	srv, err := Start(t.Context(), Config{Dir: dir, Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if got, err := do(sock, "GET", "k"); err != nil || got != "v" {
		t.Fatalf("GET after parent death = %q, %v; want v", got, err)
	}
}

// processAlive reports whether pid exists and is not a zombie (the orphan
// is reparented to an init that may be slow, or absent in a container, to
// reap it).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no procfs: best effort
	}
	// Format: pid (comm) state ...; comm may contain spaces or parens.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestSocketSafeTempDir(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	// A subtest gets a fresh t.TempDir root, now under the long $TMPDIR.
	t.Setenv("TMPDIR", long)
	var dir string
	t.Run("sub", func(t *testing.T) {
		dir = socketSafeTempDir(t)
		if sock := filepath.Join(dir, socketName); len(sock) >= 104 {
			t.Fatalf("socket path %s is %d bytes", sock, len(sock))
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("dir %s: %v", dir, err)
		}
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("short temp dir %s not removed after the test: %v", dir, err)
	}
}

func TestStartRejectsLongSocketPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("x", maxSocketPath))
	_, err := Start(t.Context(), Config{Binary: "/bin/true", Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "unix socket limit") {
		t.Fatalf("Start = %v; want socket length error", err)
	}
}
