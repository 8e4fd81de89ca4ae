package conductor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ingot/ingot/coordinator/conductor"
	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/driver/fake"
	"github.com/ingot/ingot/coordinator/metrics"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// scripted deploys with a fixed outcome; the rest is fake-hardware.
type scripted struct {
	result driver.Result
	err    error
}

func (d scripted) Deploy(context.Context, *api.Node) (driver.Result, error) { return d.result, d.err }
func (d scripted) TearDown(ctx context.Context, n *api.Node) (driver.Result, error) {
	return fake.Deploy{}.TearDown(ctx, n)
}
func (d scripted) Clean(ctx context.Context, n *api.Node, manual bool) (driver.Result, error) {
	return fake.Deploy{}.Clean(ctx, n, manual)
}

// stuckPower reports a power state the node record does not have, as a
// machine powered on by hand would.
type stuckPower struct{ fake.Power }

func (stuckPower) PowerState(context.Context, *api.Node) (string, error) { return api.PowerOn, nil }

func hardware(name string, mod func(*driver.Hardware)) *driver.Hardware {
	hw := fake.New()
	hw.Name = name
	mod(hw)
	return hw
}

func testDrivers() []*driver.Hardware {
	return []*driver.Hardware{
		fake.New(),
		hardware("waits", func(h *driver.Hardware) { h.Deploy = map[string]driver.Deploy{"fake": scripted{result: driver.Wait}} }),
		hardware("fails", func(h *driver.Hardware) {
			h.Deploy = map[string]driver.Deploy{"fake": scripted{err: errors.New("image checksum mismatch: got 3a7b, want 9f00")}}
		}),
		hardware("stuck-on", func(h *driver.Hardware) { h.Power = map[string]driver.Power{"fake": stuckPower{}} }),
	}
}

// availableNode stores a node of drv already in available.
func availableNode(t *testing.T, st *store.Store, drv string) *api.Node {
	t.Helper()
	now := time.Now().UTC()
	n := &api.Node{UUID: uuid.NewString(), Driver: drv, ProvisionState: string(sm.Available), CreatedAt: now, PowerState: api.PowerOff}
	fake.New().ApplyDefaults(n)
	if err := st.CreateNode(context.Background(), n, nil); err != nil {
		t.Fatal(err)
	}
	return n
}

// verb applies an API verb the way the API does: one compare-and-set that
// also queues the job.
func verb(t *testing.T, st *store.Store, id string, ev sm.Event) {
	t.Helper()
	_, err := st.UpdateNode(context.Background(), id, "", func(n *api.Node, fx *store.Effects) error {
		e, err := conductor.ApplyEvent(n, ev, "", "test", time.Now().UTC())
		if err != nil {
			return err
		}
		fx.Event = e
		if sm.State(n.ProvisionState).Busy() {
			fx.Job = conductor.ProvisionJob(n.ProvisionState)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, st *store.Store, id string, ok func(*api.Node) bool) *api.Node {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _, err := st.GetNode(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s stuck in %q (target %q, last_error %q)", id, n.ProvisionState, n.TargetProvisionState, n.LastError)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inState(s sm.State) func(*api.Node) bool {
	return func(n *api.Node) bool { return n.ProvisionState == string(s) }
}

func TestWaitTimesOutThenUndeploys(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{
		Drivers:   testDrivers(),
		Conductor: conductor.Config{Timeouts: map[sm.State]time.Duration{sm.DeployWait: 300 * time.Millisecond}},
	})
	n := availableNode(t, env.Store, "waits")
	verb(t, env.Store, n.UUID, sm.Deploy)
	waitFor(t, env.Store, n.UUID, inState(sm.DeployWait))
	got := waitFor(t, env.Store, n.UUID, inState(sm.DeployFail))
	if want := "Timeout reached while waiting for callback for node " + n.UUID; got.LastError != want {
		t.Errorf("last_error %q, want %q", got.LastError, want)
	}
	if got.TargetProvisionState != "" {
		t.Errorf("target_provision_state %q after failure, want none", got.TargetProvisionState)
	}
	// A failed node is never stuck: undeploy cleans it back to available.
	verb(t, env.Store, n.UUID, sm.Delete)
	done := waitFor(t, env.Store, n.UUID, inState(sm.Available))
	if done.LastError != "" {
		t.Errorf("last_error %q after a clean undeploy", done.LastError)
	}
}

func TestFailedDeployRecordsError(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{Drivers: testDrivers()})
	n := availableNode(t, env.Store, "fails")
	verb(t, env.Store, n.UUID, sm.Deploy)
	got := waitFor(t, env.Store, n.UUID, inState(sm.DeployFail))
	if !strings.Contains(got.LastError, "image checksum mismatch") {
		t.Errorf("last_error %q", got.LastError)
	}
	hist, err := env.Store.History(context.Background(), n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	last := hist[len(hist)-1]
	if last.Severity != "ERROR" || !strings.Contains(last.Event, "checksum mismatch") {
		t.Errorf("last history entry %+v", last)
	}
}

// A job taken by a coordinator that then died is finished by another.
func TestJobOfDeadCoordinatorIsTakenOver(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{NoConductor: true})
	ctx := context.Background()
	n := availableNode(t, env.Store, fake.Name)
	verb(t, env.Store, n.UUID, sm.Deploy)
	jobs, err := env.Store.ReadJobs(ctx, "dead-host", 1, time.Second)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("dead coordinator read %v, %v", jobs, err)
	}
	// It dies here, holding the job. A new coordinator takes it over once
	// the job has been idle for StaleJob.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(prometheus.NewRegistry(), nil)
	c := conductor.New(conductor.Config{Host: "survivor", StaleJob: 300 * time.Millisecond},
		env.Store, driver.NewRegistry(fake.New()), m, log)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- c.Run(cctx) }()
	defer func() { cancel(); <-done }()
	got := waitFor(t, env.Store, n.UUID, inState(sm.Active))
	if got.PowerState != api.PowerOn {
		t.Errorf("power_state %q after deploy", got.PowerState)
	}
	waitFor(t, env.Store, n.UUID, func(*api.Node) bool {
		b, _ := env.Store.Backlog(ctx)
		return b == 0
	})
}

