// Package dhcp is the coordinator's DHCP service for network boot. It
// answers only machines the boot policy says boot the agent, on one
// interface, either as the link's DHCP server (ModeFull: addresses from a
// pool, leases in Redis) or beside the site's own (ModeProxy: PXE boot
// options only). Legacy BIOS PXE ROMs are sent undionly.kpxe and UEFI ones
// ipxe.efi over TFTP; clients already running iPXE are sent the HTTP URL
// of their iPXE script.
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"github.com/ingot/ingot/coordinator/boot/logonce"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/ingot/ingot/coordinator/boot"
	"github.com/ingot/ingot/coordinator/store"
)

// Booter decides what a MAC boots; *boot.Policy is one. Only MACs it
// answers boot.Agent for get replies.
type Booter interface {
	Decide(ctx context.Context, mac net.HardwareAddr) (boot.Decision, error)
}

// LeaseStore keeps ModeFull's leases where every coordinator (and a
// restarted one) sees them; *store.Store is one.
type LeaseStore interface {
	// AllocateLease leases mac its current address, else want if free,
	// else the pool's lowest free address, for ttl.
	AllocateLease(ctx context.Context, mac net.HardwareAddr, pool store.LeasePool, want netip.Addr, ttl time.Duration) (netip.Addr, error)
	// ReleaseLease ends mac's lease on ip (zero ip: any).
	ReleaseLease(ctx context.Context, mac net.HardwareAddr, ip netip.Addr) error
	// DeclineLease keeps ip from being leased for hold.
	DeclineLease(ctx context.Context, mac net.HardwareAddr, ip netip.Addr, hold time.Duration) error
}

const (
	serverPort = dhcpv4.ServerPort // 67
	clientPort = dhcpv4.ClientPort // 68
	// pxePort is where PXE clients send their REQUEST to a proxyDHCP
	// server (PXE 2.1 §2.2.4).
	pxePort = 4011
	// maxInFlight bounds requests handled at once; beyond it requests are
	// dropped (clients retransmit), so a flood cannot pile up goroutines
	// without bound. It is sized for a rack-scale boot storm (a thousand
	// machines powered on together): a waiting request is a goroutine of a
	// few KiB, and requestTimeout bounds how long it waits.
	maxInFlight = 1024
	// requestTimeout bounds one request's Redis work: a client
	// retransmits after ~4 s, so a later answer is useless.
	requestTimeout = 4 * time.Second
	// logPeriod is how often the same MAC or peer may be logged about.
	logPeriod = time.Minute
)

// Server is the DHCP service on one interface.
type Server struct {
	h *handler
	// noisy limits logs about malformed packets and our own failures.
	noisy *logonce.Limiter
}

// New checks cfg and returns a server. leases may be nil in ModeProxy.
func New(cfg Config, booter Booter, leases LeaseStore) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if booter == nil {
		return nil, errors.New("dhcp: no booter")
	}
	if cfg.Mode == ModeFull && leases == nil {
		return nil, errors.New("dhcp: full mode needs a lease store")
	}
	if cfg.Mode == ModeProxy {
		leases = nil // never touched: proxyDHCP leases nothing
	}
	h := &handler{
		Config: cfg,
		booter: booter,
		leases: leases,
		pool:   store.LeasePool{First: cfg.Pool.Start, Last: cfg.Pool.End},
		quiet:  logonce.New(logPeriod, 4096),
	}
	return &Server{h: h, noisy: logonce.New(logPeriod, 1024)}, nil
}

