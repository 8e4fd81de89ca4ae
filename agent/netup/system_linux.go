package netup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// linuxSystem is netlink for links, addresses and routes, and
// nclient4 (a raw socket, as the NIC has no address yet) for DHCP.
type linuxSystem struct{}

func (linuxSystem) loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}

// nics lists the Ethernet NICs: physical devices (not bridges, bonds,
// veths or tunnels) with a MAC address.
func (linuxSystem) nics() ([]NIC, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var nics []NIC
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "device" || a.EncapType != "ether" || a.Flags&net.FlagLoopback != 0 || len(a.HardwareAddr) != 6 {
			continue
		}
		nics = append(nics, NIC{Name: a.Name, Index: a.Index, MAC: a.HardwareAddr})
	}
	return nics, nil
}

func (linuxSystem) linkUp(n NIC) error {
	l, err := netlink.LinkByIndex(n.Index)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// dhcpClient asks once, then twice more with doubled waits (2+4+8 s):
// serve retries past that with its own pauses, and a NIC whose link is
// still negotiating gets its packets out a few seconds later.
func dhcpClient(n NIC) (*nclient4.Client, error) {
	c, err := nclient4.New(n.Name, nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("DHCP client on %s: %w", n.Name, err)
	}
	return c, nil
}

func (linuxSystem) request(ctx context.Context, n NIC) (Lease, error) {
	c, err := dhcpClient(n)
	if err != nil {
		return Lease{}, err
	}
	defer c.Close()
	raw, err := c.Request(ctx)
	if err != nil {
		return Lease{}, fmt.Errorf("DHCP on %s: %w", n.Name, err)
	}
	return leaseFrom(n, raw)
}

func (linuxSystem) renew(ctx context.Context, l Lease) (Lease, error) {
	c, err := dhcpClient(l.NIC)
	if err != nil {
		return Lease{}, err
	}
	defer c.Close()
	raw, err := c.Renew(ctx, l.raw.(*nclient4.Lease))
	var nak *nclient4.ErrNak
	if errors.As(err, &nak) {
		return Lease{}, fmt.Errorf("renew %s on %s: %w", l.Addr, l.NIC.Name, errNak)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew %s on %s: %w", l.Addr, l.NIC.Name, err)
	}
	return leaseFrom(l.NIC, raw)
}

// leaseFrom reads what the agent uses of a DHCP exchange.
func leaseFrom(n NIC, raw *nclient4.Lease) (Lease, error) {
	ack := raw.ACK
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !ip.IsValid() || ip.IsUnspecified() {
		return Lease{}, fmt.Errorf("DHCP on %s: the server gave no address", n.Name)
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = net.IP(ip.AsSlice()).DefaultMask() // classful, as RFC 2131 leaves it
	}
	bits, _ := mask.Size()
	l := Lease{
		NIC:      n,
		Addr:     netip.PrefixFrom(ip, bits),
		Duration: ack.IPAddressLeaseTime(0),
		Acquired: raw.CreationTime,
		raw:      raw,
	}
	if l.Acquired.IsZero() {
		l.Acquired = time.Now()
	}
	l.Renew = ack.IPAddressRenewalTime(l.Duration / 2)
	if l.Renew <= 0 || l.Renew > l.Duration {
		l.Renew = l.Duration / 2
	}
	if r := ack.Router(); len(r) > 0 {
		l.Router, _ = netip.AddrFromSlice(r[0].To4())
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok {
			l.DNS = append(l.DNS, a)
		}
	}
	if s := ack.ServerIdentifier(); s != nil {
		l.Server, _ = netip.AddrFromSlice(s.To4())
	}
	return l, nil
}

// configure sets the address with the lease's lifetime, so that the
// kernel drops it if the agent fails to renew it, and the default route.
func (linuxSystem) configure(old *Lease, l Lease, metric int) error {
	link, err := netlink.LinkByIndex(l.NIC.Index)
	if err != nil {
		return err
	}
	if old != nil && old.Addr != l.Addr {
		netlink.AddrDel(link, addr(*old)) // its routes go with it
	}
	if err := netlink.AddrReplace(link, addr(l)); err != nil {
		return fmt.Errorf("add address %s to %s: %w", l.Addr, l.NIC.Name, err)
	}
	if !l.Router.IsValid() {
		return nil
	}
	r := &netlink.Route{
		LinkIndex: l.NIC.Index,
		Dst:       &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
		Gw:        l.Router.AsSlice(),
		Src:       l.Addr.Addr().AsSlice(),
		Priority:  metric,
	}
	if !l.Addr.Contains(l.Router) {
		// A gateway outside the subnet (a /32 lease) is still reachable
		// on the link.
		r.Flags = int(netlink.FLAG_ONLINK)
	}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("default route via %s on %s: %w", l.Router, l.NIC.Name, err)
	}
	return nil
}

func (linuxSystem) unconfigure(l Lease) error {
	link, err := netlink.LinkByIndex(l.NIC.Index)
	if err != nil {
		return err
	}
	return netlink.AddrDel(link, addr(l))
}

func addr(l Lease) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: l.Addr.Addr().AsSlice(), Mask: net.CIDRMask(l.Addr.Bits(), 32)}}
	if l.Duration > 0 {
		secs := int(l.Duration / time.Second)
		a.ValidLft, a.PreferedLft = secs, secs
	}
	return a
}