func TestPowerSyncRecordsHardwareState(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{Drivers: testDrivers()})
	n := availableNode(t, env.Store, "stuck-on")
	quiet := availableNode(t, env.Store, fake.Name)
	if err := env.Conductor.SyncPower(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _, _ := env.Store.GetNode(context.Background(), n.UUID)
	if got.PowerState != api.PowerOn {
		t.Errorf("power_state %q after sync, want %q", got.PowerState, api.PowerOn)
	}
	other, _, _ := env.Store.GetNode(context.Background(), quiet.UUID)
	if other.PowerState != api.PowerOff || other.Version != quiet.Version {
		t.Errorf("in-sync node was rewritten: %q v%d", other.PowerState, other.Version)
	}
	hist, _ := env.Store.History(context.Background(), n.UUID)
	if len(hist) == 0 || !strings.Contains(hist[len(hist)-1].Event, "power state sync") {
		t.Errorf("no history of the sync: %+v", hist)
	}
}

func TestApplyEventLastError(t *testing.T) {
	now := time.Now().UTC()
	for _, tt := range []struct {
		state, target string
		ev            sm.Event
		msg, before   string
		wantState     string
		wantErr       string
	}{
		{"deploying", "active", sm.Fail, "boom", "", "deploy failed", "boom"},
		{"deploy failed", "", sm.Deploy, "", "boom", "deploying", ""},
		{"wait call-back", "active", sm.Abort, "Aborted by operator", "", "deploy failed", "Aborted by operator"},
		{"cleaning", "manageable", sm.Done, "", "", "manageable", ""},
		{"verifying", "manageable", sm.Fail, "bad credentials", "", "enroll", "bad credentials"},
	} {
		n := &api.Node{UUID: "x", ProvisionState: tt.state, TargetProvisionState: tt.target, LastError: tt.before}
		e, err := conductor.ApplyEvent(n, tt.ev, tt.msg, "h", now)
		if err != nil {
			t.Fatalf("%s/%s: %v", tt.state, tt.ev, err)
		}
		if n.ProvisionState != tt.wantState || n.LastError != tt.wantErr || n.ProvisionUpdatedAt == nil || !n.ProvisionUpdatedAt.Equal(now) {
			t.Errorf("%s/%s: state %q last_error %q", tt.state, tt.ev, n.ProvisionState, n.LastError)
		}
		if (e.Severity == "ERROR") != (tt.wantErr != "") {
			t.Errorf("%s/%s: severity %s", tt.state, tt.ev, e.Severity)
		}
	}
}
