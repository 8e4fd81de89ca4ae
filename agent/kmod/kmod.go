// Package kmod loads the kernel modules the agent needs (NIC and disk
// drivers, the ACPI power button) from the /lib/modules/<release>/ tree
// shipped in the ramdisk, dependencies first, as modprobe would: the
// ramdisk has no modprobe and no udev, so nothing else loads them.
//
// Order comes from modules.dep, in depmod's format. Debian's kernel
// package does not ship one (its postinst runs depmod), so the ramdisk
// build writes it with WriteDeps from the modules' own .modinfo.
package kmod

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// Agent lists the modules the agent loads at start, by name: NIC and
// disk drivers for QEMU (virtio) and common hardware, and the ACPI power
// button with the input layer, so a BMC's soft power off reaches the
// agent. The ramdisk build ships these and what they need; a kernel that
// lacks one (or has it built in) just skips it.
var Agent = []string{
	"virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi",
	"e1000", "e1000e",
	"ahci", "nvme", "sd_mod",
	"button", "evdev",
}

// Dep is one line of modules.dep: a module's file and the files of the
// modules it needs, all relative to /lib/modules/<release>/.
type Dep struct {
	Path string
	Deps []string
}

// Deps is a modules.dep, by module name.
type Deps map[string]Dep

// Name returns the name of the module in file p: its base name without
// .ko and any compression suffix, with dashes as underscores, which is
// how the kernel names it (nvme-core.ko is nvme_core).
func Name(p string) string {
	base := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(base, ".ko"), "-", "_")
}

// ParseDeps reads a modules.dep ("path: dep dep ...", one module a line).
func ParseDeps(r io.Reader) (Deps, error) {
	d := Deps{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, deps, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("modules.dep line %d: want \"path: deps\", got %q", n, line)
		}
		p = strings.TrimSpace(p)
		d[Name(p)] = Dep{Path: p, Deps: strings.Fields(deps)}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return d, nil
}

// Order returns the files to load for the modules named, each after
// everything it needs and each once, and the names not in d. It follows
// every dependency's own line rather than trusting the order of a line,
// so it is right for depmod's output (which lists the deepest dependency
// last) and for any other order too. A dependency cycle is an error: the
// kernel could not load such modules either.
func (d Deps) Order(names ...string) (files, missing []string, err error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(name, file string, chain []string) error
	visit = func(name, file string, chain []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		}
		state[name] = visiting
		if dep, ok := d[name]; ok {
			file = dep.Path
			for _, p := range dep.Deps {
				if err := visit(Name(p), p, append(chain, name)); err != nil {
					return err
				}
			}
		}
		// A dependency with no line of its own is still loaded, from the
		// path its dependent gave: depmod lines list every dependency,
		// transitively, so its own needs come before it regardless.
		state[name] = done
		files = append(files, file)
		return nil
	}
	for _, name := range names {
		name = Name(name)
		if _, ok := d[name]; !ok {
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
			continue
		}
		if err := visit(name, "", nil); err != nil {
			return nil, nil, err
		}
	}
	return files, missing, nil
}

// Closure returns the entries of d that the modules named need, those
// modules included, for writing a smaller modules.dep; like Order it
// reports the names d lacks.
func (d Deps) Closure(names ...string) (Deps, []string, error) {
	files, missing, err := d.Order(names...)
	if err != nil {
		return nil, nil, err
	}
	sub := Deps{}
	for _, f := range files {
		dep, ok := d[Name(f)]
		if !ok {
			return nil, nil, fmt.Errorf("modules.dep lists %s as a dependency but has no line for it", f)
		}
		sub[Name(f)] = dep
	}
	return sub, missing, nil
}

// Resolve builds the modules.dep of the modules in files (by name, each
// file's path relative to /lib/modules/<release>/) from each module's
// direct dependencies (by name, as .modinfo's depends lists them). Like
// depmod's, every line lists all that the module needs, transitively,
// each dependency before the ones it needs itself: modprobe loads a line
// from its end.
func Resolve(files map[string]string, depends map[string][]string) (Deps, error) {
	direct := Deps{}
	for name, file := range files {
		dep := Dep{Path: file}
		for _, n := range depends[name] {
			f, ok := files[Name(n)]
			if !ok {
				return nil, fmt.Errorf("module %s needs %s, which is not there", name, n)
			}
			dep.Deps = append(dep.Deps, f)
		}
		direct[name] = dep
	}
	d := Deps{}
	for name, dep := range direct {
		order, _, err := direct.Order(name)
		if err != nil {
			return nil, err
		}
		all := order[:len(order)-1] // without the module itself, last
		slices.Reverse(all)
		d[name] = Dep{Path: dep.Path, Deps: all}
	}
	return d, nil
}

// WriteTo writes d in modules.dep format, sorted by path so that the
// same modules always give the same file.
func (d Deps) WriteTo(w io.Writer) (int64, error) {
	deps := make([]Dep, 0, len(d))
	for _, dep := range d {
		deps = append(deps, dep)
	}
	slices.SortFunc(deps, func(a, b Dep) int { return strings.Compare(a.Path, b.Path) })
	var b strings.Builder
	for _, dep := range deps {
		b.WriteString(dep.Path)
		b.WriteByte(':')
		for _, p := range dep.Deps {
			b.WriteByte(' ')
			b.WriteString(p)
		}
		b.WriteByte('\n')
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
