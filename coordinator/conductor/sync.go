package conductor

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

func newID() string { return uuid.NewString() }

// ErrInvalid is an operator error (bad boot device and the like); the API
// shows it as 400.
type ErrInvalid struct{ Msg string }

func (e *ErrInvalid) Error() string { return e.Msg }

// hardware returns a node's hardware type.
func (c *Conductor) hardware(n *api.Node) (*driver.Hardware, error) {
	hw, ok := c.drivers.Get(n.Driver)
	if !ok {
		return nil, fmt.Errorf("node %s: unknown driver %q", n.UUID, n.Driver)
	}
	return hw, nil
}

// view returns a node, read only, with its hardware type.
func (c *Conductor) view(ctx context.Context, ident string) (*api.Node, *driver.Hardware, error) {
	n, _, err := c.store.ViewNode(ctx, ident)
	if err != nil {
		return nil, nil, err
	}
	hw, err := c.hardware(n)
	return n, hw, err
}

// locked runs fn on node ident holding its reservation, then stores what
// fn changed in driver_internal_info. For quick BMC calls the API makes
// synchronously, as Ironic does for boot devices.
func (c *Conductor) locked(ctx context.Context, ident string, fn func(*api.Node, *driver.Hardware) error) error {
	id, err := c.store.ResolveNode(ctx, ident)
	if err != nil {
		return err
	}
	lock, err := c.store.Lock(ctx, id, store.NewOwner(c.cfg.Host), c.cfg.LockTTL)
	if err != nil {
		var locked *store.ErrLocked
		if errors.As(err, &locked) {
			c.metrics.LockContention.WithLabelValues("api").Inc()
		}
		return err
	}
	defer lock.Release(context.WithoutCancel(ctx))
	n, _, err := c.store.GetNode(ctx, id)
	if err != nil {
		return err
	}
	hw, err := c.hardware(n)
	if err != nil {
		return err
	}
	if err := fn(n, hw); err != nil {
		return err
	}
	_, err = c.store.UpdateNode(ctx, id, lock.Owner(), func(cur *api.Node, _ *store.Effects) error {
		cur.DriverInternalInfo = n.DriverInternalInfo
		return nil
	})
	return err
}

// BootDevice reads a node's boot device from its hardware.
func (c *Conductor) BootDevice(ctx context.Context, ident string) (driver.BootDevice, error) {
	var d driver.BootDevice
	err := c.locked(ctx, ident, func(n *api.Node, hw *driver.Hardware) error {
		mgmt := hw.For(n).Management
		if mgmt == nil {
			return driver.ErrUnsupported
		}
		var err error
		d, err = mgmt.BootDevice(ctx, n)
		return err
	})
	return d, err
}

// SetBootDevice sets a node's boot device.
func (c *Conductor) SetBootDevice(ctx context.Context, ident string, d driver.BootDevice) error {
	return c.locked(ctx, ident, func(n *api.Node, hw *driver.Hardware) error {
		mgmt := hw.For(n).Management
		if mgmt == nil {
			return driver.ErrUnsupported
		}
		if !slices.Contains(mgmt.SupportedBootDevices(n), d.Device) {
			return &ErrInvalid{Msg: fmt.Sprintf("Invalid boot device %s specified.", d.Device)}
		}
		return mgmt.SetBootDevice(ctx, n, d)
	})
}

// SupportedBootDevices lists the boot devices a node's hardware offers.
func (c *Conductor) SupportedBootDevices(ctx context.Context, ident string) ([]string, error) {
	n, hw, err := c.view(ctx, ident)
	if err != nil {
		return nil, err
	}
	mgmt := hw.For(n).Management
	if mgmt == nil {
		return nil, nil
	}
	return mgmt.SupportedBootDevices(n), nil
}

// Validation is one interface's line of GET /v1/nodes/{id}/validate.
type Validation struct {
	Result bool   `json:"result"`
	Reason string `json:"reason,omitempty"`
}

// Validate checks a node's configuration for each of its interfaces.
func (c *Conductor) Validate(ctx context.Context, ident string) (map[string]Validation, error) {
	n, hw, err := c.view(ctx, ident)
	if err != nil {
		return nil, err
	}
	ifs := hw.For(n)
	check := func(impl any) Validation {
		if impl == nil {
			return Validation{Result: false, Reason: "not supported"}
		}
		if v, ok := impl.(driver.Validator); ok {
			if err := v.Validate(n); err != nil {
				return Validation{Result: false, Reason: err.Error()}
			}
		}
		return Validation{Result: true}
	}
	out := map[string]Validation{
		"power":      check(ifs.Power),
		"management": check(ifs.Management),
		"deploy":     check(ifs.Deploy),
		"inspect":    check(ifs.Inspect),
		"boot":       check(ifs.Deploy),
		"network":    {Result: true},
		"storage":    {Result: true},
	}
	for _, name := range []string{"bios", "console", "raid", "rescue"} {
		out[name] = Validation{Result: false, Reason: "not supported"}
	}
	return out, nil
}
