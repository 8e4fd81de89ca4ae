package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/ingot/ingot/e2e/lab"
)

// TestFailurePaths is scenario 4: every failure ends in a failed state
// with a clear last_error, from which the node recovers; a coordinator
// killed mid-deploy resumes and finishes it.
func TestFailurePaths(t *testing.T) {
	l := lab.Start(t, lab.Options{Nodes: 2})
	raw, _, _ := testImages(t)
	n, wrongCreds := l.Nodes[0], l.Nodes[1]

	// A BMC with wrong credentials fails verification.
	l.Enroll(wrongCreds, map[string]any{"driver_info": map[string]any{
		"ipmi_address": strings.Split(wrongCreds.BMC, ":")[0], "ipmi_port": strings.Split(wrongCreds.BMC, ":")[1],
		"ipmi_username": "admin", "ipmi_password": "not-the-password",
	}})
	l.Provision(wrongCreds.UUID, "manage", nil)
	node := l.WaitState(wrongCreds.UUID, "enroll", time.Minute)
	if msg, _ := node["last_error"].(string); msg == "" || !strings.Contains(strings.ToLower(msg), "password") && !strings.Contains(strings.ToLower(msg), "auth") {
		t.Errorf("verifying with wrong BMC credentials: last_error %q, want one about the credentials", msg)
	}
	if strings.Contains(l.CoordinatorLog(), "not-the-password") {
		t.Error("the coordinator logged a BMC password")
	}

	l.Enroll(n, nil)
	l.Provision(n.UUID, "manage", nil)
	l.WaitState(n.UUID, "manageable", time.Minute)
	l.Provision(n.UUID, "provide", nil)
	l.WaitState(n.UUID, "available", bootTimeout)
	url := l.ServeImage(raw.Path)

	// A wrong checksum: refused by the image cache before the node boots.
	l.API.Must(200, "PATCH", "/v1/nodes/"+n.UUID, []map[string]any{
		{"op": "add", "path": "/instance_info/image_source", "value": url},
		{"op": "add", "path": "/instance_info/image_checksum", "value": strings.Repeat("ab", 32)},
	})
	l.Provision(n.UUID, "active", nil)
	node = l.WaitState(n.UUID, "deploy failed", time.Minute)
	if msg, _ := node["last_error"].(string); !strings.Contains(msg, "checksum") {
		t.Errorf("deploy with a wrong checksum: last_error %q, want a checksum mismatch", msg)
	}

	// A root device hint that matches no disk: the agent refuses.
	l.API.Must(200, "PATCH", "/v1/nodes/"+n.UUID, []map[string]any{
		{"op": "add", "path": "/properties/root_device", "value": map[string]any{"serial": "no-such-disk"}},
		{"op": "add", "path": "/instance_info/image_checksum", "value": raw.SHA256},
	})
	l.Provision(n.UUID, "active", nil)
	node = l.WaitState(n.UUID, "deploy failed", bootTimeout)
	if msg, _ := node["last_error"].(string); !strings.Contains(msg, "serial") {
		t.Errorf("deploy with an unmatched root device hint: last_error %q, want the hint named", msg)
	}
	if node["power_state"] != "power off" {
		t.Errorf("a failed deploy left the node %v", node["power_state"])
	}
	l.API.Must(200, "PATCH", "/v1/nodes/"+n.UUID, []map[string]any{{"op": "remove", "path": "/properties/root_device"}})
	undeploy(t, l, n)

	// The coordinator dies while the agent writes the image: once
	// restarted it resumes (the agent kept heartbeating) and finishes.
	d := startDeploy(t, l, n, url, raw.SHA256)
	l.WaitState(n.UUID, "wait call-back", bootTimeout)
	n.WaitConsole(t, d.offset, "looked up", bootTimeout)
	l.KillCoordinator()
	time.Sleep(3 * time.Second)
	l.StartCoordinator()
	finishDeploy(t, l, n, d)
}
