// Command mkmodules copies the kernel modules the agent loads, and every
// module they need, from an unpacked kernel package's
// /lib/modules/<release>/ into the ramdisk's, decompressed, and writes
// their modules.dep (and modules.builtin beside it) for agent/kmod.
//
// Debian's kernel packages ship no modules.dep (their postinst runs
// depmod); this writes the same file from each module's own .modinfo, so
// the build needs neither root nor kmod's depmod.
//
//	go run ./initramfs/mkmodules -from build/kernel/modules/6.1.0-56-cloud-amd64 -to stage/lib/modules/6.1.0-56-cloud-amd64 [module...]
//
// With no module names it ships kmod.Agent.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ingot/ingot/agent/kmod"
	"github.com/ingot/ingot/initramfs/kofile"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("mkmodules: ")
	from := flag.String("from", "", "the kernel's unpacked /lib/modules/<release> directory")
	to := flag.String("to", "", "the ramdisk's /lib/modules/<release> directory, replaced")
	flag.Parse()
	if *from == "" || *to == "" {
		flag.Usage()
		os.Exit(2)
	}
	names := flag.Args()
	if len(names) == 0 {
		names = kmod.Agent
	}
	if err := run(*from, *to, names); err != nil {
		log.Fatal(err)
	}
}

func run(from, to string, names []string) error {
	files, err := index(from)
	if err != nil {
		return err
	}
	builtin, err := os.ReadFile(filepath.Join(from, "modules.builtin"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	isBuiltin := map[string]bool{}
	for _, line := range strings.Fields(string(builtin)) {
		isBuiltin[kmod.Name(line)] = true
	}

	// Everything the modules named need, from their .modinfo.
	ship := map[string]string{}      // name -> path in the ramdisk (decompressed)
	depends := map[string][]string{} // name -> direct dependencies
	content := map[string][]byte{}
	queue := slices.Clone(names)
	var skipped, inKernel []string
	for len(queue) > 0 {
		name := kmod.Name(queue[0])
		queue = queue[1:]
		if _, done := ship[name]; done {
			continue
		}
		src, ok := files[name]
		if !ok {
			if isBuiltin[name] {
				inKernel = append(inKernel, name)
			} else {
				skipped = append(skipped, name)
			}
			continue
		}
		b, err := kofile.Read(filepath.Join(from, src))
		if err != nil {
			return err
		}
		mi, err := kmod.ReadModInfo(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		dst := strings.TrimSuffix(src, filepath.Ext(src))
		if filepath.Ext(src) == ".ko" {
			dst = src
		}
		ship[name], depends[name], content[name] = dst, mi.Depends, b
		queue = append(queue, mi.Depends...)
	}
	deps, err := kmod.Resolve(ship, depends)
	if err != nil {
		return err
	}

	// Replace the destination whole: modules of an older build (or an
	// older kernel's list) must not linger in the ramdisk.
	tmp := to + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	var size int
	for name, dst := range ship {
		p := filepath.Join(tmp, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, content[name], 0o644); err != nil {
			return err
		}
		size += len(content[name])
	}
	var dep bytes.Buffer
	deps.WriteTo(&dep)
	if err := os.WriteFile(filepath.Join(tmp, "modules.dep"), dep.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "modules.builtin"), builtin, 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(to); err != nil {
		return err
	}
	if err := os.Rename(tmp, to); err != nil {
		return err
	}
	slices.Sort(skipped)
	slices.Sort(inKernel)
	log.Printf("%d modules (%d KiB) in %s; built into the kernel: %v; not in this kernel: %v",
		len(ship), size/1024, to, inKernel, skipped)
	return nil
}

// index finds every module file under dir, by module name.
func index(dir string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || !(strings.HasSuffix(name, ".ko") || strings.Contains(name, ".ko.")) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[kmod.Name(rel)] = filepath.ToSlash(rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel modules in %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no kernel modules in %s", dir)
	}
	return files, nil
}
