package tftp

import (
	"sync"
	"time"
)

// maxLimiterKeys bounds the limiter's memory when many clients (or a
// spoofing one) misbehave at once.
const maxLimiterKeys = 4096

// limiter lets one event per key through per interval, so a client that
// retries a missing file in a loop logs once, not once per packet.
type limiter struct {
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
}

func newLimiter(every time.Duration) *limiter {
	return &limiter{every: every, last: make(map[string]time.Time)}
}

// allow reports whether an event for key may be logged now.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	if len(l.last) >= maxLimiterKeys {
		for k, t := range l.last {
			if now.Sub(t) >= l.every {
				delete(l.last, k)
			}
		}
		if len(l.last) >= maxLimiterKeys {
			// Still full of live keys: forget them all rather than grow.
			clear(l.last)
		}
	}
	l.last[key] = now
	return true
}
