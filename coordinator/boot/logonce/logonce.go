// Package logonce rate-limits log lines about a key (a MAC, a peer, a
// file): machines that network-boot in a loop, or retry a missing file
// every second, must not flood the coordinator's logs, and a flood of
// made-up keys must not grow memory without bound.
package logonce

import (
	"sync"
	"time"
)

// Limiter lets one event per key through per period, and tracks at most
// maxKeys keys a period: past that, new keys are quiet until old ones
// expire.
type Limiter struct {
	period  time.Duration
	maxKeys int

	mu   sync.Mutex
	last map[string]time.Time
}

// New returns a Limiter.
func New(period time.Duration, maxKeys int) *Limiter {
	return &Limiter{period: period, maxKeys: maxKeys, last: map[string]time.Time{}}
}

// Allow reports whether to log about key at now, and if so counts it as
// logged.
func (l *Limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.period {
		return false
	}
	if len(l.last) >= l.maxKeys {
		for k, t := range l.last {
			if now.Sub(t) >= l.period {
				delete(l.last, k)
			}
		}
		if len(l.last) >= l.maxKeys {
			return false
		}
	}
	l.last[key] = now
	return true
}
