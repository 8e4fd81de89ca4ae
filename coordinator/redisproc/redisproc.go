// Package redisproc starts and supervises a real redis-server child process
// listening only on a unix socket in a data directory.
//
// It backs two things: the coordinator's embedded Redis when no external one
// is configured (persistent, AOF with appendfsync everysec), and test
// harnesses that need a throwaway real Redis (see StartForTest).
package redisproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// File names inside Config.Dir.
const (
	socketName = "redis.sock"
	logName    = "redis.log"
	confName   = "redis.conf"
	// lockName is flock'ed for as long as a Server of ours runs in the
	// directory, so two processes starting Redis in the same Dir at the same
	// moment cannot both pass the socket check (redis-server unlinks an
	// existing socket path before binding, so the loser would silently
	// steal the winner's socket).
	lockName = "redis.lock"
)

const (
	readyTimeout = 10 * time.Second // Start's limit for the first PONG
	stopTimeout  = 10 * time.Second // Stop's grace period after SIGTERM
	pollInterval = 20 * time.Millisecond
	probeTimeout = time.Second // one dial+PING attempt

	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// backoffReset is how long a child must have run before its crash is
	// treated as a fresh incident rather than part of a crash loop.
	backoffReset = 30 * time.Second

	logTailBytes = 8 << 10
	logTailLines = 30
)

// Config says how to run redis-server.
type Config struct {
	Binary  string       // path of redis-server; "" means look it up in PATH
	Dir     string       // data directory (created 0700 if missing); the socket, AOF and log live here
	Persist bool         // AOF persistence on (appendonly yes, appendfsync everysec); off means `save ""` and appendonly no
	Logger  *slog.Logger // nil means slog.Default()
}

// Server is a running redis-server child.
type Server struct {
	dir     string
	sock    string
	logPath string
	logger  *slog.Logger
	proc    *os.Process
	pid     int
	started time.Time

	exited  chan struct{} // closed by run once the child is reaped
	waitErr error         // written before exited is closed; read only after

	stopping atomic.Bool // set by Stop, so Supervise does not restart a deliberate exit
	stopOnce sync.Once
	stopErr  error
}

// Start launches redis-server with a config file it writes into Dir and
// returns once the server answers PING on its unix socket. If the child
// exits or does not answer within 10 s, the error includes the tail of
// redis.log. Cancelling ctx abandons the wait (and kills the child); it has
// no effect once Start has returned.
//
// Start refuses to run if a live server already owns Dir/redis.sock, and
// removes a stale socket file left by a dead one.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s, err := start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	return s, nil
}

func start(ctx context.Context, cfg Config) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	bin := cfg.Binary
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, err
		}
	}
	if cfg.Dir == "" {
		return nil, errors.New("config: Dir is empty")
	}
	// Absolute paths, because redis-server chdirs into `dir` and the
	// config file, log and socket paths must not depend on that.
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	sock := filepath.Join(dir, socketName)
	if len(sock) > maxSocketPath {
		return nil, fmt.Errorf("socket path %s is %d bytes, over the %d-byte unix socket limit; use a shorter Dir", sock, len(sock), maxSocketPath)
	}

	lock, err := lockDir(dir, sock)
	if err != nil {
		return nil, err
	}
	// From here on, every error path must release the lock; run takes
	// ownership of it once the child is spawned.
	if err := claimSocket(sock); err != nil {
		lock.Close()
		return nil, err
	}

	confPath := filepath.Join(dir, confName)
	if err := os.WriteFile(confPath, []byte(renderConfig(dir, sock, cfg.Persist)), 0o600); err != nil {
		lock.Close()
		return nil, fmt.Errorf("write config: %w", err)
	}
	logPath := filepath.Join(dir, logName)
	// The child's stdout and stderr also go to redis.log: fatal config
	// errors are printed there before redis-server opens its logfile, and
	// the log tail is what makes a failed start diagnosable.
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the child has its own copy once started

	cmd := exec.Command(bin, confPath)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()

	s := &Server{
		dir:     dir,
		sock:    sock,
		logPath: logPath,
		logger:  logger,
		exited:  make(chan struct{}),
	}
	spawned := make(chan error, 1)
	go s.run(cmd, lock, spawned)
	if err := <-spawned; err != nil {
		return nil, fmt.Errorf("spawn %s: %w", bin, err)
	}

	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	s.started = time.Now()
	logger.Info("redis-server started", "pid", s.pid, "socket", sock, "persist", cfg.Persist)
	return s, nil
}

