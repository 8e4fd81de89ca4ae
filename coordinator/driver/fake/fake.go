// Package fake is the fake-hardware type: power, boot device, deploy,
// clean and inspect that succeed at once, keeping their "hardware" state on
// the node record itself, so the whole lifecycle works with no hardware and
// survives coordinator restarts like any other state.
package fake

import (
	"context"
	"fmt"
	"time"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/pkg/api"
)

// Name is the hardware type's name, as in Ironic.
const Name = "fake-hardware"

// bootKey is where the fake boot device lives in driver_internal_info.
const bootKey = "fake_boot_device"

// New returns the fake-hardware type.
func New() *driver.Hardware {
	defaults := map[string]string{}
	others := map[string][]string{}
	for _, f := range []string{"bios", "boot", "console", "deploy", "inspect", "management", "power", "raid", "rescue", "vendor"} {
		defaults[f+"_interface"] = "fake"
		others[f+"_interface"] = []string{"fake", "no-" + f}
	}
	defaults["network_interface"], others["network_interface"] = "noop", []string{"noop"}
	defaults["storage_interface"], others["storage_interface"] = "noop", []string{"noop"}
	return &driver.Hardware{
		Name:       Name,
		Defaults:   defaults,
		Others:     others,
		Properties: map[string]string{},
		Power:      map[string]driver.Power{"fake": Power{}},
		Management: map[string]driver.Management{"fake": Management{}},
		Deploy:     map[string]driver.Deploy{"fake": Deploy{}},
		Inspect:    map[string]driver.Inspect{"fake": Inspect{}},
	}
}

// Power keeps power state on the node.
type Power struct{}

func (Power) PowerState(_ context.Context, n *api.Node) (string, error) {
	if n.PowerState == "" {
		return api.PowerOff, nil
	}
	return n.PowerState, nil
}

func (Power) SetPowerState(ctx context.Context, n *api.Node, target string, _ time.Duration) error {
	switch target {
	case api.PowerOn, api.Rebooting, api.SoftRebooting:
		n.PowerState = api.PowerOn
	case api.PowerOff, api.SoftPowerOff:
		n.PowerState = api.PowerOff
	default:
		return fmt.Errorf("power %s: unknown target %q", n.UUID, target)
	}
	return ctx.Err()
}

// Management keeps the boot device in driver_internal_info.
type Management struct{}

func (Management) BootDevice(_ context.Context, n *api.Node) (driver.BootDevice, error) {
	d := driver.BootDevice{Device: driver.BootDisk}
	if m, ok := n.DriverInternalInfo[bootKey].(map[string]any); ok {
		d.Device, _ = m["boot_device"].(string)
		d.Persistent, _ = m["persistent"].(bool)
	}
	return d, nil
}

func (Management) SetBootDevice(_ context.Context, n *api.Node, d driver.BootDevice) error {
	if n.DriverInternalInfo == nil {
		n.DriverInternalInfo = map[string]any{}
	}
	n.DriverInternalInfo[bootKey] = map[string]any{"boot_device": d.Device, "persistent": d.Persistent}
	return nil
}

func (Management) SupportedBootDevices(*api.Node) []string {
	return []string{driver.BootPXE, driver.BootDisk, driver.BootCDROM, driver.BootBIOS, driver.BootSafe}
}

// Deploy succeeds at once.
type Deploy struct{}

func (Deploy) Deploy(ctx context.Context, n *api.Node) (driver.Result, error) {
	n.PowerState = api.PowerOn
	return driver.Done, ctx.Err()
}

func (Deploy) TearDown(ctx context.Context, n *api.Node) (driver.Result, error) {
	n.PowerState = api.PowerOff
	return driver.Done, ctx.Err()
}

func (Deploy) Clean(ctx context.Context, _ *api.Node, _ bool) (driver.Result, error) {
	return driver.Done, ctx.Err()
}

// Inspect finds nothing new.
type Inspect struct{}

func (Inspect) Inspect(ctx context.Context, _ *api.Node) (driver.Result, error) {
	return driver.Done, ctx.Err()
}
