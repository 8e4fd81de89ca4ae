package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/coordinatortest"
)

// requireToolsEnv, when set, turns a missing CLI from a skip into a
// failure, so CI cannot silently skip the compatibility test.
const requireToolsEnv = "INGOT_REQUIRE_TOOLS"

// cliTimeout bounds one CLI call. A call takes about a second (mostly
// Python start-up); --wait adds the client's 2 s poll interval and is
// given 20 s, so the CLI reports its own timeout before this one hits.
const cliTimeout = 30 * time.Second

// TestBaremetalCLI runs the real `baremetal` CLI (python-ironicclient)
// through the fake-hardware lifecycle: enroll a node and a port, manage,
// provide, deploy, power off and on, update, undeploy and delete, and
// checks that refused requests give the CLI user Ironic's own message.
// Each call costs about a second, so the test keeps to a couple of dozen.
func TestBaremetalCLI(t *testing.T) {
	bin := requireTool(t, "baremetal")
	env := coordinatortest.Start(t, coordinatortest.Options{})
	cli := &baremetalCLI{bin: bin, endpoint: env.URL}

	var drivers []map[string]any
	cli.json(t, &drivers, "driver", "list")
	if !containsRow(drivers, "Supported driver(s)", "fake-hardware") {
		t.Fatalf("driver list = %v, want fake-hardware", drivers)
	}

	// Enroll a node with a secret in driver_info and a port given in
	// upper case: the CLI shows the secret masked and the MAC normalised.
	const name, newName = "cli-node", "cli-node-2"
	var node map[string]any
	cli.json(t, &node, "node", "create", "--driver", "fake-hardware", "--name", name,
		"--driver-info", "ipmi_address=192.0.2.20", "--driver-info", "ipmi_password=s3cret",
		"--property", "cpus=2")
	id, _ := node["uuid"].(string)
	if id == "" || node["provision_state"] != "enroll" || node["name"] != name {
		t.Fatalf("node create: uuid=%v provision_state=%v name=%v, want a UUID, enroll, %s", node["uuid"], node["provision_state"], node["name"], name)
	}
	if di, _ := node["driver_info"].(map[string]any); di["ipmi_password"] != "******" {
		t.Errorf("node create: driver_info = %v, want ipmi_password shown as ******", node["driver_info"])
	}
	var port map[string]any
	// The CLI sends --pxe-enabled's value as a string, which Ironic takes.
	cli.json(t, &port, "port", "create", "52:54:00:AA:BB:01", "--node", id, "--pxe-enabled", "false")
	portID, _ := port["uuid"].(string)
	if port["address"] != "52:54:00:aa:bb:01" || port["node_uuid"] != id || portID == "" || port["pxe_enabled"] != false {
		t.Errorf("port create: address=%v node_uuid=%v uuid=%v pxe_enabled=%v, want 52:54:00:aa:bb:01, %s, a UUID and false",
			port["address"], port["node_uuid"], portID, port["pxe_enabled"], id)
	}

	// Bad input, while the node is still in enroll: each is refused with
	// a non-zero exit and Ironic's message, which is what a CLI user reads.
	// (Run one after another: in parallel, four Python start-ups on a small
	// CI runner are no faster.)
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			want []string
		}{
			{"deploy in enroll", []string{"node", "deploy", name},
				[]string{`The requested action "active" can not be performed on node "` + id + `" while it is in state "enroll".`, "(HTTP 400)"}},
			{"port with bad MAC", []string{"port", "create", "not-a-mac", "--node", id},
				[]string{"Expected valid MAC address for address: not-a-mac", "(HTTP 400)"}},
			{"unknown driver", []string{"node", "create", "--driver", "no-such-driver"},
				[]string{"No valid host was found", "no-such-driver", "(HTTP 400)"}},
			{"missing node", []string{"node", "show", "no-such-node"},
				[]string{"Node no-such-node could not be found.", "(HTTP 404)"}},
		} {
			t.Run(tc.name, func(t *testing.T) { cli.fails(t, tc.args, tc.want...) })
		}
	})

	// Through the states with --wait, as an operator would.
	cli.run(t, "node", "manage", name, "--wait", "20")
	cli.run(t, "node", "provide", name, "--wait", "20")
	cli.run(t, "node", "deploy", name, "--wait", "20", "--config-drive", `{"meta_data": {"hostname": "`+name+`"}}`)
	cli.json(t, &node, "node", "show", name)
	if node["provision_state"] != "active" || node["power_state"] != "power on" {
		t.Fatalf("after deploy: provision_state=%v power_state=%v, want active, power on", node["provision_state"], node["power_state"])
	}

	// Deleting a deployed node is a conflict. The client retries 409s
	// (meant for a locked node) five times, 2 s apart; --max-retries 0
	// makes it answer at once.
	cli.fails(t, []string{"--max-retries", "0", "node", "delete", name},
		`Can not delete node "`+id+`" while it is in provision state "active"`, "(HTTP 409)")

	// Power changes are asynchronous in Ironic: the CLI returns on 202,
	// so wait for the node to report the new state.
	for _, target := range []string{"off", "on"} {
		cli.run(t, "node", "power", target, name)
		poll(t, "power "+target, func() (bool, string) {
			var st map[string]any
			cli.json(t, &st, "node", "show", name, "-c", "power_state", "-c", "target_power_state")
			return st["power_state"] == "power "+target && st["target_power_state"] == nil, jsonString(st)
		})
	}

	// Update: properties, extra and the name in one `node set` (one PATCH).
	cli.run(t, "node", "set", name, "--property", "cpus=4", "--extra", "rack=r7", "--name", newName)
	cli.json(t, &node, "node", "show", newName)
	props, _ := node["properties"].(map[string]any)
	extra, _ := node["extra"].(map[string]any)
	di, _ := node["driver_info"].(map[string]any)
	if node["name"] != newName || props["cpus"] != float64(4) || extra["rack"] != "r7" {
		t.Errorf("after node set: name=%v properties=%v extra=%v, want %s, cpus 4, rack r7", node["name"], props, extra, newName)
	}
	if di["ipmi_password"] != "******" || di["ipmi_address"] != "192.0.2.20" {
		t.Errorf("after node set: driver_info = %v, want ipmi_address kept and ipmi_password masked", di)
	}

	// `port list --node` is how a user finds a node's ports; the client
	// sends GET /v1/ports/?node=... (note the slash).
	var portList []map[string]any
	if out, stderr, err := cli.exec(t, "port", "list", "--node", newName, "-f", "json"); err != nil {
		t.Errorf("`baremetal port list --node %s` failed (%v): %s", newName, err, stderr)
	} else if json.Unmarshal([]byte(out), &portList) != nil || !containsRow(portList, "UUID", portID) {
		t.Errorf("port list --node %s = %s, want port %s", newName, out, portID)
	}

	// Undeploy: back to available, powered off, instance data gone.
	cli.run(t, "node", "undeploy", newName, "--wait", "20")
	cli.json(t, &node, "node", "show", newName)
	if node["provision_state"] != "available" || node["power_state"] != "power off" {
		t.Errorf("after undeploy: provision_state=%v power_state=%v, want available, power off", node["provision_state"], node["power_state"])
	}
	if ii, _ := node["instance_info"].(map[string]any); len(ii) != 0 {
		t.Errorf("after undeploy: instance_info = %v, want {} (Ironic clears it on tear down)", ii)
	}

	// Delete the port, then the node, which is gone afterwards.
	cli.run(t, "port", "delete", portID)
	cli.run(t, "node", "delete", newName)
	cli.fails(t, []string{"node", "show", newName}, "Node "+newName+" could not be found.", "(HTTP 404)")
	t.Logf("%d baremetal calls", cli.calls)
}

