package conductor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// timeoutMessage says, as Ironic says it, why a node was failed.
func timeoutMessage(s sm.State, n *api.Node, d time.Duration) string {
	switch s {
	case sm.DeployWait:
		return fmt.Sprintf("Timeout reached while waiting for callback for node %s", n.UUID)
	case sm.CleanWait:
		return "Timeout reached while cleaning the node. Please check if the ramdisk responsible for the cleaning is running on the node."
	case sm.InspectWait:
		return "Timeout reached while inspecting the node."
	}
	return fmt.Sprintf("Timeout reached: node %s spent more than %s in state %q with no conductor working on it.", n.UUID, d, s)
}

// watchdog fails nodes stuck too long in a wait or busy state, so a lost
// agent or a lost job never leaves a node stuck.
func (c *Conductor) watchdog(ctx context.Context) {
	for sleep(ctx, c.cfg.WatchdogInterval) {
		if err := c.checkTimeouts(ctx, time.Now().UTC()); err != nil && ctx.Err() == nil {
			c.log.Warn("watchdog", "err", err)
		}
	}
}

func (c *Conductor) checkTimeouts(ctx context.Context, now time.Time) error {
	for state, limit := range c.cfg.Timeouts {
		if limit <= 0 {
			continue
		}
		ids, err := c.store.NodesInState(ctx, string(state))
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := c.expire(ctx, id, state, limit, now); err != nil {
				var locked *store.ErrLocked
				if errors.As(err, &locked) || errors.Is(err, store.ErrNotFound) || errors.Is(err, errNotExpired) {
					continue // being worked on, gone, or not due
				}
				c.log.Warn("timeout node", "node", id, "err", err)
			}
		}
	}
	return nil
}

var errNotExpired = errors.New("not expired")

func (c *Conductor) expire(ctx context.Context, id string, state sm.State, limit time.Duration, now time.Time) error {
	// Owner "" fails on any held lock: a node someone works on is not
	// stuck.
	n, err := c.store.UpdateNode(ctx, id, "", func(n *api.Node, fx *store.Effects) error {
		if n.ProvisionState != string(state) || n.ProvisionUpdatedAt == nil || now.Sub(*n.ProvisionUpdatedAt) < limit {
			return errNotExpired
		}
		e, err := ApplyEvent(n, sm.Timeout, timeoutMessage(state, n, limit), c.cfg.Host, now)
		if err != nil {
			return err
		}
		fx.Event = e
		return nil
	})
	if err != nil {
		return err
	}
	c.metrics.Transitions.WithLabelValues(string(sm.Timeout)).Inc()
	c.log.Warn("node timed out", "node", id, "state", state, "now", n.ProvisionState, "last_error", n.LastError)
	return nil
}
