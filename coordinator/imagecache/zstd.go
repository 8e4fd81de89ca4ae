package imagecache

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow is the largest zstd window accepted, the agent's own limit
// (agent/imagewrite): an image the agent would refuse is refused here,
// when it is fetched, rather than on every node it is deployed to. It also
// bounds the decoder's memory.
const maxZstdWindow = 128 << 20

// errZstdStopped is what writing to a zstdHasher returns once its decoder
// has given up; finish tells why.
var errZstdStopped = errors.New("zstd decompression stopped")

// zstdHasher decompresses the zstd stream written to it and hashes the
// result, in a goroutine of its own so that a compressed image is hashed
// while it downloads and its raw bytes are never stored. Writes block
// until the decoder has taken the bytes, so a decoder that gives up (a
// corrupt stream, a zstd bomb) stops the download with it.
type zstdHasher struct {
	pw   *io.PipeWriter
	done chan struct{} // closed when sums, n and err are set
	sums rawSums
	n    int64
	err  error
}

// newZstdHasher starts decompressing. maxRaw bounds the decompressed size
// (0 or less: no bound); ctx ends the decompression, which a highly
// compressed stream can keep busy long after its last byte was written.
func newZstdHasher(ctx context.Context, maxRaw int64) *zstdHasher {
	pr, pw := io.Pipe()
	z := &zstdHasher{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(z.done)
		z.sums, z.n, z.err = hashZstd(ctx, pr, maxRaw)
		// Unblocks the writer when the decoder stopped before the end.
		pr.CloseWithError(errZstdStopped)
	}()
	return z
}

func (z *zstdHasher) Write(p []byte) (int, error) { return z.pw.Write(p) }

// finish ends the stream, as cut short by err if it is not nil, waits for
// the decoder and returns the digests and size of the raw image.
func (z *zstdHasher) finish(err error) (rawSums, int64, error) {
	if err != nil {
		z.pw.CloseWithError(err)
	} else {
		z.pw.Close()
	}
	<-z.done
	return z.sums, z.n, z.err
}

// hashZstd returns the digests and size of the decompression of r, which
// must be whole: a truncated stream or trailing bytes that are not another
// zstd frame are an error.
func hashZstd(ctx context.Context, r io.Reader, maxRaw int64) (rawSums, int64, error) {
	// One goroutine, ours: the download feeds it no faster anyway, and
	// concurrent fetches must not each spread over every core.
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
	if err != nil {
		return rawSums{}, 0, fmt.Errorf("zstd decoder: %w", err)
	}
	defer d.Close()
	h256, h512 := sha256.New(), sha512.New()
	w := &rawHasher{ctx: ctx, w: io.MultiWriter(h256, h512), max: maxRaw}
	_, err = d.WriteTo(w)
	switch {
	case err == nil:
		return rawSums{hex.EncodeToString(h256.Sum(nil)), hex.EncodeToString(h512.Sum(nil))}, w.n, nil
	case errors.Is(err, errRawLimit):
		return rawSums{}, 0, fmt.Errorf("decompresses to over %d bytes: %w", maxRaw, ErrRawTooLarge)
	case errors.Is(err, errZstdQcow2):
		return rawSums{}, 0, err
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return rawSums{}, 0, fmt.Errorf("zstd window larger than the %d MiB agents accept (compress with --long=27 or less): %w", maxZstdWindow>>20, err)
	case ctx.Err() != nil:
		return rawSums{}, 0, fmt.Errorf("decompressing: %w", context.Cause(ctx))
	}
	return rawSums{}, 0, fmt.Errorf("corrupt zstd stream after %d decompressed bytes: %w", w.n, err)
}

var (
	errRawLimit  = errors.New("raw size limit reached")
	errZstdQcow2 = errors.New("content is a zstd-compressed qcow2 image, which is not supported: compress the raw image instead")
)

// rawHasher hashes and counts the decompressed bytes of an image. It
// stops the decompression once they are too many, once ctx ends, and when
// they turn out to be a qcow2 image: the agent writes them to the disk as
// they are, and zstd images are taken to hold raw ones.
type rawHasher struct {
	ctx  context.Context
	w    io.Writer // the hashes
	n    int64
	max  int64 // 0 or less: no bound
	head []byte
}

func (w *rawHasher) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	if w.max > 0 && int64(len(p)) > w.max-w.n {
		return 0, errRawLimit
	}
	if len(w.head) < magicLen {
		w.head = append(w.head, p[:min(len(p), magicLen-len(w.head))]...)
		if detectFormat(w.head) == formatQcow2 {
			return 0, errZstdQcow2
		}
	}
	w.n += int64(len(p))
	return w.w.Write(p)
}
