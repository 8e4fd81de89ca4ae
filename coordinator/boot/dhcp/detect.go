package dhcp

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// firmware is what kind of boot program a client can run.
type firmware int

const (
	fwUnknown   firmware = iota // an architecture we have nothing for
	fwBIOS                      // legacy BIOS PXE ROM: undionly.kpxe
	fwUEFI                      // x86 UEFI: ipxe.efi / snponly.efi
	fwUEFIARM64                 // arm64 UEFI
)

func (f firmware) String() string {
	switch f {
	case fwBIOS:
		return "bios"
	case fwUEFI:
		return "uefi"
	case fwUEFIARM64:
		return "uefi-arm64"
	}
	return "unknown"
}

// optIPXEEncap is iPXE's encapsulated option space (175). Every iPXE build
// sends it, which tells iPXE apart even if option 77 was stripped.
const optIPXEEncap = dhcpv4.GenericOptionCode(175)

// client is what a request tells about its sender.
type client struct {
	mac net.HardwareAddr
	// pxe: option 60 starts with "PXEClient" (firmware PXE ROMs and iPXE).
	pxe bool
	// ipxe: the client already runs iPXE, so it can fetch its script over
	// HTTP directly.
	ipxe bool
	// arch is option 93's first architecture (or the one in option 60),
	// archKnown whether there was one at all.
	arch      iana.Arch
	archKnown bool
	fw        firmware
}

// detect reads the client's identity and boot capabilities from req.
func detect(req *dhcpv4.DHCPv4) client {
	c := client{mac: clientMAC(req)}
	vendor := string(req.Options.Get(dhcpv4.OptionClassIdentifier))
	c.pxe = strings.HasPrefix(vendor, "PXEClient")
	c.ipxe = isIPXE(req.Options.Get(dhcpv4.OptionUserClassInformation)) || req.Options.Has(optIPXEEncap)
	c.arch, c.archKnown = clientArch(req.Options.Get(dhcpv4.OptionClientSystemArchitectureType), vendor)
	switch {
	case !c.archKnown:
		// PXE 2.1 makes option 93 mandatory; a PXE client without it is
		// an old BIOS ROM.
		c.fw = fwBIOS
	case c.arch == iana.INTEL_X86PC:
		c.fw = fwBIOS
	case c.arch == iana.EFI_IA32, c.arch == iana.EFI_X86_64, c.arch == iana.EFI_BC:
		c.fw = fwUEFI
	case c.arch == iana.EFI_ARM64:
		c.fw = fwUEFIARM64
	default:
		c.fw = fwUnknown
	}
	return c
}

// clientMAC returns the client's Ethernet address: chaddr, or option 61
// (hardware type 1) when chaddr is not an Ethernet address. nil if neither
// is usable.
func clientMAC(req *dhcpv4.DHCPv4) net.HardwareAddr {
	if req.HWType == iana.HWTypeEthernet && len(req.ClientHWAddr) == 6 && !allZero(req.ClientHWAddr) {
		return net.HardwareAddr(bytes.Clone(req.ClientHWAddr))
	}
	id := req.Options.Get(dhcpv4.OptionClientIdentifier)
	if len(id) == 7 && id[0] == byte(iana.HWTypeEthernet) && !allZero(id[1:]) {
		return net.HardwareAddr(bytes.Clone(id[1:]))
	}
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// isIPXE reports whether a user class option (77) says "iPXE", in either
// encoding seen in the wild: the raw string (what iPXE, including QEMU's
// ROM, sends) or RFC 3004's length-prefixed list.
func isIPXE(uc []byte) bool {
	if string(uc) == "iPXE" {
		return true
	}
	for len(uc) > 0 {
		n := int(uc[0])
		if n == 0 || n+1 > len(uc) {
			return false // not RFC 3004 after all
		}
		if string(uc[1:n+1]) == "iPXE" {
			return true
		}
		uc = uc[n+1:]
	}
	return false
}

// clientArch returns the client's architecture from option 93 (its first
// entry), or failing that from a vendor class "PXEClient:Arch:xxxxx:...".
func clientArch(opt93 []byte, vendor string) (iana.Arch, bool) {
	if len(opt93) >= 2 && len(opt93)%2 == 0 {
		return iana.Arch(binary.BigEndian.Uint16(opt93)), true
	}
	if rest, ok := strings.CutPrefix(vendor, "PXEClient:Arch:"); ok {
		digits, _, _ := strings.Cut(rest, ":")
		if n, err := strconv.ParseUint(digits, 10, 16); err == nil {
			return iana.Arch(n), true
		}
	}
	return 0, false
}
