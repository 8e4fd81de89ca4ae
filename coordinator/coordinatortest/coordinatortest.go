// Package coordinatortest starts a real coordinator for tests: a real
// redis-server in a temp dir, the store, the conductor with fast timers and
// the REST API on a real loopback HTTP listener.
package coordinatortest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ingot/ingot/coordinator/conductor"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/driver/fake"
	"github.com/ingot/ingot/coordinator/metrics"
	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/coordinator/rest"
	"github.com/ingot/ingot/coordinator/store"
)

// Env is a running coordinator.
type Env struct {
	URL       string // base URL of the API
	Store     *store.Store
	Conductor *conductor.Conductor
	API       *rest.Server
	Redis     *redisproc.Server
	Registry  *prometheus.Registry
	cancel    context.CancelFunc
	done      chan struct{}
}

// Options adjust the coordinator a test starts.
type Options struct {
	Conductor conductor.Config // zero values: fast test defaults
	Drivers   []*driver.Hardware
	// NoConductor starts only the API: jobs queue up and nothing runs
	// them, for tests that look at the queue.
	NoConductor bool
}

// Start starts a coordinator that stops when the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	rs := redisproc.StartForTest(t)
	st, err := store.Open(context.Background(), rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("INGOT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, st)
	hw := o.Drivers
	if hw == nil {
		hw = []*driver.Hardware{fake.New()}
	}
	drivers := driver.NewRegistry(hw...)
	cfg := o.Conductor
	if cfg.Host == "" {
		cfg.Host = "test-conductor"
	}
	if cfg.WatchdogInterval == 0 {
		cfg.WatchdogInterval = 100 * time.Millisecond
	}
	if cfg.StaleJob == 0 {
		cfg.StaleJob = 2 * time.Second
	}
	if cfg.PowerSyncInterval == 0 {
		cfg.PowerSyncInterval = time.Hour
	}
	cond := conductor.New(cfg, st, drivers, m, log)
	api := rest.New(rest.Config{Host: cfg.Host}, st, drivers, cond, m, log)
	srv := httptest.NewServer(api)
	ctx, cancel := context.WithCancel(context.Background())
	e := &Env{URL: srv.URL, Store: st, Conductor: cond, API: api, Redis: rs, Registry: reg, cancel: cancel, done: make(chan struct{})}
	if o.NoConductor {
		if err := st.InitJobs(ctx); err != nil {
			t.Fatal(err)
		}
		close(e.done)
	} else {
		go func() { defer close(e.done); cond.Run(ctx) }()
	}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-e.done
	})
	return e
}
