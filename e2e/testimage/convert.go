package testimage

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Zstd writes a zstd-compressed copy of img beside it (<path>.zst) and
// returns it with its own checksums.
func Zstd(ctx context.Context, img Image) (Image, error) {
	out := img.Path + ".zst"
	err := writeAtomically(out, func(w *os.File) error {
		in, err := os.Open(img.Path)
		if err != nil {
			return err
		}
		defer in.Close()
		enc, err := zstd.NewWriter(w)
		if err != nil {
			return err
		}
		if _, err := io.Copy(enc, ctxReader{ctx, in}); err != nil {
			enc.Close()
			return err
		}
		return enc.Close()
	})
	if err != nil {
		return Image{}, fmt.Errorf("testimage: zstd %s: %w", img.Path, err)
	}
	return checksum(ctx, out)
}

// QCOW2 writes a qcow2 copy of img beside it (the .raw suffix replaced
// by .qcow2) with qemu-img, and returns it with its own checksums.
func QCOW2(ctx context.Context, img Image) (Image, error) {
	out := strings.TrimSuffix(img.Path, ".raw") + ".qcow2"
	err := writeAtomically(out, func(w *os.File) error {
		return run(ctx, nil, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", img.Path, w.Name())
	})
	if err != nil {
		return Image{}, fmt.Errorf("testimage: qcow2 %s: %w", img.Path, err)
	}
	return checksum(ctx, out)
}

// writeAtomically has write fill a temporary file beside path, then
// renames it into place, so a failed or cancelled write leaves nothing a
// later run could mistake for a finished file.
func writeAtomically(path string, write func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	// CreateTemp makes the file private; images are served to machines
	// by other processes.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
