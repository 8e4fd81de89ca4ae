package inventory

import (
	"path"
	"regexp"
	"strings"
)

const byPathDir = "/dev/disk/by-path/"

// byPathLinks maps disk names to their /dev/disk/by-path link where udev
// made them. nil means there is no such directory (no udev, as in a u-root
// ramdisk); then computeByPath stands in.
func (s sysfs) byPathLinks() map[string]string {
	if !s.exists(byPathDir) {
		return nil
	}
	links := map[string]string{}
	for _, l := range s.list(byPathDir) {
		if strings.Contains(l, "-part") {
			continue // partitions
		}
		// Links are relative: "../../sda".
		if t := s.link(byPathDir, l); t != "" {
			links[path.Base(t)] = byPathDir + l
		}
	}
	return links
}

var pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// computeByPath derives the name udev's path_id would give a disk, from
// its /sys/block link ("../devices/pci0000:00/0000:00:04.0/virtio1/block/vda"),
// for the buses where that name depends on nothing else:
//
//   - virtio-blk: "pci-<function>", e.g. /dev/disk/by-path/pci-0000:00:04.0;
//   - NVMe: "pci-<function>-nvme-<namespace id>".
//
// Like udev, it names the PCI function closest to the disk. SCSI, SATA, SAS
// and USB names need udev's host renumbering and port lookups, so those
// disks get no by_path without udev. The link does not exist on the node;
// the name is there for root device hints.
func computeByPath(sysLink, nsid string) string {
	parts := strings.Split(sysLink, "/")
	fn := -1
	for i, p := range parts {
		if pciAddr.MatchString(p) {
			fn = i
		}
	}
	if fn < 0 || fn+1 >= len(parts) {
		return ""
	}
	next := parts[fn+1]
	switch {
	case strings.HasPrefix(next, "virtio") && fn+2 < len(parts) && parts[fn+2] == "block":
		// virtio-blk; virtio-scsi has a SCSI host in between.
		return byPathDir + "pci-" + parts[fn]
	case next == "nvme" && nsid != "":
		return byPathDir + "pci-" + parts[fn] + "-nvme-" + nsid
	}
	return ""
}
