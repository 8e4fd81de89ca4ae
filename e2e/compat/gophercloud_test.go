package compat

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/drivers"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/ports"

	"github.com/ingot/ingot/coordinator/coordinatortest"
)

// waitTimeout bounds every wait for the conductor. The fake driver finishes
// at once, so anything near this is a hang, not a slow machine.
const waitTimeout = 10 * time.Second

// conductorHost is the name coordinatortest gives its conductor.
const conductorHost = "test-conductor"

// TestFakeLifecycleGophercloud drives one fake-hardware node from creation
// to deletion through gophercloud v2, the client metal3 and the Terraform
// providers use, checking at each step what such a user would check.
func TestFakeLifecycleGophercloud(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	ctx := t.Context()
	c, err := noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: env.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	c.Microversion = "1.82"

	// Drivers: fake-hardware is listed, and (once the conductor's first
	// heartbeat lands) served by our conductor, which is what Ironic
	// clients check before enrolling a node.
	poll(t, "fake-hardware to be served by "+conductorHost, func() (bool, string) {
		pages, err := drivers.ListDrivers(c, drivers.ListDriversOpts{}).AllPages(ctx)
		if err != nil {
			t.Fatalf("list drivers: %v", err)
		}
		ds, err := drivers.ExtractDrivers(pages)
		if err != nil {
			t.Fatalf("extract drivers: %v", err)
		}
		for _, d := range ds {
			if d.Name == "fake-hardware" && slices.Contains(d.Hosts, conductorHost) {
				return true, ""
			}
		}
		return false, "drivers: " + jsonString(ds)
	})

	// Create: secrets in driver_info are masked in every response, others
	// are shown as given.
	const name = "gc-node-1"
	created, err := nodes.Create(ctx, c, nodes.CreateOpts{
		Name:       name,
		Driver:     "fake-hardware",
		DriverInfo: map[string]any{"ipmi_address": "192.0.2.10", "ipmi_password": "s3cret"},
		Properties: map[string]any{"cpus": 4, "memory_mb": 8192},
	}).Extract()
	if err != nil {
		t.Fatalf("create node: %v", err)
	}
	id := created.UUID
	checkNewNode := func(where string, n *nodes.Node) {
		t.Helper()
		if n.UUID != id || n.Name != name || n.Driver != "fake-hardware" {
			t.Errorf("%s: uuid/name/driver = %q/%q/%q, want %q/%q/fake-hardware", where, n.UUID, n.Name, n.Driver, id, name)
		}
		if n.ProvisionState != "enroll" {
			t.Errorf("%s: provision_state = %q, want enroll (1.11+ nodes are born in enroll)", where, n.ProvisionState)
		}
		if got := n.DriverInfo["ipmi_password"]; got != "******" {
			t.Errorf("%s: driver_info.ipmi_password = %v, want it masked as ******", where, got)
		}
		if got := n.DriverInfo["ipmi_address"]; got != "192.0.2.10" {
			t.Errorf("%s: driver_info.ipmi_address = %v, want 192.0.2.10 (not a secret)", where, got)
		}
		if got := n.Properties["cpus"]; got != float64(4) {
			t.Errorf("%s: properties.cpus = %v, want 4", where, got)
		}
		if n.PowerInterface != "fake" || n.DeployInterface != "fake" {
			t.Errorf("%s: power/deploy interface = %q/%q, want the hardware type's defaults fake/fake", where, n.PowerInterface, n.DeployInterface)
		}
	}
	checkNewNode("create response", created)
	got, err := nodes.Get(ctx, c, id).Extract()
	if err != nil {
		t.Fatalf("get node: %v", err)
	}
	checkNewNode("GET by UUID", got)

	// Port: Ironic stores MACs lower-case whatever the client sent, so
	// lookups by MAC (as the agent and DHCP do) match.
	port, err := ports.Create(ctx, c, ports.CreateOpts{NodeUUID: id, Address: "52:54:00:AB:CD:EF"}).Extract()
	if err != nil {
		t.Fatalf("create port: %v", err)
	}
	if port.Address != "52:54:00:ab:cd:ef" || port.NodeUUID != id || !port.PXEEnabled {
		t.Errorf("port: address=%q node_uuid=%q pxe_enabled=%v, want 52:54:00:ab:cd:ef, %s, true", port.Address, port.NodeUUID, port.PXEEnabled, id)
	}
	pages, err := ports.List(c, ports.ListOpts{Node: name}).AllPages(ctx)
	if err != nil {
		t.Fatalf("list ports of node %s: %v", name, err)
	}
	if ps, _ := ports.ExtractPorts(pages); len(ps) != 1 || ps[0].UUID != port.UUID {
		t.Errorf("ports of node %s by name = %s, want just %s", name, jsonString(ps), port.UUID)
	}

	// The name works wherever the UUID does.
	byName, err := nodes.Get(ctx, c, name).Extract()
	if err != nil {
		t.Fatalf("get node by name: %v", err)
	}
	if byName.UUID != id {
		t.Errorf("GET by name: uuid = %q, want %q", byName.UUID, id)
	}

	// Update with JSON patch: replace inside an object field and add to
	// one never set.
	updated, err := nodes.Update(ctx, c, id, nodes.UpdateOpts{
		nodes.UpdateOperation{Op: nodes.ReplaceOp, Path: "/properties/cpus", Value: 8},
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/extra/rack", Value: "r42"},
	}).Extract()
	if err != nil {
		t.Fatalf("patch node: %v", err)
	}
	for where, n := range map[string]*nodes.Node{"patch response": updated, "GET after patch": getNode(t, c, id)} {
		if n.Properties["cpus"] != float64(8) || n.Properties["memory_mb"] != float64(8192) {
			t.Errorf("%s: properties = %v, want cpus 8 and memory_mb 8192 kept", where, n.Properties)
		}
		if n.Extra["rack"] != "r42" {
			t.Errorf("%s: extra = %v, want rack r42", where, n.Extra)
		}
		if n.DriverInfo["ipmi_password"] != "******" {
			t.Errorf("%s: driver_info.ipmi_password = %v, want ******", where, n.DriverInfo["ipmi_password"])
		}
	}
	// The API masks the password, so only the store shows whether a patch
	// of other fields kept the real one (rather than, say, "******").
	if stored, _, err := env.Store.GetNode(ctx, id); err != nil {
		t.Fatalf("store: %v", err)
	} else if stored.DriverInfo["ipmi_password"] != "s3cret" {
		t.Errorf("stored driver_info.ipmi_password = %v after patch, want s3cret kept", stored.DriverInfo["ipmi_password"])
	}

	// Errors a client must be able to tell apart by status code, on a
	// second node left in enroll.
	spare, err := nodes.Create(ctx, c, nodes.CreateOpts{Name: "gc-spare", Driver: "fake-hardware"}).Extract()
	if err != nil {
		t.Fatalf("create spare node: %v", err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		code int
		text []string // in Ironic's faultstring
	}{
		{"deploy from enroll", func() error {
			return nodes.ChangeProvisionState(ctx, c, spare.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetActive}).ExtractErr()
		}, http.StatusBadRequest, []string{`"active" can not be performed on node`, `while it is in state "enroll"`}},
		{"provide from enroll", func() error {
			return nodes.ChangeProvisionState(ctx, c, spare.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetProvide}).ExtractErr()
		}, http.StatusBadRequest, []string{`while it is in state "enroll"`}},
		{"duplicate name", func() error {
			_, err := nodes.Create(ctx, c, nodes.CreateOpts{Name: name, Driver: "fake-hardware"}).Extract()
			return err
		}, http.StatusConflict, []string{"A node with name " + name + " already exists."}},
		{"unknown driver", func() error {
			_, err := nodes.Create(ctx, c, nodes.CreateOpts{Name: "gc-nodriver", Driver: "no-such-driver"}).Extract()
			return err
		}, http.StatusBadRequest, []string{"No valid host was found", "no-such-driver"}},
		{"duplicate MAC in other case", func() error {
			_, err := ports.Create(ctx, c, ports.CreateOpts{NodeUUID: spare.UUID, Address: "52:54:00:ab:CD:ef"}).Extract()
			return err
		}, http.StatusConflict, []string{"52:54:00:ab:cd:ef already exists"}},
		{"invalid MAC", func() error {
			_, err := ports.Create(ctx, c, ports.CreateOpts{NodeUUID: spare.UUID, Address: "not-a-mac"}).Extract()
			return err
		}, http.StatusBadRequest, []string{"Expected valid MAC address for address: not-a-mac"}},
		{"missing node", func() error {
			_, err := nodes.Get(ctx, c, "no-such-node").Extract()
			return err
		}, http.StatusNotFound, []string{"Node no-such-node could not be found."}},
		{"patch read-only field", func() error {
			_, err := nodes.Update(ctx, c, spare.UUID, nodes.UpdateOpts{
				nodes.UpdateOperation{Op: nodes.ReplaceOp, Path: "/provision_state", Value: "active"},
			}).Extract()
			return err
		}, http.StatusBadRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { wantFault(t, tc.do(), tc.code, tc.text...) })
	}
	if n := getNode(t, c, spare.UUID); n.ProvisionState != "enroll" {
		t.Errorf("spare node: provision_state = %q after refused verbs, want enroll", n.ProvisionState)
	}

	// enroll -> manageable -> available.
	setProvision(t, c, id, nodes.ProvisionStateOpts{Target: nodes.TargetManage})
	waitProvision(t, c, id, "manageable")
	setProvision(t, c, id, nodes.ProvisionStateOpts{Target: nodes.TargetProvide})
	waitProvision(t, c, id, "available")

	// Deploy with a config drive given as an object (1.56+), as metal3
	// does: the node ends active and powered on, and the config drive,
	// which may hold secrets, is masked like a password.
	setProvision(t, c, id, nodes.ProvisionStateOpts{
		Target: nodes.TargetActive,
		ConfigDrive: nodes.ConfigDrive{
			MetaData: map[string]any{"hostname": name, "uuid": id},
			UserData: "#cloud-config\nhostname: " + name + "\n",
		},
	})
	active := waitProvision(t, c, id, "active")
	if active.PowerState != "power on" {
		t.Errorf("active node: power_state = %q, want power on", active.PowerState)
	}
	if got := active.InstanceInfo["configdrive"]; got != "******" {
		t.Errorf("active node: instance_info.configdrive = %v, want ******", got)
	}
	pages, err = nodes.List(c, nodes.ListOpts{ProvisionState: nodes.Active}).AllPages(ctx)
	if err != nil {
		t.Fatalf("list active nodes: %v", err)
	}
	if ns, _ := nodes.ExtractNodes(pages); len(ns) != 1 || ns[0].UUID != id {
		t.Errorf("nodes with provision_state=active: %s, want just %s", jsonString(ns), id)
	}

	// An active node holds an instance: deleting it is a conflict.
	wantFault(t, nodes.Delete(ctx, c, id).ExtractErr(), http.StatusConflict,
		`Can not delete node "`+id+`" while it is in provision state "active"`)

	// Power off and back on; each is asynchronous (202) and done when
	// target_power_state is cleared.
	for _, target := range []nodes.TargetPowerState{nodes.PowerOff, nodes.PowerOn} {
		if err := nodes.ChangePowerState(ctx, c, id, nodes.PowerStateOpts{Target: target}).ExtractErr(); err != nil {
			t.Fatalf("power %s: %v", target, err)
		}
		waitNode(t, c, id, "power_state "+string(target), func(n *nodes.Node) bool {
			return n.PowerState == string(target) && n.TargetPowerState == ""
		})
	}

	// Boot device: what is set is read back, and it is among the
	// supported ones.
	if err := nodes.SetBootDevice(ctx, c, id, nodes.BootDeviceOpts{BootDevice: "pxe", Persistent: true}).ExtractErr(); err != nil {
		t.Fatalf("set boot device: %v", err)
	}
	bd, err := nodes.GetBootDevice(ctx, c, id).Extract()
	if err != nil {
		t.Fatalf("get boot device: %v", err)
	}
	if bd.BootDevice != "pxe" || !bd.Persistent {
		t.Errorf("boot device = %+v, want pxe, persistent", *bd)
	}
	if sup, err := nodes.GetSupportedBootDevices(ctx, c, id).Extract(); err != nil || !slices.Contains(sup, "pxe") {
		t.Errorf("supported boot devices = %v, %v; want a list with pxe", sup, err)
	}

	// Maintenance on (with a reason) and off (which clears the reason).
	if err := nodes.SetMaintenance(ctx, c, id, nodes.MaintenanceOpts{Reason: "gophercloud test"}).ExtractErr(); err != nil {
		t.Fatalf("set maintenance: %v", err)
	}
	if n := getNode(t, c, id); !n.Maintenance || n.MaintenanceReason != "gophercloud test" {
		t.Errorf("after set maintenance: maintenance=%v reason=%q, want true, %q", n.Maintenance, n.MaintenanceReason, "gophercloud test")
	}
	if err := nodes.UnsetMaintenance(ctx, c, id).ExtractErr(); err != nil {
		t.Fatalf("unset maintenance: %v", err)
	}
	if n := getNode(t, c, id); n.Maintenance || n.MaintenanceReason != "" {
		t.Errorf("after unset maintenance: maintenance=%v reason=%q, want false, empty", n.Maintenance, n.MaintenanceReason)
	}

	// Validate: the interfaces fake-hardware implements pass.
	v, err := nodes.Validate(ctx, c, id).Extract()
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	for iface, r := range map[string]nodes.DriverValidation{"power": v.Power, "management": v.Management, "deploy": v.Deploy, "boot": v.Boot} {
		if !r.Result {
			t.Errorf("validate %s: result false (%q), want true", iface, r.Reason)
		}
	}

	// Undeploy ("deleted"): torn down, cleaned, available again, and the
	// instance's data is gone as in Ironic.
	setProvision(t, c, id, nodes.ProvisionStateOpts{Target: nodes.TargetDeleted})
	avail := waitProvision(t, c, id, "available")
	if avail.PowerState != "power off" {
		t.Errorf("undeployed node: power_state = %q, want power off", avail.PowerState)
	}
	if len(avail.InstanceInfo) != 0 {
		t.Errorf("undeployed node: instance_info = %v, want {} (Ironic clears it on tear down)", avail.InstanceInfo)
	}

	// Delete the port, then the node: both are gone afterwards.
	if err := ports.Delete(ctx, c, port.UUID).ExtractErr(); err != nil {
		t.Fatalf("delete port: %v", err)
	}
	_, err = ports.Get(ctx, c, port.UUID).Extract()
	wantFault(t, err, http.StatusNotFound, "Port "+port.UUID+" could not be found.")
	for _, n := range []string{id, spare.UUID} {
		if err := nodes.Delete(ctx, c, n).ExtractErr(); err != nil {
			t.Fatalf("delete node %s: %v", n, err)
		}
		_, err = nodes.Get(ctx, c, n).Extract()
		wantFault(t, err, http.StatusNotFound, "Node "+n+" could not be found.")
	}
}

