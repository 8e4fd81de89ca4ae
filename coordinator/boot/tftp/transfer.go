package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pin/tftp/v3"
)

// clientError is an error whose text goes to the client. pin/tftp sends
// every handler error as TFTP error code 1 with the error's text as the
// message, so the text is what an operator watching the console sees.
type clientError string

func (e clientError) Error() string { return string(e) }

const (
	errNotFound clientError = "file not found"
	errDenied   clientError = "access denied"
	errBusy     clientError = "server busy, try again later"
	errTimeout  clientError = "transfer timed out"
	errShutdown clientError = "server shutting down"
	// errBadName is a request name that could never name a file under
	// the root; clients see errDenied.
	errBadName clientError = "invalid file name"
)

// handleRead serves one read request. pin/tftp runs it in its own
// goroutine and sends the returned error to the client.
func (s *Server) handleRead(name string, rf io.ReaderFrom) error {
	start := time.Now()
	peer := "unknown"
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		addr := ot.RemoteAddr()
		peer = addr.IP.String()
	}
	log := s.log.With("client", peer, "file", name)

	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		if s.logLim.Allow("busy|"+peer, start) {
			log.Warn("refused: too many transfers", "max", cap(s.sem))
		}
		return errBusy
	}

	f, size, err := s.open(name)
	if err != nil {
		s.logOpenError(log, peer, name, err)
		if errors.Is(err, errNotFound) {
			return errNotFound
		}
		return errDenied
	}
	defer f.Close()

	// The file is wrapped below and no longer an io.Seeker, so pin/tftp
	// cannot find its size itself: without this, a client asking for
	// tsize would get no tsize back.
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(size)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	n, err := rf.ReadFrom(&ctxReader{ctx: ctx, r: f})
	if err != nil {
		// Many PXE ROMs ask for tsize only, then abort and ask again with
		// a block size: a transfer that ends before any data is routine.
		level := slog.LevelInfo
		if n == 0 {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "transfer failed", "bytes", n, "elapsed", time.Since(start), "err", err)
		return err
	}
	log.Debug("sent", "bytes", n, "elapsed", time.Since(start))
	return nil
}

// open opens the regular file name refers to. Errors wrap errNotFound
// when there is no such file, or say why the name was refused.
func (s *Server) open(name string) (*os.File, int64, error) {
	p, err := resolve(s.rootDir, name)
	if err != nil {
		return nil, 0, err
	}
	rel, err := filepath.Rel(s.rootDir, p)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errBadName, err)
	}
	if s.allowed != nil && !s.allowed[rel] {
		return nil, 0, fmt.Errorf("%w: not in the allowed files", errNotFound)
	}
	// os.Root refuses symbolic links that lead outside the root, and does
	// so as it opens, so a link swapped in meanwhile cannot slip through.
	f, err := s.root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %v", errNotFound, err)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: not a regular file", errNotFound)
	}
	return f, fi.Size(), nil
}

// logOpenError logs a refused request at most once per client per
// logEvery: PXE ROMs retry in tight loops.
func (s *Server) logOpenError(log *slog.Logger, peer, name string, err error) {
	if errors.Is(err, errNotFound) {
		if s.logLim.Allow("notfound|"+peer+"|"+name, time.Now()) {
			log.Debug("file not found", "err", err)
		}
		return
	}
	// Refused names and links out of the root are worth an operator's
	// attention: a probe, or a root set up wrong (Debian's ipxe.efi is an
	// absolute link to /boot/ipxe.efi, which os.Root refuses).
	if s.logLim.Allow("denied|"+peer, time.Now()) {
		log.Warn("refused", "err", err)
	}
}

// ctxReader ends a transfer when its context is done: the transfer
// timeout, or the server shutting down. pin/tftp reads one block per
// ACK, so a transfer stops within a block of either.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, errTimeout
		}
		return 0, errShutdown
	}
	return c.r.Read(p)
}
