package dhcp

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// bootTarget is what a client is told to boot.
type bootTarget struct {
	// file is a TFTP file name, or an HTTP URL for iPXE clients.
	file string
	// tftp: file is fetched from the next-server over TFTP.
	tftp bool
}

// bootFor returns what c boots, and false if we have nothing it can run.
func (h *handler) bootFor(c client) (bootTarget, bool) {
	if c.ipxe {
		// Already iPXE (QEMU's ROM, or undionly.kpxe/ipxe.efi chained):
		// straight to its script, no TFTP and no second chainload.
		return bootTarget{file: strings.ReplaceAll(h.ScriptURL, macPlaceholder, c.mac.String())}, true
	}
	switch c.fw {
	case fwBIOS:
		return bootTarget{file: h.BootFileBIOS, tftp: true}, true
	case fwUEFI:
		return bootTarget{file: h.BootFileUEFI, tftp: true}, true
	case fwUEFIARM64:
		if h.BootFileARM64 != "" {
			return bootTarget{file: h.BootFileARM64, tftp: true}, true
		}
	}
	return bootTarget{}, false
}

// pxeDiscoveryControl is PXE vendor sub-option 6 (PXE_DISCOVERY_CONTROL)
// with bit 3 set: "use the boot file in this offer, skip boot server
// discovery". Without it some firmware ROMs multicast for boot servers or
// ignore a proxy offer's file.
var pxeDiscoveryControl = []byte{6, 1, 0x08, 255}

// withBoot adds the options that tell c to boot t.
func (h *handler) withBoot(resp, req *dhcpv4.DHCPv4, c client, t bootTarget) {
	if t.tftp {
		resp.ServerIPAddr = net.IP(h.TFTPServer.AsSlice())
		resp.UpdateOption(dhcpv4.OptTFTPServerName(h.TFTPServer.String()))
	} else {
		// iPXE takes a proxyDHCP answer for boot options only if it names
		// a next server (siaddr) beside the file, even an HTTP URL's.
		resp.ServerIPAddr = net.IP(h.ServerIP.AsSlice())
	}
	// The BOOTP file field holds 127 bytes; long URLs only fit in option
	// 67, which every PXE client and iPXE read first anyway.
	if len(t.file) < 128 {
		resp.BootFileName = t.file
	}
	resp.UpdateOption(dhcpv4.OptBootFileName(t.file))
	if c.pxe {
		// iPXE (and PXE ROMs) wait ~3 s for a proxyDHCP offer unless
		// the offer they got says "PXEClient" itself.
		resp.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
		// PXE 2.1: a server answering a PXE client echoes its machine
		// identifier (option 97); some ROMs drop offers without it.
		if guid := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); guid != nil {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
		}
	}
}

// withAddress adds the lease of ip and the pool's network options.
func (h *handler) withAddress(resp *dhcpv4.DHCPv4, ip netip.Addr) {
	p := h.Pool
	resp.YourIPAddr = net.IP(ip.AsSlice())
	resp.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(p.PrefixLen, 32)))
	if p.Router.IsValid() {
		resp.UpdateOption(dhcpv4.OptRouter(net.IP(p.Router.AsSlice())))
	}
	if len(p.DNS) > 0 {
		dns := make([]net.IP, len(p.DNS))
		for i, d := range p.DNS {
			dns[i] = net.IP(d.AsSlice())
		}
		resp.UpdateOption(dhcpv4.OptDNS(dns...))
	}
	resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(p.LeaseTime))
	// T1 and T2 as RFC 2131 §4.4.5 suggests, rounded to seconds as the
	// options carry them.
	resp.UpdateOption(dhcpv4.OptRenewTimeValue((p.LeaseTime / 2).Truncate(time.Second)))
	resp.UpdateOption(dhcpv4.OptRebindingTimeValue((p.LeaseTime * 7 / 8).Truncate(time.Second)))
}
