package dhcp

import (
	"context"
	"errors"
	"fmt"
	"github.com/ingot/ingot/coordinator/boot/logonce"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/ingot/ingot/coordinator/boot"
	"github.com/ingot/ingot/coordinator/store"
)

// errMalformed marks requests dropped because they are not DHCP requests
// we can read; they are logged at debug level only, as anyone on the link
// can send them.
var errMalformed = errors.New("malformed DHCP request")

// handler turns one request into at most one reply. It holds no sockets,
// so it is table-tested and fuzzed directly.
type handler struct {
	// Config is the server's configuration with defaults filled in.
	Config
	// booter decides whether a MAC is answered at all.
	booter Booter
	// leases keeps ModeFull's leases; nil in ModeProxy.
	leases LeaseStore
	// pool is Config.Pool's range as the lease store takes it.
	pool store.LeasePool
	// quiet keeps logs about clients we ignore to one per MAC a minute.
	quiet *logonce.Limiter
}

// handle returns the reply to req, or nil when req gets none (not ours,
// not for us, or nothing to say). An error explains a dropped request:
// errMalformed for packets that are not usable requests, others for
// failures of our own (Redis).
func (h *handler) handle(ctx context.Context, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, fmt.Errorf("%w: op %v", errMalformed, req.OpCode)
	}
	mt := req.MessageType()
	mac := clientMAC(req)
	if mac == nil {
		return nil, fmt.Errorf("%w: %v without an Ethernet client address", errMalformed, mt)
	}
	switch mt {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest:
	case dhcpv4.MessageTypeRelease:
		return nil, h.release(ctx, req, mac)
	case dhcpv4.MessageTypeDecline:
		return nil, h.decline(ctx, req, mac)
	case dhcpv4.MessageTypeNone:
		// BOOTP: not supported, and PXE never uses it.
		return nil, fmt.Errorf("%w: no message type (BOOTP)", errMalformed)
	default:
		// INFORM and server-to-client types: nothing for us to add.
		return nil, nil
	}

	d, err := h.booter.Decide(ctx, mac)
	if err != nil {
		return nil, fmt.Errorf("boot decision for %s: %w", mac, err)
	}
	if d.Action != boot.Agent {
		h.ignore(mac, "dhcp: not answering: the machine does not boot the agent now", "action", d.Action.String())
		return nil, nil
	}
	c := detect(req)
	target, bootable := h.bootFor(c)
	if c.pxe && !bootable {
		h.ignore(mac, "dhcp: no boot file for the client's architecture", "arch", c.arch.String())
	}
	bootable = bootable && (c.pxe || c.ipxe)

	if h.Mode == ModeProxy {
		return h.proxy(req, mt, c, target, bootable)
	}
	return h.full(ctx, req, mt, c, target, bootable)
}

// full answers in ModeFull: an address for any client the booter wants
// (the agent's own DHCP client needs one too) and the boot options for
// network-booting ones.
func (h *handler) full(ctx context.Context, req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, c client, target bootTarget, bootable bool) (*dhcpv4.DHCPv4, error) {
	var want netip.Addr
	if ip, ok := netip.AddrFromSlice(req.RequestedIPAddress().To4()); ok && req.RequestedIPAddress() != nil {
		want = ip
	}
	replyType := dhcpv4.MessageTypeOffer
	if mt == dhcpv4.MessageTypeRequest {
		replyType = dhcpv4.MessageTypeAck
		if sid := req.ServerIdentifier(); sid != nil {
			if !sid.Equal(net.IP(h.ServerIP.AsSlice())) {
				// The client took another server's offer: free ours.
				return nil, h.leases.ReleaseLease(ctx, c.mac, netip.Addr{})
			}
		} else if !want.IsValid() {
			// RENEWING/REBINDING name the address in ciaddr (RFC 2131
			// §4.3.2) instead of option 50.
			if ip, ok := netip.AddrFromSlice(req.ClientIPAddr.To4()); ok && !ip.IsUnspecified() {
				want = ip
			}
		}
		if !want.IsValid() || !h.pool.Contains(want) {
			return h.nak(req, "requested address not on this network")
		}
	}
	ip, err := h.leases.AllocateLease(ctx, c.mac, h.pool, want, h.Pool.LeaseTime)
	if err != nil {
		return nil, fmt.Errorf("lease for %s: %w", c.mac, err)
	}
	if mt == dhcpv4.MessageTypeRequest && ip != want {
		// The address is someone else's (or the client has another):
		// make it start over with a DISCOVER.
		return h.nak(req, "requested address not available")
	}
	resp, err := h.reply(req, replyType)
	if err != nil {
		return nil, err
	}
	h.withAddress(resp, ip)
	if bootable {
		h.withBoot(resp, req, c, target)
	}
	return resp, nil
}

