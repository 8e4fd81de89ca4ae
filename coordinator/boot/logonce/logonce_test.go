package logonce

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(time.Minute, 2)
	if !l.Allow("a", now) || l.Allow("a", now) || !l.Allow("b", now) {
		t.Fatal("once per key per period")
	}
	if l.Allow("c", now) {
		t.Fatal("more keys than the cap allowed")
	}
	now = now.Add(time.Minute)
	if !l.Allow("c", now) || !l.Allow("a", now) {
		t.Fatal("not allowed again after the period")
	}
}
