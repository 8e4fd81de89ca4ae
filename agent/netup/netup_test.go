package netup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	eth0 = NIC{Name: "eth0", Index: 2, MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}}
	eth1 = NIC{Name: "eth1", Index: 3, MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}}
)

// answer is how the fake DHCP server treats one NIC: after delay, a
// lease (or, with err, nothing, every time).
type answer struct {
	delay time.Duration
	addr  string
	err   error
	life  time.Duration // lease time; 0 infinite
}

// fakeSys scripts the host: NICs per scan, DHCP answers per NIC, and it
// records what was configured.
type fakeSys struct {
	scans   [][]NIC // what each scan finds; the last one repeats
	answers map[string]answer
	renewal func(l Lease) (Lease, error)

	mu       sync.Mutex
	scanned  int
	requests map[string]int
	events   []string
}

func (f *fakeSys) loopbackUp() error { return nil }

func (f *fakeSys) nics() ([]NIC, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := min(f.scanned, len(f.scans)-1)
	f.scanned++
	return f.scans[i], nil
}

func (f *fakeSys) linkUp(NIC) error { return nil }

func (f *fakeSys) request(ctx context.Context, n NIC) (Lease, error) {
	a := f.answers[n.Name]
	f.mu.Lock()
	if f.requests == nil {
		f.requests = map[string]int{}
	}
	f.requests[n.Name]++
	f.mu.Unlock()
	if !sleep(ctx, a.delay) {
		return Lease{}, ctx.Err()
	}
	if a.err != nil {
		return Lease{}, a.err
	}
	return Lease{NIC: n, Addr: netip.MustParsePrefix(a.addr), Router: netip.MustParseAddr("192.0.2.1"),
		DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, Duration: a.life, Renew: a.life / 2, Acquired: time.Now()}, nil
}

func (f *fakeSys) renew(ctx context.Context, l Lease) (Lease, error) {
	if f.renewal == nil {
		return Lease{}, errors.New("no renewals here")
	}
	return f.renewal(l)
}

func (f *fakeSys) event(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

func (f *fakeSys) configure(old *Lease, l Lease, metric int) error {
	if old != nil {
		f.event("renew %s %s->%s metric %d", l.NIC.Name, old.Addr, l.Addr, metric)
	} else {
		f.event("configure %s %s metric %d", l.NIC.Name, l.Addr, metric)
	}
	return nil
}

func (f *fakeSys) unconfigure(l Lease) error {
	f.event("unconfigure %s %s", l.NIC.Name, l.Addr)
	return nil
}

func (f *fakeSys) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.requests {
		n += c
	}
	return n
}

func (f *fakeSys) eventList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func testConfig(sys *fakeSys) Config {
	return Config{
		Timeout: 2 * time.Second, Grace: time.Second,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		scanEvery: 5 * time.Millisecond, retryMin: 5 * time.Millisecond, retryMax: 20 * time.Millisecond,
		renewRetry: 5 * time.Millisecond,
		sys:        sys,
	}
}

var errNoOffer = errors.New("no DHCPOFFER")

