package ipmi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/pkg/api"
)

// management is the ipmitool management interface: the boot device, in
// the System Boot Options' boot flags (parameter 5).
type management struct{ d *Driver }

// Boot devices and the selectors that force them, as ipmitool's
// "chassis bootdev" sets them.
var selectors = map[string]types.BootDeviceSelector{
	driver.BootPXE:   types.BootDeviceSelectorForcePXE,
	driver.BootDisk:  types.BootDeviceSelectorForceHardDrive,
	driver.BootCDROM: types.BootDeviceSelectorForceCDROM,
	driver.BootBIOS:  types.BootDeviceSelectorForceBIOSSetup,
	driver.BootSafe:  types.BootDeviceSelectorForceHardDriveSafe,
}

// devices reads selectors back as Ironic does ("Hard-Drive", "CD/DVD", ...
// in ipmitool's description of the selector).
var devices = map[types.BootDeviceSelector]string{
	types.BootDeviceSelectorForcePXE:             driver.BootPXE,
	types.BootDeviceSelectorForceHardDrive:       driver.BootDisk,
	types.BootDeviceSelectorForceRemoteHardDrive: driver.BootDisk,
	types.BootDeviceSelectorForceHardDriveSafe:   driver.BootSafe,
	types.BootDeviceSelectorForceCDROM:           driver.BootCDROM,
	types.BootDeviceSelectorForceRemoteCDROM:     driver.BootCDROM,
	types.BootDeviceSelectorForceBIOSSetup:       driver.BootBIOS,
}

// Validate checks the node's driver_info and boot mode without asking
// the BMC.
func (m management) Validate(n *api.Node) error {
	if _, err := parseDriverInfo(n); err != nil {
		return err
	}
	_, err := bootMode(n)
	return err
}

func (management) SupportedBootDevices(*api.Node) []string {
	return []string{driver.BootPXE, driver.BootDisk, driver.BootCDROM, driver.BootBIOS, driver.BootSafe}
}

// SetBootDevice sets the boot flags for the next boot (or all of them),
// for UEFI or legacy BIOS as the node's boot mode says.
func (m management) SetBootDevice(ctx context.Context, n *api.Node, d driver.BootDevice) error {
	t, err := parseDriverInfo(n)
	if err != nil {
		return err
	}
	sel, ok := selectors[d.Device]
	if !ok {
		return fmt.Errorf("IPMI set boot device of %s: unsupported boot device %q", t.addr(), d.Device)
	}
	mode, err := bootMode(n)
	if err != nil {
		return err
	}
	flags := &types.BootOptionParam_BootFlags{
		BootFlagsValid:     true,
		Persist:            d.Persistent,
		BIOSBootType:       types.BIOSBootType(mode == bootUEFI),
		BootDeviceSelector: sel,
	}
	return m.d.pool.do(ctx, t, "set boot device", func(ctx context.Context, s session) error {
		return setBootFlags(ctx, s, flags)
	})
}

// setBootFlags writes the boot flags the way ipmitool's "chassis bootdev"
// does, inside set-in-progress when the BMC has it. go-ipmi's
// SetBootParamBootFlags is not used: when "set in progress" fails it
// skips the flags yet may report success.
func setBootFlags(ctx context.Context, s session, flags *types.BootOptionParam_BootFlags) error {
	err := s.SetSystemBootOptionsParamFor(ctx, &types.BootOptionParam_SetInProgress{Value: types.SetInProgress_SetInProgress})
	if err != nil && !isCompletionCode(err) {
		return err
	}
	inProgress := err == nil
	// As Ironic (ipmi_disable_boot_timeout): stop the BMC from clearing
	// the flags if no chassis control follows within 60 s, which would
	// lose them while a deploy prepares. Not every BMC has this
	// parameter; its completion code is ignored.
	err = s.SetSystemBootOptionsParamFor(ctx, &types.BootOptionParam_BMCBootFlagValidBitClear{DontClearOnCommandReceivedTimeout: true})
	if err != nil && !isCompletionCode(err) {
		return err
	}
	err = s.SetSystemBootOptionsParamFor(ctx, flags)
	if inProgress {
		done := s.SetSystemBootOptionsParamFor(ctx, &types.BootOptionParam_SetInProgress{Value: types.SetInProgress_SetComplete})
		if err == nil && done != nil && !isCompletionCode(done) {
			err = done
		}
	}
	return err
}

