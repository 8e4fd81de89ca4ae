package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"

	"golang.org/x/sys/unix"
)

// eraser is FullErase with its seams exposed to tests: the discard step
// (nil skips it) and the write size.
type eraser struct {
	discard func(f *os.File, n int64) error
	chunk   int
	samples int // random 4 KiB blocks read back after a discard
}

var defaultEraser = eraser{discard: discard, chunk: 4 * mib, samples: 64}

// FullErase erases all of dev (a block device, or a regular file standing
// in for one): Ironic's erase_devices clean step.
//
// It first discards the whole device (BLKDISCARD; a punched hole on a
// regular file), which takes seconds on an SSD or a thin virtual disk. A
// discard only promises that the data is gone to the device, not that it
// reads back as zeroes (the kernel no longer reports discard_zeroes_data),
// so the first and last MiB and a sample of random 4 KiB blocks are read
// back: if any is not zero, or the discard failed, every byte is
// overwritten with zeroes in 4 MiB writes (O_DIRECT where the target
// allows it, so the page cache is not churned through). The sampling
// cannot prove a discard zeroed everything, but it catches drives that
// ignore it or return stale data, which is how discard fails in practice.
//
// progress, if not nil, is called with bytes done and the total, first
// with done = 0 and last with done = total on success. Cancelling ctx
// stops the zeroing between writes and returns ctx.Err() (wrapped).
func FullErase(ctx context.Context, dev string, progress func(done, total int64)) error {
	if err := defaultEraser.run(ctx, dev, progress); err != nil {
		return fmt.Errorf("full erase of %s: %w", dev, err)
	}
	return nil
}

func (e eraser) run(ctx context.Context, dev string, progress func(done, total int64)) error {
	if progress == nil {
		progress = func(int64, int64) {}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := size(f)
	if err != nil {
		return err
	}
	progress(0, n)

	zeroed := false
	if e.discard != nil && e.discard(f, n) == nil {
		// Any discard failure (unsupported, or a driver refusing it) just
		// means zeroing the slow way.
		if zeroed, err = e.readsZero(f, n); err != nil {
			return err
		}
	}
	if zeroed {
		progress(n, n)
	} else if err := e.zero(ctx, f, dev, n, progress); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := rereadPartitions(f); err != nil {
		return err
	}
	return f.Close()
}

// readsZero reads back the first and last MiB and e.samples random 4 KiB
// blocks.
func (e eraser) readsZero(f *os.File, n int64) (bool, error) {
	offsets := []struct{ off, len int64 }{{0, mib}, {n - mib, mib}}
	if blocks := n / 4096; blocks > 0 {
		for range e.samples {
			offsets = append(offsets, struct{ off, len int64 }{rand.Int64N(blocks) * 4096, 4096})
		}
	}
	buf := make([]byte, mib)
	zeros := make([]byte, mib)
	for _, s := range offsets {
		off, end := max(s.off, 0), min(s.off+s.len, n)
		if off >= end {
			continue
		}
		b := buf[:end-off]
		if _, err := f.ReadAt(b, off); err != nil {
			return false, fmt.Errorf("read back after discard: %w", err)
		}
		if !bytes.Equal(b, zeros[:len(b)]) {
			return false, nil
		}
	}
	return true, nil
}

// zero overwrites [0, n) with zeroes.
func (e eraser) zero(ctx context.Context, f *os.File, dev string, n int64, progress func(done, total int64)) error {
	// Anonymous memory is page aligned and zero filled, as O_DIRECT needs.
	buf, err := unix.Mmap(-1, 0, e.chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("allocate buffer: %w", err)
	}
	defer unix.Munmap(buf)

	// Filesystems such as tmpfs refuse O_DIRECT at open; then f does it all.
	direct, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		direct = nil
	} else {
		defer direct.Close()
	}

	for off := int64(0); off < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:min(int64(e.chunk), n-off)]
		// O_DIRECT needs lengths in whole logical blocks: an odd tail goes
		// through the page cache.
		if direct != nil && len(b)%4096 == 0 {
			_, err = direct.WriteAt(b, off)
			if errors.Is(err, unix.EINVAL) {
				// Direct I/O refused after all (alignment the device
				// wants bigger than 4 KiB): carry on buffered.
				direct.Close()
				direct = nil
				_, err = f.WriteAt(b, off)
			}
		} else {
			_, err = f.WriteAt(b, off)
		}
		if err != nil {
			return fmt.Errorf("write zeroes at %d: %w", off, err)
		}
		off += int64(len(b))
		progress(off, n)
	}
	if direct != nil {
		if err := direct.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	return nil
}
