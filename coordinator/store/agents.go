package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// An agent session is what the coordinator knows of the agent running on a
// node: the hash of the token it was issued, its version, when it last
// called, the command waiting for it and the status it last reported. It
// lives in its own key (not the node document) so an agent's heartbeats
// never race a conductor worker's writes to the node, and it ends, token
// and all, the moment the node leaves the states that run the agent (see
// putNode), or when the agent stops calling for the session's TTL.

// ErrAgentToken is returned for a heartbeat whose token is not the one
// issued for the node.
var ErrAgentToken = errors.New("agent token does not match the one issued for this node")

// AgentSession is a node's agent session.
type AgentSession struct {
	TokenHash     string
	Version       string
	LastHeartbeat time.Time
	Command       []byte // serialized command waiting for the agent
	Status        []byte // serialized status the agent last reported
}

// issueAgentToken: KEYS agent. ARGV token hash, version, now, ttl ms.
var issueAgentToken = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'token') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'version', ARGV[2], 'heartbeat', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// agentHeartbeat: KEYS agent. ARGV token hash, version, now, status, ttl ms.
var agentHeartbeat = redis.NewScript(`
local tok = redis.call('HGET', KEYS[1], 'token')
if not tok or tok ~= ARGV[1] then return redis.error_reply('BADTOKEN') end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'heartbeat', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'status', ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return redis.call('HGET', KEYS[1], 'command') or ''
`)

// IssueAgentToken records tokenHash as node's agent token unless one was
// issued already (then issued is false), starting a session of ttl.
func (s *Store) IssueAgentToken(ctx context.Context, node, tokenHash, version string, ttl time.Duration) (issued bool, err error) {
	n, err := issueAgentToken.Run(ctx, s.rdb, []string{s.agentKey(node)}, tokenHash, version,
		time.Now().UTC().Format(time.RFC3339Nano), ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("issue agent token for %s: %w", node, err)
	}
	return n == 1, nil
}

// AgentHeartbeat checks the token, records the call and the status, keeps
// the session alive for ttl, and returns the command waiting, if any.
func (s *Store) AgentHeartbeat(ctx context.Context, node, tokenHash, version string, status []byte, ttl time.Duration) ([]byte, error) {
	cmd, err := agentHeartbeat.Run(ctx, s.rdb, []string{s.agentKey(node)}, tokenHash, version,
		time.Now().UTC().Format(time.RFC3339Nano), string(status), ttl.Milliseconds()).Text()
	if err != nil {
		if strings.TrimPrefix(err.Error(), "ERR ") == "BADTOKEN" {
			return nil, ErrAgentToken
		}
		return nil, fmt.Errorf("agent heartbeat of %s: %w", node, err)
	}
	if cmd == "" {
		return nil, nil
	}
	return []byte(cmd), nil
}

// AgentSessionOf returns node's agent session; found is false when no
// agent has looked the node up (or its session ended).
func (s *Store) AgentSessionOf(ctx context.Context, node string) (sess AgentSession, found bool, err error) {
	m, err := s.rdb.HGetAll(ctx, s.agentKey(node)).Result()
	if err != nil {
		return sess, false, fmt.Errorf("agent session of %s: %w", node, err)
	}
	if len(m) == 0 {
		return sess, false, nil
	}
	sess.TokenHash, sess.Version = m["token"], m["version"]
	sess.LastHeartbeat, _ = time.Parse(time.RFC3339Nano, m["heartbeat"])
	if c := m["command"]; c != "" {
		sess.Command = []byte(c)
	}
	if st := m["status"]; st != "" {
		sess.Status = []byte(st)
	}
	return sess, true, nil
}

// setAgentCommand: KEYS agent. ARGV command (” clears). Only into a live
// session: a plain HSET on an expired one would revive it without a TTL.
var setAgentCommand = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOSESSION') end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'command') else redis.call('HSET', KEYS[1], 'command', ARGV[1]) end
return 1
`)

// ErrNoAgent is returned when a node has no agent session.
var ErrNoAgent = errors.New("no agent has looked this node up")

// SetAgentCommand queues cmd (serialized) for node's agent; an empty cmd
// clears it.
func (s *Store) SetAgentCommand(ctx context.Context, node string, cmd []byte) error {
	err := setAgentCommand.Run(ctx, s.rdb, []string{s.agentKey(node)}, string(cmd)).Err()
	if err != nil && strings.TrimPrefix(err.Error(), "ERR ") == "NOSESSION" {
		err = ErrNoAgent
	}
	if err != nil {
		return fmt.Errorf("agent command for %s: %w", node, err)
	}
	return nil
}

// SetAgentInventory records the inventory (serialized) the agent sent at
// lookup, for inspection to read.
func (s *Store) SetAgentInventory(ctx context.Context, node string, inv []byte) error {
	if err := s.rdb.HSet(ctx, s.agentKey(node), "inventory", inv).Err(); err != nil {
		return fmt.Errorf("agent inventory of %s: %w", node, err)
	}
	return nil
}

// enqueueOnce: KEYS flag, jobs stream. ARGV ttl ms, node, payload. The flag
// and the job are set together, so a crash never leaves a flag without
// its job (which would silence the node until the flag expires).
var enqueueOnce = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) == false then return 0 end
redis.call('XADD', KEYS[2], '*', 'node', ARGV[2], 'job', ARGV[3])
return 1
`)

// EnqueueAgentJob adds j for node unless an agent job for node is queued
// and not yet started (see AgentJobStarted) within ttl: every heartbeat
// of a node may ask for one, and one is enough.
func (s *Store) EnqueueAgentJob(ctx context.Context, node string, j *Job, ttl time.Duration) (bool, error) {
	payload, err := j.encode()
	if err != nil {
		return false, err
	}
	n, err := enqueueOnce.Run(ctx, s.rdb, []string{s.key("agent-job", node), s.jobsKey()}, ttl.Milliseconds(), node, payload).Int()
	if err != nil {
		return false, fmt.Errorf("enqueue %s for %s: %w", j.Action, node, err)
	}
	return n == 1, nil
}

// AgentJobStarted lets the next call of node's agent enqueue a new job:
// what it reports from now on is news to the job that starts.
func (s *Store) AgentJobStarted(ctx context.Context, node string) error {
	if err := s.rdb.Del(ctx, s.key("agent-job", node)).Err(); err != nil {
		return fmt.Errorf("agent job of %s: %w", node, err)
	}
	return nil
}

// SetNodeInventory keeps the hardware inventory (JSON) that inspection
// found, beyond the agent session, for GET /v1/nodes/{node}/inventory.
func (s *Store) SetNodeInventory(ctx context.Context, node string, inv []byte) error {
	if err := s.rdb.Set(ctx, s.inventoryKey(node), inv, 0).Err(); err != nil {
		return fmt.Errorf("inventory of %s: %w", node, err)
	}
	return nil
}

// NodeInventory returns what SetNodeInventory kept; found is false if
// the node was never inspected.
func (s *Store) NodeInventory(ctx context.Context, node string) (inv []byte, found bool, err error) {
	inv, err = s.rdb.Get(ctx, s.inventoryKey(node)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("inventory of %s: %w", node, err)
	}
	return inv, true, nil
}
