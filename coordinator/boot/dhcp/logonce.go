package dhcp

import (
	"sync"
	"time"
)

// logLimiter says whether to log about a key (a MAC, a peer) now: once per
// key per period, and never about more than maxKeys keys a period, so a
// flood of made-up MACs cannot flood the logs or grow memory without
// bound.
type logLimiter struct {
	period  time.Duration
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
}

func newLogLimiter(period time.Duration, maxKeys int) *logLimiter {
	return &logLimiter{period: period, maxKeys: maxKeys, now: time.Now, last: map[string]time.Time{}}
}

// allow reports whether to log about key, and if so counts it as logged.
func (l *logLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
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
