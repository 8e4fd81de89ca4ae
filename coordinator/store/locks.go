package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lock is a held node reservation. It expires unless renewed, so a
// coordinator that dies cannot hold a node forever.
type Lock struct {
	s     *Store
	node  string
	token string
	ttl   time.Duration
}

// NewOwner returns a lock token for host: the host name Ironic would show
// as the node's reservation, and a random suffix that tells this holder
// from any other on the same host.
func NewOwner(host string) string {
	var b [8]byte
	rand.Read(b[:])
	return host + " " + hex.EncodeToString(b[:])
}

// holderHost returns the host part of a lock token.
func holderHost(token string) string {
	host, _, _ := strings.Cut(token, " ")
	return host
}

// Lock takes node's reservation for owner (a NewOwner token) for ttl. If
// someone else holds it the error is *ErrLocked.
func (s *Store) Lock(ctx context.Context, node, owner string, ttl time.Duration) (*Lock, error) {
	ok, err := s.rdb.SetNX(ctx, s.lockKey(node), owner, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("lock node %s: %w", node, err)
	}
	if !ok {
		holder, err := s.rdb.Get(ctx, s.lockKey(node)).Result()
		if errors.Is(err, redis.Nil) {
			// Released between our two calls: try once more.
			return s.Lock(ctx, node, owner, ttl)
		}
		return nil, &ErrLocked{Node: node, Holder: holderHost(holder)}
	}
	return &Lock{s: s, node: node, token: owner, ttl: ttl}, nil
}

// Owner is the token writes under this lock must present.
func (l *Lock) Owner() string { return l.token }

// Renew extends the lock; it fails if the lock was lost (expired and taken
// by another), in which case the holder must stop working on the node.
func (l *Lock) Renew(ctx context.Context) error {
	n, err := renew.Run(ctx, l.s.rdb, []string{l.s.lockKey(l.node)}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renew lock on %s: %w", l.node, err)
	}
	if n == 0 {
		return fmt.Errorf("renew lock on %s: lock lost", l.node)
	}
	return nil
}

// Release gives the lock up if still held.
func (l *Lock) Release(ctx context.Context) error {
	if err := unlock.Run(ctx, l.s.rdb, []string{l.s.lockKey(l.node)}, l.token).Err(); err != nil {
		return fmt.Errorf("release lock on %s: %w", l.node, err)
	}
	return nil
}

// KeepAlive renews the lock every ttl/3 until ctx ends. If a renewal finds
// the lock lost, lost is called (to cancel the work) and KeepAlive returns.
func (l *Lock) KeepAlive(ctx context.Context, lost func()) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Renew(ctx); err != nil && ctx.Err() == nil {
				lost()
				return
			}
		}
	}
}
