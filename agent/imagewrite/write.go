// Package imagewrite streams an OS image from the coordinator onto a node's
// disk: one pass over HTTP, decompressed and hashed inline, written with
// O_DIRECT through a small pool of aligned buffers, resumed with Range when
// the connection drops. Nothing is staged locally: the agent runs from a
// ramdisk, and an image is usually larger than its RAM.
package imagewrite

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Image formats.
const (
	FormatRaw  = "raw"
	FormatZstd = "zstd"
	FormatGzip = "gzip"
)

// Progress phases, in the order they are reported.
const (
	PhaseWrite = "write" // streaming: Done counts raw image bytes written or skipped
	PhaseSync  = "sync"  // the image is streamed; flushing it to the device
	PhaseDone  = "done"  // verified, synced, GPT repaired
)

const (
	defaultBufferSize = 4 << 20
	// Four buffers: one being filled from the network, one being hashed,
	// one being written and one spare, so a momentarily slow stage does not
	// stall the others.
	numBuffers       = 4
	progressInterval = 250 * time.Millisecond
	// zstd images from `zstd -19 --long` use windows up to 128 MiB; refuse
	// larger ones instead of exhausting the ramdisk's memory.
	maxZstdWindow = 128 << 20
)

var (
	// ErrChecksumMismatch is wrapped by the error Write returns when the
	// image's digest is not the expected one. The image is on the disk by
	// then: the node must not boot it.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrRangeNotSupported is wrapped by the error Write returns when the
	// connection dropped and the server answered the resuming Range request
	// with the whole image (200 OK) instead of the rest of it.
	ErrRangeNotSupported = errors.New("server does not support resuming with Range")
	// ErrImageTooLarge is wrapped by the error Write returns when the
	// image is larger than Config.Limit, its partition. Nothing is
	// written past the partition.
	ErrImageTooLarge = errors.New("image is larger than its partition")
)

// Config describes one image write.
type Config struct {
	URL string
	// Format is "raw", "zstd" or "gzip".
	Format string
	// Algorithm is "sha256" or "sha512"; Checksum is the hex digest of the
	// raw (decompressed) image. Both are required.
	Algorithm string
	Checksum  string
	// Size is the raw image size if known, 0 if not. When set, an image of
	// any other size is an error (and is never written past Size).
	Size int64
	// Target is a block device or a regular file. It must exist: a typo
	// must not create a file in the ramdisk.
	Target string
	// Offset is where on the target the image starts, in bytes: 0 for a
	// whole-disk image, a partition's start for a partition image. It
	// must be a multiple of 4096 (partitions start on MiB boundaries).
	Offset int64
	// Limit, if not 0, is the room the image has from Offset (a
	// partition's size): a larger image is an error, and nothing is
	// written past Offset+Limit. Offset+Limit must be within the target.
	// A write with an Offset or a Limit is a partition write: the image's
	// GPT, if any, is not moved to the end of the disk.
	Limit int64
	// TargetZeroed says the target reads as zeros (after a discard or
	// erase), so all-zero blocks need not be written.
	TargetZeroed bool
	// Client defaults to http.DefaultClient. Give it no overall Timeout: a
	// large image takes minutes; cancel ctx instead.
	Client *http.Client
	// Retries is how many times in a row the download may be reconnected
	// (with Range, from where it stopped) without receiving a byte in
	// between. Each reconnect that delivers data resets the count.
	Retries int
	// Progress, if set, is called from the writing goroutine at most every
	// 250 ms while streaming and once per later phase. It must return
	// quickly.
	Progress func(Progress)
	// BufferSize is the size of each I/O buffer, rounded up to a multiple
	// of 4096; default 4 MiB.
	BufferSize int
}

// Progress is a snapshot passed to Config.Progress.
type Progress struct {
	Phase string
	// Done is raw image bytes written or skipped; Total is the raw size
	// (Config.Size, or Content-Length for raw images), 0 if unknown.
	Done, Total    int64
	BytesPerSecond float64
}

