package rest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

func TestBadInputChangesNothing(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	id := c.CreateNode(map[string]any{"name": "keep-me"})
	c.Must(201, "POST", "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:00:00:01"})
	before := c.Must(200, "GET", "/v1/nodes/"+id, nil).Body

	tests := []struct {
		name, method, path string
		body               any
		version            string
		code               int
		fault              string // substring of faultstring ("" to skip)
	}{
		{"malformed json", "POST", "/v1/nodes", `{"driver": `, "", 400, "Malformed JSON"},
		{"empty body", "POST", "/v1/nodes", "", "", 400, "empty"},
		{"no driver", "POST", "/v1/nodes", map[string]any{"name": "x"}, "", 400, "driver"},
		{"unknown field", "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "colour": "red"}, "", 400, "Unknown attribute for argument node: colour"},
		{"read-only field", "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "provision_state": "active"}, "", 400, "provision_state"},
		{"wrong type", "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "properties": "big"}, "", 400, "properties"},
		{"bad name", "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "a b"}, "", 400, "invalid name"},
		{"uuid as name", "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "8f412c2a-e9b1-4ad7-8882-ac887125697b"}, "", 400, "invalid name"},
		{"unknown driver", "POST", "/v1/nodes", map[string]any{"driver": "nope"}, "", 400, "No valid host was found"},
		{"duplicate name", "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "keep-me"}, "", 409, "A node with name keep-me already exists."},
		{"field too new", "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "shard": "a"}, "1.50", 406, "shard"},
		{"bad version header", "GET", "/v1/nodes", nil, "one", 400, "Invalid value"},
		{"unsupported version", "GET", "/v1/nodes", nil, "1.99", 406, ""},
		{"oversized body", "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "extra": map[string]any{"x": strings.Repeat("a", 2<<20)}}, "", 413, "larger than the limit"},
		{"patch read-only", "PATCH", "/v1/nodes/" + id, []any{map[string]any{"op": "replace", "path": "/provision_state", "value": "active"}}, "", 400, "Cannot patch /provision_state"},
		{"patch half bad", "PATCH", "/v1/nodes/" + id, []any{
			map[string]any{"op": "add", "path": "/extra/a", "value": 1},
			map[string]any{"op": "remove", "path": "/properties/nothing"},
		}, "", 400, "path does not exist"},
		{"patch rename to taken", "PATCH", "/v1/nodes/" + id, []any{map[string]any{"op": "replace", "path": "/driver", "value": "nope"}}, "", 400, "No valid host"},
		{"patch not a list", "PATCH", "/v1/nodes/" + id, map[string]any{"op": "add"}, "", 400, "Invalid patch"},
		{"unknown verb", "PUT", "/v1/nodes/" + id + "/states/provision", map[string]any{"target": "fly"}, "", 400, `while it is in state "enroll"`},
		{"verb not allowed", "PUT", "/v1/nodes/" + id + "/states/provision", map[string]any{"target": "active"}, "", 400, `The requested action "active" can not be performed on node "` + id + `" while it is in state "enroll".`},
		{"clean without steps", "PUT", "/v1/nodes/" + id + "/states/provision", map[string]any{"target": "clean"}, "", 400, "clean_steps"},
		{"verb too new", "PUT", "/v1/nodes/" + id + "/states/provision", map[string]any{"target": "manage"}, "1.3", 406, ""},
		{"bad power target", "PUT", "/v1/nodes/" + id + "/states/power", map[string]any{"target": "sideways"}, "", 400, `"sideways" can not be performed`},
		{"bad power timeout", "PUT", "/v1/nodes/" + id + "/states/power", map[string]any{"target": "power on", "timeout": 0}, "", 400, "timeout"},
		{"soft power too new", "PUT", "/v1/nodes/" + id + "/states/power", map[string]any{"target": "soft power off"}, "1.26", 400, "soft power off"},
		{"bad boot device", "PUT", "/v1/nodes/" + id + "/management/boot_device", map[string]any{"boot_device": "floppy"}, "", 400, "Invalid boot device floppy"},
		{"bad mac", "POST", "/v1/ports", map[string]any{"node_uuid": id, "address": "not-a-mac"}, "", 400, "Expected valid MAC address for address: not-a-mac"},
		{"duplicate mac other case", "POST", "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:00:00:01"}, "", 409, "A port with MAC address 52:54:00:00:00:01 already exists."},
		{"port unknown node", "POST", "/v1/ports", map[string]any{"node_uuid": "00000000-0000-0000-0000-000000000001", "address": "52:54:00:00:00:02"}, "", 400, "could not be found"},
		{"unknown node", "GET", "/v1/nodes/nope", nil, "", 404, "Node nope could not be found."},
		{"bad fields", "GET", "/v1/nodes/" + id + "?fields=uuid,colour", nil, "", 400, "colour"},
		{"bad limit", "GET", "/v1/nodes?limit=-1", nil, "", 400, "Limit"},
		{"bad sort dir", "GET", "/v1/nodes?sort_dir=up", nil, "", 400, "sort direction"},
		{"bad sort key", "GET", "/v1/nodes?sort_key=properties", nil, "", 400, "invalid field for sorting"},
		{"bad marker", "GET", "/v1/nodes?marker=00000000-0000-0000-0000-000000000009", nil, "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := *c
			cc.T = t
			if tt.version != "" {
				cc.Version = tt.version
			}
			r := cc.Do(tt.method, tt.path, tt.body)
			if r.Code != tt.code {
				t.Fatalf("status %d %s, want %d", r.Code, r.Body, tt.code)
			}
			if tt.fault != "" {
				if f := r.Fault(t); !strings.Contains(f, tt.fault) {
					t.Errorf("faultstring %q, want it to contain %q", f, tt.fault)
				}
			}
		})
	}
	after := c.Must(200, "GET", "/v1/nodes/"+id, nil).Body
	if string(before) != string(after) {
		t.Errorf("rejected requests changed the node:\nbefore %s\nafter  %s", before, after)
	}
	list := c.Must(200, "GET", "/v1/nodes", nil).JSON(t)["nodes"].([]any)
	if len(list) != 1 {
		t.Errorf("%d nodes after rejected creates, want 1", len(list))
	}
	ports := c.Must(200, "GET", "/v1/ports", nil).JSON(t)["ports"].([]any)
	if len(ports) != 1 {
		t.Errorf("%d ports after rejected creates, want 1", len(ports))
	}
}

// Two clients racing to deploy the same node: exactly one wins, and
// exactly one job is queued.
func TestRacingVerbsOneWins(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{NoConductor: true})
	c := coordinatortest.NewClient(t, env)
	id := c.CreateNode(nil)
	// Move it to available behind the API's back: no conductor runs.
	_, err := env.Store.UpdateNode(context.Background(), id, "", func(n *api.Node, _ *store.Effects) error {
		n.ProvisionState = "available"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const racers = 20
	codes := make(chan int, racers)
	var wg sync.WaitGroup
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- c.Do("PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "active"}).Code
		}()
	}
	wg.Wait()
	close(codes)
	won := 0
	for code := range codes {
		switch code {
		case 202:
			won++
		case 400:
		default:
			t.Errorf("unexpected status %d", code)
		}
	}
	if won != 1 {
		t.Errorf("%d requests won, want exactly 1", won)
	}
	n, err := env.Store.Backlog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d jobs queued, want 1", n)
	}
	st := c.Must(200, "GET", "/v1/nodes/"+id+"/states", nil).JSON(t)
	if st["provision_state"] != "deploying" || st["target_provision_state"] != "active" {
		t.Errorf("states %v", st)
	}
}

func TestLockedNodeConflicts(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	id := c.CreateNode(map[string]any{"name": "locked"})
	lock, err := env.Store.Lock(context.Background(), id, store.NewOwner("other-host"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/v1/nodes/" + id + "/states/provision", map[string]any{"target": "manage"}},
		{"PUT", "/v1/nodes/" + id + "/states/power", map[string]any{"target": "power on"}},
		{"PATCH", "/v1/nodes/" + id, []any{map[string]any{"op": "add", "path": "/extra/a", "value": 1}}},
		{"DELETE", "/v1/nodes/" + id, nil},
		{"PUT", "/v1/nodes/" + id + "/management/boot_device", map[string]any{"boot_device": "pxe"}},
	} {
		r := c.Do(req.method, req.path, req.body)
		if r.Code != 409 {
			t.Errorf("%s %s: %d %s, want 409", req.method, req.path, r.Code, r.Body)
			continue
		}
		if f := r.Fault(t); !strings.Contains(f, "locked by host other-host") {
			t.Errorf("%s %s: %q does not name the holder", req.method, req.path, f)
		}
	}
	node := c.Must(200, "GET", "/v1/nodes/"+id, nil).JSON(t)
	if node["reservation"] != "other-host" {
		t.Errorf("reservation = %v, want other-host", node["reservation"])
	}
	// Maintenance is how an operator stops Ingot: it works on a locked node.
	c.Must(202, "PUT", "/v1/nodes/"+id+"/maintenance", map[string]any{"reason": "broken fan"})
	lock.Release(context.Background())
	c.Provision(id, "manage")
	c.WaitState(id, "manageable")
}

func TestListPaginationFiltersSorting(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	var ids []string
	for i := range 7 {
		ids = append(ids, c.CreateNode(map[string]any{"name": fmt.Sprintf("n%d", i)}))
	}
	c.Must(200, "PATCH", "/v1/nodes/"+ids[2], []any{
		map[string]any{"op": "add", "path": "/instance_uuid", "value": "11111111-2222-3333-4444-555555555555"},
		map[string]any{"op": "replace", "path": "/resource_class", "value": "gold"},
	})
	c.Must(202, "PUT", "/v1/nodes/"+ids[3]+"/maintenance", nil)
	c.Provision(ids[4], "manage")
	c.WaitState(ids[4], "manageable")

	// Follow next links from page to page: every node once, in order.
	var seen []string
	path := "/v1/nodes?limit=3"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		doc := c.Must(200, "GET", path, nil).JSON(t)
		for _, n := range doc["nodes"].([]any) {
			seen = append(seen, n.(map[string]any)["uuid"].(string))
		}
		path = ""
		if next, ok := doc["next"].(string); ok {
			path = strings.TrimPrefix(next, env.URL)
		}
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Errorf("paged through %v, want %v", seen, ids)
	}

	names := func(path string) string {
		var out []string
		for _, n := range c.Must(200, "GET", path, nil).JSON(t)["nodes"].([]any) {
			out = append(out, n.(map[string]any)["name"].(string))
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct{ path, want string }{
		{"/v1/nodes?sort_dir=desc&limit=2", "n6,n5"},
		{"/v1/nodes?sort_key=name&sort_dir=desc&limit=3", "n6,n5,n4"},
		{"/v1/nodes?provision_state=manageable", "n4"},
		{"/v1/nodes?maintenance=true", "n3"},
		{"/v1/nodes?associated=true", "n2"},
		{"/v1/nodes?resource_class=gold", "n2"},
		{"/v1/nodes?driver=fake-hardware&limit=1", "n0"},
		{"/v1/nodes?driver=other", ""},
		{"/v1/nodes/?provision_state=manageable", "n4"},
		{"/v1/nodes?marker=" + ids[5], "n6"},
	} {
		if got := names(tt.path); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.path, got, tt.want)
		}
	}
	// fields= limits what is shown; links always come along.
	n := c.Must(200, "GET", "/v1/nodes/"+ids[0]+"?fields=uuid,name", nil).JSON(t)
	if len(n) != 3 || n["name"] != "n0" || n["links"] == nil {
		t.Errorf("fields=uuid,name gave %v", n)
	}
	detail := c.Must(200, "GET", "/v1/nodes/detail?limit=1", nil).JSON(t)["nodes"].([]any)[0].(map[string]any)
	if _, ok := detail["driver_info"]; !ok {
		t.Errorf("detail lacks driver_info: %v", detail)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	r := c.Must(201, "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "driver_info": map[string]any{
		"ipmi_address": "192.0.2.10", "ipmi_password": "hunter2", "redfish_auth_token": "tok123", "ipmi_username": "admin",
	}})
	id := r.JSON(t)["uuid"].(string)
	c.Must(200, "PATCH", "/v1/nodes/"+id, []any{map[string]any{"op": "add", "path": "/instance_info/configdrive", "value": "c2VjcmV0"}})
	for _, path := range []string{"/v1/nodes/" + id, "/v1/nodes/detail", "/v1/nodes/" + id + "?fields=driver_info,instance_info"} {
		body := string(c.Must(200, "GET", path, nil).Body)
		for _, secret := range []string{"hunter2", "tok123", "c2VjcmV0"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows secret %q: %s", path, secret, body)
			}
		}
		if !strings.Contains(body, "192.0.2.10") || !strings.Contains(body, `"ipmi_password":"******"`) {
			t.Errorf("%s: want the address shown and the password masked: %s", path, body)
		}
	}
	// Stored, though: the driver needs it.
	n, _, err := env.Store.GetNode(context.Background(), id)
	if err != nil || n.DriverInfo["ipmi_password"] != "hunter2" {
		t.Errorf("stored driver_info = %v, %v", n.DriverInfo, err)
	}
}

func TestHistoryAndOldVersions(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	id := c.CreateNode(map[string]any{"name": "h"})
	c.Provision(id, "manage")
	c.WaitState(id, "manageable")
	c.Provision(id, "provide")
	c.WaitState(id, "available")
	hist := c.Must(200, "GET", "/v1/nodes/"+id+"/history", nil).JSON(t)["history"].([]any)
	var events []string
	for _, h := range hist {
		events = append(events, h.(map[string]any)["event"].(string))
	}
	want := []string{"node created in state enroll", "manage: enroll -> verifying", "done: verifying -> manageable",
		"provide: manageable -> cleaning", "done: cleaning -> available"}
	if strings.Join(events, "|") != strings.Join(want, "|") {
		t.Errorf("history %q\nwant %q", events, want)
	}
	// A client of 1.1 sees "available" as null, and new nodes were born
	// available before 1.11, as with Ironic.
	old := &coordinatortest.Client{T: t, Base: env.URL}
	st := old.Must(200, "GET", "/v1/nodes/"+id+"/states", nil).JSON(t)
	if v, ok := st["provision_state"]; !ok || v != nil {
		t.Errorf("1.1 provision_state = %v, want null", v)
	}
	c10 := &coordinatortest.Client{T: t, Base: env.URL, Version: "1.10"}
	born := c10.Must(201, "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware"}).JSON(t)
	if born["provision_state"] != "available" {
		t.Errorf("node created at 1.10 in %v, want available", born["provision_state"])
	}
	old.Must(406, "GET", "/v1/nodes/"+id+"/history", nil)
}

// Requests no route matches still get Ironic's error format.
func TestUnroutedInIronicFormat(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	r := c.Must(404, "GET", "/v1/widgets", nil)
	if f := r.Fault(t); f != "The resource could not be found." {
		t.Errorf("404 faultstring %q", f)
	}
	r = c.Must(405, "PUT", "/v1/nodes", nil)
	if f := r.Fault(t); !strings.Contains(f, "PUT is not allowed") || r.Header.Get("Allow") == "" {
		t.Errorf("405: %q, Allow %q", f, r.Header.Get("Allow"))
	}
}

// A node's *_interface fields pick its implementations: an unknown name is
// refused, and a "no-..." choice makes the operation fail cleanly.
func TestInterfaceChoice(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := coordinatortest.NewClient(t, env)
	id := c.CreateNode(map[string]any{"name": "choosy"})
	r := c.Must(400, "PATCH", "/v1/nodes/"+id, []any{map[string]any{"op": "replace", "path": "/deploy_interface", "value": "warp"}})
	if f := r.Fault(t); !strings.Contains(f, "Valid interfaces are [fake no-deploy]") {
		t.Errorf("faultstring %q", f)
	}
	c.Must(200, "PATCH", "/v1/nodes/"+id, []any{map[string]any{"op": "replace", "path": "/deploy_interface", "value": "no-deploy"}})
	c.Provision(id, "manage")
	c.WaitState(id, "manageable")
	c.Provision(id, "provide") // cleaning needs the deploy interface too
	st := c.WaitState(id, "clean failed")
	if !strings.Contains(st["last_error"].(string), "not supported") {
		t.Errorf("last_error %v", st["last_error"])
	}
}
