package dhcp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// raResponder answers IPv6 router solicitations on one interface with a
// router advertisement that offers nothing: no prefix, router lifetime 0
// (not a default router), M and O flags clear (no DHCPv6). iPXE waits ~16 s
// at "Configuring" for an RA on a link that has none; any RA ends that
// wait, and one that offers nothing changes no host's configuration.
type raResponder struct {
	ifi *net.Interface
	c   net.PacketConn
	pc  *ipv6.PacketConn
	log *slog.Logger

	mu      sync.Mutex
	last    time.Time   // when the last RA went out
	pending *time.Timer // the RA owed to solicitations inside raMinInterval
	closed  bool
}

// raMinInterval spaces our RAs. Solicitations inside it are not dropped but
// answered together at its end: hosts (the kernel of every Linux machine
// coming up) solicit all the time, and iPXE's solicitation must never go
// unanswered because another came just before it. RFC 4861 §6.2.6 asks for
// 3 s between multicast RAs; 1 s is kinder to iPXE, and an RA carrying
// nothing costs the link nothing.
const raMinInterval = time.Second

var (
	allNodes   = &net.IPAddr{IP: net.ParseIP("ff02::1")}
	allRouters = net.ParseIP("ff02::2")
)

// newRAResponder opens a raw ICMPv6 socket bound to iface.
func newRAResponder(iface string, log *slog.Logger) (*raResponder, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("dhcp: router advertisements: %w", err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("dhcp: router advertisements on %s: %w", iface, err)
	}
	pc := ipv6.NewPacketConn(c)
	setup := func() error {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeRouterSolicitation)
		if err := pc.SetICMPFilter(&f); err != nil {
			return err
		}
		if err := pc.JoinGroup(ifi, &net.IPAddr{IP: allRouters}); err != nil {
			return err
		}
		if err := pc.SetControlMessage(ipv6.FlagInterface|ipv6.FlagHopLimit, true); err != nil {
			return err
		}
		return pc.SetMulticastHopLimit(255)
	}
	if err := setup(); err != nil {
		c.Close()
		return nil, fmt.Errorf("dhcp: router advertisements on %s: %w", iface, err)
	}
	return &raResponder{ifi: ifi, c: c, pc: pc, log: log}, nil
}

func (r *raResponder) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.pending != nil {
		r.pending.Stop()
	}
	r.c.Close()
}

// serve answers solicitations until ctx ends (and the socket is closed).
func (r *raResponder) serve(ctx context.Context) error {
	buf := make([]byte, 1500)
	for {
		n, cm, _, err := r.pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dhcp: read router solicitations: %w", err)
		}
		// RFC 4861 §6.1.1: a solicitation must arrive with hop limit 255
		// (it was not forwarded), and must be from our link.
		if cm == nil || cm.IfIndex != r.ifi.Index || cm.HopLimit != 255 {
			continue
		}
		m, err := icmp.ParseMessage(58, buf[:n])
		if err != nil || m.Type != ipv6.ICMPTypeRouterSolicitation || m.Code != 0 {
			continue
		}
		if r.solicited() {
			r.advertise()
		}
	}
}

// solicited reports whether to send an RA now; if one went out lately it
// schedules one for the end of raMinInterval instead (once, however many
// solicitations come meanwhile).
func (r *raResponder) solicited() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.pending != nil {
		return false
	}
	wait := raMinInterval - time.Since(r.last)
	if wait <= 0 {
		r.last = time.Now()
		return true
	}
	r.pending = time.AfterFunc(wait, func() {
		r.mu.Lock()
		r.pending = nil
		r.last = time.Now()
		closed := r.closed
		r.mu.Unlock()
		if !closed {
			r.advertise()
		}
	})
	return false
}

// advertise multicasts one RA to all nodes.
func (r *raResponder) advertise() {

	// cur hop limit 0 (unspecified), flags 0, router lifetime 0,
	// reachable time 0, retrans timer 0, then our link-layer address.
	body := make([]byte, 12, 20)
	if len(r.ifi.HardwareAddr) == 6 {
		body = append(body, 1, 1) // source link-layer address, 8 bytes
		body = append(body, r.ifi.HardwareAddr...)
	}
	msg, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}).Marshal(nil)
	if err != nil {
		r.log.Warn("dhcp: build router advertisement", "err", err)
		return
	}
	dst := &net.IPAddr{IP: allNodes.IP, Zone: r.ifi.Name}
	// The kernel fills in the ICMPv6 checksum on raw ICMPv6 sockets.
	if _, err := r.pc.WriteTo(msg, &ipv6.ControlMessage{HopLimit: 255, IfIndex: r.ifi.Index}, dst); err != nil {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return // a scheduled RA raced Serve's end
		}
		r.log.Warn("dhcp: send router advertisement", "interface", r.ifi.Name, "err", err)
		return
	}
	r.log.Debug("dhcp: sent router advertisement", "interface", r.ifi.Name)
}