// Result describes a finished (or failed) write.
type Result struct {
	// Written is raw bytes written to the target; Skipped is all-zero
	// bytes not written because the target was zeroed. Their sum is the
	// image size.
	Written, Skipped int64
	// Digest is the hex digest of the raw image as received.
	Digest   string
	Duration time.Duration
	// Direct reports whether full blocks were written with O_DIRECT.
	Direct bool
}

// Write streams the image at cfg.URL onto cfg.Target at cfg.Offset,
// verifies its digest, fsyncs the target and, when a whole-disk GPT image
// is smaller than the disk, moves its backup GPT to the end of the disk.
func Write(ctx context.Context, cfg Config) (res Result, err error) {
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()

	if err := cfg.validate(); err != nil {
		return res, err
	}
	h, want, err := newHash(cfg.Algorithm, cfg.Checksum)
	if err != nil {
		return res, err
	}
	bufSize := (max(cfg.BufferSize, 0) + directAlign - 1) &^ (directAlign - 1)
	if bufSize == 0 {
		bufSize = defaultBufferSize
	}
	client := cfg.Client
	if client == nil {
		client = http.DefaultClient
	}

	tgt, err := openTarget(cfg.Target)
	if err != nil {
		return res, err
	}
	defer tgt.close()
	if cfg.Limit > 0 {
		if end := cfg.Offset + cfg.Limit; end > tgt.size {
			return res, fmt.Errorf("imagewrite: bytes %d to %d are not all on %s (%d bytes)", cfg.Offset, end, cfg.Target, tgt.size)
		}
		if cfg.Size > cfg.Limit {
			return res, fmt.Errorf("imagewrite: %w: image of %d bytes, partition of %d bytes at byte %d of %s",
				ErrImageTooLarge, cfg.Size, cfg.Limit, cfg.Offset, cfg.Target)
		}
	}
	if tgt.isDevice && cfg.Offset+cfg.Size > tgt.size {
		return res, fmt.Errorf("imagewrite: image of %d bytes at byte %d does not fit on %s (%d bytes)", cfg.Size, cfg.Offset, cfg.Target, tgt.size)
	}

	// One cancellable context for the HTTP requests and every pipeline
	// stage, so a failing writer also aborts a read blocked on the network.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	body := newResumableBody(ctx, client, cfg.URL, cfg.Retries)
	defer body.Close()
	if err := body.connect(); err != nil {
		return res, fmt.Errorf("imagewrite: %w", err)
	}
	if cfg.Limit > 0 && cfg.Format == FormatRaw && body.length > cfg.Limit {
		return res, fmt.Errorf("imagewrite: %w: %s is %d bytes, partition of %d bytes at byte %d of %s",
			ErrImageTooLarge, cfg.URL, body.length, cfg.Limit, cfg.Offset, cfg.Target)
	}
	src, closeSrc, err := decompress(cfg.Format, body)
	if err != nil {
		return res, fmt.Errorf("imagewrite: %s image from %s: %w", cfg.Format, cfg.URL, err)
	}
	// Cancel first: a decoder goroutine may be blocked reading the body.
	defer func() { cancel(nil); closeSrc() }()

	total := cfg.Size
	if total == 0 && cfg.Format == FormatRaw && body.length > 0 {
		total = body.length
	}
	report := newReporter(cfg.Progress, total, start)

	bufs, freeBufs, err := allocBuffers(numBuffers, bufSize)
	if err != nil {
		return res, fmt.Errorf("imagewrite: allocating I/O buffers: %w", err)
	}
	// Safe to unmap on return: run waits for every stage, and no reader
	// (HTTP, decompressor) keeps a reference to a buffer past Read.
	defer freeBufs()

	p := &pipeline{
		src:      src,
		hash:     h,
		tgt:      tgt,
		bufs:     bufs,
		size:     cfg.Size,
		offset:   cfg.Offset,
		limit:    cfg.Limit,
		skipZero: cfg.TargetZeroed,
		progress: func(done int64) { report.update(PhaseWrite, done, false) },
	}
	n, err := p.run(ctx, cancel)
	res.Written, res.Skipped, res.Direct = n.written, n.skipped, tgt.direct != nil
	imageSize := n.written + n.skipped
	if err != nil {
		return res, fmt.Errorf("imagewrite: writing %s to %s: %w", cfg.URL, cfg.Target, err)
	}
	if cfg.Size > 0 && imageSize != cfg.Size {
		return res, fmt.Errorf("imagewrite: %s is %d bytes, expected %d", cfg.URL, imageSize, cfg.Size)
	}
	report.update(PhaseWrite, imageSize, true)

	// Zero blocks skipped at the end of a regular file would leave it short.
	if err := tgt.extend(cfg.Offset + imageSize); err != nil {
		return res, err
	}
	report.update(PhaseSync, imageSize, true)
	if err := tgt.sync(); err != nil {
		return res, err
	}

	res.Digest = hex.EncodeToString(h.Sum(nil))
	if res.Digest != want {
		return res, fmt.Errorf("imagewrite: %w for %s: expected %s %s, got %s; the image is already written to %s and must not be booted",
			ErrChecksumMismatch, cfg.URL, cfg.Algorithm, want, res.Digest, cfg.Target)
	}

	// A partition image's GPT, if it has one, is not the disk's.
	if cfg.Offset == 0 && cfg.Limit == 0 {
		if err := repairGPT(tgt, imageSize); err != nil {
			return res, fmt.Errorf("imagewrite: %s: %w", cfg.Target, err)
		}
	}
	report.update(PhaseDone, imageSize, true)
	return res, nil
}

