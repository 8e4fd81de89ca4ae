package ipmi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/pkg/api"
)

func TestSetBootDevice(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dev        driver.BootDevice
		props      map[string]any
		instance   map[string]any
		internal   map[string]any
		wantSel    types.BootDeviceSelector
		wantEFI    bool
		wantPersis bool
	}{
		{"pxe once, default legacy", driver.BootDevice{Device: "pxe"}, nil, nil, nil, types.BootDeviceSelectorForcePXE, false, false},
		{"disk persistent", driver.BootDevice{Device: "disk", Persistent: true}, nil, nil, nil, types.BootDeviceSelectorForceHardDrive, false, true},
		{"cdrom", driver.BootDevice{Device: "cdrom"}, nil, nil, nil, types.BootDeviceSelectorForceCDROM, false, false},
		{"bios setup", driver.BootDevice{Device: "bios"}, nil, nil, nil, types.BootDeviceSelectorForceBIOSSetup, false, false},
		{"safe", driver.BootDevice{Device: "safe"}, nil, nil, nil, types.BootDeviceSelectorForceHardDriveSafe, false, false},
		{"uefi from properties string", driver.BootDevice{Device: "pxe"},
			map[string]any{"capabilities": "cpu_vt:true,boot_mode:uefi"}, nil, nil, types.BootDeviceSelectorForcePXE, true, false},
		{"uefi from properties object", driver.BootDevice{Device: "pxe"},
			map[string]any{"capabilities": map[string]any{"boot_mode": "UEFI"}}, nil, nil, types.BootDeviceSelectorForcePXE, true, false},
		{"bios from properties", driver.BootDevice{Device: "pxe", Persistent: true},
			map[string]any{"capabilities": "boot_mode:bios"}, nil, nil, types.BootDeviceSelectorForcePXE, false, true},
		{"instance_info capabilities win over properties", driver.BootDevice{Device: "disk"},
			map[string]any{"capabilities": "boot_mode:bios"}, map[string]any{"capabilities": `{"boot_mode": "uefi"}`}, nil,
			types.BootDeviceSelectorForceHardDrive, true, false},
		{"deploy_boot_mode wins over capabilities", driver.BootDevice{Device: "disk"},
			map[string]any{"capabilities": "boot_mode:uefi"}, map[string]any{"deploy_boot_mode": "bios", "capabilities": "boot_mode:uefi"}, nil,
			types.BootDeviceSelectorForceHardDrive, false, false},
		{"secure boot means uefi", driver.BootDevice{Device: "pxe"},
			map[string]any{"capabilities": "boot_mode:bios"}, map[string]any{"capabilities": map[string]any{"secure_boot": "true"}}, nil,
			types.BootDeviceSelectorForcePXE, true, false},
		{"driver_internal_info last", driver.BootDevice{Device: "pxe"}, nil, nil, map[string]any{"deploy_boot_mode": "uefi"},
			types.BootDeviceSelectorForcePXE, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBMC{}
			m := management{newTestDriver(t, b, testConfig())}
			n := node("192.0.2.10", nil)
			n.Properties, n.InstanceInfo, n.DriverInternalInfo = tc.props, tc.instance, tc.internal
			if err := m.Validate(n); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if err := m.SetBootDevice(context.Background(), n, tc.dev); err != nil {
				t.Fatal(err)
			}
			f := b.flags
			if !f.BootFlagsValid || f.BootDeviceSelector != tc.wantSel || bool(f.BIOSBootType) != tc.wantEFI || f.Persist != tc.wantPersis {
				t.Errorf("flags: valid %v, selector %v, efi %v, persistent %v; want selector %v, efi %v, persistent %v",
					f.BootFlagsValid, f.BootDeviceSelector, bool(f.BIOSBootType), f.Persist, tc.wantSel, tc.wantEFI, tc.wantPersis)
			}
			got, err := m.BootDevice(context.Background(), n)
			if err != nil || got != tc.dev {
				t.Errorf("BootDevice = %+v, %v; want %+v", got, err, tc.dev)
			}
		})
	}
}

