package dhcp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/ingot/ingot/coordinator/boot"
	"github.com/ingot/ingot/coordinator/store"
)

// fakeBooter boots the agent on the MACs in agent, the local disk on those
// in disk, and ignores the rest.
type fakeBooter struct {
	agent, disk map[string]bool
	err         error
}

func (b *fakeBooter) Decide(_ context.Context, mac net.HardwareAddr) (boot.Decision, error) {
	switch {
	case b.err != nil:
		return boot.Decision{}, b.err
	case b.agent[mac.String()]:
		return boot.Decision{Action: boot.Agent, Node: "n-" + mac.String()}, nil
	case b.disk[mac.String()]:
		return boot.Decision{Action: boot.LocalDisk}, nil
	}
	return boot.Decision{}, nil
}

// memLeases is LeaseStore in memory, with the store's rules (no expiry).
type memLeases struct {
	mu    sync.Mutex
	byMAC map[string]netip.Addr
	byIP  map[netip.Addr]string
}

func newMemLeases() *memLeases {
	return &memLeases{byMAC: map[string]netip.Addr{}, byIP: map[netip.Addr]string{}}
}

func (m *memLeases) AllocateLease(_ context.Context, mac net.HardwareAddr, pool store.LeasePool, want netip.Addr, _ time.Duration) (netip.Addr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ip, ok := m.byMAC[mac.String()]; ok && pool.Contains(ip) {
		return ip, nil
	}
	take := func(ip netip.Addr) netip.Addr {
		m.byMAC[mac.String()], m.byIP[ip] = ip, mac.String()
		return ip
	}
	if _, taken := m.byIP[want]; pool.Contains(want) && !taken {
		return take(want), nil
	}
	for ip := pool.First; pool.Contains(ip); ip = ip.Next() {
		if _, taken := m.byIP[ip]; !taken {
			return take(ip), nil
		}
	}
	return netip.Addr{}, store.ErrPoolExhausted
}

func (m *memLeases) ReleaseLease(_ context.Context, mac net.HardwareAddr, ip netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.byMAC[mac.String()]
	if !ok || (ip.IsValid() && ip != cur) {
		return nil
	}
	delete(m.byMAC, mac.String())
	delete(m.byIP, cur)
	return nil
}

func (m *memLeases) DeclineLease(_ context.Context, mac net.HardwareAddr, ip netip.Addr, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner, ok := m.byIP[ip]; ok && owner != mac.String() {
		return nil
	}
	if m.byMAC[mac.String()] == ip {
		delete(m.byMAC, mac.String())
	}
	m.byIP[ip] = "declined"
	return nil
}

var (
	macBIOS    = net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0x01}
	macUEFI    = net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0x02}
	macIPXE    = net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0x03}
	macPlain   = net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0x04}
	macARM     = net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0x05}
	macDisk    = net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0x06}
	macUnknown = net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0x99}

	serverIP = netip.MustParseAddr("192.0.2.1")
	tftpIP   = netip.MustParseAddr("192.0.2.2")
)

func agents(macs ...net.HardwareAddr) *fakeBooter {
	b := &fakeBooter{agent: map[string]bool{}, disk: map[string]bool{macDisk.String(): true}}
	for _, m := range macs {
		b.agent[m.String()] = true
	}
	return b
}