func TestUp(t *testing.T) {
	for _, tt := range []struct {
		name    string
		bootMAC string
		scans   [][]NIC
		answers map[string]answer
		grace   time.Duration
		timeout time.Duration
		want    string // the NIC whose lease Up returns
		wantErr []string
		minTook time.Duration
	}{
		{name: "the boot NIC's lease, though another NIC was first",
			bootMAC: "52:54:00:00:00:02", scans: [][]NIC{{eth0, eth1}},
			answers: map[string]answer{"eth0": {addr: "192.0.2.10/24"}, "eth1": {delay: 50 * time.Millisecond, addr: "192.0.2.11/24"}},
			want:    "eth1"},
		{name: "no boot MAC: the first lease",
			scans:   [][]NIC{{eth0, eth1}},
			answers: map[string]answer{"eth0": {delay: 50 * time.Millisecond, addr: "192.0.2.10/24"}, "eth1": {addr: "192.0.2.11/24"}},
			want:    "eth1"},
		{name: "a boot MAC no NIC has: the first lease",
			bootMAC: "52:54:00:00:00:99", scans: [][]NIC{{eth0, eth1}},
			answers: map[string]answer{"eth0": {addr: "192.0.2.10/24"}, "eth1": {err: errNoOffer}},
			want:    "eth0"},
		{name: "the boot NIC gets no answer: another NIC after the grace",
			bootMAC: "52:54:00:00:00:01", scans: [][]NIC{{eth0, eth1}}, grace: 80 * time.Millisecond,
			answers: map[string]answer{"eth0": {err: errNoOffer}, "eth1": {addr: "192.0.2.11/24"}},
			want:    "eth1", minTook: 80 * time.Millisecond},
		{name: "a NIC that appears later",
			scans:   [][]NIC{{}, {}, {eth0}},
			answers: map[string]answer{"eth0": {addr: "192.0.2.10/24"}},
			want:    "eth0"},
		{name: "no answer anywhere: an error naming every NIC",
			scans: [][]NIC{{eth0, eth1}}, timeout: 100 * time.Millisecond,
			answers: map[string]answer{"eth0": {err: errNoOffer}, "eth1": {err: errors.New("network is down")}},
			wantErr: []string{"no DHCPv4 lease on any NIC within 100ms", "eth0 52:54:00:00:00:01: no DHCPOFFER", "eth1 52:54:00:00:00:02: network is down"}},
		{name: "no NIC at all",
			scans: [][]NIC{{}}, timeout: 50 * time.Millisecond,
			wantErr: []string{"no Ethernet NIC appeared within 50ms"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sys := &fakeSys{scans: tt.scans, answers: tt.answers}
			cfg := testConfig(sys)
			cfg.BootMAC = strings.ToUpper(tt.bootMAC) // as case-insensitive as MACs are
			if tt.grace != 0 {
				cfg.Grace = tt.grace
			}
			if tt.timeout != 0 {
				cfg.Timeout = tt.timeout
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			l, err := Up(ctx, cfg)
			took := time.Since(start)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("want an error, got lease %+v", l)
				}
				for _, part := range tt.wantErr {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q lacks %q", err, part)
					}
				}
				// Up stopped everything it started.
				n := sys.requestCount()
				time.Sleep(50 * time.Millisecond)
				if m := sys.requestCount(); m != n {
					t.Errorf("DHCP went on after Up failed: %d requests, then %d", n, m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.NIC.Name != tt.want {
				t.Errorf("lease of %s, want %s", l.NIC.Name, tt.want)
			}
			if took < tt.minTook {
				t.Errorf("returned after %s, before the grace of %s", took, tt.minTook)
			}
		})
	}
}

// The NICs Up did not wait for keep being served: a late answer is
// configured after Up returned.
func TestUpKeepsServingInBackground(t *testing.T) {
	sys := &fakeSys{scans: [][]NIC{{eth0, eth1}}, answers: map[string]answer{
		"eth0": {addr: "192.0.2.10/24"}, "eth1": {delay: 100 * time.Millisecond, addr: "192.0.2.11/24"}}}
	cfg := testConfig(sys)
	cfg.BootMAC = eth0.MAC.String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Up(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return slices.Contains(sys.eventList(), "configure eth1 192.0.2.11/24 metric 203") })
	if ev := sys.eventList(); ev[0] != "configure eth0 192.0.2.10/24 metric 100" {
		t.Errorf("the boot NIC's route should win (metric 100): %v", ev)
	}
}

func TestRenewal(t *testing.T) {
	for _, tt := range []struct {
		name  string
		renew func(calls int, l Lease) (Lease, error)
		want  []string // events, in order, as a prefix
	}{
		{name: "renewed, then moved to another address",
			renew: func(calls int, l Lease) (Lease, error) {
				if calls == 2 {
					l.Addr = netip.MustParsePrefix("192.0.2.20/24")
				}
				l.Acquired = time.Now()
				return l, nil
			},
			want: []string{"configure eth0 192.0.2.10/24 metric 200", "renew eth0 192.0.2.10/24->192.0.2.10/24 metric 200",
				"renew eth0 192.0.2.10/24->192.0.2.20/24 metric 200"}},
		{name: "a NAK drops the address at once and starts over",
			renew: func(int, Lease) (Lease, error) { return Lease{}, fmt.Errorf("renew: %w", errNak) },
			want:  []string{"configure eth0 192.0.2.10/24 metric 200", "unconfigure eth0 192.0.2.10/24", "configure eth0 192.0.2.10/24 metric 200"}},
		{name: "no answer until the lease ends: dropped, and discovery again",
			renew: func(int, Lease) (Lease, error) { return Lease{}, errors.New("no answer") },
			want:  []string{"configure eth0 192.0.2.10/24 metric 200", "unconfigure eth0 192.0.2.10/24", "configure eth0 192.0.2.10/24 metric 200"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eth0 := NIC{Name: "eth0", Index: 0, MAC: eth0.MAC}
			var mu sync.Mutex
			calls := 0
			sys := &fakeSys{scans: [][]NIC{{eth0}}, answers: map[string]answer{"eth0": {addr: "192.0.2.10/24", life: 60 * time.Millisecond}},
				renewal: func(l Lease) (Lease, error) {
					mu.Lock()
					calls++
					c := calls
					mu.Unlock()
					return tt.renew(c, l)
				}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if _, err := Up(ctx, testConfig(sys)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				ev := sys.eventList()
				return len(ev) >= len(tt.want) && slices.Equal(ev[:len(tt.want)], tt.want)
			})
		})
	}
}

func TestUpWritesDNS(t *testing.T) {
	sys := &fakeSys{scans: [][]NIC{{eth0}}, answers: map[string]answer{"eth0": {addr: "192.0.2.10/24"}}}
	cfg := testConfig(sys)
	cfg.ResolvConf = filepath.Join(t.TempDir(), "resolv.conf")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Up(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(cfg.ResolvConf); err != nil || string(b) != "nameserver 192.0.2.53\n" {
		t.Errorf("resolv.conf: %q, %v", b, err)
	}
}

func TestUpCancelled(t *testing.T) {
	sys := &fakeSys{scans: [][]NIC{{eth0}}, answers: map[string]answer{"eth0": {err: errNoOffer}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := Up(ctx, testConfig(sys)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want the context's error, got %v", err)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