func getNode(t *testing.T, c *gophercloud.ServiceClient, id string) *nodes.Node {
	t.Helper()
	n, err := nodes.Get(t.Context(), c, id).Extract()
	if err != nil {
		t.Fatalf("get node %s: %v", id, err)
	}
	return n
}

func setProvision(t *testing.T, c *gophercloud.ServiceClient, id string, opts nodes.ProvisionStateOpts) {
	t.Helper()
	if err := nodes.ChangeProvisionState(t.Context(), c, id, opts).ExtractErr(); err != nil {
		t.Fatalf("provision %s: %v", opts.Target, err)
	}
}

// waitProvision waits until the node rests in state, failing at once if it
// lands in a failure state instead of waiting out the deadline.
func waitProvision(t *testing.T, c *gophercloud.ServiceClient, id, state string) *nodes.Node {
	t.Helper()
	return waitNode(t, c, id, "provision_state "+state, func(n *nodes.Node) bool {
		if n.ProvisionState != state && (strings.HasSuffix(n.ProvisionState, "failed") || n.ProvisionState == "error") {
			t.Fatalf("node %s went to %q (last_error %q) while waiting for %q", id, n.ProvisionState, n.LastError, state)
		}
		return n.ProvisionState == state && n.TargetProvisionState == ""
	})
}

