// Command instanceinit is the /init of the end-to-end test image's
// initramfs. Booted from the deployed disk, it finds the config drive
// (an ISO 9660 filesystem labelled "config-2") on any block device,
// prints one marker line naming the node it belongs to, and powers the
// machine off:
//
//	INGOT-INSTANCE-BOOTED uuid=<uuid> name=<name> disk=/dev/vdaN
//	INGOT-INSTANCE-BOOTED uuid= error=<why>
//
// The line proves the whole chain: the image was written whole (the
// kernel and initramfs loaded), the config drive was written where it
// can be found, and the machine booted from its disk.
//
// It is built statically by e2e/testimage at test time and must stay
// tiny: no shell, no udev, only the virtio modules shipped beside it.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// marker starts the line tests look for; it must match
// testimage.Marker (not imported, to keep this binary free of the
// library's dependencies).
const marker = "INGOT-INSTANCE-BOOTED"

// modulesDir holds the kernel modules to load, named so that sorting
// them gives their dependency order (e.g. "01-virtio_ring.ko"): the
// builder decides the order, this program only follows it.
const modulesDir = "/modules"

func main() {
	mountErr := mountPseudoFilesystems()
	// Opened after devtmpfs is mounted, so it is the real console device
	// whether or not the initramfs carried a /dev/console node.
	con := console()
	if mountErr != nil {
		fmt.Fprintf(con, "instanceinit: %v\n", mountErr)
	}
	loadErr := loadModules(modulesDir)
	// The leading newline puts the marker at the start of a line: the
	// firmware and bootloader leave theirs unterminated.
	fmt.Fprintf(con, "\n%s\n", report(loadErr))
	powerOff(con)
}

// report finds the config drive and returns the marker line.
func report(loadErr error) string {
	dev, meta, err := findConfigDrive(10*time.Second, 300*time.Millisecond)
	if err != nil {
		if loadErr != nil {
			err = fmt.Errorf("%w (%v)", err, loadErr)
		}
		return fmt.Sprintf("%s uuid= error=%s", marker, oneLine(err.Error()))
	}
	return fmt.Sprintf("%s uuid=%s name=%s disk=%s", marker, oneLine(meta.UUID), oneLine(meta.Name), dev)
}

// oneLine keeps the marker on a single console line whatever the error
// text or the metadata hold.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

func mountPseudoFilesystems() error {
	var errs []error
	for _, m := range []struct{ fstype, dir string }{
		{"proc", "/proc"},
		{"sysfs", "/sys"},
		// The kernel does not automount devtmpfs over an initramfs; it
		// gives us /dev/vda* without udev.
		{"devtmpfs", "/dev"},
	} {
		_ = os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.fstype, m.dir, m.fstype, 0, ""); err != nil {
			errs = append(errs, fmt.Errorf("mount %s: %w", m.dir, err))
		}
	}
	return errors.Join(errs...)
}

// loadModules loads every module in dir in name order. A module the
// kernel already has (built in, or loaded) is not an error.
func loadModules(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*.ko"))
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		if err := loadModule(name); err != nil {
			return err
		}
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// metaData is the part of openstack/latest/meta_data.json we print.
type metaData struct {
	UUID string `json:"uuid"`
	Name string `json:"name"`
}

// findConfigDrive waits up to devWait for the first block device, then
// scans every disk and partition for the config drive until it is found
// or the list of devices has not changed for settle: partitions appear a
// moment after their disk, and a missing config drive should cost the
// no-config-drive test little time.
func findConfigDrive(devWait, settle time.Duration) (string, metaData, error) {
	deadline := time.Now().Add(devWait)
	var prev []string
	changed := time.Now()
	for {
		devs := blockDevices()
		if !slices.Equal(devs, prev) {
			prev, changed = devs, time.Now()
		}
		if len(devs) == 0 {
			if time.Now().After(deadline) {
				return "", metaData{}, fmt.Errorf("no block devices after %v", devWait)
			}
		} else if dev, meta, err := scan(devs); err == nil || time.Since(changed) >= settle {
			return dev, meta, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// blockDevices lists the kernel's block devices and partitions, which
// devtmpfs names the same under /dev.
func blockDevices() []string {
	entries, _ := os.ReadDir("/sys/class/block")
	var devs []string
	for _, e := range entries {
		devs = append(devs, "/dev/"+e.Name())
	}
	return devs
}

func scan(devs []string) (string, metaData, error) {
	for _, dev := range devs {
		data, found, err := readConfigDrive(dev)
		if !found {
			continue
		}
		if err != nil {
			return dev, metaData{}, err
		}
		var meta metaData
		if err := json.Unmarshal(data, &meta); err != nil {
			return dev, metaData{}, fmt.Errorf("parse meta_data.json on %s: %w", dev, err)
		}
		return dev, meta, nil
	}
	return "", metaData{}, fmt.Errorf("no config-2 filesystem on %d block devices %v", len(devs), devs)
}

// readConfigDrive reports whether dev holds the config drive and, if it
// does, returns its openstack/latest/meta_data.json.
func readConfigDrive(dev string) (data []byte, found bool, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, false, nil // a device we cannot open is not ours
	}
	defer f.Close()
	if label, ok := isoVolumeID(f); !ok || label != "config-2" {
		return nil, false, nil
	}
	data, err = readISOFile(f, "openstack/latest/meta_data.json")
	if err != nil {
		return nil, true, fmt.Errorf("read meta_data.json on %s: %w", dev, err)
	}
	return data, true, nil
}

func console() *os.File {
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		return c
	}
	return os.Stdout
}

// powerOff drains the console first: otherwise the marker can still sit
// in the serial driver's buffer when the machine turns off.
func powerOff(c *os.File) {
	_ = unix.IoctlSetInt(int(c.Fd()), unix.TCSBRK, 1) // tcdrain
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(c, "instanceinit: power off: %v\n", err)
	}
	// Returning from init panics the kernel, which with panic=-1 and
	// QEMU's -no-reboot still ends the test machine.
}
