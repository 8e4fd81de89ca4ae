package inventory

import (
	"encoding/hex"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/ingot/ingot/agent/disk"
	"github.com/ingot/ingot/proto/agentpb"
)

// skipPrefixes are block devices that are no place to deploy to: virtual
// (loop, ram, zram, device mapper, md RAID, network block devices),
// optical (sr) and floppy (fd). md arrays are left out until software RAID
// is supported; their members are listed as the disks they are.
var skipPrefixes = []string{"loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd"}

// eMMC boot and RPMB partitions show up as disks of their own.
var mmcSpecial = regexp.MustCompile(`^mmcblk\d+(boot\d+|rpmb)$`)

var hctlRE = regexp.MustCompile(`^\d+:\d+:\d+:\d+$`)

// disks lists the whole disks in /sys/block in kernel order. Removable
// disks (USB sticks, card readers) are kept: Ironic lists them too, and the
// root device hints or the 4 GiB minimum keep them from being chosen.
func (s sysfs) disks() []*agentpb.Disk {
	var disks []*agentpb.Disk
	byPath := s.byPathLinks()
	for _, name := range s.list("sys/block") {
		if d := s.disk(name, byPath); d != nil {
			disks = append(disks, d)
		}
	}
	disk.Sort(disks)
	return disks
}

func (s sysfs) disk(name string, byPath map[string]string) *agentpb.Disk {
	for _, p := range skipPrefixes {
		if strings.HasPrefix(name, p) {
			return nil
		}
	}
	blk := "sys/block/" + name
	// SCSI type 5 is a CD/DVD drive, whatever its name; NVMe multipath
	// hides the per-path devices (nvme0c0n1) behind the namespace.
	if mmcSpecial.MatchString(name) || s.read(blk, "device/type") == "5" || s.read(blk, "hidden") == "1" {
		return nil
	}
	sectors, err := strconv.ParseUint(s.read(blk, "size"), 10, 64)
	if err != nil || sectors == 0 {
		// An empty card reader slot: nothing to write to.
		return nil
	}
	d := &agentpb.Disk{
		Name:       "/dev/" + name,
		SizeBytes:  sectors * 512, // "size" is always in 512-byte units
		Model:      s.read(blk, "device/model"),
		Vendor:     s.read(blk, "device/vendor"),
		Rotational: s.read(blk, "queue/rotational") == "1",
	}
	if h := path.Base(s.link(blk, "device")); hctlRE.MatchString(h) {
		d.Hctl = h
	}
	wwid := s.read(blk, "wwid") // NVMe namespaces
	if wwid == "" {
		wwid = s.read(blk, "device/wwid") // SCSI and ATA disks
	}
	d.Wwn, d.WwnWithExtension, d.WwnVendorExtension = parseWWID(wwid)
	d.Serial = s.serial(blk, wwid)
	if p, ok := byPath[name]; ok {
		d.ByPath = p
	} else if byPath == nil {
		d.ByPath = computeByPath(s.link(blk), s.read(blk, "nsid"))
	}
	return d
}

// serial is what udev calls ID_SERIAL_SHORT and Ironic reports: the NVMe
// controller's serial, virtio-blk's, SCSI's unit serial number VPD page
// (0x80), or, for SCSI disks without that page, the NAA identifier as udev
// falls back to.
func (s sysfs) serial(blk, wwid string) string {
	for _, p := range []string{"device/serial", "serial"} {
		if v := s.read(blk, p); v != "" {
			return v
		}
	}
	if v := parseVPD80([]byte(s.readRaw(blk, "device/vpd_pg80"))); v != "" {
		return v
	}
	if naa, ok := strings.CutPrefix(strings.ToLower(wwid), "naa."); ok && isHex(naa) {
		return naa
	}
	return ""
}

func (s sysfs) readRaw(p ...string) string {
	// Binary attributes must not be trimmed before parsing.
	b, err := os.ReadFile(s.path(p...))
	if err != nil {
		return ""
	}
	return string(b)
}

// parseVPD80 extracts the serial from a Unit Serial Number VPD page: byte 1
// is the page code, bytes 2–3 the length, then ASCII padded with spaces.
func parseVPD80(b []byte) string {
	if len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return strings.Trim(string(b[4:4+n]), " \x00")
}

// parseWWID turns the kernel's wwid into Ironic's wwn fields, as udev
// presents them (ID_WWN, ID_WWN_WITH_EXTENSION, ID_WWN_VENDOR_EXTENSION)
// and Ironic reports them:
//
//   - "naa.5000c500a1b2c3d4" (NAA 5, 16 hex digits): wwn and
//     wwn_with_extension "0x5000c500a1b2c3d4";
//   - "naa.6…" with 32 hex digits (NAA 6, registered extended): wwn is the
//     first 16 digits, wwn_vendor_extension the last 16, both "0x"-prefixed,
//     and wwn_with_extension all 32;
//   - NVMe's "eui.…", "nvme.…" and "uuid.…": wwn as is, as udev does;
//   - "t10.…" is a vendor/model/serial string, not a WWN: nothing.
func parseWWID(wwid string) (wwn, withExt, vendorExt string) {
	wwid = strings.ToLower(strings.TrimSpace(wwid))
	prefix, id, _ := strings.Cut(wwid, ".")
	switch prefix {
	case "naa":
		if !isHex(id) {
			return "", "", ""
		}
		if len(id) == 32 {
			return "0x" + id[:16], "0x" + id, "0x" + id[16:]
		}
		return "0x" + id, "0x" + id, ""
	case "eui", "nvme", "uuid":
		return wwid, "", ""
	}
	return "", "", ""
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return s != "" && err == nil
}