// BootDevice reads the boot flags back. With no override set (flags not
// valid, or "no override") the device is "", as Ironic answers None.
func (m management) BootDevice(ctx context.Context, n *api.Node) (driver.BootDevice, error) {
	t, err := parseDriverInfo(n)
	if err != nil {
		return driver.BootDevice{}, err
	}
	var flags types.BootOptionParam_BootFlags
	err = m.d.pool.do(ctx, t, "get boot device", func(ctx context.Context, s session) error {
		flags = types.BootOptionParam_BootFlags{}
		return s.GetSystemBootOptionsParamFor(ctx, &flags)
	})
	if err != nil {
		return driver.BootDevice{}, err
	}
	dev, ok := devices[flags.BootDeviceSelector]
	if !flags.BootFlagsValid || !ok {
		return driver.BootDevice{}, nil
	}
	return driver.BootDevice{Device: dev, Persistent: flags.Persist}, nil
}

// Boot modes, as Ironic names them.
const (
	bootUEFI = "uefi"
	bootBIOS = "bios"
)

// bootMode is the node's boot mode, looked up as Ironic's
// boot_mode_utils.get_boot_mode does: secure boot asked for means UEFI;
// then instance_info's deploy_boot_mode, the boot_mode capability of
// instance_info then of properties, driver_internal_info's
// deploy_boot_mode; else legacy BIOS (Ingot's default for now).
func bootMode(n *api.Node) (string, error) {
	instanceCaps, err := capabilities(n.InstanceInfo["capabilities"])
	if err != nil {
		return "", fmt.Errorf("instance_info/capabilities: %w", err)
	}
	if strings.EqualFold(instanceCaps["secure_boot"], "true") {
		return bootUEFI, nil
	}
	propCaps, err := capabilities(n.Properties["capabilities"])
	if err != nil {
		return "", fmt.Errorf("properties/capabilities: %w", err)
	}
	for _, c := range []struct {
		where string
		value any
	}{
		{"instance_info/deploy_boot_mode", n.InstanceInfo["deploy_boot_mode"]},
		{"instance_info/capabilities boot_mode", instanceCaps["boot_mode"]},
		{"properties/capabilities boot_mode", propCaps["boot_mode"]},
		{"driver_internal_info/deploy_boot_mode", n.DriverInternalInfo["deploy_boot_mode"]},
	} {
		v, _ := c.value.(string)
		if v == "" {
			continue
		}
		switch mode := strings.ToLower(strings.TrimSpace(v)); mode {
		case bootUEFI, bootBIOS:
			return mode, nil
		}
		return "", fmt.Errorf("%s %q is not a boot mode: use uefi or bios", c.where, v)
	}
	return bootBIOS, nil
}

// capabilities reads a capabilities field in any of the forms Ironic
// accepts: "k1:v1,k2:v2", a JSON object in a string (as Nova writes
// instance_info), or an object.
func capabilities(v any) (map[string]string, error) {
	out := map[string]string{}
	switch c := v.(type) {
	case nil:
		return out, nil
	case map[string]any:
		for k, x := range c {
			out[k] = fmt.Sprint(x)
		}
		return out, nil
	case string:
		c = strings.TrimSpace(c)
		if strings.HasPrefix(c, "{") {
			var m map[string]any
			if err := json.Unmarshal([]byte(c), &m); err != nil {
				return nil, fmt.Errorf("not a JSON object: %w", err)
			}
			return capabilities(m)
		}
		for _, kv := range strings.Split(c, ",") {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, val, ok := strings.Cut(kv, ":")
			if !ok {
				return nil, fmt.Errorf("%q is not key:value", kv)
			}
			out[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or an object, not %T", v)
}
