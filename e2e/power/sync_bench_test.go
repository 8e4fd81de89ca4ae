package power

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/conductor"
	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/driver/fake"
	"github.com/ingot/ingot/coordinator/driver/ipmi"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/e2e/vbmc"
	"github.com/ingot/ingot/pkg/api"
)

// timedPower wraps a power interface to time every status read and to
// check that no BMC ever has two commands in flight.
type timedPower struct {
	driver.Power
	mu       sync.Mutex
	lat      []time.Duration
	inFlight map[string]int
	maxIn    int
}

func (p *timedPower) PowerState(ctx context.Context, n *api.Node) (string, error) {
	bmc := fmt.Sprint(n.DriverInfo["ipmi_address"], ":", n.DriverInfo["ipmi_port"])
	p.mu.Lock()
	p.inFlight[bmc]++
	p.maxIn = max(p.maxIn, p.inFlight[bmc])
	p.mu.Unlock()
	t0 := time.Now()
	s, err := p.Power.PowerState(ctx, n)
	d := time.Since(t0)
	p.mu.Lock()
	p.inFlight[bmc]--
	p.lat = append(p.lat, d)
	p.mu.Unlock()
	return s, err
}

func (p *timedPower) take() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.lat
	p.lat = nil
	return out
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkPowerSync1000 is one coordinator's power-state sync over 1,000
// BMCs (virtual, fake machines, real IPMI over UDP on loopback), with the
// default 8 sync workers and with 32: ns/op is one full sweep with warm
// sessions; cold-s the first sweep, which opens every session;
// cmd-p50/p99-ms the latency of one status read.
func BenchmarkPowerSync1000(b *testing.B) {
	for _, workers := range []int{8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) { benchPowerSync(b, 1000, workers) })
	}
}

func benchPowerSync(b *testing.B, n, workers int) {
	ctx := context.Background()
	fleet, err := vbmc.ServeFleet(ctx, n, 0, vbmc.Config{Users: map[string]string{bmcUser: bmcPass}})
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Close()
	d := ipmi.NewDriver(ipmi.Config{})
	defer d.Close(ctx)
	hw := d.Hardware()
	tp := &timedPower{Power: hw.Power[ipmi.PowerInterface], inFlight: map[string]int{}}
	hw.Power[ipmi.PowerInterface] = tp
	env := coordinatortest.Start(b, coordinatortest.Options{
		Drivers:   []*driver.Hardware{fake.New(), hw},
		Conductor: conductor.Config{PowerSyncWorkers: workers},
	})
	for i, addr := range fleet.Addrs() {
		nd := &api.Node{
			UUID: uuid.NewString(), Driver: ipmi.Name, ProvisionState: "manageable", CreatedAt: time.Now().UTC(),
			DriverInfo: map[string]any{"ipmi_address": addr.Addr().String(), "ipmi_port": float64(addr.Port()),
				"ipmi_username": bmcUser, "ipmi_password": bmcPass},
			PowerState: api.PowerOff,
		}
		hw.ApplyDefaults(nd)
		if err := env.Store.CreateNode(ctx, nd, nil); err != nil {
			b.Fatal(err)
		}
		// Half the machines were powered on behind Ingot's back: the sync
		// must notice and record them.
		fleet.Machine(i).SetPower(i%2 == 0)
	}

	t0 := time.Now()
	if err := env.Conductor.SyncPower(ctx); err != nil {
		b.Fatal(err)
	}
	cold := time.Since(t0)
	tp.take()
	on, err := env.Store.CountByState(ctx, []string{"manageable"})
	if err != nil || on["manageable"] != int64(n) {
		b.Fatalf("nodes: %v %v", on, err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		if err := env.Conductor.SyncPower(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, tp.take()...)
	}
	b.StopTimer()
	if len(lat) < n {
		b.Fatalf("only %d status reads in the timed sweeps", len(lat))
	}
	if tp.maxIn > 1 {
		b.Fatalf("%d commands in flight to one BMC", tp.maxIn)
	}
	if s := fleet.Stats(); s.MaxSessions > 1 {
		b.Fatalf("a BMC saw %d sessions at once", s.MaxSessions)
	}
	// Every machine powered on behind Ingot's back is now recorded as on.
	nodes, _, err := env.Store.ListNodes(ctx, store.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	onCount := 0
	for _, nd := range nodes {
		if nd.PowerState == api.PowerOn {
			onCount++
		}
	}
	if onCount != n/2 {
		b.Fatalf("%d nodes recorded on, want %d", onCount, n/2)
	}
	b.ReportMetric(cold.Seconds(), "cold-s")
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "cmd-p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "cmd-p99-ms")
}