// proxy answers in ModeProxy: boot options and no address, to DISCOVERs
// (port 67) and to REQUESTs addressed to us (port 4011, or port 67 when a
// client asks us by server identifier).
func (h *handler) proxy(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, c client, target bootTarget, bootable bool) (*dhcpv4.DHCPv4, error) {
	if !bootable {
		return nil, nil // nothing but boot options to give
	}
	replyType := dhcpv4.MessageTypeOffer
	if mt == dhcpv4.MessageTypeRequest {
		// A REQUEST without our identifier is for the site's server.
		if sid := req.ServerIdentifier(); sid == nil || !sid.Equal(net.IP(h.ServerIP.AsSlice())) {
			return nil, nil
		}
		// So is one asking for an address, even with our identifier: the
		// site's DHCP server may share our address (dnsmasq on the same
		// host), and an address-less ACK would spoil its lease. PXE
		// clients ask a proxy for boot options only, from their address.
		if req.RequestedIPAddress() != nil {
			return nil, nil
		}
		replyType = dhcpv4.MessageTypeAck
	}
	resp, err := h.reply(req, replyType)
	if err != nil {
		return nil, err
	}
	if replyType == dhcpv4.MessageTypeAck {
		resp.ClientIPAddr = req.ClientIPAddr
	}
	h.withBoot(resp, req, c, target)
	return resp, nil
}

// reply starts a reply of type mt to req from this server.
func (h *handler) reply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(h.ServerIP.AsSlice()))),
	)
	if err != nil {
		return nil, fmt.Errorf("build %v: %w", mt, err)
	}
	return resp, nil
}

// nak refuses a REQUEST (RFC 2131 §4.3.2), with a reason for the client's
// logs.
func (h *handler) nak(req *dhcpv4.DHCPv4, why string) (*dhcpv4.DHCPv4, error) {
	resp, err := h.reply(req, dhcpv4.MessageTypeNak)
	if err != nil {
		return nil, err
	}
	resp.UpdateOption(dhcpv4.OptMessage(why))
	// A NAK is broadcast unless relayed (§4.1): the client may not have
	// the address it thinks it has.
	resp.SetBroadcast()
	return resp, nil
}

// release frees the client's lease (ModeFull); there is no reply.
func (h *handler) release(ctx context.Context, req *dhcpv4.DHCPv4, mac net.HardwareAddr) error {
	if h.leases == nil || !h.ours(req) {
		return nil
	}
	ip, ok := netip.AddrFromSlice(req.ClientIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return fmt.Errorf("%w: RELEASE from %s without ciaddr", errMalformed, mac)
	}
	return h.leases.ReleaseLease(ctx, mac, ip)
}

// decline takes an address the client found in use out of the pool for a
// lease time (ModeFull); there is no reply.
func (h *handler) decline(ctx context.Context, req *dhcpv4.DHCPv4, mac net.HardwareAddr) error {
	if h.leases == nil || !h.ours(req) {
		return nil
	}
	ip, ok := netip.AddrFromSlice(req.RequestedIPAddress().To4())
	if !ok || req.RequestedIPAddress() == nil || !h.pool.Contains(ip) {
		return fmt.Errorf("%w: DECLINE from %s without an address of our pool", errMalformed, mac)
	}
	h.Logger.Warn("dhcp: client declined its address: something else uses it", "mac", mac, "ip", ip)
	return h.leases.DeclineLease(ctx, mac, ip, h.Pool.LeaseTime)
}

// ours reports whether req names this server (option 54), as RELEASE and
// DECLINE must.
func (h *handler) ours(req *dhcpv4.DHCPv4) bool {
	sid := req.ServerIdentifier()
	return sid != nil && sid.Equal(net.IP(h.ServerIP.AsSlice()))
}

// ignore logs at debug level, at most once a minute per MAC, why a client
// gets no (boot) answer: every machine on the link may broadcast, and
// most are none of our business.
func (h *handler) ignore(mac net.HardwareAddr, msg string, args ...any) {
	if h.quiet.Allow(mac.String(), time.Now()) {
		h.Logger.Debug(msg, append([]any{"mac", mac.String()}, args...)...)
	}
}
