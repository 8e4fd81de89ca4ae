package ipmi

import (
	"context"
	"testing"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/pkg/api"
)

func TestHardware(t *testing.T) {
	d := NewDriver(Config{})
	defer d.Close(context.Background())
	hw := d.Hardware()
	if hw.Name != "ipmi" {
		t.Errorf("name %q", hw.Name)
	}

	n := &api.Node{Driver: "ipmi"}
	hw.ApplyDefaults(n)
	if err := hw.CheckInterfaces(n); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for field, want := range map[string]string{
		"power_interface": "ipmitool", "management_interface": "ipmitool", "deploy_interface": "fake",
		"inspect_interface": "fake", "boot_interface": "ipxe", "bios_interface": "no-bios", "console_interface": "no-console",
		"raid_interface": "no-raid", "rescue_interface": "no-rescue", "vendor_interface": "no-vendor",
		"network_interface": "noop", "storage_interface": "noop",
	} {
		if got := *n.Interfaces()[field]; got != want {
			t.Errorf("default %s = %q, want %q", field, got, want)
		}
	}
	ifs := hw.For(n)
	if ifs.Power == nil || ifs.Management == nil || ifs.Deploy == nil || ifs.Inspect == nil {
		t.Errorf("interfaces missing: %+v", ifs)
	}
	if _, ok := ifs.Power.(driver.Validator); !ok {
		t.Error("power is no Validator")
	}
	if _, ok := ifs.Management.(driver.Validator); !ok {
		t.Error("management is no Validator")
	}

	n.InspectInterface, n.BootInterface = "no-inspect", "fake"
	if err := hw.CheckInterfaces(n); err != nil {
		t.Errorf("no-inspect, fake boot: %v", err)
	}
	if hw.For(n).Inspect != nil {
		t.Error("no-inspect has an implementation")
	}
	n.PowerInterface = "fake"
	if err := hw.CheckInterfaces(n); err == nil {
		t.Error("fake power accepted")
	}

	for _, k := range []string{"ipmi_address", "ipmi_port", "ipmi_username", "ipmi_password", "ipmi_priv_level", "ipmi_cipher_suite", "deploy_kernel", "deploy_ramdisk"} {
		if hw.Properties[k] == "" {
			t.Errorf("property %s undocumented", k)
		}
	}
}
