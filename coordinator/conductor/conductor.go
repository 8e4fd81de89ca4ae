// Package conductor runs the slow work on nodes that the API only asks for:
// provisioning operations and power changes taken from the Redis job
// stream by a bounded pool of workers, a watchdog that fails nodes stuck
// too long in a state, and a loop that keeps every node's recorded power
// state in step with its hardware.
package conductor

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/metrics"
	"github.com/ingot/ingot/coordinator/store"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// Config tunes a conductor. Zero values take the defaults below.
type Config struct {
	Host    string // shown as reservation and conductor
	Group   string // conductor_group
	Workers int    // concurrent jobs

	LockTTL      time.Duration // a dead holder's lock frees after this
	StaleJob     time.Duration // a dead coordinator's job is taken over after this
	PowerTimeout time.Duration // per power change

	// Timeouts bound how long a node may sit in a wait state (waiting for
	// its agent) or in a busy state with nobody working on it.
	Timeouts         map[sm.State]time.Duration
	WatchdogInterval time.Duration

	PowerSyncInterval time.Duration
	PowerSyncWorkers  int
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Workers == 0 {
		c.Workers = 64
	}
	if c.PowerSyncWorkers == 0 {
		c.PowerSyncWorkers = 8
	}
	set(&c.LockTTL, 15*time.Second)
	set(&c.StaleJob, 45*time.Second)
	set(&c.PowerTimeout, 60*time.Second)
	set(&c.WatchdogInterval, 10*time.Second)
	set(&c.PowerSyncInterval, 60*time.Second)
	def := map[sm.State]time.Duration{
		// Ironic's deploy_callback_timeout, clean_callback_timeout and
		// inspect_wait_timeout all default to 1800 s.
		sm.DeployWait:  30 * time.Minute,
		sm.CleanWait:   30 * time.Minute,
		sm.InspectWait: 30 * time.Minute,
	}
	for _, s := range sm.All() {
		if s.Busy() {
			def[s] = time.Hour
		}
	}
	if c.Timeouts == nil {
		c.Timeouts = map[sm.State]time.Duration{}
	}
	for s, d := range def {
		if _, ok := c.Timeouts[s]; !ok {
			c.Timeouts[s] = d
		}
	}
}

// Conductor does the work.
type Conductor struct {
	cfg     Config
	store   *store.Store
	drivers *driver.Registry
	metrics *metrics.Metrics
	log     *slog.Logger
	// consumer names this coordinator in the job stream's consumer group.
	// It is the host name, stable across restarts, so a restarted
	// coordinator finds the jobs it had taken and finishes them.
	consumer string
	sem      chan struct{}
	wg       sync.WaitGroup
}

// New returns a conductor; Run starts it.
func New(cfg Config, st *store.Store, drivers *driver.Registry, m *metrics.Metrics, log *slog.Logger) *Conductor {
	cfg.defaults()
	return &Conductor{
		cfg: cfg, store: st, drivers: drivers, metrics: m, log: log,
		consumer: cfg.Host, sem: make(chan struct{}, cfg.Workers),
	}
}

// Run works until ctx ends, then waits for running jobs to finish.
func (c *Conductor) Run(ctx context.Context) error {
	if err := c.store.InitJobs(ctx); err != nil {
		return err
	}
	var loops sync.WaitGroup
	for _, loop := range []func(context.Context){c.readJobs, c.reclaimJobs, c.watchdog, c.powerSync, c.heartbeat} {
		loops.Add(1)
		go func() { defer loops.Done(); loop(ctx) }()
	}
	loops.Wait()
	c.wg.Wait()
	return nil
}

// heartbeat keeps this coordinator in the conductor list.
func (c *Conductor) heartbeat(ctx context.Context) {
	created := time.Now().UTC()
	for {
		err := c.store.Register(ctx, store.Conductor{
			Hostname: c.cfg.Host, ConductorGroup: c.cfg.Group, Drivers: c.drivers.Names(),
			CreatedAt: created, UpdatedAt: time.Now().UTC(),
		}, 30*time.Second)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("register conductor", "err", err)
		}
		if !sleep(ctx, 10*time.Second) {
			return
		}
	}
}

// readJobs hands new jobs to workers, never more at once than there are
// workers: one reader rather than a blocking read per worker, which would
// tie up a Redis connection each.
func (c *Conductor) readJobs(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1 + cap(c.sem) - len(c.sem)
		// A short block: go-redis cannot interrupt a blocked read, so this
		// bounds how long shutdown waits.
		jobs, err := c.store.ReadJobs(ctx, c.consumer, n, 500*time.Millisecond)
		if err != nil {
			<-c.sem
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("read jobs", "err", err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if len(jobs) == 0 {
			<-c.sem
			continue
		}
		for i, j := range jobs {
			if i > 0 {
				c.sem <- struct{}{}
			}
			c.dispatch(ctx, j)
		}
	}
}

// reclaimJobs takes over jobs whose worker died with its coordinator.
func (c *Conductor) reclaimJobs(ctx context.Context) {
	first := true
	for {
		idle := c.cfg.StaleJob
		if first {
			// Our own consumer's pending jobs are ours to redo at once:
			// the process that took them is this one's predecessor.
			idle, first = 0, false
		}
		jobs, err := c.store.ClaimStale(ctx, c.consumer, idle, cap(c.sem))
		if err != nil && ctx.Err() == nil {
			c.log.Warn("claim stale jobs", "err", err)
		}
		for _, j := range jobs {
			select {
			case c.sem <- struct{}{}:
				c.log.Info("resuming job", "node", j.Node, "action", j.Action)
				c.dispatch(ctx, j)
			case <-ctx.Done():
				return
			}
		}
		if !sleep(ctx, c.cfg.StaleJob/4) {
			return
		}
	}
}

// dispatch runs j on a worker; the caller holds a semaphore slot for it.
func (c *Conductor) dispatch(ctx context.Context, j store.Job) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.sem }()
		start := time.Now()
		result := "ok"
		err := c.run(ctx, j)
		var locked *store.ErrLocked
		switch {
		case errors.As(err, &locked):
			// Leave it pending: the reclaimer retries it once the lock
			// holder is done or dead.
			result = "locked"
			c.metrics.LockContention.WithLabelValues("worker").Inc()
			c.log.Info("job waits for lock", "node", j.Node, "action", j.Action, "holder", locked.Holder)
		case ctx.Err() != nil:
			// Shutting down: leave it pending for our successor.
			result = "interrupted"
		default:
			if err != nil {
				result = "error"
				c.log.Error("job failed", "node", j.Node, "action", j.Action, "err", err)
			}
			if err := c.store.Ack(context.WithoutCancel(ctx), j.ID); err != nil {
				c.log.Warn("ack job", "node", j.Node, "err", err)
			}
		}
		c.metrics.JobDuration.WithLabelValues(j.Action, result).Observe(time.Since(start).Seconds())
	}()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
