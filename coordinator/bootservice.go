package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ingot/ingot/coordinator/agentrpc"
	"github.com/ingot/ingot/coordinator/boot"
	"github.com/ingot/ingot/coordinator/boot/dhcp"
	"github.com/ingot/ingot/coordinator/boot/httpboot"
	"github.com/ingot/ingot/coordinator/boot/tftp"
	"github.com/ingot/ingot/coordinator/store"
)

// bootOptions configure the network boot service. It is off unless an
// interface or an HTTP listener is given: a coordinator started with no
// flags must never answer DHCP on a machine's real network.
type bootOptions struct {
	iface, mode, serverIP    string
	dhcpRange, router, dns   string
	prefix                   int
	leaseTime                time.Duration
	routerAdverts, discovery bool
	tftpListen, tftpRoot     string
	biosFile, uefiFile       string
	httpListen, httpURL      string
	agentKernel, agentInitrd string
	imageCacheDir            string
	coordinatorGRPC, caPrint string
	kernelArgs               string
	imageDir                 string
	imageCacheMiB            int64

	ip netip.Addr // resolved server address
}

func (b *bootOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&b.iface, "boot-interface", "", "interface to serve DHCP on (empty: no DHCP)")
	fs.StringVar(&b.mode, "dhcp-mode", string(dhcp.ModeFull), "full (hand out addresses) or proxy (boot options only, beside the site's DHCP)")
	fs.StringVar(&b.serverIP, "boot-server-ip", "", "this server's IPv4 address on the boot interface (default: the interface's first)")
	fs.StringVar(&b.dhcpRange, "dhcp-range", "", "full mode: first-last addresses to lease, e.g. 192.0.2.100-192.0.2.200")
	fs.IntVar(&b.prefix, "dhcp-prefix", 24, "full mode: prefix length of the boot network")
	fs.StringVar(&b.router, "dhcp-router", "", "full mode: default gateway to hand out")
	fs.StringVar(&b.dns, "dhcp-dns", "", "full mode: comma-separated DNS servers to hand out")
	fs.DurationVar(&b.leaseTime, "dhcp-lease-time", time.Hour, "full mode: lease time")
	fs.BoolVar(&b.routerAdverts, "dhcp-router-adverts", true, "answer IPv6 router solicitations on the boot interface (iPXE otherwise waits ~16 s)")
	fs.BoolVar(&b.discovery, "discovery", false, "boot the agent on unknown MACs too, so they can enrol themselves")
	fs.StringVar(&b.tftpListen, "tftp-listen", "", "TFTP address for legacy PXE and UEFI loaders (default <boot-server-ip>:69 when DHCP runs)")
	fs.StringVar(&b.tftpRoot, "tftp-root", tftp.DefaultRoot, "directory of the iPXE loaders (Debian's ipxe package)")
	fs.StringVar(&b.biosFile, "boot-file-bios", dhcp.DefaultBootFileBIOS, "loader for legacy BIOS PXE clients")
	// Debian's ipxe.efi is a symlink out of the TFTP root; snponly.efi is
	// a real file and drives the NIC through the firmware's own driver.
	fs.StringVar(&b.uefiFile, "boot-file-uefi", "snponly.efi", "loader for UEFI PXE clients")
	fs.StringVar(&b.httpListen, "boot-http-listen", "", "address of the boot HTTP server: iPXE scripts, agent and images (default <boot-server-ip>:8080 when DHCP runs)")
	fs.StringVar(&b.httpURL, "boot-http-url", "", "base URL machines reach the boot HTTP server at (default http://<boot-http-listen>)")
	fs.StringVar(&b.agentKernel, "agent-kernel", "", "agent kernel (default <data-dir>/agent/kernel)")
	fs.StringVar(&b.agentInitrd, "agent-initramfs", "", "agent initramfs (default <data-dir>/agent/initramfs)")
	fs.StringVar(&b.imageCacheDir, "image-cache-dir", "", "deploy image cache, served at /images/cache/ (default <data-dir>/images)")
	fs.StringVar(&b.imageDir, "image-dir", "", "directory that file-path image sources must be under (default <data-dir>/image-sources)")
	fs.Int64Var(&b.imageCacheMiB, "image-cache-size", 50*1024, "bound of the deploy image cache, in MiB; least recently used images are evicted")
	fs.StringVar(&b.coordinatorGRPC, "agent-coordinator-addr", "", "gRPC address the agent dials, put on its kernel command line")
	fs.StringVar(&b.caPrint, "agent-ca-fingerprint", "", "sha256 fingerprint of the CA the agent must trust")
	fs.StringVar(&b.kernelArgs, "agent-kernel-args", httpboot.DefaultKernelArgs, "extra agent kernel arguments")
}

func (b *bootOptions) enabled() bool { return b.iface != "" || b.httpListen != "" }

// resolve fills in the defaults that depend on the boot interface: the
// server address, the HTTP listener and the base URL machines use.
func (b *bootOptions) resolve() error {
	var err error
	if b.serverIP != "" {
		if b.ip, err = netip.ParseAddr(b.serverIP); err != nil || !b.ip.Is4() {
			return fmt.Errorf("--boot-server-ip %q: want an IPv4 address", b.serverIP)
		}
	} else if b.iface != "" {
		if b.ip, err = firstIPv4(b.iface); err != nil {
			return err
		}
	}
	if b.httpListen == "" && b.ip.IsValid() {
		b.httpListen = net.JoinHostPort(b.ip.String(), "8080")
	}
	if b.tftpListen == "" && b.iface != "" && b.ip.IsValid() {
		b.tftpListen = net.JoinHostPort(b.ip.String(), "69")
	}
	b.httpURL = strings.TrimRight(b.httpURL, "/")
	if b.httpURL == "" && b.httpListen != "" {
		b.httpURL = "http://" + b.httpListen
	}
	return nil
}

