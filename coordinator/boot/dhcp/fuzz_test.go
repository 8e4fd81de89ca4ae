package dhcp

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/ingot/ingot/coordinator/boot"
)

// everyone boots the agent, so fuzzing reaches every reply path.
type everyone struct{}

func (everyone) Decide(context.Context, net.HardwareAddr) (boot.Decision, error) {
	return boot.Decision{Action: boot.Agent}, nil
}

// fuzzSeeds are the shapes of real clients' packets (see handler_test.go)
// and some garbage; testdata/fuzz/FuzzHandle holds them too, written by
// INGOT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds.
func fuzzSeeds(t testing.TB) map[string][]byte {
	ipxe := pkt(t, dhcpv4.MessageTypeDiscover, macIPXE, append(qemuIPXE(),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer, dhcpv4.OptionBootfileName),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1472)))...)
	trunc := ipxe.ToBytes()[:100]
	return map[string][]byte{
		"qemu-ipxe-discover":  ipxe.ToBytes(),
		"legacy-pxe-discover": pkt(t, dhcpv4.MessageTypeDiscover, macBIOS, legacyPXE()...).ToBytes(),
		"uefi-pxe-discover":   pkt(t, dhcpv4.MessageTypeDiscover, macUEFI, uefiPXE(iana.EFI_X86_64)...).ToBytes(),
		"request-selecting":   pkt(t, dhcpv4.MessageTypeRequest, macBIOS, append(legacyPXE(), requesting("192.0.2.10", serverIP)...)...).ToBytes(),
		"request-pxe-4011":    pkt(t, dhcpv4.MessageTypeRequest, macUEFI, append(uefiPXE(iana.EFI_X86_64), dhcpv4.WithClientIP(net.ParseIP("192.0.2.77")), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(serverIP.AsSlice()))))...).ToBytes(),
		"release":             pkt(t, dhcpv4.MessageTypeRelease, macBIOS, dhcpv4.WithClientIP(net.ParseIP("192.0.2.10")), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(serverIP.AsSlice())))).ToBytes(),
		"decline":             pkt(t, dhcpv4.MessageTypeDecline, macPlain, requesting("192.0.2.10", serverIP)...).ToBytes(),
		"truncated":           trunc,
		"garbage":             []byte("\x01\x01\x06\x00garbage that is not a DHCP packet at all"),
		"empty":               {},
	}
}

// FuzzHandle feeds raw packets through the parser and the handler in both
// modes: nothing may panic, and every reply must encode and parse again.
func FuzzHandle(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzHandle (see fuzzSeeds).
	full := newTestHandler(f, testConfig(ModeFull), everyone{}, newMemLeases())
	cfg := testConfig(ModeProxy)
	cfg.BootFileARM64 = "ipxe-arm64.efi"
	proxy := newTestHandler(f, cfg, everyone{}, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := dhcpv4.FromBytes(raw)
		if err != nil {
			return
		}
		for _, h := range []*handler{full, proxy} {
			resp, err := h.handle(context.Background(), req)
			if err != nil || resp == nil {
				continue
			}
			if resp.OpCode != dhcpv4.OpcodeBootReply {
				t.Fatalf("reply with op %v", resp.OpCode)
			}
			if h.Mode == ModeProxy && !resp.YourIPAddr.IsUnspecified() {
				t.Fatalf("proxy reply with yiaddr %v", resp.YourIPAddr)
			}
			if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
				t.Fatalf("reply does not parse: %v\n%s", err, resp.Summary())
			}
			_ = replyAddr(req, resp, &net.UDPAddr{IP: net.IPv4zero, Port: clientPort}, serverPort)
		}
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("INGOT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set INGOT_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzHandle")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHandle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fuzzSeeds(t) {
		if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