func testConfig(mode Mode) Config {
	return Config{
		Interface:  "test0",
		Mode:       mode,
		ServerIP:   serverIP,
		TFTPServer: tftpIP,
		ScriptURL:  "http://192.0.2.1:8080/boot/{mac}.ipxe",
		Pool: Pool{
			Start: netip.MustParseAddr("192.0.2.10"), End: netip.MustParseAddr("192.0.2.12"),
			PrefixLen: 24, Router: netip.MustParseAddr("192.0.2.254"),
			DNS:       []netip.Addr{netip.MustParseAddr("192.0.2.53")},
			LeaseTime: 10 * time.Minute,
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newTestHandler(t testing.TB, cfg Config, b Booter, l LeaseStore) *handler {
	t.Helper()
	s, err := New(cfg, b, l)
	if err != nil {
		t.Fatal(err)
	}
	return s.h
}

// Client shapes, as captured from QEMU's iPXE ROM, a legacy PXE ROM, a
// UEFI PXE client and Linux's DHCP clients.
const (
	vendorBIOS = "PXEClient:Arch:00000:UNDI:002001"
	vendorUEFI = "PXEClient:Arch:00007:UNDI:003016"
)

// iPXE's option 175: its feature flags (HTTP, DNS, bzImage, ...).
var ipxeFeatures = []byte{0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x00, 0x12, 0x01, 0x01, 0x11, 0x01, 0x01, 0x13, 0x01, 0x01, 0x18, 0x01, 0x01, 0x19, 0x01, 0x01, 0x23, 0x01, 0x01}

func guid() []byte { return append([]byte{0}, make([]byte, 16)...) }

func pkt(t testing.TB, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(mt), dhcpv4.WithBroadcast(true),
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{1, 2, 3, 4}),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func qemuIPXE() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorBIOS)),
		dhcpv4.WithUserClass("iPXE", false),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithGeneric(optIPXEEncap, ipxeFeatures),
	}
}

func legacyPXE() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorBIOS)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid()),
	}
}

func uefiPXE(arch iana.Arch) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorUEFI)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
	}
}

func requesting(ip string, server netip.Addr) []dhcpv4.Modifier {
	m := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(ip)))}
	if server.IsValid() {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(server.AsSlice()))))
	}
	return m
}

// want describes the reply expected; a nil *want means no reply.
type want struct {
	mt     dhcpv4.MessageType
	yiaddr string // "" : none (0.0.0.0)
	file   string // option 67 and the file field; "": none
	tftp   bool   // siaddr and option 66 name the TFTP server
	pxe    bool   // option 60 PXEClient and option 43
}

func check(t *testing.T, resp *dhcpv4.DHCPv4, w *want) {
	t.Helper()
	if w == nil {
		if resp != nil {
			t.Fatalf("got a reply, want none:\n%s", resp.Summary())
		}
		return
	}
	if resp == nil {
		t.Fatal("no reply")
	}
	if got := resp.MessageType(); got != w.mt {
		t.Errorf("type %v, want %v", got, w.mt)
	}
	if resp.OpCode != dhcpv4.OpcodeBootReply {
		t.Errorf("op %v", resp.OpCode)
	}
	if sid := resp.ServerIdentifier(); !sid.Equal(net.IP(serverIP.AsSlice())) {
		t.Errorf("server identifier %v", sid)
	}
	yi := "0.0.0.0"
	if w.yiaddr != "" {
		yi = w.yiaddr
	}
	if got := resp.YourIPAddr.String(); got != yi {
		t.Errorf("yiaddr %s, want %s", got, yi)
	}
	if w.yiaddr != "" {
		if m := resp.SubnetMask(); net.IP(m).String() != "255.255.255.0" {
			t.Errorf("netmask %v", net.IP(m))
		}
		if r := resp.Router(); len(r) != 1 || r[0].String() != "192.0.2.254" {
			t.Errorf("router %v", r)
		}
		if d := resp.DNS(); len(d) != 1 || d[0].String() != "192.0.2.53" {
			t.Errorf("dns %v", d)
		}
		if lt := resp.IPAddressLeaseTime(0); lt != 10*time.Minute {
			t.Errorf("lease time %v", lt)
		}
	} else if resp.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Error("lease time in a reply without an address")
	}
	if got := resp.BootFileNameOption(); got != w.file {
		t.Errorf("option 67 %q, want %q", got, w.file)
	}
	if resp.BootFileName != w.file {
		t.Errorf("file field %q, want %q", resp.BootFileName, w.file)
	}
	if w.tftp {
		if resp.ServerIPAddr.String() != tftpIP.String() || resp.TFTPServerName() != tftpIP.String() {
			t.Errorf("next-server %v / option 66 %q, want %s", resp.ServerIPAddr, resp.TFTPServerName(), tftpIP)
		}
	} else if resp.TFTPServerName() != "" {
		t.Errorf("option 66 %q in a reply without TFTP", resp.TFTPServerName())
	}
	if got := resp.ClassIdentifier() == "PXEClient"; got != w.pxe {
		t.Errorf("option 60 %q, want PXEClient: %v", resp.ClassIdentifier(), w.pxe)
	}
	if got := resp.Options.Has(dhcpv4.OptionVendorSpecificInformation); got != w.pxe {
		t.Errorf("option 43 present %v, want %v", got, w.pxe)
	}
}

