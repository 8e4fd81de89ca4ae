package dhcp

// Integration tests against real DHCP clients, each inside a network
// namespace the test creates and deletes: nothing is ever bound or sent on
// the host's interfaces. The server's namespace holds a bridge br0
// (192.0.2.1/24, where the server listens); each client is one veth pair
// whose bridge end is in it and whose client end (with the client's MAC)
// is in a second namespace, the clients', so that even a client with an
// address talks to the server over the link, never through loopback.
//
// How code runs "inside": busybox udhcpc is started with `ip netns exec`.
// Go code (the server, nclient4, raw sockets) runs on a goroutine that
// locks its OS thread and netns.Set()s it into the namespace; sockets
// belong to the namespace they were created in, so the server's read
// loops and handlers can then run on any thread. The locked goroutine
// never unlocks: when it returns, the Go runtime destroys its thread
// instead of reusing it, so no other goroutine can ever run in the
// namespace by accident (or, worse, a test namespace thread end up back in
// the host's pool). This is more robust than re-executing the test binary
// under `ip netns exec`, which would need a second process, its own Redis
// connection and its results piped back.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/coordinator/store"
)

// requireToolsEnv turns missing root or tools from a skip into a failure.
const requireToolsEnv = "INGOT_REQUIRE_TOOLS"

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv(requireToolsEnv) != "" {
			t.Fatalf(format+" (and %s is set)", append(args, requireToolsEnv)...)
		}
		t.Skipf(format+" (set %s=1 to make this a failure)", append(args, requireToolsEnv)...)
	}
	if os.Geteuid() != 0 {
		skip("network namespace tests need root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			skip("%s not installed", tool)
		}
	}
}

// testNet is a pair of throwaway network namespaces: the server's, with
// a bridge, and the clients'.
type testNet struct {
	name, client string
	ns, cns      netns.NsHandle
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	needTools(t, "ip")
	var b [4]byte
	rand.Read(b[:])
	n := &testNet{name: "ingot-dhcp-" + hex.EncodeToString(b[:])}
	n.client = n.name + "-c"
	for _, name := range []string{n.name, n.client} {
		run(t, "ip", "netns", "add", name)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("delete namespace %s: %v\n%s", name, err, out)
			}
		})
		// No duplicate address detection: link-local addresses are usable
		// at once, so the router solicitation test need not wait ~1 s.
		run(t, "ip", "netns", "exec", name, "sh", "-c",
			"echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad; echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad")
		run(t, "ip", "-n", name, "link", "set", "lo", "up")
	}
	var err error
	if n.ns, err = netns.GetFromName(n.name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.ns.Close() })
	if n.cns, err = netns.GetFromName(n.client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.cns.Close() })
	run(t, "ip", "-n", n.name, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
	run(t, "ip", "-n", n.name, "addr", "add", "192.0.2.1/24", "dev", "br0")
	run(t, "ip", "-n", n.name, "link", "set", "br0", "up")
	return n
}

// addClient adds a veth pair to the bridge; the client end, called dev,
// has mac and lives in the clients' namespace.
func (n *testNet) addClient(t *testing.T, dev string, mac net.HardwareAddr) {
	t.Helper()
	run(t, "ip", "-n", n.name, "link", "add", dev, "address", mac.String(), "type", "veth", "peer", "name", dev+"b")
	run(t, "ip", "-n", n.name, "link", "set", dev+"b", "master", "br0", "up")
	run(t, "ip", "-n", n.name, "link", "set", dev, "netns", n.client)
	run(t, "ip", "-n", n.client, "link", "set", dev, "up")
}

