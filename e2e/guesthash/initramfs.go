package guesthash

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ingot/ingot/e2e/cpio"
)

// initPackage is the guest's /init, relative to the repository root.
const initPackage = "./e2e/guesthash/hashinit"

// buildInitramfs compiles hashinit statically for x86-64 and packs it as
// /init into an uncompressed newc cpio in dir (the kernel unpacks that
// fastest, and it is only a few MiB). It returns the archive's path.
func buildInitramfs(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "init")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, initPackage)
	cmd.Dir = root
	// GOAMD64 is left to the caller's environment on purpose: v1 (the
	// default) is what the agent is built with, and the hash packages pick
	// their SIMD paths at run time whatever it says.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", initPackage, err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("read built init: %w", err)
	}
	archive := cpio.Newc([]cpio.Entry{
		{Name: "dev", Mode: cpio.Dir},
		// The kernel opens /dev/console for init before anything could
		// mount devtmpfs.
		{Name: "dev/console", Mode: cpio.CharDev, Major: 5, Minor: 1},
		{Name: "proc", Mode: cpio.Dir},
		{Name: "sys", Mode: cpio.Dir},
		{Name: "init", Mode: cpio.Exec, Data: init},
	})
	path := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		return "", fmt.Errorf("write initramfs: %w", err)
	}
	return path, nil
}

// repoRoot walks up from the working directory (the package's, under go
// test) to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