func TestHandleBootTargets(t *testing.T) {
	scriptIPXE := "http://192.0.2.1:8080/boot/52:54:00:00:00:03.ipxe"
	tests := []struct {
		name string
		mode Mode
		cfg  func(*Config)
		req  *dhcpv4.DHCPv4
		want *want
	}{
		{"bios pxe", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macBIOS, legacyPXE()...),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: "undionly.kpxe", tftp: true, pxe: true}},
		{"uefi x64 pxe", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macUEFI, uefiPXE(iana.EFI_X86_64)...),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: "ipxe.efi", tftp: true, pxe: true}},
		{"uefi bc configured file", ModeFull, func(c *Config) { c.BootFileUEFI = "snponly.efi" }, pkt(t, dhcpv4.MessageTypeDiscover, macUEFI, uefiPXE(iana.EFI_BC)...),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: "snponly.efi", tftp: true, pxe: true}},
		{"arch only in option 60", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macUEFI, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorUEFI))),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: "ipxe.efi", tftp: true, pxe: true}},
		{"qemu ipxe raw user class", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macIPXE, qemuIPXE()...),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: scriptIPXE, pxe: true}},
		{"ipxe rfc3004 user class", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macIPXE, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")), dhcpv4.WithUserClass("iPXE", true)),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: scriptIPXE, pxe: true}},
		{"chained undionly plain PXEClient", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macIPXE, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")), dhcpv4.WithUserClass("iPXE", false), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: scriptIPXE, pxe: true}},
		{"long script url fits option 67 only", ModeFull, func(c *Config) { c.ScriptURL = "http://192.0.2.1/" + string(make([]byte, 0)) + longPath + "/{mac}" }, pkt(t, dhcpv4.MessageTypeDiscover, macIPXE, qemuIPXE()...),
			nil /* checked below */},
		{"plain client gets only an address", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macPlain),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10"}},
		{"arm64 without a file: address only", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macARM, uefiPXE(iana.EFI_ARM64)...),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", pxe: false}},
		{"arm64 with a file", ModeFull, func(c *Config) { c.BootFileARM64 = "ipxe-arm64.efi" }, pkt(t, dhcpv4.MessageTypeDiscover, macARM, uefiPXE(iana.EFI_ARM64)...),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: "ipxe-arm64.efi", tftp: true, pxe: true}},
		{"unknown mac", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macUnknown, legacyPXE()...), nil},
		{"local disk node", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, macDisk, qemuIPXE()...), nil},
		{"mac from option 61", ModeFull, nil, pkt(t, dhcpv4.MessageTypeDiscover, nil, append(legacyPXE(), dhcpv4.WithHwAddr(nil), dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, macBIOS...))))...),
			&want{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", file: "undionly.kpxe", tftp: true, pxe: true}},

		{"proxy bios", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeDiscover, macBIOS, legacyPXE()...),
			&want{mt: dhcpv4.MessageTypeOffer, file: "undionly.kpxe", tftp: true, pxe: true}},
		{"proxy ipxe", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeDiscover, macIPXE, qemuIPXE()...),
			&want{mt: dhcpv4.MessageTypeOffer, file: scriptIPXE, pxe: true}},
		{"proxy plain client", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeDiscover, macPlain), nil},
		{"proxy arm64 without a file", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeDiscover, macARM, uefiPXE(iana.EFI_ARM64)...), nil},
		{"proxy unknown mac", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeDiscover, macUnknown, qemuIPXE()...), nil},
		{"proxy request to site server", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeRequest, macBIOS, append(legacyPXE(), requesting("192.0.2.77", netip.MustParseAddr("192.0.2.200"))...)...), nil},
		{"proxy request for an address, site server shares our address", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeRequest, macIPXE, append(qemuIPXE(), requesting("192.0.2.77", serverIP)...)...), nil},
		{"proxy request without server id", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeRequest, macBIOS, append(legacyPXE(), requesting("192.0.2.77", netip.Addr{})...)...), nil},
		{"proxy request on 4011", ModeProxy, nil, pkt(t, dhcpv4.MessageTypeRequest, macUEFI, append(uefiPXE(iana.EFI_X86_64), dhcpv4.WithClientIP(net.ParseIP("192.0.2.77")), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(serverIP.AsSlice()))))...),
			&want{mt: dhcpv4.MessageTypeAck, file: "ipxe.efi", tftp: true, pxe: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.mode)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			h := newTestHandler(t, cfg, agents(macBIOS, macUEFI, macIPXE, macPlain, macARM), newMemLeases())
			resp, err := h.handle(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil && tt.name == "long script url fits option 67 only" {
				if resp == nil || resp.BootFileName != "" || len(resp.BootFileNameOption()) < 128 {
					t.Fatalf("long URL: file field %q, option 67 %q", resp.BootFileName, resp.BootFileNameOption())
				}
				return
			}
			check(t, resp, tt.want)
			if resp != nil {
				if resp.TransactionID != tt.req.TransactionID || resp.ClientHWAddr.String() != tt.req.ClientHWAddr.String() {
					t.Errorf("xid/chaddr not copied")
				}
				// Echo the PXE machine identifier, as PXE asks.
				if tt.req.Options.Has(dhcpv4.OptionClientMachineIdentifier) && tt.want.pxe && !resp.Options.Has(dhcpv4.OptionClientMachineIdentifier) {
					t.Error("option 97 not echoed")
				}
				// The reply survives the wire.
				if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
					t.Errorf("reply does not parse: %v", err)
				}
			}
		})
	}
}

