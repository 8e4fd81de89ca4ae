// Package metrics defines the coordinator's Prometheus metrics in one place,
// so the API and the conductor count the same things the same way.
package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ingot/ingot/pkg/statemachine"
)

// Metrics are the coordinator's instruments.
type Metrics struct {
	RequestDuration *prometheus.HistogramVec // by route, method, code
	LockContention  *prometheus.CounterVec   // by where: api, worker
	JobDuration     *prometheus.HistogramVec // by action, result
	Transitions     *prometheus.CounterVec   // by event
}

// New creates the instruments and registers them, with collectors for
// nodes by state and the job backlog, on reg.
func New(reg prometheus.Registerer, src Source) *Metrics {
	m := &Metrics{
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ingot", Name: "api_request_duration_seconds",
			Help:    "REST API request latency by route.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "code"}),
		LockContention: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ingot", Name: "node_lock_contention_total",
			Help: "Requests and jobs that found a node locked by another holder.",
		}, []string{"where"}),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ingot", Name: "conductor_job_duration_seconds",
			Help:    "Conductor job run time by action and result.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"action", "result"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ingot", Name: "provision_transitions_total",
			Help: "Provision state transitions by event.",
		}, []string{"event"}),
	}
	reg.MustRegister(m.RequestDuration, m.LockContention, m.JobDuration, m.Transitions)
	if src != nil {
		reg.MustRegister(&stateCollector{src: src})
	}
	return m
}

// Source is what the scrape-time collectors read: counts live in Redis,
// so every coordinator of a fleet reports the same truth.
type Source interface {
	CountByState(ctx context.Context, states []string) (map[string]int64, error)
	Backlog(ctx context.Context) (int64, error)
}

var nodesDesc = prometheus.NewDesc("ingot_nodes", "Nodes by provision state.", []string{"provision_state"}, nil)
var backlogDesc = prometheus.NewDesc("ingot_job_queue_depth", "Conductor jobs queued or running.", nil, nil)

type stateCollector struct{ src Source }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nodesDesc
	ch <- backlogDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var states []string
	for _, s := range statemachine.All() {
		states = append(states, string(s))
	}
	counts, err := c.src.CountByState(ctx, states)
	if err != nil {
		slog.Warn("metrics: count nodes by state", "err", err)
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(n), st)
	}
	if n, err := c.src.Backlog(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(n))
	}
}
