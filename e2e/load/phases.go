package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// createResult is the create phase: first some creates made one after the
// other by one client (the figure comparable to Ironic's), then the rest by
// several clients at once.
type createResult struct {
	Sequential        int     `json:"sequential"`
	SequentialSeconds float64 `json:"sequential_seconds"`
	SequentialRate    float64 `json:"sequential_per_second"`
	Concurrent        int     `json:"concurrent"`
	Concurrency       int     `json:"concurrency"`
	ConcurrentSeconds float64 `json:"concurrent_seconds"`
	ConcurrentRate    float64 `json:"concurrent_per_second"`
}

func runCreate(ctx context.Context, c *client, cfg *config) (*createResult, []string, error) {
	uuids := make([]string, cfg.nodes)
	seq := min(cfg.sequential, cfg.nodes)
	res := &createResult{Sequential: seq, Concurrent: cfg.nodes - seq, Concurrency: cfg.concurrency}

	start := time.Now()
	for i := range seq {
		u, err := c.createNode(ctx, cfg.nodeName(i))
		if err != nil {
			return nil, nil, fmt.Errorf("sequential create %d: %w", i, err)
		}
		uuids[i] = u
	}
	res.SequentialSeconds = time.Since(start).Seconds()
	res.SequentialRate = rate(seq, res.SequentialSeconds)
	progress("create: %d creates, one client: %.2f s", seq, res.SequentialSeconds)

	start = time.Now()
	if err := createConcurrently(ctx, c, cfg.concurrency, cfg.nodeName, uuids, seq); err != nil {
		return nil, nil, err
	}
	res.ConcurrentSeconds = time.Since(start).Seconds()
	res.ConcurrentRate = rate(res.Concurrent, res.ConcurrentSeconds)
	progress("create: %d creates, %d clients: %.2f s", res.Concurrent, cfg.concurrency, res.ConcurrentSeconds)
	return res, uuids, nil
}

// createConcurrently fills uuids[from:] with the UUIDs of new nodes named
// name(i), created by that many workers at once; the first error stops
// them all.
func createConcurrently(ctx context.Context, c *client, workers int, name func(int) string, uuids []string, from int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(uuids) {
					return
				}
				u, err := c.createNode(ctx, name(i))
				if err != nil {
					cancel(fmt.Errorf("concurrent create %d: %w", i, err))
					return
				}
				uuids[i] = u
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

func rate(n int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

// timeGets makes n GETs of path one after the other and summarizes their
// latencies, each from sending the request to reading the last byte.
func timeGets(ctx context.Context, c *client, path string, n int) (latency, error) {
	samples := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := c.send(ctx, http.MethodGet, path, nil, http.StatusOK, nil); err != nil {
			return latency{}, err
		}
		samples = append(samples, time.Since(start))
	}
	return summarize(samples), nil
}

// listResult is the list phase.
type listResult struct {
	Limit  int     `json:"limit"`
	List   latency `json:"list"`
	Detail latency `json:"detail"`
}

func runList(ctx context.Context, c *client, cfg *config) (*listResult, error) {
	res := &listResult{Limit: cfg.listLimit}
	var err error
	path := fmt.Sprintf("/v1/nodes?limit=%d", cfg.listLimit)
	if res.List, err = timeGets(ctx, c, path, cfg.listSamples); err != nil {
		return nil, err
	}
	progress("list: %s p50 %.1f ms", path, res.List.P50)
	path = fmt.Sprintf("/v1/nodes/detail?limit=%d", cfg.listLimit)
	if res.Detail, err = timeGets(ctx, c, path, cfg.listSamples); err != nil {
		return nil, err
	}
	progress("list: %s p50 %.1f ms", path, res.Detail.P50)
	return res, nil
}

// deployResult is the deploy phase: the wall time of each step, each
// from its first request to the last node reaching the step's state.
type deployResult struct {
	Nodes          int     `json:"nodes"`
	ManageSeconds  float64 `json:"manage_seconds"`
	ProvideSeconds float64 `json:"provide_seconds"`
	ActiveSeconds  float64 `json:"active_seconds"`
	TotalSeconds   float64 `json:"total_seconds"`
}

// deploySteps are the verbs the deploy phase sends, each once every node
// is in the state the previous one leads to.
var deploySteps = []struct{ verb, want string }{
	{"manage", "manageable"},
	{"provide", "available"},
	{"active", "active"},
}

func runDeploy(ctx context.Context, c *client, cfg *config, nodes []string) (*deployResult, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	res := &deployResult{Nodes: len(nodes)}
	durations := []*float64{&res.ManageSeconds, &res.ProvideSeconds, &res.ActiveSeconds}
	start := time.Now()
	for i, s := range deploySteps {
		t0 := time.Now()
		if err := driveAll(ctx, c, nodes, s.verb, s.want, cfg.poll); err != nil {
			return nil, fmt.Errorf("%s: %w", s.verb, err)
		}
		*durations[i] = time.Since(t0).Seconds()
		progress("deploy: %d nodes %s: %.2f s", len(nodes), s.want, *durations[i])
	}
	res.TotalSeconds = time.Since(start).Seconds()
	return res, nil
}

// driveAll sends verb to every node at once and waits until all are in
// state want. It returns every node's failure, not just the first.
func driveAll(ctx context.Context, c *client, nodes []string, verb, want string, poll time.Duration) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = drive(ctx, c, n, verb, want, poll) })
	}
	wg.Wait()
	return joinFailures(errs, 5)
}

