package bootstorm

import (
	"slices"
	"sync"
	"time"
)

// forEach runs fn(0..n-1) on at most workers goroutines at a time and
// returns the errors of the calls that failed.
func forEach(n, workers int, fn func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan int)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// quantile is the nearest-rank q-quantile (q in (0,1]), as
// docs/benchmarks.md defines p99: of 1,000 samples, the 990th smallest.
func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	rank := int(q*float64(len(s)) + 0.999999) // ceil
	return s[min(max(rank, 1), len(s))-1]
}

// over counts the durations of at least d.
func (l *latencies) over(d time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.d {
		if x >= d {
			n++
		}
	}
	return n
}

// transfers records downloads and reports their aggregate throughput:
// all bytes over the time from the first download's start to the last
// one's end.
type transfers struct {
	mu          sync.Mutex
	bytes       int64
	count       int
	first, last time.Time
}

func (t *transfers) add(start, end time.Time, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count == 0 || start.Before(t.first) {
		t.first = start
	}
	if end.After(t.last) {
		t.last = end
	}
	t.bytes += n
	t.count++
}

// mbps is the aggregate throughput in MB/s (10^6 bytes a second).
func (t *transfers) mbps() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	span := t.last.Sub(t.first).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(t.bytes) / 1e6 / span
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
