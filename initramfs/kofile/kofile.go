// Package kofile reads kernel module files as the ramdisks need them:
// plain, whatever compression the kernel package shipped them in
// (Debian ships plain .ko up to 6.1 and .ko.xz from 6.12), so the modules
// load with no decompressor in the kernel. It runs at build time, never on
// the node.
package kofile

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Read returns the plain contents of the module at path (.ko, .ko.xz,
// .ko.zst or .ko.gz).
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	switch filepath.Ext(path) {
	case ".ko":
	case ".xz":
		if r, err = xz.NewReader(f); err != nil {
			return nil, fmt.Errorf("module %s: %w", path, err)
		}
	case ".zst":
		d, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", path, err)
		}
		defer d.Close()
		r = d
	case ".gz":
		if r, err = gzip.NewReader(f); err != nil {
			return nil, fmt.Errorf("module %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("module %s: unknown compression", path)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	return data, nil
}
