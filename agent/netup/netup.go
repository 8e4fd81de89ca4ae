// Package netup brings the ramdisk's network up: every Ethernet NIC is
// set up and runs DHCPv4 at once, each lease is configured (address,
// default route) and renewed, and Up returns as soon as the agent can
// reach its coordinator — through the NIC the node booted from if that
// one answers. The ramdisk has no other network configuration: u-root's
// dhclient is not used because the agent must know when (and where) the
// network is ready.
package netup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout = 2 * time.Minute
	DefaultGrace   = 10 * time.Second
)

// Config configures Up. All fields are optional.
type Config struct {
	// BootMAC is the MAC the node network-booted from (BOOTIF): its lease
	// is the one Up waits for, and its default route is preferred.
	BootMAC string
	// Timeout bounds Up; default DefaultTimeout.
	Timeout time.Duration
	// Grace is how long Up waits for the boot NIC once another NIC has a
	// lease; default DefaultGrace.
	Grace time.Duration
	// ResolvConf is the file to write the DNS servers of the lease Up
	// returns to (/etc/resolv.conf); empty writes none.
	ResolvConf string
	// Logger gets a line per NIC and lease; default slog.Default().
	Logger *slog.Logger

	// For tests: how often to look for new NICs, the first and largest
	// pause between failed DHCP attempts, the pause between failed
	// renewals, and the system itself.
	scanEvery          time.Duration
	retryMin, retryMax time.Duration
	renewRetry         time.Duration
	sys                system
}

// NIC is an Ethernet interface.
type NIC struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
}

func (n NIC) String() string { return n.Name + " " + n.MAC.String() }

// Lease is the configuration a NIC got from DHCP.
type Lease struct {
	NIC    NIC
	Addr   netip.Prefix // address and subnet
	Router netip.Addr   // default gateway, if the server named one
	DNS    []netip.Addr
	Server netip.Addr // the DHCP server
	// Duration is the lease time (0: infinite); Renew is when to renew
	// it (T1), both from Acquired.
	Duration, Renew time.Duration
	Acquired        time.Time

	raw any // the system's own lease, for renewals
}

// system is what Up needs of the host: netlink and DHCP on Linux, a
// script in tests.
type system interface {
	loopbackUp() error
	nics() ([]NIC, error)
	linkUp(NIC) error
	request(context.Context, NIC) (Lease, error)
	renew(context.Context, Lease) (Lease, error)
	// configure applies l, replacing old (nil the first time), with a
	// default route of the given metric if l names a router.
	configure(old *Lease, l Lease, metric int) error
	unconfigure(Lease) error
}

// errNak is wrapped by a system's renew error when the server refused
// the lease: it must be dropped at once, not left to expire.
var errNak = errors.New("the DHCP server refused the lease (NAK)")

// Up sets every Ethernet NIC up and runs DHCPv4 on each, concurrently,
// and returns the first lease: the boot NIC's, or another NIC's if the
// boot NIC has none Grace after it, or if there is no boot NIC. NICs go
// on being served in the background until ctx ends: leases are renewed,
// NICs without one keep asking, and NICs that appear later are picked
// up. After Timeout with no lease at all Up gives up with an error
// naming every NIC and what went wrong on it, and stops all it started.
func Up(ctx context.Context, cfg Config) (Lease, error) {
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.Grace = cmp.Or(cfg.Grace, DefaultGrace)
	cfg.scanEvery = cmp.Or(cfg.scanEvery, time.Second)
	cfg.retryMin = cmp.Or(cfg.retryMin, time.Second)
	cfg.retryMax = cmp.Or(cfg.retryMax, 30*time.Second)
	cfg.renewRetry = cmp.Or(cfg.renewRetry, 10*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.sys == nil {
		cfg.sys = linuxSystem{}
	}
	cfg.BootMAC = strings.ToLower(cfg.BootMAC)

	bg, cancel := context.WithCancel(ctx)
	u := &upper{cfg: cfg, log: cfg.Logger, leases: make(chan Lease, 64), nics: map[int]*nicState{}}
	stop := func() {
		cancel()
		u.wg.Wait()
	}
	if err := cfg.sys.loopbackUp(); err != nil {
		u.log.Warn("loopback", "err", err)
	}
	u.wg.Add(1)
	go u.scan(bg)

	start := time.Now()
	deadline := time.NewTimer(cfg.Timeout)
	defer deadline.Stop()
	var (
		first *Lease
		grace <-chan time.Time
	)
	for {
		select {
		case l := <-u.leases:
			if u.isBoot(l.NIC) || !u.bootPresent() {
				return u.chosen(l, start), nil
			}
			if first == nil {
				first = &l
				grace = time.After(cfg.Grace)
				u.log.Info("waiting for the boot NIC's lease", "boot_mac", cfg.BootMAC, "grace", cfg.Grace)
			}
		case <-grace:
			u.log.Warn("the boot NIC has no lease: using another NIC", "boot_mac", cfg.BootMAC, "nic", first.NIC.Name)
			return u.chosen(*first, start), nil
		case <-deadline.C:
			err := u.timeoutError()
			stop()
			return Lease{}, err
		case <-ctx.Done():
			stop()
			return Lease{}, ctx.Err()
		}
	}
}

// upper is one Up and the goroutines it leaves serving NICs.
type upper struct {
	cfg    Config
	log    *slog.Logger
	leases chan Lease // first leases (and new ones after a loss), for Up
	wg     sync.WaitGroup

	mu   sync.Mutex
	nics map[int]*nicState // by interface index
}

type nicState struct {
	nic     NIC
	lastErr error
}

func (u *upper) isBoot(n NIC) bool { return u.cfg.BootMAC != "" && n.MAC.String() == u.cfg.BootMAC }

func (u *upper) bootPresent() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.nics {
		if u.isBoot(s.nic) {
			return true
		}
	}
	return false
}

