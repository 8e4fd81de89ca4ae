package imagewrite

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment O_DIRECT needs for buffers, offsets and
// lengths: a page, which covers both 512-byte and 4K-native devices.
const directAlign = 4096

// target is the disk (or a file standing in for one), open twice: an
// O_DIRECT descriptor for whole aligned blocks, which bypasses the page
// cache (in a TCG guest 54–81 MB/s against 8–10 MB/s buffered), and a
// buffered one for the unaligned tail, GPT repair, and as the fallback when
// O_DIRECT is refused (tmpfs answers EINVAL).
type target struct {
	path       string
	f          *os.File // buffered, read-write
	direct     *os.File // O_DIRECT, write-only; nil when refused
	isDevice   bool
	size       int64 // device size, or the file's size when opened
	sectorSize int
}

// openDirect is a variable so that tests can play a filesystem refusing
// O_DIRECT, as tmpfs did before Linux 6.6.
var openDirect = func(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
}

func openTarget(path string) (*target, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("imagewrite: target: %w", err)
	}
	t := &target{path: path, sectorSize: 512}
	flags := os.O_RDWR
	switch m := fi.Mode(); {
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		// O_EXCL on a block device fails with EBUSY if it is mounted or
		// claimed (by md, LVM): never write an image under a filesystem.
		t.isDevice, flags = true, flags|unix.O_EXCL
	case m.IsRegular():
		t.size = fi.Size()
	default:
		return nil, fmt.Errorf("imagewrite: target %s is neither a block device nor a regular file", path)
	}
	if t.f, err = os.OpenFile(path, flags, 0); err != nil {
		return nil, fmt.Errorf("imagewrite: opening target: %w", err)
	}
	if t.isDevice {
		fd := int(t.f.Fd())
		size, err := unix.IoctlGetInt(fd, unix.BLKGETSIZE64)
		if err != nil {
			t.f.Close()
			return nil, fmt.Errorf("imagewrite: size of %s: %w", path, err)
		}
		t.size = int64(size)
		if ss, err := unix.IoctlGetInt(fd, unix.BLKSSZGET); err == nil && ss > 0 {
			t.sectorSize = ss
		}
	}
	t.direct, err = openDirect(path)
	if err != nil {
		t.direct = nil
		if !errors.Is(err, unix.EINVAL) {
			t.f.Close()
			return nil, fmt.Errorf("imagewrite: opening target with O_DIRECT: %w", err)
		}
	}
	return t, nil
}

// writeAt writes p at off: the aligned prefix with O_DIRECT when possible,
// the rest (only ever the image's last, partial block) through the page
// cache, so nothing is written past the end of the image.
func (t *target) writeAt(p []byte, off int64) error {
	if t.direct != nil && off%directAlign == 0 {
		if n := len(p) &^ (directAlign - 1); n > 0 {
			_, err := t.direct.WriteAt(p[:n], off)
			switch {
			case err == nil:
				p, off = p[n:], off+int64(n)
			case errors.Is(err, unix.EINVAL):
				// Some filesystems accept O_DIRECT at open and refuse
				// the I/O: fall back for good and rewrite the block.
				t.direct.Close()
				t.direct = nil
			default:
				return fmt.Errorf("writing %s at %d: %w", t.path, off, err)
			}
		}
	}
	if len(p) == 0 {
		return nil
	}
	return t.writeCached(p, off)
}

// writeCached writes through the page cache: for small writes from
// unaligned memory (GPT structures), which O_DIRECT would refuse.
func (t *target) writeCached(p []byte, off int64) error {
	if _, err := t.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("writing %s at %d: %w", t.path, off, err)
	}
	return nil
}

func (t *target) readAt(p []byte, off int64) error {
	if _, err := t.f.ReadAt(p, off); err != nil {
		return fmt.Errorf("reading %s at %d: %w", t.path, off, err)
	}
	return nil
}

// extend grows a regular file to size: all-zero blocks skipped at the end
// of the image would otherwise leave it short. Devices have their size.
func (t *target) extend(size int64) error {
	if t.isDevice {
		return nil
	}
	fi, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("imagewrite: %w", err)
	}
	if fi.Size() < size {
		if err := t.f.Truncate(size); err != nil {
			return fmt.Errorf("imagewrite: %w", err)
		}
	}
	return nil
}

// diskSize is the size the GPT backup belongs at the end of.
func (t *target) diskSize() (int64, error) {
	if t.isDevice {
		return t.size, nil
	}
	fi, err := t.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// sync flushes both descriptors: the buffered one has the tail in the
// page cache, and fsync on a block device also flushes its write cache.
func (t *target) sync() error {
	if t.direct != nil {
		if err := t.direct.Sync(); err != nil {
			return fmt.Errorf("imagewrite: fsync %s: %w", t.path, err)
		}
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("imagewrite: fsync %s: %w", t.path, err)
	}
	return nil
}

func (t *target) close() {
	if t.direct != nil {
		t.direct.Close()
	}
	t.f.Close()
}

// allocBuffers returns n page-aligned buffers of size bytes (a multiple of
// directAlign) from one anonymous mapping, as O_DIRECT needs; free unmaps
// it and must only be called once nothing uses the buffers.
func allocBuffers(n, size int) (bufs [][]byte, free func(), err error) {
	mem, err := unix.Mmap(-1, 0, n*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	for i := range n {
		// Full slice expressions: a buffer's capacity must not reach
		// into its neighbour.
		bufs = append(bufs, mem[i*size:(i+1)*size:(i+1)*size])
	}
	return bufs, func() { unix.Munmap(mem) }, nil
}
