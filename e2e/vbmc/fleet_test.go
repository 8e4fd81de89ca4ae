package vbmc

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// TestFleet starts a fleet on ephemeral ports and powers every node on
// through go-ipmi, a few at a time, each BMC with its own machine.
func TestFleet(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 50
	}
	start := time.Now()
	f, err := ServeFleet(t.Context(), n, 0, Config{Users: map[string]string{testUser: testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Logf("%d BMCs listening after %v", f.Len(), time.Since(start))
	seen := map[netip.AddrPort]bool{}
	for _, a := range f.Addrs() {
		if seen[a] || !a.Addr().IsLoopback() {
			t.Fatalf("address %v repeated or not loopback", a)
		}
		seen[a] = true
	}

	start = time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				b := f.BMC(i)
				c := goIPMIClient(t, b, testUser, testPassword)
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				if err := c.Connect(ctx); err != nil {
					t.Errorf("bmc %d: connect: %v", i, err)
					cancel()
					continue
				}
				if i%2 == 0 {
					if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerUp); err != nil {
						t.Errorf("bmc %d: power up: %v", i, err)
					}
				}
				if err := c.Close(ctx); err != nil {
					t.Errorf("bmc %d: close: %v", i, err)
				}
				cancel()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("%d sessions (open, maybe power up, close) in %v", n, time.Since(start))
	for i := range n {
		if on, _ := f.Machine(i).PowerState(t.Context()); on != (i%2 == 0) {
			t.Errorf("machine %d: on = %v", i, on)
		}
	}
	s := f.Stats()
	if s.SessionsOpened != uint64(n) || s.MaxSessions != 1 || s.Sessions != 0 || s.ChassisControls != uint64(n/2) {
		t.Errorf("fleet stats %+v", s)
	}
}

// TestFleetBasePort checks consecutive ports from a base.
func TestFleetBasePort(t *testing.T) {
	var f *Fleet
	var err error
	for range 5 {
		// Borrow a free port from the system as the base; the next ones
		// are very likely free too, and a clash is retried.
		l, lerr := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if lerr != nil {
			t.Fatal(lerr)
		}
		base := l.LocalAddr().(*net.UDPAddr).Port
		l.Close()
		if base+3 > 65535 {
			continue
		}
		f, err = ServeFleet(t.Context(), 3, base, Config{Addr: "127.0.0.1:0", Users: map[string]string{testUser: testPassword}})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
	if f == nil {
		t.Fatalf("no free port range: %v", err)
	}
	defer f.Close()
	addrs := f.Addrs()
	for i := 1; i < len(addrs); i++ {
		if addrs[i].Port() != addrs[0].Port()+uint16(i) {
			t.Errorf("ports %v: not consecutive", addrs)
		}
	}
	if _, err := ServeFleet(t.Context(), 1, int(addrs[0].Port()), Config{Users: map[string]string{testUser: testPassword}}); err == nil {
		t.Error("a fleet started on a port in use")
	}
	if _, err := ServeFleet(t.Context(), 1, 0, Config{Users: map[string]string{"a": "b"}, Machine: NewFakeMachine()}); err == nil {
		t.Error("a fleet accepted a machine")
	}
}

// BenchmarkGoIPMIStatus measures one Get Chassis Status on an open
// session, client included, over loopback.
func BenchmarkGoIPMIStatus(b *testing.B) {
	bmc, err := New(Config{Users: map[string]string{testUser: testPassword}, Machine: NewFakeMachine()})
	if err != nil {
		b.Fatal(err)
	}
	bmc.Start(b.Context())
	defer bmc.Close()
	c := goIPMIClient(b, bmc, testUser, testPassword, types.CipherSuiteID17)
	if err := c.Connect(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetChassisStatus(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerPacket measures the BMC's side of one in-session command:
// integrity check, decryption, dispatch, encryption and the send.
func BenchmarkServerPacket(b *testing.B) {
	bmc, err := New(Config{Users: map[string]string{testUser: testPassword}, Machine: NewFakeMachine()})
	if err != nil {
		b.Fatal(err)
	}
	bmc.Start(b.Context())
	defer bmc.Close()
	c := dialConsole(b, bmc)
	c.connect(testUser, testPassword)
	from := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	pkts := make([][]byte, 4096)
	b.ReportAllocs()
	i := len(pkts)
	for b.Loop() {
		if i == len(pkts) {
			b.StopTimer()
			for j := range pkts {
				pkts[j] = append([]byte{0x06, 0x00, 0xff, 0x07}, c.request(netFnChassis, cmdGetChassisStatus)...)
			}
			i = 0
			b.StartTimer()
		}
		bmc.handle(b.Context(), pkts[i], from)
		i++
	}
	if got := bmc.Stats().Commands; got < uint64(b.N) {
		b.Fatalf("%d of %d packets answered", got, b.N)
	}
}