// waitNode polls the node until ok accepts it.
func waitNode(t *testing.T, c *gophercloud.ServiceClient, id, what string, ok func(*nodes.Node) bool) *nodes.Node {
	t.Helper()
	var n *nodes.Node
	poll(t, what+" on node "+id, func() (bool, string) {
		n = getNode(t, c, id)
		return ok(n), "provision_state=" + n.ProvisionState + " target=" + n.TargetProvisionState +
			" power_state=" + n.PowerState + " target_power_state=" + n.TargetPowerState + " last_error=" + n.LastError
	})
	return n
}

// poll calls check until it reports done, failing after waitTimeout with
// the last state check described. Polling rather than sleeping keeps the
// test fast where the conductor is quick and patient where CI is loaded.
func poll(t *testing.T, what string, check func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", waitTimeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantFault checks that err is an HTTP error with the given code whose
// Ironic fault string contains each of texts. The body must be in Ironic's
// format, {"error_message": "<JSON with faultstring>"}, since that is what
// clients parse to show the message.
func wantFault(t *testing.T, err error, code int, texts ...string) {
	t.Helper()
	var e gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want HTTP %d", err, code)
	}
	if e.Actual != code {
		t.Errorf("%s %s: status %d, want %d; body %s", e.Method, e.URL, e.Actual, code, e.Body)
	}
	var outer struct {
		ErrorMessage string `json:"error_message"`
	}
	var inner struct {
		FaultCode   string `json:"faultcode"`
		FaultString string `json:"faultstring"`
	}
	if err := json.Unmarshal(e.Body, &outer); err != nil || json.Unmarshal([]byte(outer.ErrorMessage), &inner) != nil || inner.FaultString == "" {
		t.Fatalf("%s %s: body %s is not Ironic's error format", e.Method, e.URL, e.Body)
	}
	for _, s := range texts {
		if !strings.Contains(inner.FaultString, s) {
			t.Errorf("%s %s: faultstring %q, want it to contain %q", e.Method, e.URL, inner.FaultString, s)
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