var longPath = string(func() []byte {
	b := make([]byte, 130)
	for i := range b {
		b[i] = 'x'
	}
	return b
}())

// Full mode's address life cycle: offers from the pool, reuse, ACK, NAK,
// release and decline.
func TestHandleFullLeases(t *testing.T) {
	ctx := context.Background()
	leases := newMemLeases()
	h := newTestHandler(t, testConfig(ModeFull), agents(macBIOS, macUEFI, macIPXE, macPlain), leases)
	do := func(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		t.Helper()
		resp, err := h.handle(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	offer := func(mac net.HardwareAddr) string {
		t.Helper()
		r := do(pkt(t, dhcpv4.MessageTypeDiscover, mac, legacyPXE()...))
		if r == nil {
			t.Fatal("no offer")
		}
		return r.YourIPAddr.String()
	}
	if a, b := offer(macBIOS), offer(macBIOS); a != "192.0.2.10" || b != a {
		t.Fatalf("offers %s, %s: want 192.0.2.10 twice", a, b)
	}
	if got := offer(macUEFI); got != "192.0.2.11" {
		t.Fatalf("second MAC offered %s, want 192.0.2.11", got)
	}
	// SELECTING: the offered address, naming us.
	check(t, do(pkt(t, dhcpv4.MessageTypeRequest, macBIOS, append(legacyPXE(), requesting("192.0.2.10", serverIP)...)...)),
		&want{mt: dhcpv4.MessageTypeAck, yiaddr: "192.0.2.10", file: "undionly.kpxe", tftp: true, pxe: true})
	// INIT-REBOOT with someone else's address: NAK.
	nak := do(pkt(t, dhcpv4.MessageTypeRequest, macBIOS, requesting("192.0.2.11", netip.Addr{})...))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak || !nak.YourIPAddr.IsUnspecified() || !nak.IsBroadcast() {
		t.Fatalf("foreign address: got %v, want a broadcast NAK", nak)
	}
	// An address not on this network: NAK.
	if r := do(pkt(t, dhcpv4.MessageTypeRequest, macBIOS, requesting("198.51.100.7", netip.Addr{})...)); r == nil || r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("off-network address: got %v, want NAK", r)
	}
	// RENEWING: ciaddr, no option 50.
	check(t, do(pkt(t, dhcpv4.MessageTypeRequest, macBIOS, append(legacyPXE(), dhcpv4.WithClientIP(net.ParseIP("192.0.2.10")))...)),
		&want{mt: dhcpv4.MessageTypeAck, yiaddr: "192.0.2.10", file: "undionly.kpxe", tftp: true, pxe: true})
	// The client took another server's offer: silence, and ours is freed.
	if r := do(pkt(t, dhcpv4.MessageTypeRequest, macUEFI, requesting("198.51.100.9", netip.MustParseAddr("198.51.100.1"))...)); r != nil {
		t.Fatalf("request to another server answered: %v", r.Summary())
	}
	if _, ok := leases.byMAC[macUEFI.String()]; ok {
		t.Error("offer not freed after the client chose another server")
	}
	// RELEASE frees the lease, with no reply.
	rel := pkt(t, dhcpv4.MessageTypeRelease, macBIOS, dhcpv4.WithClientIP(net.ParseIP("192.0.2.10")), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(serverIP.AsSlice()))))
	if r := do(rel); r != nil {
		t.Fatal("RELEASE answered")
	}
	if _, ok := leases.byIP[netip.MustParseAddr("192.0.2.10")]; ok {
		t.Fatal("RELEASE did not free the address")
	}
	// DECLINE keeps the address out of the pool.
	if got := offer(macPlain); got != "192.0.2.10" {
		t.Fatalf("offered %s, want the freed 192.0.2.10", got)
	}
	dec := pkt(t, dhcpv4.MessageTypeDecline, macPlain, requesting("192.0.2.10", serverIP)...)
	if r := do(dec); r != nil {
		t.Fatal("DECLINE answered")
	}
	if got := offer(macPlain); got != "192.0.2.11" {
		t.Fatalf("after DECLINE offered %s, want 192.0.2.11", got)
	}
	// Full pool: no offer, and an error that says so.
	offer(macIPXE)
	_, err := h.handle(ctx, pkt(t, dhcpv4.MessageTypeDiscover, macUEFI))
	if !errors.Is(err, store.ErrPoolExhausted) {
		t.Fatalf("full pool: err %v", err)
	}
}

