package imagecache

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// qemuInfo is the part of `qemu-img info --output=json` that is checked
// before an image is converted.
type qemuInfo struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
	FormatSpecific  struct {
		Data struct {
			DataFile string `json:"data-file"`
		} `json:"data"`
	} `json:"format-specific"`
}

// infoTimeout bounds `qemu-img info`, which reads only headers; a crafted
// image that makes it spin must not hold a fetch forever.
const infoTimeout = 30 * time.Second

// toRaw converts the verified qcow2 image at src to a raw partial file and
// returns its path. It is checked first: an image with a backing file or
// an external data file would make qemu-img read files of the coordinator
// into the image (CVE-2024-32498, CVE-2024-44082), and one whose raw size
// cannot fit in the cache is refused before it fills the disk.
func (c *Cache) toRaw(ctx context.Context, o origin, src string) (string, error) {
	if _, err := exec.LookPath(c.qemuImg); err != nil {
		return "", fmt.Errorf("image %s is qcow2, and converting it needs qemu-img (apt-get install qemu-utils): %w", o.display, err)
	}
	// The header is checked by us first, so that qemu-img never even
	// opens a file the image points to.
	if err := checkQcow2Header(src); err != nil {
		return "", fmt.Errorf("image %s: %w", o.display, err)
	}
	ictx, cancel := context.WithTimeout(ctx, infoTimeout)
	out, err := c.qemuImgRun(ictx, "info", "--output=json", "-f", "qcow2", src)
	cancel()
	if err != nil {
		return "", fmt.Errorf("image %s: %w", o.display, err)
	}
	var info qemuInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("image %s: reading qemu-img info: %w", o.display, err)
	}
	switch {
	case info.Format != "qcow2":
		return "", fmt.Errorf("image %s: qemu-img sees format %q, not qcow2", o.display, info.Format)
	case info.BackingFilename != "":
		return "", fmt.Errorf("image %s: qcow2 images with a backing file are refused (backing file %q)", o.display, info.BackingFilename)
	case info.FormatSpecific.Data.DataFile != "":
		return "", fmt.Errorf("image %s: qcow2 images with an external data file are refused (data file %q)", o.display, info.FormatSpecific.Data.DataFile)
	case c.maxBytes > 0 && info.VirtualSize > c.maxBytes:
		return "", fmt.Errorf("image %s: raw size %d bytes: %w (%d bytes)", o.display, info.VirtualSize, ErrTooLarge, c.maxBytes)
	}

	f, err := os.CreateTemp(c.dir, partialPrefix+"*"+rawExt)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", o.display, err)
	}
	dst := f.Name()
	f.Close()
	// -f is explicit so that qemu-img never probes the format itself.
	if _, err := c.qemuImgRun(ctx, "convert", "-f", "qcow2", "-O", "raw", src, dst); err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("image %s: converting to raw: %w", o.display, err)
	}
	// qemu-img does not sync its output; the commit that follows vouches
	// for the content after a crash.
	if err := syncFile(dst); err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("image %s: %w", o.display, err)
	}
	return dst, nil
}

// qemuImgRun runs qemu-img and returns its standard output; its error
// carries qemu-img's own message.
func (c *Cache) qemuImgRun(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.qemuImg, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("qemu-img %s: %w: %s", args[0], err, msg)
		}
		return nil, fmt.Errorf("qemu-img %s: %w", args[0], err)
	}
	return stdout.Bytes(), nil
}

// checkQcow2Header refuses a qcow2 image that refers to other files or is
// encrypted, from its header (see the qcow2 specification in QEMU's
// docs/interop/qcow2.txt).
func checkQcow2Header(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [80]byte
	n, err := io.ReadFull(f, h[:])
	if err != nil && !(err == io.ErrUnexpectedEOF && n >= 72) {
		return fmt.Errorf("qcow2 header: %w", err)
	}
	be := binary.BigEndian
	version := be.Uint32(h[4:8])
	switch {
	case be.Uint64(h[8:16]) != 0:
		return errors.New("qcow2 images with a backing file are refused")
	case be.Uint32(h[32:36]) != 0:
		return errors.New("encrypted qcow2 images are refused")
	case version >= 3 && n >= 80 && be.Uint64(h[72:80])&qcow2ExternalDataFile != 0:
		return errors.New("qcow2 images with an external data file are refused")
	}
	return nil
}

// qcow2ExternalDataFile is the incompatible-feature bit of a qcow2 v3
// image whose data lives in another file.
const qcow2ExternalDataFile = 1 << 2

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