// run spawns the child and waits for it, on a goroutine locked to its OS
// thread: Pdeathsig is tied to the thread that forked, and a locked thread
// is never handed to another goroutine (which could lock it and exit,
// making the runtime destroy the thread and the kernel SIGTERM Redis).
func (s *Server) run(cmd *exec.Cmd, lock *os.File, spawned chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := cmd.Start(); err != nil {
		lock.Close()
		spawned <- err
		return
	}
	s.proc = cmd.Process
	s.pid = cmd.Process.Pid
	spawned <- nil

	err := cmd.Wait()
	// Kill whatever is left of the process group: if redis-server crashed
	// mid AOF rewrite, its forked child would otherwise keep writing into
	// Dir while a restarted server uses it. After a clean exit the group is
	// empty and this fails with ESRCH.
	_ = syscall.Kill(-s.pid, syscall.SIGKILL)
	s.waitErr = err
	// Unlock before announcing the exit, so a Start right after Stop (or a
	// supervisor restart) finds the directory free.
	lock.Close()
	close(s.exited)
}

// waitReady polls the socket until redis-server answers PING.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if ping(s.sock, probeTimeout) == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("redis-server exited before answering PING (%v)%s", s.waitErr, s.logTail())
		case <-ctx.Done():
			s.kill()
			return fmt.Errorf("waiting for PING: %w%s", ctx.Err(), s.logTail())
		case <-deadline.C:
			s.kill()
			return fmt.Errorf("no PING answer on %s within %v%s", s.sock, readyTimeout, s.logTail())
		case <-tick.C:
		}
	}
}

// kill SIGKILLs the child's process group and waits for the child to be reaped.
func (s *Server) kill() {
	_ = syscall.Kill(-s.pid, syscall.SIGKILL)
	<-s.exited
}

// URL is the go-redis URL of the server: "unix:///path/redis.sock".
func (s *Server) URL() string { return "unix://" + s.sock }

// SocketPath returns the unix socket path.
func (s *Server) SocketPath() string { return s.sock }

// Pid returns the child's process id.
func (s *Server) Pid() int { return s.pid }

// Exited is closed when the child exits, whether through Stop or a crash.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Err says how the child ended once Exited is closed: nil for a clean exit
// (status 0, which is what SIGTERM produces), otherwise the *exec.ExitError.
// It returns nil while the child is running.
func (s *Server) Err() error {
	select {
	case <-s.exited:
		return s.waitErr
	default:
		return nil
	}
}

// Stop asks redis-server to shut down cleanly with SIGTERM, which makes it
// flush and fsync the AOF, waits up to 10 s, then kills it. It returns nil
// if the child exited cleanly or had already exited before Stop. Safe to
// call more than once and concurrently; later calls return the first
// result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	s.stopping.Store(true)
	select {
	case <-s.exited:
		return nil
	default:
	}
	// Signal the leader only, not the group: redis-server terminates its
	// own fork children (AOF rewrite) as part of a clean shutdown.
	// os.Process.Signal (a pidfd on Linux) is safe against pid reuse if
	// the child died in the meantime.
	if err := s.proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop redis-server: %w", err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		// Most likely a failed shutdown (redis refuses to exit if it cannot
		// persist), so the tail of the log says why.
		tail := s.logTail()
		s.kill()
		return fmt.Errorf("stop redis-server: still running %v after SIGTERM, killed it%s", stopTimeout, tail)
	}
	if s.waitErr != nil {
		return fmt.Errorf("stop redis-server: unclean exit: %w%s", s.waitErr, s.logTail())
	}
	s.logger.Info("redis-server stopped", "pid", s.pid, "socket", s.sock)
	return nil
}

