// Package testimage builds the end-to-end tests' OS image at test time
// (it is never committed): a small raw disk with an MBR, one bootable
// FAT32 partition holding syslinux, the Debian cloud kernel and an
// initramfs whose /init (./instanceinit) prints a marker line with the
// node's UUID read from the config drive, then powers the machine off.
//
// Booting a deployed disk and finding
//
//	INGOT-INSTANCE-BOOTED uuid=<node uuid> name=<name> disk=/dev/vdaN
//
// on its serial console proves the whole chain: the image was written
// whole, the config drive was written where it is found, and the machine
// booted from its disk. The image leaves the rest of a bigger disk free
// for the config drive partition a deployer adds at its end.
//
// The image is built without root, mounts or loop devices: sfdisk,
// mkfs.vfat --offset, mtools and syslinux --offset on a plain file.
package testimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Marker starts the line the image's init prints on the console.
const Marker = "INGOT-INSTANCE-BOOTED"

// Options says what image to build.
type Options struct {
	// Dir is where the image is written; required. Intermediate files
	// live in a temporary directory under it until Build returns.
	Dir string
	// Kernel is a bzImage; default DefaultKernel (build/kernel/vmlinuz).
	Kernel string
	// Modules is the kernel's module tree (holding kernel/ and
	// modules.builtin); default the only directory in modules/ beside
	// Kernel, as scripts/fetch-kernel.sh lays it out.
	Modules string
	// SizeMiB is the whole disk image's size; default 64, at least 40
	// (FAT32 needs 65525 clusters). The partition's free space is filled
	// with random bytes so that the image's data is incompressible, as
	// benchmarks of writing big images need.
	SizeMiB int
}

// Image is a file the tests deploy, with the checksums a deploy request
// carries.
type Image struct {
	Path   string
	Size   int64
	SHA256 string // hex
	SHA512 string // hex
}

const (
	defaultSizeMiB = 64
	minSizeMiB     = 40
	// partStart is where the FAT partition begins, in 512-byte sectors
	// (1 MiB, the usual alignment).
	partStart = 2048
	// fillerSlack is free space left after the filler so the directory
	// and rounding never make the copy fail.
	fillerSlack = 1 << 20
)

// syslinuxCfg boots the kernel at once, with its console on the first
// serial port where QEMU -nographic (and the tests) read it. panic=-1
// makes a crashing init reboot, which -no-reboot turns into QEMU exiting,
// rather than hang until the test's timeout.
const syslinuxCfg = `SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd.img console=ttyS0,115200 quiet panic=-1
`

// tools are the programs Build runs, with the Debian package of each.
var tools = []struct{ name, pkg string }{
	{"go", "golang"},
	{"sfdisk", "fdisk"},
	{"mkfs.vfat", "dosfstools"},
	{"mcopy", "mtools"},
	{"mdir", "mtools"},
	{"syslinux", "syslinux"},
}

// mbrPaths are where distributions put syslinux's MBR boot code.
var mbrPaths = []string{
	"/usr/lib/syslinux/mbr/mbr.bin", // Debian, Ubuntu: syslinux-common
	"/usr/share/syslinux/mbr.bin",   // Fedora, Arch
	"/usr/lib/syslinux/bios/mbr.bin",
}