func TestHandleDrops(t *testing.T) {
	h := newTestHandler(t, testConfig(ModeFull), agents(macBIOS), newMemLeases())
	reply := pkt(t, dhcpv4.MessageTypeOffer, macBIOS)
	reply.OpCode = dhcpv4.OpcodeBootReply
	bootp := pkt(t, dhcpv4.MessageTypeDiscover, macBIOS, dhcpv4.WithoutOption(dhcpv4.OptionDHCPMessageType))
	nomac := pkt(t, dhcpv4.MessageTypeDiscover, nil)
	for name, req := range map[string]*dhcpv4.DHCPv4{"reply": reply, "bootp": bootp, "no mac": nomac} {
		resp, err := h.handle(context.Background(), req)
		if resp != nil || !errors.Is(err, errMalformed) {
			t.Errorf("%s: got %v, %v; want errMalformed", name, resp, err)
		}
	}
	h.booter = &fakeBooter{err: errors.New("redis down")}
	if resp, err := h.handle(context.Background(), pkt(t, dhcpv4.MessageTypeDiscover, macBIOS)); resp != nil || err == nil || errors.Is(err, errMalformed) {
		t.Errorf("booter failure: got %v, %v", resp, err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"no interface":    func(c *Config) { c.Interface = "" },
		"bad mode":        func(c *Config) { c.Mode = "relay" },
		"url without mac": func(c *Config) { c.ScriptURL = "http://x/boot.ipxe" },
		"pool has server": func(c *Config) { c.Pool.Start = serverIP },
		"pool off subnet": func(c *Config) { c.Pool.End = netip.MustParseAddr("198.51.100.9") },
		"pool has router": func(c *Config) { c.Pool.Router = netip.MustParseAddr("192.0.2.11") },
		"inverted pool":   func(c *Config) { c.Pool.Start, c.Pool.End = c.Pool.End, c.Pool.Start },
		"no prefix":       func(c *Config) { c.Pool.PrefixLen = 0 },
		"v6 server":       func(c *Config) { c.ServerIP = netip.MustParseAddr("2001:db8::1") },
		"tiny lease time": func(c *Config) { c.Pool.LeaseTime = time.Second },
		"v6 dns":          func(c *Config) { c.Pool.DNS = []netip.Addr{netip.MustParseAddr("2001:db8::53")} },
	} {
		cfg := testConfig(ModeFull)
		mod(&cfg)
		if _, err := New(cfg, agents(), newMemLeases()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(testConfig(ModeFull), agents(), nil); err == nil {
		t.Error("full mode without a lease store accepted")
	}
	cfg := testConfig(ModeProxy)
	cfg.Pool = Pool{}
	if _, err := New(cfg, agents(), nil); err != nil {
		t.Errorf("proxy mode without pool or leases: %v", err)
	}
}

func TestDetect(t *testing.T) {
	for _, tt := range []struct {
		uc   []byte
		ipxe bool
	}{
		{[]byte("iPXE"), true},
		{[]byte{4, 'i', 'P', 'X', 'E'}, true},
		{[]byte{3, 'f', 'o', 'o', 4, 'i', 'P', 'X', 'E'}, true},
		{[]byte("ipxe"), false},
		{[]byte{9, 'i', 'P', 'X', 'E'}, false},
		{[]byte{0}, false},
		{nil, false},
	} {
		if got := isIPXE(tt.uc); got != tt.ipxe {
			t.Errorf("isIPXE(%q) = %v", tt.uc, got)
		}
	}
	for _, tt := range []struct {
		opt93  []byte
		vendor string
		arch   iana.Arch
		ok     bool
	}{
		{[]byte{0, 7}, "", iana.EFI_X86_64, true},
		{[]byte{0, 11, 0, 7}, "", iana.EFI_ARM64, true},
		{[]byte{0}, vendorUEFI, iana.EFI_X86_64, true},
		{nil, "PXEClient:Arch:00009:UNDI:003016", iana.EFI_BC, true},
		{nil, "PXEClient:Arch:zz", 0, false},
		{nil, "PXEClient", 0, false},
	} {
		arch, ok := clientArch(tt.opt93, tt.vendor)
		if arch != tt.arch || ok != tt.ok {
			t.Errorf("clientArch(%v, %q) = %v, %v; want %v, %v", tt.opt93, tt.vendor, arch, ok, tt.arch, tt.ok)
		}
	}
}

func TestReplyAddr(t *testing.T) {
	offer := pkt(t, dhcpv4.MessageTypeOffer, macBIOS)
	nak := pkt(t, dhcpv4.MessageTypeNak, macBIOS)
	peer := &net.UDPAddr{IP: net.ParseIP("192.0.2.77"), Port: 4011}
	for _, tt := range []struct {
		name string
		req  *dhcpv4.DHCPv4
		resp *dhcpv4.DHCPv4
		port int
		want string
	}{
		{"new client", pkt(t, dhcpv4.MessageTypeDiscover, macBIOS), offer, 67, "255.255.255.255:68"},
		{"renewing", pkt(t, dhcpv4.MessageTypeRequest, macBIOS, dhcpv4.WithClientIP(net.ParseIP("192.0.2.10"))), offer, 67, "192.0.2.10:68"},
		{"relayed", pkt(t, dhcpv4.MessageTypeDiscover, macBIOS, dhcpv4.WithRelay(net.ParseIP("198.51.100.1"))), offer, 67, "198.51.100.1:67"},
		{"nak", pkt(t, dhcpv4.MessageTypeRequest, macBIOS, dhcpv4.WithClientIP(net.ParseIP("192.0.2.10"))), nak, 67, "255.255.255.255:68"},
		{"pxe port", pkt(t, dhcpv4.MessageTypeRequest, macBIOS, dhcpv4.WithClientIP(net.ParseIP("192.0.2.77"))), offer, 4011, "192.0.2.77:4011"},
	} {
		if got := replyAddr(tt.req, tt.resp, peer, tt.port).String(); got != tt.want {
			t.Errorf("%s: reply to %s, want %s", tt.name, got, tt.want)
		}
	}
}