// joinFailures joins the non-nil errors, listing at most show of them.
func joinFailures(errs []error, show int) error {
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	shown := failed[:min(show, len(failed))]
	err := fmt.Errorf("%d of %d nodes failed: %w", len(failed), len(errs), errors.Join(shown...))
	if more := len(failed) - len(shown); more > 0 {
		err = fmt.Errorf("%w\n(and %d more)", err, more)
	}
	return err
}

// drive sends verb to one node, retrying while the node is locked (409),
// then polls its states until it is in state want.
func drive(ctx context.Context, c *client, node, verb, want string, poll time.Duration) error {
	for {
		err := c.setProvision(ctx, node, verb)
		if err == nil {
			break
		}
		if !isStatus(err, http.StatusConflict) {
			return fmt.Errorf("node %s: %w", node, err)
		}
		if err := sleep(ctx, poll); err != nil {
			return fmt.Errorf("node %s: %s still refused (409): %w", node, verb, err)
		}
	}
	last := nodeStates{}
	for {
		st, err := c.states(ctx, node)
		if err != nil {
			return fmt.Errorf("node %s: waiting for %s (last seen %q): %w", node, want, last.ProvisionState, err)
		}
		last = st
		switch {
		case st.ProvisionState == want:
			return nil
		case failedState(st, want):
			return fmt.Errorf("node %s: ended in %q on the way to %q: %s", node, st.ProvisionState, want, st.LastError)
		}
		if err := sleep(ctx, poll); err != nil {
			return fmt.Errorf("node %s: waiting for %s, still %q: %w", node, want, st.ProvisionState, err)
		}
	}
}

// failedState reports whether a node has stopped short of want: a failed
// state, or back in enroll after verification failed.
func failedState(st nodeStates, want string) bool {
	s := st.ProvisionState
	if s == "error" || strings.HasSuffix(s, " failed") {
		return true
	}
	return s == "enroll" && want != "enroll" && st.LastError != "" && st.TargetProvisionState == ""
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// memoryResult is the resident memory of each watched process: when the
// run started (idle), when it ended, and the most it ever was (VmHWM).
type memoryResult struct {
	Processes []procMemory `json:"processes"`
}

type procMemory struct {
	Name     string  `json:"name"`
	PID      int     `json:"pid"`
	IdleMiB  float64 `json:"idle_mib"`
	FinalMiB float64 `json:"final_mib"`
	PeakMiB  float64 `json:"peak_mib"`
}

// readRSS reads the resident memory now, in MiB, of each watched process.
func readRSS(procs []watched) ([]float64, error) {
	out := make([]float64, len(procs))
	for i, p := range procs {
		kib, err := procStatusKiB(p.pid, "VmRSS")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		out[i] = mib(kib)
	}
	return out, nil
}

// finishMemory reads the final and peak RSS and pairs them with idle.
func finishMemory(procs []watched, idle []float64) (*memoryResult, error) {
	final, err := readRSS(procs)
	if err != nil {
		return nil, err
	}
	res := &memoryResult{}
	for i, p := range procs {
		peak, err := procStatusKiB(p.pid, "VmHWM")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		res.Processes = append(res.Processes, procMemory{
			Name: p.name, PID: p.pid, IdleMiB: idle[i], FinalMiB: final[i], PeakMiB: mib(peak),
		})
	}
	return res, nil
}