// CheckTools reports what Build needs and cannot find, naming the Debian
// packages that provide it (scripts/setup.sh installs them).
func CheckTools() error {
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t.name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", t.name, t.pkg))
		}
	}
	if _, err := mbrPath(); err != nil {
		missing = append(missing, "mbr.bin (syslinux-common)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("testimage: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

func mbrPath() (string, error) {
	for _, p := range mbrPaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no syslinux mbr.bin in %v", mbrPaths)
}

// Build writes a bootable test image into opts.Dir and returns it with
// its checksums. The file appears only once it is complete.
func Build(ctx context.Context, opts Options) (Image, error) {
	if opts.Dir == "" {
		return Image{}, errors.New("testimage: Options.Dir is required")
	}
	if opts.SizeMiB == 0 {
		opts.SizeMiB = defaultSizeMiB
	}
	if opts.SizeMiB < minSizeMiB {
		return Image{}, fmt.Errorf("testimage: SizeMiB %d is below the minimum %d", opts.SizeMiB, minSizeMiB)
	}
	if err := CheckTools(); err != nil {
		return Image{}, err
	}
	if opts.Kernel == "" {
		k, err := DefaultKernel(ctx)
		if err != nil {
			return Image{}, err
		}
		opts.Kernel = k
	}
	if opts.Modules == "" {
		m, err := defaultModules(opts.Kernel)
		if err != nil {
			return Image{}, err
		}
		opts.Modules = m
	}

	work, err := os.MkdirTemp(opts.Dir, ".testimage-*")
	if err != nil {
		return Image{}, fmt.Errorf("testimage: %w", err)
	}
	defer os.RemoveAll(work)

	initrd, err := buildInitramfs(ctx, work, opts.Modules)
	if err != nil {
		return Image{}, fmt.Errorf("testimage: initramfs: %w", err)
	}
	cfg := filepath.Join(work, "syslinux.cfg")
	if err := os.WriteFile(cfg, []byte(syslinuxCfg), 0o644); err != nil {
		return Image{}, fmt.Errorf("testimage: %w", err)
	}

	tmp := filepath.Join(work, "disk.raw")
	if err := writeDisk(ctx, tmp, work, int64(opts.SizeMiB)<<20, map[string]string{
		"vmlinuz":      opts.Kernel,
		"initrd.img":   initrd,
		"syslinux.cfg": cfg,
	}); err != nil {
		return Image{}, fmt.Errorf("testimage: %w", err)
	}
	path := filepath.Join(opts.Dir, fmt.Sprintf("testimage-%dM.raw", opts.SizeMiB))
	if err := os.Rename(tmp, path); err != nil {
		return Image{}, fmt.Errorf("testimage: %w", err)
	}
	return checksum(ctx, path)
}

// writeDisk lays out the image at path following the recipe in
// shared/notes/qemu-pxe.md: partition, format at an offset, copy the
// files in with mtools, install syslinux, then the MBR boot code.
func writeDisk(ctx context.Context, path, work string, size int64, files map[string]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}

	// One bootable FAT32 (LBA) partition from 1 MiB to the end of the
	// image; the deployer's config drive goes after it, on the target
	// disk, which is bigger than the image.
	table := fmt.Sprintf("label: dos\nstart=%d, type=c, bootable\n", partStart)
	if err := run(ctx, strings.NewReader(table), "sfdisk", "--quiet", path); err != nil {
		return err
	}
	partKiB := (size - partStart*512) / 1024
	// -h: hidden sectors, the partition's offset, which a FAT boot sector
	// is expected to record.
	if err := run(ctx, nil, "mkfs.vfat", "-F", "32", "-n", "INGOT-TEST", "-h", fmt.Sprint(partStart),
		"--offset", fmt.Sprint(partStart), path, fmt.Sprint(partKiB)); err != nil {
		return err
	}
	fat := fmt.Sprintf("%s@@%d", path, partStart*512)
	for _, name := range []string{"vmlinuz", "initrd.img", "syslinux.cfg"} {
		if err := run(ctx, nil, "mcopy", "-i", fat, files[name], "::"+name); err != nil {
			return err
		}
	}
	// syslinux records where ldlinux.sys lies, so files added later
	// (the filler) cannot move it.
	if err := run(ctx, nil, "syslinux", "--offset", fmt.Sprint(partStart*512), "--install", path); err != nil {
		return err
	}
	if err := addFiller(ctx, fat, work); err != nil {
		return err
	}

	mbrFile, err := mbrPath()
	if err != nil {
		return err
	}
	mbr, err := os.ReadFile(mbrFile)
	if err != nil {
		return err
	}
	// Only the boot code: bytes 440 on hold the disk signature and the
	// partition table sfdisk wrote.
	if len(mbr) > 440 {
		return fmt.Errorf("%s is %d bytes, more than the 440 of MBR boot code", mbrFile, len(mbr))
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return fmt.Errorf("write MBR boot code: %w", err)
	}
	return f.Close()
}

// addFiller fills the FAT filesystem's free space, bar a little slack,
// with one file of random bytes.
func addFiller(ctx context.Context, fat, work string) error {
	free, err := freeBytes(ctx, fat)
	if err != nil {
		return err
	}
	n := free - fillerSlack
	if n <= 0 {
		return nil
	}
	filler := filepath.Join(work, "filler.bin")
	if err := writeRandom(ctx, filler, n); err != nil {
		return fmt.Errorf("filler: %w", err)
	}
	defer os.Remove(filler)
	return run(ctx, nil, "mcopy", "-i", fat, filler, "::filler.bin")
}

// freeBytes reads the free space mdir reports ("65 026 560 bytes free",
// digits grouped by spaces).
func freeBytes(ctx context.Context, fat string) (int64, error) {
	out, err := output(ctx, "mdir", "-i", fat, "::")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if digits, ok := strings.CutSuffix(line, "bytes free"); ok {
			var n int64
			if _, err := fmt.Sscan(strings.ReplaceAll(digits, " ", ""), &n); err != nil {
				return 0, fmt.Errorf("mdir free space %q: %w", line, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("mdir printed no free space:\n%s", out)
}

// DefaultKernel returns build/kernel/vmlinuz at the repository's root,
// running scripts/fetch-kernel.sh first if it is not there yet.
func DefaultKernel(ctx context.Context) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "build", "kernel")
	kernel := filepath.Join(dir, "vmlinuz")
	if _, err := os.Stat(kernel); err == nil {
		return kernel, nil
	}
	if err := run(ctx, nil, filepath.Join(root, "scripts", "fetch-kernel.sh"), dir); err != nil {
		return "", fmt.Errorf("testimage: fetch kernel: %w", err)
	}
	return kernel, nil
}

// defaultModules finds the module tree fetch-kernel.sh puts beside the
// kernel: modules/<version>/.
func defaultModules(kernel string) (string, error) {
	trees, err := filepath.Glob(filepath.Join(filepath.Dir(kernel), "modules", "*", "kernel"))
	if err != nil || len(trees) != 1 {
		return "", fmt.Errorf("testimage: want one module tree in %s, found %d: set Options.Modules",
			filepath.Join(filepath.Dir(kernel), "modules"), len(trees))
	}
	return filepath.Dir(trees[0]), nil
}

// repoRoot walks up from the working directory (a test's package
// directory) to the module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testimage: %w", err)
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(mod, []byte("module github.com/ingot/ingot\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testimage: not inside the github.com/ingot/ingot repository")
		}
		dir = parent
	}
}

// checksum returns the file as an Image: its size and digests.
func checksum(ctx context.Context, path string) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, fmt.Errorf("testimage: %w", err)
	}
	defer f.Close()
	h256, h512 := sha256.New(), sha512.New()
	n, err := io.Copy(io.MultiWriter(h256, h512), ctxReader{ctx, f})
	if err != nil {
		return Image{}, fmt.Errorf("testimage: checksum %s: %w", path, err)
	}
	return Image{
		Path:   path,
		Size:   n,
		SHA256: hex.EncodeToString(h256.Sum(nil)),
		SHA512: hex.EncodeToString(h512.Sum(nil)),
	}, nil
}

// ctxReader stops a long copy once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// run runs a tool, returning its output in the error when it fails.
func run(ctx context.Context, stdin io.Reader, name string, args ...string) error {
	cmd := command(ctx, name, args...)
	cmd.Stdin = stdin
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := command(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	// mtools otherwise rejects a FAT whose geometry fields do not match
	// the file it lives in.
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	return cmd
}
