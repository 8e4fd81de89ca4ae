package bootstorm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
)

// dhcpLink is the clients' side of DHCP: one UDP socket on port 68 of
// the clients' interface, shared by every simulated machine, and a
// demultiplexer that hands each reply to the client whose MAC (chaddr)
// it names. The server broadcasts its replies to clients without an
// address, so all of them arrive on the one socket.
//
// One socket rather than an nclient4 raw socket per client: a raw
// ETH_P_IP socket gets a copy of every IP packet on the interface,
// including the 64 MiB downloads, and 50 of them would cost more CPU
// than the servers under test. The server sees the same DHCP packets
// either way, except that they come from the interface's address instead
// of 0.0.0.0, which it does not look at.
type dhcpLink struct {
	conn *net.UDPConn
	mu   sync.Mutex
	subs map[string]chan []byte // by string(MAC)
	done chan struct{}
}

func newDHCPLink(e *env) (*dhcpLink, error) {
	var conn *net.UDPConn
	err := e.cli.Do(func() (err error) {
		conn, err = server4.NewIPv4UDPConn(clientDev, &net.UDPAddr{Port: dhcpv4.ClientPort})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client socket: %w", err)
	}
	conn.SetReadBuffer(4 << 20)
	l := &dhcpLink{conn: conn, subs: map[string]chan []byte{}, done: make(chan struct{})}
	go l.demux()
	return l, nil
}

func (l *dhcpLink) Close() error {
	err := l.conn.Close()
	<-l.done
	return err
}

// chaddr is where a DHCP packet's client hardware address is.
const chaddrOff, chaddrEnd = 28, 34

func (l *dhcpLink) demux() {
	defer close(l.done)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := l.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n < chaddrEnd {
			continue
		}
		l.mu.Lock()
		ch := l.subs[string(buf[chaddrOff:chaddrEnd])]
		l.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case ch <- append([]byte(nil), buf[:n]...):
		default: // the client is not reading: drop, as a NIC would
		}
	}
}

// pxeClient is one simulated machine's DHCP client: nclient4 over the
// shared socket, answered only with replies for its MAC.
type pxeClient struct {
	*nclient4.Client
	mac net.HardwareAddr
}

// client returns mac's DHCP client; Close it when done.
func (l *dhcpLink) client(mac net.HardwareAddr) (*pxeClient, error) {
	pc := &macConn{link: l, mac: mac, in: make(chan []byte, 16), closed: make(chan struct{})}
	l.mu.Lock()
	l.subs[string(mac)] = pc.in
	l.mu.Unlock()
	// iPXE's first retransmission is after 1 s, doubling from there.
	c, err := nclient4.NewWithConn(pc, mac, nclient4.WithTimeout(time.Second), nclient4.WithRetry(4))
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &pxeClient{Client: c, mac: mac}, nil
}

// ipxeBIOS is what iPXE (undionly.kpxe on a BIOS machine) sends: the PXE
// vendor class, architecture 0 and user class "iPXE".
var ipxeBIOS = []dhcpv4.Modifier{
	dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
	dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
	dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))),
}

// dora runs DISCOVER → OFFER → REQUEST → ACK and returns the lease and
// how long the offer took (DISCOVER sent to OFFER read).
func (c *pxeClient) dora(ctx context.Context) (*nclient4.Lease, time.Duration, error) {
	t0 := time.Now()
	offer, err := c.DiscoverOffer(ctx, ipxeBIOS...)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", c.mac, err)
	}
	offerLat := time.Since(t0)
	lease, err := c.RequestFromOffer(ctx, offer, ipxeBIOS...)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: request: %w", c.mac, err)
	}
	return lease, offerLat, nil
}

// macConn is a net.PacketConn for one MAC over the shared socket.
type macConn struct {
	link      *dhcpLink
	mac       net.HardwareAddr
	in        chan []byte
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *macConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case b := <-c.in:
		return copy(p, b), &net.UDPAddr{IP: net.ParseIP(serverIP), Port: dhcpv4.ServerPort}, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *macConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	return c.link.conn.WriteTo(p, addr)
}

func (c *macConn) Close() error {
	c.closeOnce.Do(func() {
		c.link.mu.Lock()
		delete(c.link.subs, string(c.mac))
		c.link.mu.Unlock()
		close(c.closed)
	})
	return nil
}

func (c *macConn) LocalAddr() net.Addr { return c.link.conn.LocalAddr() }

// Deadlines are not supported (nclient4 does not use them).
func (c *macConn) SetDeadline(time.Time) error      { return errNoDeadline }
func (c *macConn) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (c *macConn) SetWriteDeadline(time.Time) error { return errNoDeadline }

var errNoDeadline = errors.New("macConn: deadlines not supported")

var _ net.PacketConn = (*macConn)(nil)