// The flags are written as ipmitool writes them, inside set-in-progress,
// after disabling the 60 s valid-bit timeout; BMCs without those
// parameters still get their flags.
func TestSetBootDeviceSequence(t *testing.T) {
	const (
		progress = types.BootOptionParamSelector_SetInProgress
		clear    = types.BootOptionParamSelector_BMCBootFlagValidBitClear
		flags    = types.BootOptionParamSelector_BootFlags
	)
	for _, tc := range []struct {
		name string
		bmc  *fakeBMC
		want []types.BootOptionParamSelector
	}{
		{"full BMC", &fakeBMC{}, []types.BootOptionParamSelector{progress, clear, flags, progress}},
		{"no set-in-progress", &fakeBMC{noProgress: true}, []types.BootOptionParamSelector{clear, flags}},
		{"no parameter 3", &fakeBMC{noParam3: true}, []types.BootOptionParamSelector{progress, flags, progress}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := management{newTestDriver(t, tc.bmc, testConfig())}
			if err := m.SetBootDevice(context.Background(), node("192.0.2.10", nil), driver.BootDevice{Device: "pxe"}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tc.bmc.params, tc.want) {
				t.Errorf("parameters written: %v, want %v", tc.bmc.params, tc.want)
			}
			if tc.bmc.flags.BootDeviceSelector != types.BootDeviceSelectorForcePXE {
				t.Error("flags not written")
			}
		})
	}
}

func TestBootDeviceReadBack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags types.BootOptionParam_BootFlags
		want  driver.BootDevice
	}{
		{"no override", types.BootOptionParam_BootFlags{BootFlagsValid: true}, driver.BootDevice{}},
		{"flags not valid", types.BootOptionParam_BootFlags{BootDeviceSelector: types.BootDeviceSelectorForcePXE, Persist: true}, driver.BootDevice{}},
		{"pxe once", types.BootOptionParam_BootFlags{BootFlagsValid: true, BootDeviceSelector: types.BootDeviceSelectorForcePXE}, driver.BootDevice{Device: "pxe"}},
		{"remote disk persistent", types.BootOptionParam_BootFlags{BootFlagsValid: true, Persist: true, BootDeviceSelector: types.BootDeviceSelectorForceRemoteHardDrive}, driver.BootDevice{Device: "disk", Persistent: true}},
		{"remote cdrom", types.BootOptionParam_BootFlags{BootFlagsValid: true, BootDeviceSelector: types.BootDeviceSelectorForceRemoteCDROM}, driver.BootDevice{Device: "cdrom"}},
		{"floppy: none of Ironic's", types.BootOptionParam_BootFlags{BootFlagsValid: true, BootDeviceSelector: types.BootDeviceSelectorForceFloppy}, driver.BootDevice{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBMC{flags: tc.flags}
			m := management{newTestDriver(t, b, testConfig())}
			got, err := m.BootDevice(context.Background(), node("192.0.2.10", nil))
			if err != nil || got != tc.want {
				t.Errorf("BootDevice = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestBootDeviceErrors(t *testing.T) {
	b := &fakeBMC{}
	m := management{newTestDriver(t, b, testConfig())}
	n := node("192.0.2.10", nil)
	if err := m.SetBootDevice(context.Background(), n, driver.BootDevice{Device: "floppy"}); err == nil || !strings.Contains(err.Error(), `unsupported boot device "floppy"`) {
		t.Errorf("floppy: err = %v", err)
	}
	n.Properties = map[string]any{"capabilities": "boot_mode:efi"}
	for _, err := range []error{m.Validate(n), m.SetBootDevice(context.Background(), n, driver.BootDevice{Device: "pxe"})} {
		if err == nil || !strings.Contains(err.Error(), `properties/capabilities boot_mode "efi" is not a boot mode: use uefi or bios`) {
			t.Errorf("bad boot mode: err = %v", err)
		}
	}
	n.Properties = map[string]any{"capabilities": "boot_mode"}
	if err := m.Validate(n); err == nil || !strings.Contains(err.Error(), "not key:value") {
		t.Errorf("bad capabilities: err = %v", err)
	}
	if len(b.commands) != 0 {
		t.Errorf("invalid requests reached the BMC: %v", b.commands)
	}

	b.cmdErr = func(string) error { return types.NewResponseError(types.CodeInvalidCommand, "x") }
	_, err := m.BootDevice(context.Background(), node("192.0.2.10", nil))
	var e *Error
	if !errors.As(err, &e) || e.Kind != Unsupported || e.Op != "get boot device" {
		t.Errorf("err = %v, want Unsupported from get boot device", err)
	}
	if got := (management{}).SupportedBootDevices(&api.Node{}); !slices.Equal(got, []string{"pxe", "disk", "cdrom", "bios", "safe"}) {
		t.Errorf("SupportedBootDevices = %v", got)
	}
}
