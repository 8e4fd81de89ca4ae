package kmod

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"strings"
)

// ModInfo is what a module file says about itself in its .modinfo
// section, the part depmod reads.
type ModInfo struct {
	// Name is the module's name (name=), as the kernel knows it.
	Name string
	// Depends names the modules it needs directly (depends=).
	Depends []string
}

// ReadModInfo reads the .modinfo section of an uncompressed module
// (ELF): NUL-separated key=value strings.
func ReadModInfo(r io.ReaderAt) (ModInfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return ModInfo{}, fmt.Errorf("not a kernel module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return ModInfo{}, fmt.Errorf("not a kernel module: no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return ModInfo{}, fmt.Errorf("read .modinfo: %w", err)
	}
	var mi ModInfo
	for kv := range bytes.SplitSeq(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			mi.Name = v
		case "depends":
			for d := range strings.SplitSeq(v, ",") {
				if d != "" {
					mi.Depends = append(mi.Depends, d)
				}
			}
		}
	}
	return mi, nil
}
