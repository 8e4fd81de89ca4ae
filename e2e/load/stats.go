package main

import (
	"math"
	"slices"
	"time"
)

// latency summarizes the samples of one measurement, in milliseconds.
type latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Min     float64 `json:"min_ms"`
	Max     float64 `json:"max_ms"`
	Mean    float64 `json:"mean_ms"`
}

// summarize computes the percentiles of all samples; it sorts them.
func summarize(samples []time.Duration) latency {
	if len(samples) == 0 {
		return latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return latency{
		Samples: len(samples),
		P50:     ms(median(samples)),
		P99:     ms(percentile(samples, 99)),
		Min:     ms(samples[0]),
		Max:     ms(samples[len(samples)-1]),
		Mean:    ms(sum / time.Duration(len(samples))),
	}
}

// median is the middle of sorted samples, or the mean of the two middle
// ones when there is an even number of them.
func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// percentile is the nearest-rank p-th percentile of sorted samples: the
// smallest sample that at least p percent of the samples do not exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
