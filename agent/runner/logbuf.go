package runner

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultLogBufferSize is how much of its own log the agent keeps for
// CollectLogs: the ramdisk has no disk to log to, and a full log of a
// long clean fits easily.
const DefaultLogBufferSize = 1 << 20

// LogBuffer keeps the last lines written to it, up to a size, for
// CollectLogs. It is an io.Writer for a slog handler; whole lines are
// dropped from the front when it is full.
type LogBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// NewLogBuffer returns a buffer keeping about the last max bytes.
func NewLogBuffer(max int) *LogBuffer {
	if max <= 0 {
		max = DefaultLogBufferSize
	}
	return &LogBuffer{max: max}
}

// Write appends p. It never fails, so a full buffer never loses a log
// line on the console it is teed with.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	// Trimming only past twice the size keeps the copying amortized.
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], trimToLine(b.buf, b.max)...)
	}
	return len(p), nil
}

// Bytes returns a copy of the last max bytes, starting at a line.
func (b *LogBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(trimToLine(b.buf, b.max))
}

// trimToLine returns the tail of p of at most max bytes that starts just
// after a newline.
func trimToLine(p []byte, max int) []byte {
	if len(p) <= max {
		return p
	}
	tail := p[len(p)-max:]
	if i := bytes.IndexByte(tail, '\n'); i >= 0 {
		return tail[i+1:]
	}
	return nil // a single line longer than max: nothing whole to keep
}

// tarGz packs the buffer as a gzip tar holding one file, name.
func (b *LogBuffer) tarGz(name string, now time.Time) ([]byte, error) {
	data := b.Bytes()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("pack logs: %w", err)
	}
	if _, err := tw.Write(data); err != nil {
		return nil, fmt.Errorf("pack logs: %w", err)
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return nil, fmt.Errorf("pack logs: %w", err)
	}
	return out.Bytes(), nil
}

// teeHandler sends every record to two handlers: the console's, at
// whatever level it was configured with, and the buffer's, which keeps
// debug lines too (they are what explains a failure afterwards).
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	if t.a.Enabled(ctx, r.Level) {
		errs = append(errs, t.a.Handle(ctx, r.Clone()))
	}
	if t.b.Enabled(ctx, r.Level) {
		errs = append(errs, t.b.Handle(ctx, r))
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(as), t.b.WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t.a.WithGroup(name), t.b.WithGroup(name)}
}
