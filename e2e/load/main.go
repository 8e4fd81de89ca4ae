// Command load measures a running coordinator over its REST API, the way
// Ironic was measured on the same machine (docs/benchmarks.md): it enrolls
// fake-hardware nodes, times single-node reads and pages of 1,000, drives
// nodes concurrently to active, and reads the resident memory of the
// coordinator and its redis-server.
//
//	load [--url http://127.0.0.1:6385] [--phases create,get,list,deploy,memory] [--json]
//
// It prints a table (or, with --json, a JSON document) on stdout and its
// progress on stderr. It exits non-zero if a request fails, a node ends in a
// failed state or the deploy phase times out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

var allPhases = []string{"create", "get", "list", "deploy", "memory"}

type config struct {
	url            string
	phases         map[string]bool
	nodes          int
	sequential     int
	concurrency    int
	namePrefix     string
	samples        int
	listSamples    int
	listLimit      int
	deploys        int
	poll           time.Duration
	timeout        time.Duration
	requestTimeout time.Duration
	coordinatorPID int
	redisPID       int
	json           bool
	settle         time.Duration
}

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	var phases string
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:6385", "coordinator API base URL")
	fs.StringVar(&phases, "phases", strings.Join(allPhases, ","), "phases to run, comma-separated: "+strings.Join(allPhases, ", "))
	fs.IntVar(&cfg.nodes, "nodes", 10000, "fake-hardware nodes to enroll")
	fs.IntVar(&cfg.sequential, "sequential", 1000, "of those, how many one client creates first, one after the other (timed on their own)")
	fs.IntVar(&cfg.concurrency, "concurrency", 8, "clients creating the rest of the nodes at once")
	fs.StringVar(&cfg.namePrefix, "name-prefix", "load-", "prefix of the names of the nodes created")
	fs.IntVar(&cfg.samples, "samples", 2000, "GETs of one node to time")
	fs.IntVar(&cfg.listSamples, "list-samples", 50, "GETs of each node list to time")
	fs.IntVar(&cfg.listLimit, "list-limit", 1000, "nodes per list page")
	fs.IntVar(&cfg.deploys, "deploys", 100, "nodes to drive to active at once")
	fs.DurationVar(&cfg.poll, "poll", 20*time.Millisecond, "interval between polls of a node's states")
	fs.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "time the whole deploy phase may take")
	fs.DurationVar(&cfg.requestTimeout, "request-timeout", 30*time.Second, "time one request may take")
	fs.IntVar(&cfg.coordinatorPID, "coordinator-pid", 0, "coordinator process whose memory and CPU to report (0: none)")
	fs.IntVar(&cfg.redisPID, "redis-pid", 0, "redis-server process whose memory and CPU to report (0: none)")
	fs.BoolVar(&cfg.json, "json", false, "print the results as JSON instead of a table")
	fs.DurationVar(&cfg.settle, "settle", 2*time.Second, "quiet time before each phase after the first, so one phase's aftermath (Redis's AOF fsync, garbage collection) is not charged to the next")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(allPhases, p) {
			return nil, fmt.Errorf("unknown phase %q: want some of %s", p, strings.Join(allPhases, ", "))
		}
		cfg.phases[p] = true
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"nodes", cfg.nodes}, {"concurrency", cfg.concurrency}, {"samples", cfg.samples},
		{"list-samples", cfg.listSamples}, {"list-limit", cfg.listLimit}, {"deploys", cfg.deploys}} {
		if f.v < 1 {
			return nil, fmt.Errorf("--%s must be at least 1", f.name)
		}
	}
	return cfg, nil
}

func (cfg *config) nodeName(i int) string   { return fmt.Sprintf("%s%d", cfg.namePrefix, i) }
func (cfg *config) deployName(i int) string { return fmt.Sprintf("%sdeploy-%d", cfg.namePrefix, i) }

