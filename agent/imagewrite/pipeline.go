package imagewrite

import (
	"context"
	"fmt"
	"hash"
	"io"
	"sync"
)

// The pipeline has three stages, each on its own goroutine, joined by
// channels that carry a small fixed pool of aligned buffers:
//
//	read (network + decompression) → hash → write → back to read
//
// so downloading, hashing and writing overlap and the slowest stage sets
// the pace. Hashing gets its own goroutine because in a 2-vCPU guest under
// TCG sha256 (11–13 MB/s) is slower than the disk, and must run beside the
// writer rather than in series with it.

type block struct {
	buf []byte // full buffer; the data is buf[:n]
	n   int
	off int64
}

type counts struct{ written, skipped int64 }

type pipeline struct {
	src      io.Reader
	hash     hash.Hash
	tgt      *target
	bufs     [][]byte
	size     int64 // expected raw size, 0 if unknown
	offset   int64 // where on the target the image starts
	limit    int64 // the most the image may be, 0 for no limit
	skipZero bool
	progress func(done int64)
}

// run streams src to the target and returns what the writer did. The
// first error cancels ctx (through cancel) and so stops every stage,
// including a read blocked on the network.
func (p *pipeline) run(ctx context.Context, cancel context.CancelCauseFunc) (counts, error) {
	// Every channel can hold every buffer, so sends never block: only the
	// reader waits, for a free buffer.
	free := make(chan []byte, len(p.bufs))
	for _, b := range p.bufs {
		free <- b
	}
	toHash := make(chan block, len(p.bufs))
	toWrite := make(chan block, len(p.bufs))

	var (
		wg sync.WaitGroup
		c  counts
	)
	wg.Go(func() {
		defer close(toHash)
		if err := p.read(ctx, free, toHash); err != nil {
			cancel(err)
		}
	})
	wg.Go(func() {
		defer close(toWrite)
		for b := range toHash {
			if ctx.Err() == nil {
				p.hash.Write(b.buf[:b.n])
			}
			toWrite <- b
		}
	})
	wg.Go(func() {
		for b := range toWrite {
			if ctx.Err() == nil {
				if err := p.write(b, &c); err != nil {
					cancel(err)
				}
			}
			free <- b.buf
		}
	})
	wg.Wait()
	return c, context.Cause(ctx)
}

// read fills buffers from src, each completely except the last, so every
// write but the final one is a whole aligned buffer at an aligned offset.
func (p *pipeline) read(ctx context.Context, free chan []byte, out chan<- block) error {
	var off int64
	for {
		var buf []byte
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case buf = <-free:
		}
		n, err := fill(p.src, buf)
		if n > 0 {
			if p.size > 0 && off+int64(n) > p.size {
				return fmt.Errorf("image is larger than its declared size of %d bytes", p.size)
			}
			if p.limit > 0 && off+int64(n) > p.limit {
				return fmt.Errorf("%w: more than %d bytes, the partition's size", ErrImageTooLarge, p.limit)
			}
			out <- block{buf: buf, n: n, off: off}
			off += int64(n)
		} else {
			free <- buf
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading image at raw offset %d: %w", off, err)
		}
	}
}

// fill is io.ReadFull that tells a clean end (io.EOF) from every other
// error: io.ReadFull turns EOF after a partial read into
// io.ErrUnexpectedEOF, which decompressors also return for a truncated
// stream, and a truncated image must never pass for a short last block.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (p *pipeline) write(b block, c *counts) error {
	data := b.buf[:b.n]
	if p.skipZero && isZero(data) {
		c.skipped += int64(b.n)
	} else {
		if err := p.tgt.writeAt(data, p.offset+b.off); err != nil {
			return err
		}
		c.written += int64(b.n)
	}
	p.progress(c.written + c.skipped)
	return nil
}