// in runs f on a new OS thread inside namespace ns (see the top of the
// file) and returns its error.
func in(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// serve runs a Server inside the namespace until the returned stop (also
// called at cleanup).
func (n *testNet) serve(t *testing.T, cfg Config, b Booter, l LeaseStore) (stop func()) {
	t.Helper()
	srv, err := New(cfg, b, l)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in(n.ns, func() error { return srv.Serve(ctx) }) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	waitListening(t, n, cfg.Mode)
	return stop
}

// waitListening waits until the server's sockets exist (ss shows them), so
// a client's first DISCOVER is not lost to a race.
func waitListening(t *testing.T, n *testNet, mode Mode) {
	t.Helper()
	want := 1
	if mode == ModeProxy {
		want = 2
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("ip", "netns", "exec", n.name, "cat", "/proc/net/udp").Output()
		got := 0
		for _, port := range []string{":0043 ", ":0FAB "} { // 67, 4011
			if strings.Contains(string(out), port) {
				got++
			}
		}
		if got >= want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server sockets never appeared")
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func nsConfig(t *testing.T, mode Mode) Config {
	cfg := testConfig(mode)
	cfg.Interface = "br0"
	cfg.TFTPServer = netip.Addr{} // default: the server itself
	cfg.Logger = testLogger(t)
	return cfg
}

// udhcpc runs busybox udhcpc on dev inside the namespace and returns the
// environment its script saw on "bound", or an error if it got no lease.
func (n *testNet) udhcpc(t *testing.T, dev string, args ...string) (map[string]string, error) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	script := filepath.Join(dir, "script")
	// Print the lease, configure nothing.
	body := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = bound ] && env > %s\nexit 0\n", out)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := append([]string{"netns", "exec", n.client, "busybox", "udhcpc", "-f", "-q", "-n",
		"-i", dev, "-t", "3", "-T", "1", "-A", "1", "-s", script, "-O", "tftp", "-O", "bootfile"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if msg, err := exec.CommandContext(ctx, "ip", cmd...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("udhcpc: %v\n%s", err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("udhcpc bound but its script wrote nothing: %w", err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

func redisStore(t *testing.T, srv *redisproc.Server) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

const (
	udhcpcBIOS = "PXEClient:Arch:00000:UNDI:002001"
	udhcpcUEFI = "PXEClient:Arch:00007:UNDI:003016"
	userIPXE   = "0x4d:69505845" // option 77, the raw string "iPXE", as QEMU's ROM sends it
)

// Full mode with busybox udhcpc: enrolled MACs get an address from the
// pool and the right boot program for BIOS, UEFI and iPXE; an unknown MAC
// gets nothing; leases survive a restart of the server (Redis).
func TestNetnsFullMode(t *testing.T) {
	needTools(t, "ip", "busybox")
	n := newTestNet(t)
	redis := redisproc.StartForTest(t)
	for dev, mac := range map[string]net.HardwareAddr{"vbios": macBIOS, "vuefi": macUEFI, "vipxe": macIPXE, "vnone": macUnknown} {
		n.addClient(t, dev, mac)
	}
	booter := agents(macBIOS, macUEFI, macIPXE)
	cfg := nsConfig(t, ModeFull)
	cfg.RouterAdvertisements = true
	stop := n.serve(t, cfg, booter, redisStore(t, redis))

	cases := []struct {
		dev, mac, ip, file string
		args               []string
		tftp               bool
	}{
		{"vbios", macBIOS.String(), "192.0.2.10", "undionly.kpxe", []string{"-V", udhcpcBIOS, "-x", "0x5d:0000"}, true},
		{"vuefi", macUEFI.String(), "192.0.2.11", "ipxe.efi", []string{"-V", udhcpcUEFI, "-x", "0x5d:0007"}, true},
		{"vipxe", macIPXE.String(), "192.0.2.12", "http://192.0.2.1:8080/boot/52:54:00:00:00:03.ipxe", []string{"-V", udhcpcBIOS, "-x", "0x5d:0000", "-x", userIPXE}, false},
	}
	for _, c := range cases {
		t.Run(c.dev, func(t *testing.T) {
			env, err := n.udhcpc(t, c.dev, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]string{
				"ip": c.ip, "subnet": "255.255.255.0", "router": "192.0.2.254", "dns": "192.0.2.53",
				"serverid": "192.0.2.1", "lease": "600", "bootfile": c.file, "vendor": "PXEClient", "opt43": "060108ff",
			} {
				if env[k] != want {
					t.Errorf("%s = %q, want %q", k, env[k], want)
				}
			}
			if c.tftp && (env["siaddr"] != "192.0.2.1" || env["tftp"] != "192.0.2.1" || env["boot_file"] != c.file) {
				t.Errorf("TFTP boot: siaddr %q, option 66 %q, file field %q", env["siaddr"], env["tftp"], env["boot_file"])
			}
		})
	}
	t.Run("unknown mac gets nothing", func(t *testing.T) {
		if env, err := n.udhcpc(t, "vnone", "-V", udhcpcBIOS, "-x", "0x5d:0000"); err == nil {
			t.Fatalf("unknown MAC got a lease: %v", env)
		}
	})
	t.Run("router solicitation answered", func(t *testing.T) {
		if err := in(n.cns, func() error { return solicitRouter("vbios") }); err != nil {
			t.Fatal(err)
		}
	})

	// A new server over the same Redis: the leases are still there, so
	// each MAC gets its address again, even asking in another order.
	stop()
	n.serve(t, cfg, booter, redisStore(t, redis))
	for _, c := range []int{2, 0} {
		c := cases[c]
		env, err := n.udhcpc(t, c.dev, c.args...)
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if env["ip"] != c.ip {
			t.Errorf("after restart %s got %s, want %s", c.mac, env["ip"], c.ip)
		}
	}
}

// solicitRouter sends a router solicitation on dev and waits for an RA.
func solicitRouter(dev string) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return err
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	defer c.Close()
	pc := c.IPv6PacketConn()
	if err := pc.SetMulticastInterface(ifi); err != nil {
		return err
	}
	if err := pc.SetMulticastHopLimit(255); err != nil {
		return err
	}
	rs, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterSolicitation, Body: &icmp.RawBody{Data: make([]byte, 4)}}).Marshal(nil)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	c.SetReadDeadline(deadline)
	if _, err := c.WriteTo(rs, &net.IPAddr{IP: net.ParseIP("ff02::2"), Zone: dev}); err != nil {
		return fmt.Errorf("send RS: %w", err)
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no router advertisement: %w", err)
		}
		m, err := icmp.ParseMessage(58, buf[:n])
		if err == nil && m.Type == ipv6.ICMPTypeRouterAdvertisement {
			b := m.Body.(*icmp.RawBody).Data
			if len(b) < 12 || b[1] != 0 || b[2] != 0 || b[3] != 0 {
				return fmt.Errorf("RA flags/lifetime not zero: % x", b)
			}
			return nil
		}
	}
}

// Proxy mode with a raw client (nclient4): the offer carries the boot
// options and no address; a PXE REQUEST to port 4011 gets an ACK; an
// unknown MAC gets nothing.
func TestNetnsProxyMode(t *testing.T) {
	needTools(t, "ip")
	n := newTestNet(t)
	n.addClient(t, "vp0", macUEFI)
	n.addClient(t, "vq0", macUnknown)
	n.serve(t, nsConfig(t, ModeProxy), agents(macUEFI), nil)

	pxe := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorUEFI)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
	}
	var offer *dhcpv4.DHCPv4
	err := in(n.cns, func() error {
		c, err := nclient4.New("vp0", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
		if err != nil {
			return err
		}
		defer c.Close()
		offer, err = c.DiscoverOffer(context.Background(), pxe...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !offer.YourIPAddr.IsUnspecified() {
		t.Errorf("proxy offer has yiaddr %v", offer.YourIPAddr)
	}
	if offer.BootFileNameOption() != "ipxe.efi" || offer.ServerIPAddr.String() != "192.0.2.1" || offer.ClassIdentifier() != "PXEClient" {
		t.Errorf("proxy offer: file %q, siaddr %v, option 60 %q", offer.BootFileNameOption(), offer.ServerIPAddr, offer.ClassIdentifier())
	}
	if offer.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Error("proxy offer has a lease time")
	}

	// The site's server gave vp0 an address; now the PXE REQUEST to 4011.
	run(t, "ip", "-n", n.client, "addr", "add", "192.0.2.50/24", "dev", "vp0")
	var ack *dhcpv4.DHCPv4
	err = in(n.cns, func() error {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("192.0.2.50")})
		if err != nil {
			return err
		}
		defer conn.Close()
		req := pkt(t, dhcpv4.MessageTypeRequest, macUEFI, append(pxe,
			dhcpv4.WithClientIP(net.ParseIP("192.0.2.50")),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("192.0.2.1"))))...)
		buf := make([]byte, 1500)
		for range 3 { // the server may still be answering ARP for us
			if _, err := conn.WriteToUDP(req.ToBytes(), &net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: pxePort}); err != nil {
				return err
			}
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if err != nil {
				return err
			}
			ack, err = dhcpv4.FromBytes(buf[:n])
			return err
		}
		return errors.New("no answer on port 4011")
	})
	if err != nil {
		t.Fatal(err)
	}
	if ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.IsUnspecified() || ack.BootFileNameOption() != "ipxe.efi" {
		t.Errorf("4011 reply: %s", ack.Summary())
	}

	err = in(n.cns, func() error {
		c, err := nclient4.New("vq0", nclient4.WithTimeout(time.Second), nclient4.WithRetry(2))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.DiscoverOffer(context.Background(), pxe...)
		return err
	})
	if err == nil {
		t.Error("unknown MAC got a proxy offer")
	}
}
