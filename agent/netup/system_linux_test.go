package netup

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

func TestLeaseFrom(t *testing.T) {
	server := net.IPv4(192, 0, 2, 1)
	for _, tt := range []struct {
		name    string
		yiaddr  net.IP
		opts    []dhcpv4.Option
		want    Lease
		wantErr string
	}{
		{name: "everything",
			yiaddr: net.IPv4(192, 0, 2, 100),
			opts: []dhcpv4.Option{
				dhcpv4.OptSubnetMask(net.CIDRMask(25, 32)), dhcpv4.OptRouter(server),
				dhcpv4.OptDNS(net.IPv4(192, 0, 2, 53), net.IPv4(192, 0, 2, 54)),
				dhcpv4.OptIPAddressLeaseTime(time.Hour), dhcpv4.OptRenewTimeValue(20 * time.Minute),
				dhcpv4.OptServerIdentifier(server)},
			want: Lease{Addr: netip.MustParsePrefix("192.0.2.100/25"), Router: netip.MustParseAddr("192.0.2.1"),
				DNS:    []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")},
				Server: netip.MustParseAddr("192.0.2.1"), Duration: time.Hour, Renew: 20 * time.Minute}},
		{name: "no mask: classful; no T1: half the lease; no router",
			yiaddr: net.IPv4(192, 0, 2, 100),
			opts:   []dhcpv4.Option{dhcpv4.OptIPAddressLeaseTime(time.Hour)},
			want:   Lease{Addr: netip.MustParsePrefix("192.0.2.100/24"), Duration: time.Hour, Renew: 30 * time.Minute}},
		{name: "no lease time: infinite",
			yiaddr: net.IPv4(192, 0, 2, 100),
			opts:   []dhcpv4.Option{dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))},
			want:   Lease{Addr: netip.MustParsePrefix("192.0.2.100/24")}},
		{name: "a T1 past the lease's end is ignored",
			yiaddr: net.IPv4(192, 0, 2, 100),
			opts: []dhcpv4.Option{dhcpv4.OptSubnetMask(net.CIDRMask(24, 32)),
				dhcpv4.OptIPAddressLeaseTime(time.Hour), dhcpv4.OptRenewTimeValue(2 * time.Hour)},
			want: Lease{Addr: netip.MustParsePrefix("192.0.2.100/24"), Duration: time.Hour, Renew: 30 * time.Minute}},
		{name: "no address",
			yiaddr: net.IPv4zero, wantErr: "the server gave no address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mods := []dhcpv4.Modifier{dhcpv4.WithYourIP(tt.yiaddr), dhcpv4.WithMessageType(dhcpv4.MessageTypeAck)}
			for _, o := range tt.opts {
				mods = append(mods, dhcpv4.WithOption(o))
			}
			ack, err := dhcpv4.New(mods...)
			if err != nil {
				t.Fatal(err)
			}
			acquired := time.Now()
			got, err := leaseFrom(eth0, &nclient4.Lease{ACK: ack, CreationTime: acquired})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.NIC, tt.want.Acquired = eth0, acquired
			if got.raw == nil {
				t.Error("the raw lease is not kept for renewals")
			}
			got.raw = nil
			if got.NIC.Name != tt.want.NIC.Name || got.Addr != tt.want.Addr || got.Router != tt.want.Router ||
				!slices.Equal(got.DNS, tt.want.DNS) || got.Server != tt.want.Server ||
				got.Duration != tt.want.Duration || got.Renew != tt.want.Renew || !got.Acquired.Equal(acquired) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
