package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ingot/ingot/agent/inventory"
	"github.com/ingot/ingot/proto/agentpb"
)

// session is what Lookup gives: the node and the token to call with. The
// token is never logged.
type session struct {
	node, token string
	interval    time.Duration
}

// ErrNodeOwned is wrapped by Run's error when the coordinator says another
// agent holds the node's token.
var ErrNodeOwned = errors.New("another agent owns this node")

// lookup calls Lookup until it succeeds, ctx ends, or the coordinator says
// the node is another agent's. Every other failure is retried with
// backoff: an unreachable coordinator, a node not enrolled yet, or not yet
// in a state that runs the agent are all expected to pass.
func (r *Runner) lookup(ctx context.Context, client agentpb.AgentClient) (session, error) {
	wait := r.cfg.BackoffMin
	var quiet quietLog
	for {
		resp, err := r.lookupOnce(ctx, client)
		if err == nil {
			r.log.InfoContext(ctx, "looked up", "node", resp.GetNodeUuid())
			iv := time.Duration(resp.GetConfig().GetHeartbeatIntervalSeconds()) * time.Second
			return session{node: resp.GetNodeUuid(), token: resp.GetAgentToken(), interval: iv}, nil
		}
		if ctx.Err() != nil {
			return session{}, ctx.Err()
		}
		if status.Code(err) == codes.PermissionDenied {
			r.log.ErrorContext(ctx, "the coordinator refuses this agent: another agent holds this node's token; "+
				"it is released when that agent's session ends", "err", err)
			return session{}, fmt.Errorf("lookup: %w: %w", ErrNodeOwned, err)
		}
		quiet.log(ctx, r, "lookup failed; retrying", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return session{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, r.cfg.BackoffMax)
	}
}

func (r *Runner) lookupOnce(ctx context.Context, client agentpb.AgentClient) (*agentpb.LookupResponse, error) {
	// Collected afresh on each try: a NIC may have come up (or got its
	// address) since the last one.
	inv, err := inventory.Collect(r.cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("collect inventory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	resp, err := client.Lookup(ctx, &agentpb.LookupRequest{Inventory: inv, AgentVersion: r.cfg.Version})
	if err == nil && resp.GetAgentToken() == "" {
		err = status.Error(codes.Internal, "lookup answered without a token")
	}
	return resp, err
}

// heartbeat calls Heartbeat every interval until ctx ends or the
// coordinator no longer knows the token (the node left the states that
// run the agent, or the session expired).
func (r *Runner) heartbeat(ctx context.Context, client agentpb.AgentClient, sess session) {
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+sess.token, nodeMetadata, sess.node)
	interval := sess.interval
	var quiet quietLog
	// After reporting a finished command, call back soon a few times: the
	// coordinator queues the next one within moments, and waiting a whole
	// interval for it would idle the node between every two steps.
	var lastFinished string
	followUps := 0
	for {
		sent := r.track.snapshot()
		cctx, cancel := context.WithTimeout(actx, r.cfg.CallTimeout)
		resp, err := client.Heartbeat(cctx, &agentpb.HeartbeatRequest{NodeUuid: sess.node, AgentVersion: r.cfg.Version, Status: sent})
		cancel()
		switch code := status.Code(err); {
		case err == nil:
			quiet.reset(ctx, r, "heartbeat")
			if after := r.track.delivered(sent); after != nil {
				after()
			}
			if c := resp.GetCommand(); c != nil {
				r.start(ctx, c)
			}
			if s := resp.GetHeartbeatIntervalSeconds(); s > 0 {
				interval = time.Duration(s) * time.Second
			}
		case ctx.Err() != nil:
			return
		case code == codes.Unauthenticated || code == codes.PermissionDenied:
			r.log.InfoContext(ctx, "the coordinator ended this agent session; looking the node up again", "node", sess.node, "err", err)
			return
		default:
			quiet.log(ctx, r, "heartbeat failed; retrying", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.followUp(sent, &lastFinished, &followUps, r.interval(interval))):
		case <-r.track.wake: // a command finished: report it now
		}
	}
}

// followUpDelay and followUps bound the quick calls after a finished
// command is reported.
const (
	followUpDelay = 300 * time.Millisecond
	maxFollowUps  = 8
)

// followUp returns the wait before the next heartbeat: short for a few
// calls after sent first reported a finished command, else normal.
func (r *Runner) followUp(sent *agentpb.CommandStatus, last *string, n *int, normal time.Duration) time.Duration {
	if st := sent.GetState(); st == agentpb.CommandStatus_SUCCEEDED || st == agentpb.CommandStatus_FAILED {
		if id := sent.GetCommandId(); id != *last {
			*last, *n = id, 0
		}
		if *n < maxFollowUps && followUpDelay < normal {
			*n++
			return followUpDelay
		}
	}
	return normal
}

// interval is the wait between heartbeats: the test override, else the
// coordinator's, else 10 s.
func (r *Runner) interval(fromServer time.Duration) time.Duration {
	switch {
	case r.cfg.HeartbeatInterval > 0:
		return r.cfg.HeartbeatInterval
	case fromServer > 0:
		return fromServer
	}
	return 10 * time.Second
}

// quietLog logs a failure at warning level once per distinct error, and
// its repeats at debug: a node waiting minutes for its coordinator should
// not flood the console with the same line.
type quietLog struct{ last string }

func (q *quietLog) log(ctx context.Context, r *Runner, msg string, err error, args ...any) {
	lvl := slog.LevelWarn
	if err.Error() == q.last {
		lvl = slog.LevelDebug
	}
	q.last = err.Error()
	r.log.Log(ctx, lvl, msg, append([]any{"code", status.Code(err).String(), "err", err}, args...)...)
}

// reset notes a success, logging the recovery if there was a failure.
func (q *quietLog) reset(ctx context.Context, r *Runner, what string) {
	if q.last != "" {
		r.log.InfoContext(ctx, what+" recovered")
	}
	q.last = ""
}
