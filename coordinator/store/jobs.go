package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// jobGroup is the consumer group every coordinator reads jobs through, so
// each job goes to one worker of the fleet.
const jobGroup = "conductors"

// Job is a unit of conductor work on one node. Jobs live in a Redis stream:
// one a coordinator took but never acknowledged (it died) is claimed by
// another after a while, so work survives crashes.
type Job struct {
	ID     string            `json:"-"` // stream entry ID
	Node   string            `json:"-"`
	Action string            `json:"action"`
	Args   map[string]string `json:"args,omitempty"`
}

func (j *Job) encode() (string, error) {
	if j == nil {
		return "", nil
	}
	b, err := json.Marshal(j)
	if err != nil {
		return "", fmt.Errorf("encode job: %w", err)
	}
	return string(b), nil
}

// InitJobs creates the job stream and consumer group if missing.
func (s *Store) InitJobs(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.jobsKey(), jobGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create job group: %w", err)
	}
	return nil
}

// Enqueue adds a job for node outside of any node change.
func (s *Store) Enqueue(ctx context.Context, node string, j *Job) error {
	payload, err := j.encode()
	if err != nil {
		return err
	}
	err = s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.jobsKey(), Values: []string{"node", node, "job", payload}}).Err()
	if err != nil {
		return fmt.Errorf("enqueue %s for %s: %w", j.Action, node, err)
	}
	return nil
}

func decodeJobs(msgs []redis.XMessage) []Job {
	out := make([]Job, 0, len(msgs))
	for _, m := range msgs {
		node, _ := m.Values["node"].(string)
		payload, _ := m.Values["job"].(string)
		var j Job
		if json.Unmarshal([]byte(payload), &j) != nil {
			// Unreadable: hand it on with no action, so the worker
			// acknowledges it rather than redelivering it forever.
			j = Job{}
		}
		j.ID, j.Node = m.ID, node
		out = append(out, j)
	}
	return out
}

// ReadJobs waits up to block for up to count new jobs for consumer.
func (s *Store) ReadJobs(ctx context.Context, consumer string, count int, block time.Duration) ([]Job, error) {
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: jobGroup, Consumer: consumer, Streams: []string{s.jobsKey(), ">"}, Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	var out []Job
	for _, st := range res {
		out = append(out, decodeJobs(st.Messages)...)
	}
	return out, nil
}

// ClaimStale takes over jobs that another consumer took more than minIdle
// ago and never acknowledged: their coordinator died.
func (s *Store) ClaimStale(ctx context.Context, consumer string, minIdle time.Duration, count int) ([]Job, error) {
	msgs, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: s.jobsKey(), Group: jobGroup, Consumer: consumer, MinIdle: minIdle, Start: "0", Count: int64(count),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("claim stale jobs: %w", err)
	}
	return decodeJobs(msgs), nil
}

// Touch resets a running job's idle time so that no other coordinator
// claims it while it is still being worked on.
func (s *Store) Touch(ctx context.Context, consumer, id string) error {
	err := s.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: s.jobsKey(), Group: jobGroup, Consumer: consumer, Messages: []string{id},
	}).Err()
	if err != nil {
		return fmt.Errorf("touch job %s: %w", id, err)
	}
	return nil
}

// Ack marks a job done and drops it from the stream.
func (s *Store) Ack(ctx context.Context, id string) error {
	pipe := s.rdb.TxPipeline()
	pipe.XAck(ctx, s.jobsKey(), jobGroup, id)
	pipe.XDel(ctx, s.jobsKey(), id)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ack job %s: %w", id, err)
	}
	return nil
}

// Backlog returns how many jobs wait to be taken plus how many are taken
// and running.
func (s *Store) Backlog(ctx context.Context) (int64, error) {
	groups, err := s.rdb.XInfoGroups(ctx, s.jobsKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("job backlog: %w", err)
	}
	for _, g := range groups {
		if g.Name == jobGroup {
			return max(g.Lag, 0) + g.Pending, nil
		}
	}
	return 0, nil
}
