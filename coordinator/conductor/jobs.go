package conductor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// Job actions.
const (
	ActionProvision = "provision" // carry out the operation of the node's current state
	ActionPower     = "power"     // args: target, timeout (seconds)
)

// ProvisionJob is the job the API enqueues with a verb's transition: do
// the work of state.
func ProvisionJob(state string) *store.Job {
	return &store.Job{Action: ActionProvision, Args: map[string]string{"state": state}}
}

// PowerJob is the job for a power change.
func PowerJob(target string, timeout time.Duration) *store.Job {
	return &store.Job{Action: ActionPower, Args: map[string]string{"target": target, "timeout": strconv.Itoa(int(timeout.Seconds()))}}
}

func (c *Conductor) run(ctx context.Context, j store.Job) error {
	switch j.Action {
	case ActionProvision:
		return c.withLock(ctx, j, c.provision)
	case ActionPower:
		return c.withLock(ctx, j, c.power)
	case ActionAgent:
		err := c.withLock(ctx, j, c.agentCalled)
		var locked *store.ErrLocked
		if errors.As(err, &locked) {
			// Unlike other jobs an agent job is worth nothing later: the
			// agent's next call asks again, with fresher news. Let it.
			return c.store.AgentJobStarted(context.WithoutCancel(ctx), j.Node)
		}
		return err
	}
	return fmt.Errorf("unknown job action %q", j.Action)
}

// work is what a job's function gets: the node as locked, the lock, and
// the node's hardware type.
type work struct {
	job  store.Job
	node *api.Node
	lock *store.Lock
	hw   *driver.Hardware
}

// ifs returns the interfaces the node has chosen now (a step may run
// after the node changed).
func (w *work) ifs() driver.Interfaces { return w.hw.For(w.node) }

// withLock runs fn holding the node's reservation, renewing it (and the
// job's claim) while fn runs. Locks held by API calls are short, so a
// locked node is retried for a few seconds before the job is left for the
// reclaimer.
func (c *Conductor) withLock(ctx context.Context, j store.Job, fn func(context.Context, *work) error) error {
	owner := store.NewOwner(c.cfg.Host)
	var lock *store.Lock
	var err error
	for delay := 50 * time.Millisecond; ; delay *= 2 {
		lock, err = c.store.Lock(ctx, j.Node, owner, c.cfg.LockTTL)
		var locked *store.ErrLocked
		if !errors.As(err, &locked) || delay > 5*time.Second {
			break
		}
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	defer lock.Release(context.WithoutCancel(ctx))

	n, _, err := c.store.GetNode(ctx, j.Node)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile: nothing to do
	}
	if err != nil {
		return err
	}
	hw, ok := c.drivers.Get(n.Driver)
	if !ok {
		return fmt.Errorf("node %s: unknown driver %q", n.UUID, n.Driver)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go lock.KeepAlive(wctx, cancel)
	go func() {
		for sleep(wctx, c.cfg.StaleJob/3) {
			c.store.Touch(wctx, c.consumer, j.ID)
		}
	}()
	return fn(wctx, &work{job: j, node: n, lock: lock, hw: hw})
}

// step is the operation a busy state performs.
type step func(ctx context.Context, w *work) (driver.Result, error)

func (c *Conductor) steps(state sm.State) (step, bool) {
	switch state {
	case sm.Verifying, sm.Adopting:
		return func(ctx context.Context, w *work) (driver.Result, error) {
			power := w.ifs().Power
			if power == nil {
				return driver.Done, nil
			}
			ps, err := power.PowerState(ctx, w.node)
			if err != nil {
				return 0, fmt.Errorf("failed to get power state for node %s: %w", w.node.UUID, err)
			}
			w.node.PowerState = ps
			return driver.Done, nil
		}, true
	case sm.Inspecting:
		return func(ctx context.Context, w *work) (driver.Result, error) {
			inspect := w.ifs().Inspect
			if inspect == nil {
				return 0, fmt.Errorf("inspect: %w", driver.ErrUnsupported)
			}
			return inspect.Inspect(ctx, w.node)
		}, true
	case sm.Cleaning:
		return func(ctx context.Context, w *work) (driver.Result, error) {
			deploy := w.ifs().Deploy
			if deploy == nil {
				return 0, fmt.Errorf("clean: %w", driver.ErrUnsupported)
			}
			return deploy.Clean(ctx, w.node, w.node.TargetProvisionState == string(sm.Manageable))
		}, true
	case sm.Deploying:
		return func(ctx context.Context, w *work) (driver.Result, error) {
			// Record the image type as Ironic does, so clients reading
			// these fields see the same thing: a partition image is one
			// said so, or one with its own kernel and ramdisk.
			n := w.node
			if n.InstanceInfo == nil {
				n.InstanceInfo = map[string]any{}
			}
			if _, ok := n.InstanceInfo["image_type"]; !ok {
				n.InstanceInfo["image_type"] = "whole-disk"
				if n.InstanceInfo["kernel"] != nil && n.InstanceInfo["ramdisk"] != nil {
					n.InstanceInfo["image_type"] = "partition"
				}
			}
			n.DriverInternalInfo = setInternal(n.DriverInternalInfo, "is_whole_disk_image", n.InstanceInfo["image_type"] != "partition")
			n.DriverInternalInfo["deploy_steps"] = nil
			deploy := w.ifs().Deploy
			if deploy == nil {
				return 0, fmt.Errorf("deploy: %w", driver.ErrUnsupported)
			}
			return deploy.Deploy(ctx, w.node)
		}, true
	case sm.Deleting:
		return func(ctx context.Context, w *work) (driver.Result, error) {
			deploy := w.ifs().Deploy
			if deploy == nil {
				return 0, fmt.Errorf("tear down: %w", driver.ErrUnsupported)
			}
			return deploy.TearDown(ctx, w.node)
		}, true
	}
	return nil, false
}

// provision carries a node through busy states until it rests or waits
// for its agent: deleting tears down, then cleans, in one job.
func (c *Conductor) provision(ctx context.Context, w *work) error {
	if w.node.ProvisionState != w.job.Args["state"] {
		// The node moved on (an abort, or this job ran already before a
		// crash): the job is stale.
		return nil
	}
	for {
		state := sm.State(w.node.ProvisionState)
		do, ok := c.steps(state)
		if !ok {
			return nil
		}
		c.log.Info("operation starts", "node", w.node.UUID, "state", state)
		res, err := do(ctx, w)
		ev, msg := sm.Done, ""
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err() // shutting down: resume later, do not fail the node
			}
			ev, msg = sm.Fail, err.Error()
		case res == driver.Wait:
			// The agent does the rest: boot the node into it.
			ev = sm.Wait
			if err := c.bootAgent(ctx, w); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				ev, msg = sm.Fail, err.Error()
			}
		case state == sm.Deleting:
			ev = sm.Teardown
		}
		n, err := c.finish(ctx, w, ev, msg)
		if err != nil {
			return err
		}
		w.node = n
		if msg != "" {
			c.log.Warn("operation failed", "node", n.UUID, "state", state, "last_error", msg)
		}
	}
}

