package compat

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/driver/fake"
	"github.com/ingot/ingot/coordinator/driver/ipmi"
	"github.com/ingot/ingot/e2e/vbmc"
)

// TestBaremetalCLIWithIPMI enrolls a node with the ipmi driver through the
// baremetal CLI, pointing at a virtual BMC, and manages, powers and boots
// it from the CLI; ipmitool, asked directly, must agree with the CLI.
func TestBaremetalCLIWithIPMI(t *testing.T) {
	bin := requireTool(t, "baremetal")
	requireTool(t, "ipmitool")
	m := vbmc.NewFakeMachine()
	bmc, err := vbmc.New(vbmc.Config{Addr: "127.0.0.1:0", Users: map[string]string{"admin": "pw-ipmi"}, Machine: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bmc.Start(ctx)
	defer func() { cancel(); bmc.Close() }()
	d := ipmi.NewDriver(ipmi.Config{CommandTimeout: 2 * time.Second})
	defer d.Close(context.Background())
	env := coordinatortest.Start(t, coordinatortest.Options{Drivers: []*driver.Hardware{fake.New(), d.Hardware()}})
	cli := &baremetalCLI{bin: bin, endpoint: env.URL}
	host, port := bmc.Addr().Addr().String(), fmt.Sprint(bmc.Addr().Port())
	ipmitool := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ipmitool", append([]string{"-I", "lanplus", "-H", host, "-p", port, "-U", "admin", "-P", "pw-ipmi"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ipmitool %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	var node map[string]any
	cli.json(t, &node, "node", "create", "--driver", "ipmi", "--name", "cli-ipmi",
		"--driver-info", "ipmi_address="+host, "--driver-info", "ipmi_port="+port,
		"--driver-info", "ipmi_username=admin", "--driver-info", "ipmi_password=pw-ipmi")
	if di, _ := node["driver_info"].(map[string]any); di["ipmi_password"] != "******" {
		t.Errorf("driver_info shown as %v", node["driver_info"])
	}
	cli.run(t, "node", "manage", "cli-ipmi", "--wait", "30")

	powerState := func() string {
		t.Helper()
		return strings.TrimSpace(cli.run(t, "node", "show", "cli-ipmi", "-f", "value", "-c", "power_state"))
	}
	waitPower := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for powerState() != want {
			if time.Now().After(deadline) {
				t.Fatalf("power_state never became %q", want)
			}
		}
	}
	cli.run(t, "node", "power", "on", "cli-ipmi")
	waitPower("power on")
	if out := ipmitool("chassis", "power", "status"); !strings.Contains(out, "is on") {
		t.Errorf("CLI says power on, ipmitool says %q", out)
	}
	resets := m.Ops()["reset"]
	cli.run(t, "node", "reboot", "cli-ipmi")
	deadline := time.Now().Add(15 * time.Second)
	for m.Ops()["reset"] == resets && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m.Ops()["reset"] != resets+1 {
		t.Errorf("reboot from the CLI sent %d resets", m.Ops()["reset"]-resets)
	}
	cli.run(t, "node", "power", "off", "cli-ipmi")
	waitPower("power off")
	if out := ipmitool("chassis", "power", "status"); !strings.Contains(out, "is off") {
		t.Errorf("CLI says power off, ipmitool says %q", out)
	}

	cli.run(t, "node", "boot", "device", "set", "cli-ipmi", "pxe", "--persistent")
	var bd map[string]any
	cli.json(t, &bd, "node", "boot", "device", "show", "cli-ipmi")
	if bd["boot_device"] != "pxe" || bd["persistent"] != true {
		t.Errorf("CLI shows boot device %v", bd)
	}
	if out := ipmitool("chassis", "bootparam", "get", "5"); !strings.Contains(out, "Force PXE") || !strings.Contains(out, "all future boots") {
		t.Errorf("ipmitool disagrees with the CLI's boot device:\n%s", out)
	}
	t.Logf("%d baremetal calls", cli.calls)
}