// requireTool returns the path of a command-line tool, skipping the test
// if it is missing unless INGOT_REQUIRE_TOOLS is set.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(requireToolsEnv) == "" {
			t.Skipf("%s not installed (set %s=1 to make this a failure): %v", name, requireToolsEnv, err)
		}
		t.Fatalf("%s not installed and %s is set: %v", name, requireToolsEnv, err)
	}
	return p
}

// baremetalCLI runs the `baremetal` command against one coordinator with
// no authentication.
type baremetalCLI struct {
	bin, endpoint string
	calls         int // logged: the test's run time is mostly calls × Python start-up
}

// exec runs one command and returns its output; err is non-nil on a
// non-zero exit or a timeout.
func (c *baremetalCLI) exec(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	full := append([]string{"--os-endpoint", c.endpoint, "--os-auth-type", "none"}, args...)
	cmd := exec.CommandContext(ctx, c.bin, full...)
	cmd.Env = cliEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	c.calls++
	err = cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return out.String(), errOut.String(), err
}

// run runs a command that must succeed.
func (c *baremetalCLI) run(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := c.exec(t, args...)
	if err != nil {
		t.Fatalf("baremetal %s: %v\nstderr: %s\nstdout: %s", strings.Join(args, " "), err, stderr, out)
	}
	return out
}

// json runs a command with JSON output and decodes it into v.
func (c *baremetalCLI) json(t *testing.T, v any, args ...string) {
	t.Helper()
	out := c.run(t, append(args, "-f", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("baremetal %s: output is not JSON (%v): %s", strings.Join(args, " "), err, out)
	}
}

// fails runs a command that must exit non-zero with each of want in its
// error output.
func (c *baremetalCLI) fails(t *testing.T, args []string, want ...string) {
	t.Helper()
	out, stderr, err := c.exec(t, args...)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("baremetal %s: err = %v, want a non-zero exit\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("baremetal %s: stderr %q, want it to contain %q", strings.Join(args, " "), stderr, w)
		}
	}
}

// cliEnv is the environment without OS_* variables, so a developer's
// cloud settings (OS_CLOUD, OS_AUTH_URL, ...) cannot point the CLI
// anywhere else or change how it authenticates.
func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OS_") {
			env = append(env, kv)
		}
	}
	return env
}

// containsRow reports whether a list printed with -f json has a row whose
// column col is val.
func containsRow(rows []map[string]any, col, val string) bool {
	for _, r := range rows {
		if r[col] == val {
			return true
		}
	}
	return false
}
