package power

import (
	"strings"
	"testing"

	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/e2e/vbmc"
)

// An ipmi node is verified, powered and given boot devices through the
// REST API, and ipmitool, asking the same BMC, agrees with every answer.
func TestIPMINodeThroughAPI(t *testing.T) {
	needTool(t, "ipmitool")
	m := vbmc.NewFakeMachine()
	bmc := startBMC(t, m)
	env := startCoordinator(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)

	id := c.CreateNode(map[string]any{"driver": "ipmi", "name": "rack1-u07", "driver_info": driverInfo(bmc, bmcPass)})
	node := c.Must(200, "GET", "/v1/nodes/"+id, nil).JSON(t)
	if node["power_interface"] != "ipmitool" || node["management_interface"] != "ipmitool" {
		t.Errorf("interfaces %v / %v", node["power_interface"], node["management_interface"])
	}
	if strings.Contains(string(c.Must(200, "GET", "/v1/nodes/"+id, nil).Body), bmcPass) {
		t.Error("the BMC password is shown")
	}
	// manage verifies the credentials by reading the power state.
	c.Provision(id, "manage")
	st := c.WaitState(id, "manageable")
	if st["power_state"] != "power off" {
		t.Errorf("after verifying: power_state %v, want power off", st["power_state"])
	}

	power := func(target, want string, bmcSays string) {
		t.Helper()
		c.Must(202, "PUT", "/v1/nodes/"+id+"/states/power", map[string]any{"target": target})
		c.WaitPower(id, want)
		if out := ipmitool(t, bmc, "chassis", "power", "status"); !strings.Contains(out, bmcSays) {
			t.Errorf("after %q the API says %q but ipmitool says %q", target, want, out)
		}
	}
	power("power on", "power on", "Chassis Power is on")
	resets := m.Ops()["reset"]
	power("rebooting", "power on", "Chassis Power is on")
	if m.Ops()["reset"] != resets+1 {
		t.Errorf("rebooting sent %d resets, want 1 (ops %v)", m.Ops()["reset"]-resets, m.Ops())
	}
	power("power off", "power off", "Chassis Power is off")
	// Rebooting a node that is off powers it on (a BMC refuses reset while off).
	power("rebooting", "power on", "Chassis Power is on")

	c.Must(204, "PUT", "/v1/nodes/"+id+"/management/boot_device", map[string]any{"boot_device": "pxe", "persistent": true})
	bd := c.Must(200, "GET", "/v1/nodes/"+id+"/management/boot_device", nil).JSON(t)
	if bd["boot_device"] != "pxe" || bd["persistent"] != true {
		t.Errorf("boot device %v", bd)
	}
	out := ipmitool(t, bmc, "chassis", "bootparam", "get", "5")
	if !strings.Contains(out, "Force PXE") || !strings.Contains(out, "Options apply to all future boots") {
		t.Errorf("ipmitool disagrees with the API's boot device:\n%s", out)
	}
	c.Must(204, "PUT", "/v1/nodes/"+id+"/management/boot_device", map[string]any{"boot_device": "disk", "persistent": false})
	if out := ipmitool(t, bmc, "chassis", "bootparam", "get", "5"); !strings.Contains(out, "Force Boot from default Hard-Drive") || !strings.Contains(out, "Options apply to only next boot") {
		t.Errorf("ipmitool after one-time disk:\n%s", out)
	}
	val := c.Must(200, "GET", "/v1/nodes/"+id+"/validate", nil).JSON(t)
	for _, iface := range []string{"power", "management"} {
		if v := val[iface].(map[string]any); v["result"] != true {
			t.Errorf("validate %s: %v", iface, v)
		}
	}
}

// A node whose BMC refuses its credentials fails verification back to
// enroll with a last_error that says so, without the password.
func TestIPMIWrongCredentials(t *testing.T) {
	bmc := startBMC(t, vbmc.NewFakeMachine())
	env := startCoordinator(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	id := c.CreateNode(map[string]any{"driver": "ipmi", "driver_info": driverInfo(bmc, "not-the-password")})
	c.Provision(id, "manage")
	st := c.WaitState(id, "enroll")
	msg, _ := st["last_error"].(string)
	if !strings.Contains(msg, "wrong user name or password") || strings.Contains(msg, "not-the-password") {
		t.Errorf("last_error %q", msg)
	}
}

// A BMC that stops answering fails the power change clearly, and once it
// is back the next change works without anyone stepping in.
func TestIPMIOutageRecovers(t *testing.T) {
	m := vbmc.NewFakeMachine()
	bmc := startBMC(t, m)
	env := startCoordinator(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	id := c.CreateNode(map[string]any{"driver": "ipmi", "driver_info": driverInfo(bmc, bmcPass)})
	c.Provision(id, "manage")
	c.WaitState(id, "manageable")

	bmc.SetDown(true)
	c.Must(202, "PUT", "/v1/nodes/"+id+"/states/power", map[string]any{"target": "power on", "timeout": 3})
	st := c.WaitStates(id, "a failed power change", func(st map[string]any) bool {
		return st["target_power_state"] == nil && st["last_error"] != nil
	})
	if msg := st["last_error"].(string); !strings.Contains(msg, "power on") {
		t.Errorf("last_error %q", msg)
	}
	bmc.SetDown(false)
	c.Must(202, "PUT", "/v1/nodes/"+id+"/states/power", map[string]any{"target": "power on"})
	c.WaitPower(id, "power on")
	if on, _ := m.PowerState(t.Context()); !on {
		t.Error("machine still off")
	}
}
