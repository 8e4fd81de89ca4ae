package conductor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

// errUnchanged ends an update that has nothing to record.
var errUnchanged = errors.New("unchanged")

// powerSync reads every node's power state from its hardware, a bounded
// number at once, and records changes, as Ironic's power state sync does.
func (c *Conductor) powerSync(ctx context.Context) {
	for sleep(ctx, c.cfg.PowerSyncInterval) {
		if err := c.SyncPower(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("power sync", "err", err)
		}
	}
}

// SyncPower runs one pass of the power sync.
func (c *Conductor) SyncPower(ctx context.Context) error {
	ids, err := c.store.AllNodeIDs(ctx)
	if err != nil {
		return err
	}
	todo := make(chan string)
	var wg sync.WaitGroup
	for range c.cfg.PowerSyncWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range todo {
				if err := c.syncOne(ctx, id); err != nil && ctx.Err() == nil {
					c.log.Warn("power sync", "node", id, "err", err)
				}
			}
		}()
	}
	for _, id := range ids {
		select {
		case todo <- id:
		case <-ctx.Done():
		}
	}
	close(todo)
	wg.Wait()
	return nil
}

func (c *Conductor) syncOne(ctx context.Context, id string) error {
	n, holder, err := c.store.ViewNode(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	// Nodes in maintenance or being worked on are left alone; nodes never
	// verified have no trusted power interface yet.
	if n.Maintenance || holder != "" || n.TargetPowerState != "" || n.ProvisionState == "enroll" {
		return nil
	}
	hw, err := c.hardware(n)
	power := hw.For(n).Power
	if err != nil || power == nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.PowerTimeout)
	defer cancel()
	actual, err := power.PowerState(pctx, n)
	if err != nil {
		return fmt.Errorf("read power state: %w", err)
	}
	if actual == n.PowerState {
		return nil
	}
	_, err = c.store.UpdateNode(ctx, id, "", func(cur *api.Node, fx *store.Effects) error {
		if cur.PowerState == actual || cur.TargetPowerState != "" {
			return errUnchanged
		}
		fx.Event = &store.Event{
			UUID: newID(), CreatedAt: time.Now().UTC(), Severity: "INFO", EventType: "power",
			Event:     fmt.Sprintf("power state sync: recorded %q, hardware reports %q", cur.PowerState, actual),
			Conductor: c.cfg.Host,
		}
		cur.PowerState = actual
		return nil
	})
	var locked *store.ErrLocked
	if errors.Is(err, errUnchanged) || errors.As(err, &locked) {
		return nil
	}
	if err == nil {
		c.log.Info("power state changed outside Ingot", "node", id, "power_state", actual)
	}
	return err
}