func (c *Config) validate() error {
	switch {
	case c.URL == "":
		return errors.New("imagewrite: no image URL")
	case c.Target == "":
		return errors.New("imagewrite: no target")
	case c.Size < 0:
		return fmt.Errorf("imagewrite: negative image size %d", c.Size)
	case c.Offset < 0 || c.Offset%directAlign != 0:
		return fmt.Errorf("imagewrite: offset %d is not a non-negative multiple of %d", c.Offset, directAlign)
	case c.Limit < 0:
		return fmt.Errorf("imagewrite: negative limit %d", c.Limit)
	}
	switch c.Format {
	case FormatRaw, FormatZstd, FormatGzip:
	default:
		return fmt.Errorf("imagewrite: unsupported image format %q (want raw, zstd or gzip)", c.Format)
	}
	return nil
}

func newHash(algorithm, checksum string) (hash.Hash, string, error) {
	var h hash.Hash
	switch algorithm {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return nil, "", fmt.Errorf("imagewrite: unsupported checksum algorithm %q (want sha256 or sha512)", algorithm)
	}
	want := strings.ToLower(strings.TrimSpace(checksum))
	if b, err := hex.DecodeString(want); err != nil || len(b) != h.Size() {
		return nil, "", fmt.Errorf("imagewrite: checksum %q is not a %s hex digest", checksum, algorithm)
	}
	return h, want, nil
}

// decompress wraps r in the decoder for format. The returned close releases
// the decoder's goroutines and memory.
func decompress(format string, r io.Reader) (io.Reader, func(), error) {
	switch format {
	case FormatZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	case FormatGzip:
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	default:
		return r, func() {}, nil
	}
}

// reporter throttles progress callbacks.
type reporter struct {
	fn    func(Progress)
	total int64
	start time.Time
	last  time.Time
}

func newReporter(fn func(Progress), total int64, start time.Time) *reporter {
	return &reporter{fn: fn, total: total, start: start}
}

func (r *reporter) update(phase string, done int64, force bool) {
	if r.fn == nil {
		return
	}
	now := time.Now()
	if !force && now.Sub(r.last) < progressInterval {
		return
	}
	r.last = now
	var rate float64
	if s := now.Sub(r.start).Seconds(); s > 0 {
		rate = float64(done) / s
	}
	r.fn(Progress{Phase: phase, Done: done, Total: r.total, BytesPerSecond: rate})
}