// logTail formats the end of redis.log for appending to an error message.
func (s *Server) logTail() string {
	tail := readTail(s.logPath)
	if tail == "" {
		return ""
	}
	return "; redis.log tail:\n" + tail
}

// readTail returns the last lines of the file at path, or "" if unreadable.
func readTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-logTailBytes, 0)
	buf, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return ""
	}
	if off > 0 {
		// Drop the partial first line.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}

// lockDir takes an exclusive, non-blocking flock on Dir/redis.lock. The
// lock is released when the returned file is closed (or this process dies).
func lockDir(dir, sock string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if ping(sock, probeTimeout) == nil {
				return nil, fmt.Errorf("another redis-server already answers PING on %s", sock)
			}
			return nil, fmt.Errorf("data dir %s is in use: another process holds %s", dir, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// claimSocket makes sure nothing serves sock: it refuses if a process
// accepts connections there (typically a redis-server orphaned by a
// coordinator that died without Pdeathsig taking effect) and removes the
// file if it is a stale socket nobody listens on.
func claimSocket(sock string) error {
	fi, err := os.Lstat(sock)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; refusing to remove it", sock)
	}
	conn, err := net.DialTimeout("unix", sock, probeTimeout)
	if err == nil {
		conn.Close()
		if ping(sock, probeTimeout) == nil {
			return fmt.Errorf("another redis-server already answers PING on %s", sock)
		}
		// Something accepts connections but is not (yet) a working Redis;
		// removing its socket would cut it off, so refuse as well.
		return fmt.Errorf("another process is listening on %s", sock)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("probe socket: %w", err)
	}
	// No listener: left behind by a redis-server that died (e.g. SIGKILL).
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// ping sends a RESP PING over the unix socket and expects +PONG.
// A server still loading its AOF answers -LOADING, which counts as not ready.
func ping(sock string, timeout time.Duration) error {
	conn, err := net.DialTimeout("unix", sock, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected PING reply %q", strings.TrimSpace(line))
	}
	return nil
}

// renderConfig writes the redis.conf for a server in dir.
func renderConfig(dir, sock string, persist bool) string {
	var b strings.Builder
	line := func(directive string, args ...string) {
		b.WriteString(directive)
		for _, a := range args {
			b.WriteByte(' ')
			b.WriteString(a)
		}
		b.WriteByte('\n')
	}
	b.WriteString("# Generated by github.com/ingot/ingot/coordinator/redisproc; rewritten on every start.\n")
	line("daemonize", "no") // we supervise the process ourselves
	line("supervised", "no")
	line("port", "0") // unix socket only: no TCP exposure at all
	line("unixsocket", quoteConf(sock))
	line("unixsocketperm", "700")
	// Access control is the directory and socket mode; protected mode
	// would only get in the way of local clients.
	line("protected-mode", "no")
	line("dir", quoteConf(dir))
	line("logfile", quoteConf(filepath.Join(dir, logName)))
	line("always-show-logo", "no")
	// No RDB snapshots in either mode: with Persist the AOF is the single
	// source of truth (and avoids periodic fork+dump of the whole dataset);
	// without it nothing should touch the disk.
	line("save", `""`)
	if persist {
		line("appendonly", "yes")
		// At most ~1 s of writes lost on a crash; a clean SIGTERM shutdown
		// flushes and fsyncs everything.
		line("appendfsync", "everysec")
	} else {
		line("appendonly", "no")
	}
	return b.String()
}

// quoteConf quotes s as a redis.conf argument. redis-server splits config
// lines with sdssplitargs, which understands "..." with \" \\ and \xHH, so
// any byte (spaces, UTF-8, quotes in paths) round-trips.
func quoteConf(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
