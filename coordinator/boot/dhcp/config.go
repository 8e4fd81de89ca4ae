package dhcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/ingot/ingot/coordinator/store"
)

// Mode is how the server shares the link with other DHCP servers.
type Mode string

const (
	// ModeFull: Ingot is the link's DHCP server. It leases addresses from
	// Config.Pool and adds the boot options.
	ModeFull Mode = "full"
	// ModeProxy: the site's DHCP server hands out addresses; Ingot answers
	// PXE clients with the boot options only (proxyDHCP, PXE 2.1 §2.2), on
	// port 67 and on the PXE port 4011.
	ModeProxy Mode = "proxy"
)

// Defaults for unset Config fields.
const (
	DefaultBootFileBIOS = "undionly.kpxe"
	DefaultBootFileUEFI = "ipxe.efi"
	DefaultLeaseTime    = time.Hour
	// macPlaceholder is what ScriptURL's template has in place of the MAC.
	macPlaceholder = "{mac}"
)

// Config configures a Server. The zero values of the optional fields mean
// the defaults given.
type Config struct {
	// Interface is the one network interface the server listens and
	// answers on (sockets are bound to it with SO_BINDTODEVICE). Required.
	Interface string
	// Mode is ModeFull or ModeProxy. Required.
	Mode Mode
	// ServerIP is this server's IPv4 address on Interface: the server
	// identifier (option 54) of every reply, and the default TFTPServer.
	// Default: the first IPv4 address of Interface.
	ServerIP netip.Addr
	// TFTPServer is the next-server (siaddr and option 66) that firmware
	// PXE clients fetch BootFileBIOS/BootFileUEFI from. Default ServerIP.
	TFTPServer netip.Addr
	// BootFileBIOS is what a legacy BIOS PXE ROM (option 93 = 0) loads
	// over TFTP. Default "undionly.kpxe".
	BootFileBIOS string
	// BootFileUEFI is what an x86 UEFI PXE client (option 93 = 6, 7 or 9)
	// loads over TFTP, e.g. "snponly.efi". Default "ipxe.efi".
	BootFileUEFI string
	// BootFileARM64 is what an arm64 UEFI client (option 93 = 11) loads.
	// Empty: such clients are not answered (an x86 binary cannot boot
	// them).
	BootFileARM64 string
	// ScriptURL is the URL a client that already runs iPXE is told to
	// boot: its iPXE script. "{mac}" is replaced with the client's MAC as
	// 52:54:00:12:34:56. Default "http://<ServerIP>/boot/{mac}.ipxe".
	ScriptURL string
	// Pool is the address pool, used in ModeFull only.
	Pool Pool
	// RouterAdvertisements answers IPv6 router solicitations on Interface
	// with a router advertisement that offers nothing (no prefix, router
	// lifetime 0). iPXE waits ~16 s for an RA on links without IPv6
	// routers; the answer ends that wait. Leave it off on links that have
	// IPv6 routers of their own.
	RouterAdvertisements bool
	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
}

// Pool is the range of addresses ModeFull leases and what it tells clients
// about their network.
type Pool struct {
	// Start and End are the first and last address leased (inclusive).
	Start, End netip.Addr
	// PrefixLen is the subnet's prefix length (option 1), e.g. 24.
	PrefixLen int
	// Router is the default gateway (option 3); unset: none.
	Router netip.Addr
	// DNS are the name servers (option 6).
	DNS []netip.Addr
	// LeaseTime is how long a lease lasts (option 51). Default 1h.
	LeaseTime time.Duration
}

// withDefaults returns cfg with defaults filled in, or why it is unusable.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Interface == "" {
		return cfg, errors.New("dhcp: no interface configured")
	}
	if cfg.Mode != ModeFull && cfg.Mode != ModeProxy {
		return cfg, fmt.Errorf("dhcp: mode %q: want %q or %q", cfg.Mode, ModeFull, ModeProxy)
	}
	if !cfg.ServerIP.IsValid() {
		ip, err := interfaceIPv4(cfg.Interface)
		if err != nil {
			return cfg, err
		}
		cfg.ServerIP = ip
	}
	if !cfg.ServerIP.Is4() {
		return cfg, fmt.Errorf("dhcp: server address %s is not IPv4", cfg.ServerIP)
	}
	if !cfg.TFTPServer.IsValid() {
		cfg.TFTPServer = cfg.ServerIP
	}
	if !cfg.TFTPServer.Is4() {
		return cfg, fmt.Errorf("dhcp: TFTP server %s is not IPv4", cfg.TFTPServer)
	}
	if cfg.BootFileBIOS == "" {
		cfg.BootFileBIOS = DefaultBootFileBIOS
	}
	if cfg.BootFileUEFI == "" {
		cfg.BootFileUEFI = DefaultBootFileUEFI
	}
	if cfg.ScriptURL == "" {
		cfg.ScriptURL = "http://" + cfg.ServerIP.String() + "/boot/" + macPlaceholder + ".ipxe"
	}
	if !strings.Contains(cfg.ScriptURL, macPlaceholder) {
		return cfg, fmt.Errorf("dhcp: script URL %q has no %s", cfg.ScriptURL, macPlaceholder)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Mode == ModeFull {
		p, err := cfg.Pool.withDefaults(cfg.ServerIP)
		if err != nil {
			return cfg, err
		}
		cfg.Pool = p
	}
	return cfg, nil
}

func (p Pool) withDefaults(server netip.Addr) (Pool, error) {
	lp := store.LeasePool{First: p.Start, Last: p.End}
	if !p.Start.Is4() || !p.End.Is4() || p.End.Less(p.Start) {
		return p, fmt.Errorf("dhcp: pool %s-%s: want two IPv4 addresses, start first", p.Start, p.End)
	}
	if p.PrefixLen < 1 || p.PrefixLen > 30 {
		return p, fmt.Errorf("dhcp: pool prefix length %d: want 1-30", p.PrefixLen)
	}
	subnet := netip.PrefixFrom(server, p.PrefixLen).Masked()
	if !subnet.Contains(p.Start) || !subnet.Contains(p.End) {
		return p, fmt.Errorf("dhcp: pool %s-%s is not in the server's subnet %s", p.Start, p.End, subnet)
	}
	// Handing out the server's or the router's own address would break
	// the link for everyone; refuse the configuration instead.
	if lp.Contains(server) {
		return p, fmt.Errorf("dhcp: pool %s-%s contains the server address %s", p.Start, p.End, server)
	}
	if p.Router.IsValid() && lp.Contains(p.Router) {
		return p, fmt.Errorf("dhcp: pool %s-%s contains the router %s", p.Start, p.End, p.Router)
	}
	if p.Router.IsValid() && !p.Router.Is4() {
		return p, fmt.Errorf("dhcp: router %s is not IPv4", p.Router)
	}
	for _, d := range p.DNS {
		if !d.Is4() {
			return p, fmt.Errorf("dhcp: DNS server %s is not IPv4", d)
		}
	}
	if p.LeaseTime == 0 {
		p.LeaseTime = DefaultLeaseTime
	}
	if p.LeaseTime < 10*time.Second {
		return p, fmt.Errorf("dhcp: lease time %v: want at least 10s", p.LeaseTime)
	}
	return p, nil
}

// interfaceIPv4 returns the first IPv4 address of the interface called name.
func interfaceIPv4(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dhcp: interface %s: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dhcp: addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && n.IP.To4() != nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("dhcp: interface %s has no IPv4 address; set the server address", name)
}