// chosen finishes Up with l: DNS servers, a log line.
func (u *upper) chosen(l Lease, start time.Time) Lease {
	u.log.Info("network up", "nic", l.NIC.Name, "mac", l.NIC.MAC.String(), "addr", l.Addr.String(),
		"router", l.Router, "took", time.Since(start).Round(time.Millisecond))
	if u.cfg.ResolvConf != "" && len(l.DNS) > 0 {
		var b strings.Builder
		for _, d := range l.DNS {
			fmt.Fprintf(&b, "nameserver %s\n", d)
		}
		if err := os.WriteFile(u.cfg.ResolvConf, []byte(b.String()), 0o644); err != nil {
			u.log.Warn("write DNS servers", "file", u.cfg.ResolvConf, "err", err)
		}
	}
	return l
}

func (u *upper) timeoutError() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.nics) == 0 {
		return fmt.Errorf("no Ethernet NIC appeared within %s: is its driver among the kernel modules?", u.cfg.Timeout)
	}
	var why []string
	for _, s := range u.nics {
		e := "no answer yet"
		if s.lastErr != nil {
			e = s.lastErr.Error()
		}
		why = append(why, fmt.Sprintf("%s: %s", s.nic, e))
	}
	slices.Sort(why)
	return fmt.Errorf("no DHCPv4 lease on any NIC within %s (%s)", u.cfg.Timeout, strings.Join(why, "; "))
}

func (u *upper) setErr(n NIC, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.nics[n.Index].lastErr = err
}

// scan serves every NIC there is, now and as they appear: drivers can
// register their NICs after the module load returned.
func (u *upper) scan(ctx context.Context) {
	defer u.wg.Done()
	t := time.NewTicker(u.cfg.scanEvery)
	defer t.Stop()
	for {
		nics, err := u.cfg.sys.nics()
		if err != nil {
			u.log.Warn("list NICs", "err", err)
		}
		// Every NIC of a scan is known before any of them starts DHCP:
		// a lease on one must not be taken while the boot NIC, seen in
		// the same scan, is not yet known to exist.
		var found []NIC
		u.mu.Lock()
		for _, n := range nics {
			if _, known := u.nics[n.Index]; !known {
				u.nics[n.Index] = &nicState{nic: n}
				found = append(found, n)
			}
		}
		u.mu.Unlock()
		for _, n := range found {
			u.log.Info("NIC found", "nic", n.Name, "mac", n.MAC.String(), "boot", u.isBoot(n))
			u.wg.Add(1)
			go u.serve(ctx, n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// metric of n's default route: the boot NIC's wins.
func (u *upper) metric(n NIC) int {
	if u.isBoot(n) {
		return 100
	}
	return 200 + n.Index
}

// serve keeps a lease on n until ctx ends.
func (u *upper) serve(ctx context.Context, n NIC) {
	defer u.wg.Done()
	log := u.log.With("nic", n.Name)
	if err := u.cfg.sys.linkUp(n); err != nil {
		log.Warn("set link up", "err", err)
	}
	pause := u.cfg.retryMin
	for ctx.Err() == nil {
		start := time.Now()
		l, err := u.cfg.sys.request(ctx, n)
		if err == nil {
			if err = u.cfg.sys.configure(nil, l, u.metric(n)); err != nil {
				err = fmt.Errorf("configure %s: %w", l.Addr, err)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			u.setErr(n, err)
			log.Debug("DHCP", "err", err, "retry_in", pause)
			sleep(ctx, pause)
			pause = min(2*pause, u.cfg.retryMax)
			continue
		}
		pause = u.cfg.retryMin
		u.setErr(n, nil)
		log.Info("DHCP lease", "mac", n.MAC.String(), "addr", l.Addr.String(), "router", l.Router,
			"server", l.Server, "lease", l.Duration, "took", time.Since(start).Round(time.Millisecond))
		select {
		case u.leases <- l:
		default: // Up has returned long ago
		}
		u.keep(ctx, log, l)
	}
}

// keep renews l from its T1 until ctx ends or the lease is lost (NAK,
// or no renewal by its end), which sends serve back to discovery.
func (u *upper) keep(ctx context.Context, log *slog.Logger, l Lease) {
	for {
		if l.Duration == 0 {
			<-ctx.Done() // infinite
			return
		}
		if !sleep(ctx, time.Until(l.Acquired.Add(l.Renew))) {
			return
		}
		expiry := l.Acquired.Add(l.Duration)
		for {
			nl, err := u.cfg.sys.renew(ctx, l)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				if err := u.cfg.sys.configure(&l, nl, u.metric(nl.NIC)); err != nil {
					log.Warn("configure renewed lease", "addr", nl.Addr.String(), "err", err)
				}
				log.Debug("DHCP lease renewed", "addr", nl.Addr.String(), "lease", nl.Duration)
				l = nl
				break
			}
			if errors.Is(err, errNak) || !time.Now().Before(expiry) {
				log.Warn("DHCP lease lost", "addr", l.Addr.String(), "err", err)
				if err := u.cfg.sys.unconfigure(l); err != nil {
					log.Warn("remove address", "addr", l.Addr.String(), "err", err)
				}
				return
			}
			log.Debug("DHCP renewal", "err", err)
			if !sleep(ctx, min(u.cfg.renewRetry, time.Until(expiry))) {
				return
			}
		}
	}
}

// sleep waits d or until ctx ends, reporting whether it slept through.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
