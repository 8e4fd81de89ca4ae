package ipmi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/chassis"

	"github.com/ingot/ingot/pkg/api"
)

// power is the ipmitool power interface.
type power struct{ d *Driver }

// Validate checks the node's driver_info without asking the BMC.
func (p power) Validate(n *api.Node) error {
	_, err := parseDriverInfo(n)
	return err
}

// PowerState reads the chassis power state.
func (p power) PowerState(ctx context.Context, n *api.Node) (string, error) {
	t, err := parseDriverInfo(n)
	if err != nil {
		return "", err
	}
	on, err := p.d.isOn(ctx, t, "power status")
	if err != nil {
		return "", err
	}
	return stateName(on), nil
}

// SetPowerState moves the node to target and waits, up to timeout, for
// the BMC to report the resulting state. A node already there is left
// alone: BMCs differ in what a redundant power command does.
func (p power) SetPowerState(ctx context.Context, n *api.Node, target string, timeout time.Duration) error {
	t, err := parseDriverInfo(n)
	if err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = DefaultPowerTimeout
	}
	d := p.d
	switch target {
	case api.PowerOn:
		return d.change(ctx, t, "power on", chassis.ChassisControlPowerUp, true, timeout)
	case api.PowerOff:
		return d.change(ctx, t, "power off", chassis.ChassisControlPowerDown, false, timeout)
	case api.SoftPowerOff:
		return d.change(ctx, t, "soft power off", chassis.ChassisControlSoftShutdown, false, timeout)
	case api.SoftRebooting:
		// As Ironic: the soft power off and the power on each get the
		// whole timeout.
		if err := d.change(ctx, t, "soft reboot", chassis.ChassisControlSoftShutdown, false, timeout); err != nil {
			return err
		}
		return d.change(ctx, t, "soft reboot", chassis.ChassisControlPowerUp, true, timeout)
	case api.Rebooting:
		return d.reboot(ctx, t, timeout)
	}
	return fmt.Errorf("IPMI power of node %s: unknown target power state %q", n.UUID, target)
}

// change sends ctl unless the power already is as wanted, then waits for
// the BMC to report it.
func (d *Driver) change(ctx context.Context, t target, op string, ctl chassis.ChassisControl, want bool, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	on, err := d.isOn(wctx, t, op)
	if err != nil {
		return err
	}
	if on == want {
		return nil
	}
	if err := d.control(wctx, t, op, ctl); err != nil {
		return err
	}
	return d.waitFor(ctx, wctx, t, op, ctl, want, timeout)
}

// reboot resets a node that is on and powers up one that is off: BMCs
// refuse a reset or cycle of a powered-off chassis with completion code
// 0xD5 (not supported in present state).
func (d *Driver) reboot(ctx context.Context, t target, timeout time.Duration) error {
	const op = "reboot"
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	on, err := d.isOn(wctx, t, op)
	if err != nil {
		return err
	}
	ctl := chassis.ChassisControlHardReset
	if !on {
		ctl = chassis.ChassisControlPowerUp
	}
	if err := d.control(wctx, t, op, ctl); err != nil {
		return err
	}
	return d.waitFor(ctx, wctx, t, op, ctl, true, timeout)
}

// waitFor polls the power state every PollInterval until it is want or
// wctx (the change's timeout) ends. Failed reads do not end the wait
// unless retrying cannot help: BMCs are known to stall for a moment while
// the chassis changes state.
func (d *Driver) waitFor(ctx, wctx context.Context, t target, op string, ctl chassis.ChassisControl, want bool, timeout time.Duration) error {
	last := ""
	var lastErr *Error
	for {
		on, err := d.isOn(wctx, t, op)
		var e *Error
		switch {
		case err == nil && on == want:
			return nil
		case err == nil:
			last, lastErr = stateName(on), nil
		case ctx.Err() != nil:
			return err
		case !errors.As(err, &e) || !e.Kind.retryable():
			return err
		case wctx.Err() == nil:
			lastErr = e
		}
		if !sleep(wctx, d.cfg.PollInterval) {
			break
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("IPMI %s of %s: %w", op, t.addr(), ctx.Err())
	}

	what := fmt.Sprintf("timed out after %s waiting for %s", timeout, stateName(want))
	if ctl == chassis.ChassisControlSoftShutdown {
		what = fmt.Sprintf("soft power off timed out after %s", timeout)
	}
	switch {
	case last != "":
		what += ": the BMC still reports " + last
	case lastErr != nil:
		what += fmt.Sprintf(": the power state could not be read (%v)", lastErr.Err)
	}
	return &Error{Kind: Timeout, BMC: t.addr(), Op: op, Err: errors.New(what)}
}

// isOn reads whether the chassis power is on.
func (d *Driver) isOn(ctx context.Context, t target, op string) (bool, error) {
	var on bool
	err := d.pool.do(ctx, t, op, func(ctx context.Context, s session) error {
		st, err := s.GetChassisStatus(ctx)
		if err != nil {
			return err
		}
		on = st.PowerIsOn
		return nil
	})
	return on, err
}

// control sends a Chassis Control command.
func (d *Driver) control(ctx context.Context, t target, op string, ctl chassis.ChassisControl) error {
	return d.pool.do(ctx, t, op, func(ctx context.Context, s session) error {
		_, err := s.ChassisControl(ctx, ctl)
		return err
	})
}

func stateName(on bool) string {
	if on {
		return api.PowerOn
	}
	return api.PowerOff
}
