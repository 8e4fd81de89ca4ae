// Package store keeps every piece of Ingot's state of record in Redis:
// nodes, ports, reservations (locks), the job queue, node history and live
// coordinators. Every write that must be atomic is one Lua script, so a
// coordinator that dies between two commands can never leave Redis half
// changed.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/ingot/ingot/pkg/api"
)

// Store is Ingot's view of Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	cache  nodeCache
}

// New returns a Store over rdb. Keys are prefixed with prefix (default
// "ingot:"), so several installations can share a Redis.
func New(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = "ingot:"
	}
	return &Store{rdb: rdb, prefix: prefix, cache: nodeCache{m: map[string]*api.Node{}}}
}

// Open connects to the Redis at url (redis://, rediss:// or unix://) and
// checks that it answers.
func Open(ctx context.Context, url string) (*Store, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("connect to redis: %w", err)
	}
	return New(rdb, ""), nil
}

// Client returns the underlying Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Close closes the connection.
func (s *Store) Close() error { return s.rdb.Close() }

func (s *Store) key(parts ...string) string { return s.prefix + strings.Join(parts, ":") }

// Keys, in one place so the scripts and the Go code agree.
func (s *Store) nodeKey(id string) string      { return s.key("node", id) }
func (s *Store) nodesKey() string              { return s.key("nodes") }
func (s *Store) namesKey() string              { return s.key("node-names") }
func (s *Store) stateKey(state string) string  { return s.key("state", state) }
func (s *Store) lockKey(id string) string      { return s.key("lock", id) }
func (s *Store) historyKey(id string) string   { return s.key("history", id) }
func (s *Store) seqKey() string                { return s.key("seq") }
func (s *Store) portKey(id string) string      { return s.key("port", id) }
func (s *Store) portsKey() string              { return s.key("ports") }
func (s *Store) macsKey() string               { return s.key("port-macs") }
func (s *Store) nodePortsKey(id string) string { return s.key("node-ports", id) }
func (s *Store) jobsKey() string               { return s.key("jobs") }
func (s *Store) conductorKey(h string) string  { return s.key("conductor", h) }
func (s *Store) conductorsKey() string         { return s.key("conductors") }
func (s *Store) agentKey(id string) string     { return s.key("agent", id) }
func (s *Store) inventoryKey(id string) string { return s.key("inventory", id) }

// Errors callers tell apart.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict means the record changed under the writer; UpdateNode
	// retries it, so callers rarely see it.
	ErrConflict = errors.New("concurrent update")
)

// ErrLocked is returned when another holder has the node's reservation.
type ErrLocked struct {
	Node   string
	Holder string
}

func (e *ErrLocked) Error() string {
	return fmt.Sprintf("Node %s is locked by host %s, please retry after the current operation is completed.", e.Node, e.Holder)
}

// ErrDuplicate is returned when a unique value (node name, port MAC, UUID)
// is taken.
type ErrDuplicate struct {
	What, Value string
}

func (e *ErrDuplicate) Error() string {
	switch e.What {
	case "name":
		return fmt.Sprintf("A node with name %s already exists.", e.Value)
	case "mac":
		return fmt.Sprintf("A port with MAC address %s already exists.", e.Value)
	}
	return fmt.Sprintf("A %s with UUID %s already exists.", e.What, e.Value)
}

// scriptError turns a script's error reply into the package's errors.
func scriptError(err error, node string) error {
	if err == nil {
		return nil
	}
	// Redis 7 prefixes script errors that carry no code of their own.
	msg := strings.TrimPrefix(err.Error(), "ERR ")
	switch {
	case msg == "NOTFOUND":
		return ErrNotFound
	case msg == "CONFLICT":
		return ErrConflict
	case strings.HasPrefix(msg, "LOCKED "):
		return &ErrLocked{Node: node, Holder: holderHost(strings.TrimPrefix(msg, "LOCKED "))}
	case strings.HasPrefix(msg, "DUP "):
		what, val, _ := strings.Cut(strings.TrimPrefix(msg, "DUP "), " ")
		return &ErrDuplicate{What: what, Value: val}
	}
	return err
}