// Serve answers DHCP on the configured interface until ctx ends, then
// closes its sockets, waits for requests in progress and returns nil. It
// returns an error if a socket cannot be opened or fails.
//
// The sockets are opened in the network namespace of the calling thread.
func (s *Server) Serve(ctx context.Context) error {
	cfg := &s.h.Config
	ports := []int{serverPort}
	if cfg.Mode == ModeProxy {
		ports = append(ports, pxePort)
	}
	var conns []*net.UDPConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for _, port := range ports {
		c, err := server4.NewIPv4UDPConn(cfg.Interface, &net.UDPAddr{Port: port})
		if err != nil {
			closeAll()
			return fmt.Errorf("dhcp: listen on %s port %d: %w", cfg.Interface, port, err)
		}
		conns = append(conns, c)
	}
	var ra *raResponder
	if cfg.RouterAdvertisements {
		var err error
		if ra, err = newRAResponder(cfg.Interface, cfg.Logger); err != nil {
			closeAll()
			return err
		}
	}
	cfg.Logger.Info("dhcp: serving", "interface", cfg.Interface, "mode", cfg.Mode, "server", cfg.ServerIP, "router_advertisements", ra != nil)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(conns)+1)
	var loops, inflight sync.WaitGroup
	sem := make(chan struct{}, maxInFlight)
	for i, c := range conns {
		loops.Go(func() { errc <- s.serveConn(ctx, c, ports[i], sem, &inflight) })
	}
	if ra != nil {
		loops.Go(func() { errc <- ra.serve(ctx) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	closeAll()
	if ra != nil {
		ra.close()
	}
	loops.Wait()
	inflight.Wait()
	return err
}

// serveConn reads requests from c (bound to port) until ctx ends.
func (s *Server) serveConn(ctx context.Context, c *net.UDPConn, port int, sem chan struct{}, inflight *sync.WaitGroup) error {
	log := s.h.Logger
	buf := make([]byte, 65536)
	for {
		n, peer, err := c.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dhcp: read on port %d: %w", port, err)
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			if s.noisy.Allow(peer.IP.String(), time.Now()) {
				log.Debug("dhcp: dropping unparsable packet", "peer", peer, "len", n, "err", err)
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			if s.noisy.Allow("busy", time.Now()) {
				log.Warn("dhcp: too many requests at once; dropping some", "limit", maxInFlight)
			}
			continue
		}
		inflight.Go(func() {
			defer func() { <-sem }()
			s.serveRequest(ctx, c, port, peer, req)
		})
	}
}

// serveRequest handles one request and sends its reply.
func (s *Server) serveRequest(ctx context.Context, c *net.UDPConn, port int, peer *net.UDPAddr, req *dhcpv4.DHCPv4) {
	log := s.h.Logger
	// One odd packet must never take the coordinator down with it: the
	// DHCP code parses whatever anyone on the link sends.
	defer func() {
		if r := recover(); r != nil {
			log.Error("dhcp: panic handling request", "peer", peer, "panic", r, "request", req.Summary())
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.h.handle(ctx, req)
	if err != nil {
		key := peer.IP.String()
		if mac := clientMAC(req); mac != nil {
			key = mac.String()
		}
		switch {
		case !s.noisy.Allow(key, time.Now()):
		case errors.Is(err, errMalformed):
			log.Debug("dhcp: dropping request", "peer", peer, "err", err)
		default:
			log.Warn("dhcp: no answer", "peer", peer, "mac", clientMAC(req), "type", req.MessageType(), "err", err)
		}
		return
	}
	if resp == nil {
		return
	}
	dst := replyAddr(req, resp, peer, port)
	if _, err := c.WriteToUDP(resp.ToBytes(), dst); err != nil && ctx.Err() == nil {
		if s.noisy.Allow("write "+dst.String(), time.Now()) {
			log.Warn("dhcp: send reply", "to", dst, "type", resp.MessageType(), "err", err)
		}
		return
	}
	log.Debug("dhcp: answered", "mac", clientMAC(req), "type", resp.MessageType(), "yiaddr", resp.YourIPAddr, "file", resp.BootFileNameOption(), "to", dst)
}

// replyAddr is where a reply to req goes (RFC 2131 §4.1). Replies to
// clients without an address are broadcast rather than unicast to yiaddr:
// unicasting would need the client's MAC in our ARP table, which an
// unprivileged UDP socket cannot put there, and every client accepts a
// broadcast reply.
func replyAddr(req, resp *dhcpv4.DHCPv4, peer *net.UDPAddr, port int) *net.UDPAddr {
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: clientPort}
	switch {
	case port == pxePort:
		// PXE clients talk to 4011 from their own address: answer there.
		return peer
	case set(req.GatewayIPAddr):
		return &net.UDPAddr{IP: req.GatewayIPAddr.To4(), Port: serverPort}
	case resp.MessageType() == dhcpv4.MessageTypeNak:
		return bcast
	case set(req.ClientIPAddr):
		return &net.UDPAddr{IP: req.ClientIPAddr.To4(), Port: clientPort}
	}
	return bcast
}

// set reports whether ip is an IPv4 address other than 0.0.0.0.
func set(ip net.IP) bool { return ip.To4() != nil && !ip.IsUnspecified() }