// watched lists the processes given by pid.
func (cfg *config) watched() []watched {
	var out []watched
	for _, p := range []watched{{"coordinator", cfg.coordinatorPID}, {"redis-server", cfg.redisPID}} {
		if p.pid > 0 {
			out = append(out, p)
		}
	}
	return out
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg)
	if res != nil {
		// What was measured before a failure is still worth seeing.
		if werr := report(os.Stdout, res, cfg.json); werr != nil {
			fmt.Fprintln(os.Stderr, "load: write results:", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load: FAILED:", err)
		os.Exit(1)
	}
}

// results is everything one run measured; phases not run are nil.
type results struct {
	URL     string        `json:"url"`
	Nodes   int           `json:"nodes_created"`
	Create  *createResult `json:"create,omitempty"`
	Get     *latency      `json:"get,omitempty"`
	List    *listResult   `json:"list,omitempty"`
	Deploy  *deployResult `json:"deploy,omitempty"`
	Memory  *memoryResult `json:"memory,omitempty"`
	Phases  []phaseStat   `json:"phases"`
	Seconds float64       `json:"seconds"`
}

// phaseStat is a phase's wall time and the CPU seconds each watched
// process spent during it: where the time went.
type phaseStat struct {
	Name    string             `json:"name"`
	Seconds float64            `json:"seconds"`
	CPU     map[string]float64 `json:"cpu_seconds,omitempty"`
}

// runner carries what the phases share.
type runner struct {
	cfg   *config
	c     *client
	res   *results
	nodes []string // created by the create phase, in order
}

func run(ctx context.Context, cfg *config) (*results, error) {
	start := time.Now()
	conns := max(cfg.concurrency, cfg.deploys) + 4
	r := &runner{cfg: cfg, c: newClient(cfg.url, cfg.requestTimeout, conns), res: &results{URL: cfg.url}}
	if err := r.c.ping(ctx); err != nil {
		return nil, fmt.Errorf("coordinator at %s: %w", cfg.url, err)
	}
	procs := cfg.watched()
	var idle []float64
	if cfg.phases["memory"] {
		var err error
		if idle, err = readRSS(procs); err != nil {
			return nil, fmt.Errorf("memory: %w", err)
		}
	}
	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		{"create", r.create},
		{"get", r.get},
		{"list", r.list},
		{"deploy", r.deploy},
	}
	for i, p := range phases {
		if !cfg.phases[p.name] {
			continue
		}
		if i > 0 && cfg.settle > 0 {
			time.Sleep(cfg.settle)
		}
		progress("%s...", p.name)
		cpu, t0 := startCPU(procs), time.Now()
		err := p.run(ctx)
		r.res.Phases = append(r.res.Phases, phaseStat{Name: p.name, Seconds: time.Since(t0).Seconds(), CPU: cpu.stop()})
		if err != nil {
			return r.res, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if cfg.phases["memory"] {
		var err error
		if r.res.Memory, err = finishMemory(procs, idle); err != nil {
			return r.res, fmt.Errorf("memory: %w", err)
		}
	}
	r.res.Seconds = time.Since(start).Seconds()
	return r.res, nil
}

// Each phase records its result only if it completed, so that a failed
// run's report shows no half-measured figures.

func (r *runner) create(ctx context.Context) error {
	res, nodes, err := runCreate(ctx, r.c, r.cfg)
	if err != nil {
		return err
	}
	r.res.Create, r.nodes, r.res.Nodes = res, nodes, len(nodes)
	return nil
}

func (r *runner) get(ctx context.Context) error {
	node, err := r.someNode(ctx)
	if err != nil {
		return err
	}
	l, err := timeGets(ctx, r.c, "/v1/nodes/"+node, r.cfg.samples)
	if err != nil {
		return err
	}
	r.res.Get = &l
	progress("get: p50 %.2f ms, p99 %.2f ms", l.P50, l.P99)
	return nil
}

// someNode is a node to read: one from the middle of those created, else
// any existing node, else a new one.
func (r *runner) someNode(ctx context.Context) (string, error) {
	if len(r.nodes) > 0 {
		return r.nodes[len(r.nodes)/2], nil
	}
	existing, err := r.c.firstNodes(ctx, 1)
	if err != nil {
		return "", err
	}
	if len(existing) > 0 {
		return existing[0], nil
	}
	return r.c.createNode(ctx, r.cfg.namePrefix+"get")
}

func (r *runner) list(ctx context.Context) error {
	res, err := runList(ctx, r.c, r.cfg)
	if err != nil {
		return err
	}
	r.res.List = res
	return nil
}

func (r *runner) deploy(ctx context.Context) error {
	nodes, err := r.deployNodes(ctx)
	if err != nil {
		return err
	}
	res, err := runDeploy(ctx, r.c, r.cfg, nodes)
	if err != nil {
		return err
	}
	r.res.Deploy = res
	return nil
}

// deployNodes are the last nodes created (still in enroll), or new ones
// if the create phase did not make enough.
func (r *runner) deployNodes(ctx context.Context) ([]string, error) {
	n := r.cfg.deploys
	if len(r.nodes) >= n {
		return r.nodes[len(r.nodes)-n:], nil
	}
	nodes := make([]string, n)
	if err := createConcurrently(ctx, r.c, r.cfg.concurrency, r.cfg.deployName, nodes, 0); err != nil {
		return nil, err
	}
	return nodes, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "load: "+format+"\n", args...)
}
