// Package inventory reads a node's hardware from /sys and /proc, as the
// agent reports it to the coordinator. It runs no tools (the ramdisk has
// none, and no udev) and is best effort: a field the kernel does not
// expose is left empty rather than failing the whole inventory.
package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/ingot/ingot/proto/agentpb"
)

// Collect reads the inventory of the machine whose /sys, /proc and /dev are
// under root: "/" on a node, a fixture tree in tests. Network addresses are
// read from the running kernel, so only when root is "/". The only error is
// finding no CPU, which means root is not a Linux system at all.
func Collect(root string) (*agentpb.Inventory, error) {
	fs := sysfs{root: root}
	cpu, err := fs.cpu()
	if err != nil {
		return nil, err
	}
	inv := &agentpb.Inventory{
		Cpu:          cpu,
		Memory:       fs.memory(),
		Disks:        fs.disks(),
		Interfaces:   fs.interfaces(filepath.Clean(root) == "/"),
		SystemVendor: fs.systemVendor(),
		BootMode:     fs.bootMode(),
	}
	return inv, nil
}

// sysfs reads files under root.
type sysfs struct{ root string }

func (s sysfs) path(p ...string) string {
	return filepath.Join(append([]string{s.root}, p...)...)
}

// read returns a file's content without surrounding white space, or "" if
// it cannot be read: sysfs attributes are optional and some fail to read
// by design (carrier of a down link).
func (s sysfs) read(p ...string) string {
	b, err := os.ReadFile(s.path(p...))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (s sysfs) exists(p ...string) bool {
	_, err := os.Lstat(s.path(p...))
	return !errors.Is(err, os.ErrNotExist)
}

// link returns a symlink's target as written ("../devices/pci0000:00/…").
func (s sysfs) link(p ...string) string {
	t, err := os.Readlink(s.path(p...))
	if err != nil {
		return ""
	}
	return t
}

func (s sysfs) list(p ...string) []string {
	entries, err := os.ReadDir(s.path(p...))
	if err != nil {
		return nil
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

func (s sysfs) systemVendor() *agentpb.SystemVendor {
	return &agentpb.SystemVendor{
		Manufacturer: s.read("sys/class/dmi/id/sys_vendor"),
		ProductName:  s.read("sys/class/dmi/id/product_name"),
		SerialNumber: s.read("sys/class/dmi/id/product_serial"),
		Uuid:         s.read("sys/class/dmi/id/product_uuid"),
	}
}

// bootMode is how the firmware started the ramdisk: the kernel exposes
// /sys/firmware/efi only when booted through UEFI.
func (s sysfs) bootMode() string {
	if s.exists("sys/firmware/efi") {
		return "uefi"
	}
	return "bios"
}
