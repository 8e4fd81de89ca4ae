package power

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/e2e/vbmc"
)

// Powering an ipmi node on through the API starts its QEMU machine, and
// powering it off stops it: the whole path from REST to conductor, driver,
// IPMI over UDP, virtual BMC and QMP, with a real emulator (TCG, no disk).
func TestIPMIPowersQEMU(t *testing.T) {
	needTool(t, "qemu-system-x86_64")
	dir, err := os.MkdirTemp("", "qemu") // short: QMP's socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, err := vbmc.NewQEMUMachine(vbmc.QEMUConfig{Args: []string{"-m", "128", "-nodefaults"}, Dir: dir, StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bmc := startBMC(t, m)
	env := startCoordinator(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	id := c.CreateNode(map[string]any{"driver": "ipmi", "driver_info": driverInfo(bmc, bmcPass)})
	c.Provision(id, "manage")
	c.WaitState(id, "manageable")

	c.Must(202, "PUT", "/v1/nodes/"+id+"/states/power", map[string]any{"target": "power on"})
	c.WaitPower(id, "power on")
	pid := m.PID()
	if pid == 0 {
		t.Fatal("the API says power on but no QEMU runs")
	}
	if st, err := m.Status(t.Context()); err != nil || st != "running" {
		t.Errorf("QEMU status %q, %v; want running", st, err)
	}

	c.Must(202, "PUT", "/v1/nodes/"+id+"/states/power", map[string]any{"target": "power off"})
	c.WaitPower(id, "power off")
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("QEMU (pid %d) still runs after power off", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
