package power

import (
	"context"
	"fmt"
	"os"
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

const (
	bmcUser = "admin"
	bmcPass = "vbmc-pass"
)

// needTool skips the test when a program is missing, unless the run
// requires every tool (make test does).
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

// startBMC serves a virtual BMC for m on a free loopback UDP port.
func startBMC(t testing.TB, m vbmc.Machine) *vbmc.BMC {
	t.Helper()
	b, err := vbmc.New(vbmc.Config{Addr: "127.0.0.1:0", Users: map[string]string{bmcUser: bmcPass}, Machine: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Start(ctx)
	t.Cleanup(func() { cancel(); b.Close() })
	return b
}

// startCoordinator runs a coordinator offering fake-hardware and ipmi.
func startCoordinator(t testing.TB, o coordinatortest.Options) *coordinatortest.Env {
	t.Helper()
	d := ipmi.NewDriver(ipmi.Config{CommandTimeout: 2 * time.Second})
	t.Cleanup(func() { d.Close(context.Background()) })
	o.Drivers = append([]*driver.Hardware{fake.New(), d.Hardware()}, o.Drivers...)
	return coordinatortest.Start(t, o)
}

func driverInfo(b *vbmc.BMC, password string) map[string]any {
	return map[string]any{
		"ipmi_address":  b.Addr().Addr().String(),
		"ipmi_port":     b.Addr().Port(),
		"ipmi_username": bmcUser,
		"ipmi_password": password,
	}
}

// ipmitool runs the real client against b and returns its output.
func ipmitool(t testing.TB, b *vbmc.BMC, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := []string{"-I", "lanplus", "-H", b.Addr().Addr().String(), "-p", fmt.Sprint(b.Addr().Port()), "-U", bmcUser, "-P", bmcPass}
	out, err := exec.CommandContext(ctx, "ipmitool", append(base, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ipmitool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
