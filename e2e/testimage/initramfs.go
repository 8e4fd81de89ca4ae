package testimage

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/ingot/ingot/e2e/cpio"
	"github.com/ingot/ingot/initramfs/kofile"
)

// modules are the kernel modules /init needs to see a virtio disk, in
// load order (each after those it depends on). Debian's cloud kernel
// builds them as modules; any a kernel has built in is skipped.
var modules = []string{
	"virtio_ring",
	"virtio",
	"virtio_pci_modern_dev",
	"virtio_pci_legacy_dev",
	"virtio_pci",
	"virtio_blk",
}

// initPackage is the image's /init, built for the test machine.
const initPackage = "./e2e/testimage/instanceinit"

// buildInitramfs writes the initramfs (an uncompressed newc cpio, which
// the kernel unpacks fastest) into work and returns its path.
func buildInitramfs(ctx context.Context, work, modulesDir string) (string, error) {
	init, err := buildInit(ctx, work)
	if err != nil {
		return "", err
	}
	entries := []cpio.Entry{
		{Name: "dev", Mode: cpio.Dir},
		// The kernel opens /dev/console for init before init can mount
		// devtmpfs.
		{Name: "dev/console", Mode: cpio.CharDev, Major: 5, Minor: 1},
		{Name: "proc", Mode: cpio.Dir},
		{Name: "sys", Mode: cpio.Dir},
		{Name: "modules", Mode: cpio.Dir},
		{Name: "init", Mode: cpio.Exec, Data: init},
	}
	mods, err := loadableModules(modulesDir)
	if err != nil {
		return "", err
	}
	// The numeric prefix is the load order: init loads them sorted.
	for i, m := range mods {
		entries = append(entries, cpio.Entry{
			Name: fmt.Sprintf("modules/%02d-%s.ko", i+1, m.name),
			Mode: cpio.File,
			Data: m.data,
		})
	}
	path := filepath.Join(work, "initrd.img")
	if err := os.WriteFile(path, cpio.Newc(entries), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// buildInit compiles instanceinit statically for the x86-64 test machine,
// whatever the host.
func buildInit(ctx context.Context, work string) ([]byte, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(work, "init")
	cmd := command(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, initPackage)
	cmd.Dir = root
	cmd.Env = append(cmd.Env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %w\n%s", initPackage, err, out)
	}
	return os.ReadFile(bin)
}

type module struct {
	name string
	data []byte // uncompressed, as finit_module(2) without flags takes it
}

// loadableModules finds each of modules in the tree, decompressed;
// modules the kernel has built in are left out.
func loadableModules(dir string) ([]module, error) {
	files := map[string]string{} // module name → file
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
			if base, ok := strings.CutSuffix(d.Name(), ext); ok {
				// Module names use underscores whatever the file says.
				files[strings.ReplaceAll(base, "-", "_")] = path
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	builtin, _ := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	var mods []module
	for _, name := range modules {
		path, ok := files[name]
		if !ok {
			if isBuiltin(builtin, name) {
				continue
			}
			return nil, fmt.Errorf("module %s is neither in %s nor built in", name, dir)
		}
		data, err := kofile.Read(path)
		if err != nil {
			return nil, err
		}
		mods = append(mods, module{name, data})
	}
	return mods, nil
}

// isBuiltin looks name up in modules.builtin, one path a line
// ("kernel/drivers/virtio/virtio.ko").
func isBuiltin(list []byte, name string) bool {
	for _, line := range strings.Split(string(list), "\n") {
		base := filepath.Base(strings.TrimSpace(line))
		if strings.ReplaceAll(strings.TrimSuffix(base, ".ko"), "-", "_") == name {
			return true
		}
	}
	return false
}

// writeRandom writes n incompressible bytes to path. ChaCha8 is a
// cryptographic-quality stream at memory speed; the seed is random so
// that two images never share blocks a deduplicating store could skip.
func writeRandom(ctx context.Context, path string, n int64) error {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails
	src := rand.NewChaCha8(seed)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := buf[:min(int64(len(buf)), n)]
		_, _ = src.Read(chunk) // never fails
		if _, err := f.Write(chunk); err != nil {
			return err
		}
		n -= int64(len(chunk))
	}
	return f.Close()
}
