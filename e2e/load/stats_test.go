package main

import (
	"testing"
	"time"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

// seq is 1 ms, 2 ms, ... n ms.
func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sorted  []time.Duration
		p       float64
		want    time.Duration
		wantMed time.Duration
	}{
		{name: "empty", sorted: nil, p: 99, want: 0, wantMed: 0},
		{name: "one sample", sorted: durations(7), p: 99, want: 7 * time.Millisecond, wantMed: 7 * time.Millisecond},
		{name: "odd count", sorted: durations(1, 2, 3), p: 50, want: 2 * time.Millisecond, wantMed: 2 * time.Millisecond},
		{name: "even count: median averages", sorted: durations(1, 2, 3, 4), p: 50, want: 2 * time.Millisecond, wantMed: 2500 * time.Microsecond},
		{name: "p99 of 100 is the 99th", sorted: seq(100), p: 99, want: 99 * time.Millisecond, wantMed: 50500 * time.Microsecond},
		{name: "p99 of 2000 is the 1980th", sorted: seq(2000), p: 99, want: 1980 * time.Millisecond, wantMed: 1000500 * time.Microsecond},
		{name: "p99 of 50 is the largest (rank 49.5 rounds up)", sorted: seq(50), p: 99, want: 50 * time.Millisecond, wantMed: 25500 * time.Microsecond},
		{name: "p100 is the max", sorted: seq(10), p: 100, want: 10 * time.Millisecond, wantMed: 5500 * time.Microsecond},
		{name: "p0 is the min", sorted: seq(10), p: 0, want: 1 * time.Millisecond, wantMed: 5500 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
			if got := median(tc.sorted); got != tc.wantMed {
				t.Errorf("median = %v, want %v", got, tc.wantMed)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	l := summarize(durations(9, 1, 5, 3, 7))
	want := latency{Samples: 5, P50: 5, P99: 9, Min: 1, Max: 9, Mean: 5}
	if l != want {
		t.Errorf("summarize = %+v, want %+v", l, want)
	}
}
