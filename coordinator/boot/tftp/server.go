// Package tftp serves iPXE boot loaders (undionly.kpxe, ipxe.efi) over
// TFTP to machines whose firmware PXE ROM cannot speak HTTP. It is
// read-only and serves files from one directory only: everything after
// the boot loader goes over HTTP (package httpboot).
package tftp

import (
	"context"
	"errors"
	"fmt"
	"github.com/ingot/ingot/coordinator/boot/logonce"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pin/tftp/v3"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Defaults for the zero Config.
const (
	DefaultAddr         = ":69"
	DefaultRoot         = "/usr/lib/ipxe" // Debian's ipxe package
	DefaultMaxTransfers = 64
	DefaultTimeout      = time.Minute
)

const (
	// retries is how many times one block is sent before the transfer
	// is abandoned.
	retries = 5
	// maxRoundTrip caps the wait for one ACK (pin/tftp's default).
	maxRoundTrip = 5 * time.Second
	// minRoundTrip keeps short transfer timeouts from making loaded
	// machines retransmit needlessly.
	minRoundTrip = 100 * time.Millisecond
	// logEvery rate-limits the log lines one client can cause.
	logEvery = time.Minute
)

// Config configures a Server. The zero value serves /usr/lib/ipxe on
// port 69.
type Config struct {
	// Addr is the UDP address to listen on (default ":69").
	Addr string
	// Root is the directory served (default /usr/lib/ipxe).
	Root string
	// Files, when not empty, is the only names served (relative to Root,
	// e.g. "undionly.kpxe"); anything else is "file not found".
	Files []string
	// MaxTransfers bounds transfers in flight (default 64). Requests
	// beyond it are refused at once with a TFTP error: a PXE ROM retries
	// the whole boot, which is better than waiting on a queue.
	MaxTransfers int
	// Timeout bounds one transfer from request to last ACK (default 1m).
	Timeout time.Duration
	// Logger receives transfer logs (default: discarded).
	Logger *slog.Logger
}

// Server is a read-only TFTP server. Create it with New and run it with
// Serve.
type Server struct {
	conn    net.PacketConn
	rootDir string
	root    *os.Root
	allowed map[string]bool // nil: every file under root
	sem     chan struct{}
	timeout time.Duration
	log     *slog.Logger
	logLim  *logonce.Limiter
	srv     *tftp.Server

	// ctx is Serve's context: transfers stop when it is done.
	ctx     context.Context
	serving atomic.Bool
	close   sync.Once
}

// New checks cfg, opens the root directory and binds the socket, so the
// port is known (Addr) and bind errors surface before Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Root == "" {
		cfg.Root = DefaultRoot
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = DefaultMaxTransfers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rootDir, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("tftp root %q: %w", cfg.Root, err)
	}
	var allowed map[string]bool
	if len(cfg.Files) > 0 {
		allowed = make(map[string]bool, len(cfg.Files))
		for _, name := range cfg.Files {
			if _, err := resolve(rootDir, name); err != nil {
				return nil, fmt.Errorf("tftp allowed file %q: %w", name, err)
			}
			allowed[filepath.Clean(name)] = true
		}
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return nil, fmt.Errorf("tftp root: %w", err)
	}
	conn, err := net.ListenPacket("udp", cfg.Addr)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("tftp listen: %w", err)
	}
	requestPacketInfo(conn)
	s := &Server{
		conn:    conn,
		rootDir: rootDir,
		root:    root,
		allowed: allowed,
		sem:     make(chan struct{}, cfg.MaxTransfers),
		timeout: cfg.Timeout,
		log:     cfg.Logger.With("component", "tftp"),
		logLim:  logonce.New(logEvery, 4096),
		ctx:     context.Background(),
	}
	// Writes are refused: a nil write handler makes pin/tftp answer every
	// WRQ with an error.
	s.srv = tftp.NewServer(s.handleRead, nil)
	// A client that stops ACKing holds a transfer slot until its blocks
	// run out of retries; spread the transfer timeout over those retries
	// so a dead client is dropped about when Timeout says.
	s.srv.SetTimeout(min(maxRoundTrip, max(minRoundTrip, cfg.Timeout/(retries+1))))
	s.srv.SetRetries(retries)
	// pin/tftp sleeps up to a random second before each retransmission by
	// default, on top of the ACK timeout that already elapsed.
	s.srv.SetBackoff(func(int) time.Duration { return 0 })
	return s, nil
}

// requestPacketInfo asks the kernel, now, for the destination address and
// interface of each datagram, as pin/tftp's Serve does later. The kernel
// records them as a datagram is queued: a request queued between New and
// Serve would otherwise lack them, and pin/tftp, not knowing the
// interface's MTU, would cap its block size at 512. Failure is harmless
// (Serve tries again).
func requestPacketInfo(conn net.PacketConn) {
	uc, ok := conn.(*net.UDPConn)
	if !ok {
		return
	}
	if a, ok := uc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		_ = ipv4.NewPacketConn(uc).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
		return
	}
	_ = ipv6.NewPacketConn(uc).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// Serve answers requests until ctx is done, then stops taking requests,
// cuts running transfers short (at their next block; a client that
// stopped answering is dropped within about Timeout) and returns nil once
// they are gone. It may be called once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("tftp: Serve called twice")
	}
	// Set before pin/tftp starts the goroutines that read it.
	s.ctx = ctx
	s.log.Info("serving", "addr", s.Addr().String(), "root", s.rootDir)

	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-stop: // srv.Serve failed on its own
		}
		// Shutdown closes the socket, ending srv.Serve, and waits for the
		// transfers, which see ctx and stop at their next block.
		s.srv.Shutdown()
		// Shutdown skips the socket if it ran before srv.Serve stored it;
		// closing it here too guarantees srv.Serve is not left reading.
		s.conn.Close()
	}()
	err := s.srv.Serve(s.conn)
	close(stop)
	<-stopped
	s.Close()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("tftp serve: %w", err)
	}
	return nil
}

// Close releases the socket and the root directory. Serve calls it; call
// it only for a Server that never served.
func (s *Server) Close() error {
	var err error
	s.close.Do(func() {
		connErr := s.conn.Close()
		if errors.Is(connErr, net.ErrClosed) {
			connErr = nil // Serve's shutdown closed it first
		}
		err = errors.Join(connErr, s.root.Close())
	})
	return err
}
