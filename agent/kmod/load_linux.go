package kmod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Loader loads modules from one /lib/modules/<release>/ tree.
type Loader struct {
	// Dir is the tree; default /lib/modules/<running kernel release>.
	Dir string
	// Logger gets a line per module; default slog.Default().
	Logger *slog.Logger

	// For tests: the kernel's view and the load call.
	sysModule string                            // default /sys/module
	finit     func(f *os.File, flags int) error // default unix.FinitModule
}

// Load loads the modules named, each after what it needs, and returns
// those it loaded. Modules the kernel already has (built in, or loaded
// before, by an init that ran first) are skipped, and so are those the
// tree does not have: the list names drivers for hardware this kernel
// may not support (a cloud kernel has no e1000). A module that fails to
// load does not stop the others; the error names every failure.
func (l *Loader) Load(ctx context.Context, names ...string) (loaded []string, err error) {
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := l.Dir
	if dir == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return nil, fmt.Errorf("uname: %w", err)
		}
		dir = filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	}
	sysModule, finit := l.sysModule, l.finit
	if sysModule == "" {
		sysModule = "/sys/module"
	}
	if finit == nil {
		finit = func(f *os.File, flags int) error { return unix.FinitModule(int(f.Fd()), "", flags) }
	}

	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	deps, err := ParseDeps(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("kernel modules in %s: %w", dir, err)
	}
	builtin := readBuiltin(filepath.Join(dir, "modules.builtin"))
	var want []string
	for _, n := range names {
		switch n = Name(n); {
		case builtin[n]:
			log.Debug("kernel module built in", "module", n)
		case deps[n].Path == "":
			log.Info("kernel module not in this kernel: skipped", "module", n)
		default:
			want = append(want, n)
		}
	}
	files, _, err := deps.Order(want...)
	if err != nil {
		return nil, fmt.Errorf("kernel modules in %s: %w", dir, err)
	}

	start := time.Now()
	failed := map[string]bool{}
	var errs []error
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return loaded, err
		}
		name := Name(file)
		if blocker := failedDep(deps[name].Deps, failed); blocker != "" {
			failed[name] = true
			errs = append(errs, fmt.Errorf("module %s: needs %s, which did not load", name, blocker))
			continue
		}
		if _, err := os.Stat(filepath.Join(sysModule, name)); err == nil {
			log.Debug("kernel module already loaded", "module", name)
			continue
		}
		switch err := load(finit, filepath.Join(dir, file)); {
		case err == nil:
			loaded = append(loaded, name)
			log.Info("kernel module loaded", "module", name)
		case errors.Is(err, unix.EEXIST):
			// Loaded between our look and the load, or built in under
			// another name: either way it is there.
			log.Debug("kernel module already loaded", "module", name)
		default:
			failed[name] = true
			errs = append(errs, fmt.Errorf("module %s: %w", name, err))
			log.Warn("kernel module failed to load", "module", name, "err", err)
		}
	}
	log.Info("kernel modules loaded", "count", len(loaded), "took", time.Since(start).Round(time.Millisecond))
	return loaded, errors.Join(errs...)
}

func load(finit func(*os.File, int) error, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if filepath.Ext(file) != ".ko" {
		// A compressed module (.ko.xz, .ko.zst): the kernel decompresses
		// it itself if built with CONFIG_MODULE_DECOMPRESS. The ramdisk
		// build ships modules decompressed; this is for other trees.
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := finit(f, flags); err != nil {
		return fmt.Errorf("finit_module %s: %w", file, err)
	}
	return nil
}

func failedDep(deps []string, failed map[string]bool) string {
	for _, p := range deps {
		if failed[Name(p)] {
			return Name(p)
		}
	}
	return ""
}

// readBuiltin reads modules.builtin, the modules compiled into the
// kernel; a tree without one just has none listed.
func readBuiltin(file string) map[string]bool {
	b := map[string]bool{}
	f, err := os.Open(file)
	if err != nil {
		return b
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			b[Name(line)] = true
		}
	}
	return b
}