// finish records the driver's changes to the node together with the
// transition for ev.
func (c *Conductor) finish(ctx context.Context, w *work, ev sm.Event, lastError string) (*api.Node, error) {
	done := w.node
	n, err := c.store.UpdateNode(context.WithoutCancel(ctx), done.UUID, w.lock.Owner(), func(n *api.Node, fx *store.Effects) error {
		copyDriverFields(n, done)
		e, err := ApplyEvent(n, ev, lastError, c.cfg.Host, time.Now().UTC())
		if err != nil {
			return err
		}
		fx.Event = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %s of node %s: %w", ev, done.UUID, err)
	}
	c.metrics.Transitions.WithLabelValues(string(ev)).Inc()
	return n, nil
}

// power changes the power state and records the outcome.
func (c *Conductor) power(ctx context.Context, w *work) error {
	target := w.job.Args["target"]
	timeout := c.cfg.PowerTimeout
	if s, err := strconv.Atoi(w.job.Args["timeout"]); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	var opErr error
	if power := w.ifs().Power; power == nil {
		opErr = driver.ErrUnsupported
	} else {
		opErr = power.SetPowerState(ctx, w.node, target, timeout)
		if opErr == nil {
			w.node.PowerState, opErr = power.PowerState(ctx, w.node)
		}
	}
	if opErr != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	done := w.node
	_, err := c.store.UpdateNode(context.WithoutCancel(ctx), done.UUID, w.lock.Owner(), func(n *api.Node, fx *store.Effects) error {
		n.TargetPowerState = ""
		n.DriverInternalInfo = done.DriverInternalInfo
		now := time.Now().UTC()
		e := &store.Event{UUID: newID(), CreatedAt: now, Severity: "INFO", EventType: "power", Conductor: c.cfg.Host}
		if opErr != nil {
			n.LastError = fmt.Sprintf("Failed to change power state to '%s' by '%s': %v", target, target, opErr)
			e.Severity, e.Event = "ERROR", n.LastError
		} else {
			n.PowerState, n.LastError = done.PowerState, ""
			n.DriverInternalInfo = setInternal(n.DriverInternalInfo, "last_power_state_change", now.Format("2006-01-02T15:04:05.000000"))
			e.Event = fmt.Sprintf("power %s: now %s", target, done.PowerState)
		}
		fx.Event = e
		return nil
	})
	return err
}

func setInternal(m map[string]any, k string, v any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m[k] = v
	return m
}