// cacheDir is where deploy images are cached and served from.
func (b *bootOptions) cacheDir(dataDir string) string {
	if b.imageCacheDir != "" {
		return b.imageCacheDir
	}
	return filepath.Join(dataDir, "images")
}

// startBoot runs the DHCP, TFTP and HTTP boot servers and the agent RPC
// service that are configured, until ctx ends; wait returns when they have
// stopped. b must be resolved.
func startBoot(ctx context.Context, b *bootOptions, a *agentOptions, dataDir string, st *store.Store, calls agentrpc.Dispatcher, log *slog.Logger) (wait func(), err error) {
	if !b.enabled() && a.listen == "" {
		return func() {}, nil
	}
	policy := &boot.Policy{Store: st, Discovery: b.discovery}
	serverIP, httpListen, tftpListen, baseURL := b.ip, b.httpListen, b.tftpListen, b.httpURL
	orDefault := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}

	agentListen := a.listen
	if agentListen == "" && serverIP.IsValid() {
		agentListen = net.JoinHostPort(serverIP.String(), "9443")
	}
	agentAddr, fingerprint, waitAgent, err := startAgentRPC(ctx, a, agentListen, dataDir, st, calls, log)
	if err != nil {
		return nil, err
	}
	if b.coordinatorGRPC == "" {
		b.coordinatorGRPC = agentAddr
	}
	if b.caPrint == "" {
		b.caPrint = fingerprint
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); waitAgent() }()
	var errs []error
	var mu sync.Mutex
	run := func(name string, serve func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx); err != nil && ctx.Err() == nil {
				log.Error("boot service stopped", "service", name, "err", err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}

	if httpListen != "" && b.enabled() {
		h, err := httpboot.New(httpboot.Config{
			BaseURL:         baseURL,
			AgentKernel:     orDefault(b.agentKernel, filepath.Join(dataDir, "agent", "kernel")),
			AgentInitramfs:  orDefault(b.agentInitrd, filepath.Join(dataDir, "agent", "initramfs")),
			ImageDir:        b.cacheDir(dataDir),
			CoordinatorGRPC: b.coordinatorGRPC, CAFingerprint: b.caPrint, ExtraKernelArgs: b.kernelArgs,
			LeaseOwner: func(ip netip.Addr) (string, bool) {
				if b.mode != string(dhcp.ModeFull) || b.iface == "" {
					return "", false // proxy mode: the site's DHCP knows, we do not
				}
				mac, found, err := st.LeaseOwner(ctx, ip)
				if err != nil || !found || mac == nil {
					return "", false
				}
				return mac.String(), true
			},
			RequireLease: b.mode == string(dhcp.ModeFull) && b.iface != "",
			Logger:       log.With("service", "http-boot"),
		}, policy)
		if err != nil {
			return nil, fmt.Errorf("boot http: %w", err)
		}
		ln, err := net.Listen("tcp", httpListen)
		if err != nil {
			return nil, fmt.Errorf("boot http: %w", err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { <-ctx.Done(); srv.Close() }()
		run("http-boot", func(context.Context) error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		log.Info("boot http serving", "addr", ln.Addr().String(), "url", baseURL)
	}
	if tftpListen != "" {
		t, err := tftp.New(tftp.Config{Addr: tftpListen, Root: b.tftpRoot, Logger: log.With("service", "tftp")})
		if err != nil {
			return nil, fmt.Errorf("tftp: %w", err)
		}
		run("tftp", t.Serve)
		log.Info("tftp serving", "addr", t.Addr().String(), "root", b.tftpRoot)
	}
	if b.iface != "" {
		cfg := dhcp.Config{
			Interface: b.iface, Mode: dhcp.Mode(b.mode), ServerIP: serverIP,
			BootFileBIOS: b.biosFile, BootFileUEFI: b.uefiFile,
			ScriptURL:            baseURL + "/boot/{mac}.ipxe",
			RouterAdvertisements: b.routerAdverts,
			Logger:               log.With("service", "dhcp"),
		}
		if cfg.Mode == dhcp.ModeFull {
			if cfg.Pool, err = b.pool(); err != nil {
				return nil, err
			}
		}
		d, err := dhcp.New(cfg, policy, st)
		if err != nil {
			return nil, fmt.Errorf("dhcp: %w", err)
		}
		run("dhcp", d.Serve)
		log.Info("dhcp serving", "interface", b.iface, "mode", b.mode, "server_ip", serverIP)
	}
	return wg.Wait, nil
}

// pool reads the full-mode address pool flags.
func (b *bootOptions) pool() (dhcp.Pool, error) {
	first, last, ok := strings.Cut(b.dhcpRange, "-")
	start, err1 := netip.ParseAddr(strings.TrimSpace(first))
	end, err2 := netip.ParseAddr(strings.TrimSpace(last))
	if !ok || err1 != nil || err2 != nil {
		return dhcp.Pool{}, fmt.Errorf("--dhcp-range %q: want first-last, e.g. 192.0.2.100-192.0.2.200", b.dhcpRange)
	}
	p := dhcp.Pool{Start: start, End: end, PrefixLen: b.prefix, LeaseTime: b.leaseTime}
	if b.router != "" {
		r, err := netip.ParseAddr(b.router)
		if err != nil {
			return p, fmt.Errorf("--dhcp-router: %w", err)
		}
		p.Router = r
	}
	for _, s := range splitList(b.dns) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Errorf("--dhcp-dns: %w", err)
		}
		p.DNS = append(p.DNS, a)
	}
	return p, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func firstIPv4(name string) (netip.Addr, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("boot interface: %w", err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("boot interface %s: %w", name, err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("boot interface %s has no IPv4 address", name)
}
