package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/coordinatortest"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

// client is a tiny Ironic API client for tests.
type client struct {
	t       *testing.T
	base    string
	version string
}

type response struct {
	code int
	hdr  http.Header
	body []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// fault returns the faultstring of an Ironic error body.
func (r response) fault(t *testing.T) string {
	t.Helper()
	var outer struct {
		ErrorMessage string `json:"error_message"`
	}
	if err := json.Unmarshal(r.body, &outer); err != nil || outer.ErrorMessage == "" {
		t.Fatalf("not an Ironic error body: %s", r.body)
	}
	var inner struct {
		Faultstring string `json:"faultstring"`
		Faultcode   string `json:"faultcode"`
	}
	if err := json.Unmarshal([]byte(outer.ErrorMessage), &inner); err != nil {
		t.Fatalf("error_message is not JSON: %q", outer.ErrorMessage)
	}
	return inner.Faultstring
}

func (c *client) do(method, path string, body any) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.version != "" {
		req.Header.Set("X-OpenStack-Ironic-API-Version", c.version)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, hdr: resp.Header, body: b}
}

func (c *client) must(code int, method, path string, body any) response {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.code != code {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, r.code, r.body, code)
	}
	return r
}

func newClient(t *testing.T, env *coordinatortest.Env) *client {
	return &client{t: t, base: env.URL, version: "1.82"}
}

func (c *client) createNode(name string) string {
	c.t.Helper()
	body := map[string]any{"driver": "fake-hardware"}
	if name != "" {
		body["name"] = name
	}
	return c.must(201, "POST", "/v1/nodes", body).json(c.t)["uuid"].(string)
}

// waitState polls until the node reaches state (and no target), or fails.
func (c *client) waitState(id, state string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var st map[string]any
	for time.Now().Before(deadline) {
		st = c.must(200, "GET", "/v1/nodes/"+id+"/states", nil).json(c.t)
		if st["provision_state"] == state && st["target_provision_state"] == nil {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("node %s: states %v, want %q", id, st, state)
	return nil
}

func (c *client) provision(id, target string) {
	c.t.Helper()
	c.must(202, "PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": target})
}

func TestBadInputChangesNothing(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := newClient(t, env)
	id := c.createNode("keep-me")
	c.must(201, "POST", "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:00:00:01"})
	before := c.must(200, "GET", "/v1/nodes/"+id, nil).body

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
			cc.t = t
			if tt.version != "" {
				cc.version = tt.version
			}
			r := cc.do(tt.method, tt.path, tt.body)
			if r.code != tt.code {
				t.Fatalf("status %d %s, want %d", r.code, r.body, tt.code)
			}
			if tt.fault != "" {
				if f := r.fault(t); !strings.Contains(f, tt.fault) {
					t.Errorf("faultstring %q, want it to contain %q", f, tt.fault)
				}
			}
		})
	}
	after := c.must(200, "GET", "/v1/nodes/"+id, nil).body
	if string(before) != string(after) {
		t.Errorf("rejected requests changed the node:\nbefore %s\nafter  %s", before, after)
	}
	list := c.must(200, "GET", "/v1/nodes", nil).json(t)["nodes"].([]any)
	if len(list) != 1 {
		t.Errorf("%d nodes after rejected creates, want 1", len(list))
	}
	ports := c.must(200, "GET", "/v1/ports", nil).json(t)["ports"].([]any)
	if len(ports) != 1 {
		t.Errorf("%d ports after rejected creates, want 1", len(ports))
	}
}

// Two clients racing to deploy the same node: exactly one wins, and
// exactly one job is queued.
func TestRacingVerbsOneWins(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{NoConductor: true})
	c := newClient(t, env)
	id := c.createNode("")
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
			codes <- c.do("PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "active"}).code
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
	st := c.must(200, "GET", "/v1/nodes/"+id+"/states", nil).json(t)
	if st["provision_state"] != "deploying" || st["target_provision_state"] != "active" {
		t.Errorf("states %v", st)
	}
}

func TestLockedNodeConflicts(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := newClient(t, env)
	id := c.createNode("locked")
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
		r := c.do(req.method, req.path, req.body)
		if r.code != 409 {
			t.Errorf("%s %s: %d %s, want 409", req.method, req.path, r.code, r.body)
			continue
		}
		if f := r.fault(t); !strings.Contains(f, "locked by host other-host") {
			t.Errorf("%s %s: %q does not name the holder", req.method, req.path, f)
		}
	}
	node := c.must(200, "GET", "/v1/nodes/"+id, nil).json(t)
	if node["reservation"] != "other-host" {
		t.Errorf("reservation = %v, want other-host", node["reservation"])
	}
	// Maintenance is how an operator stops Ingot: it works on a locked node.
	c.must(202, "PUT", "/v1/nodes/"+id+"/maintenance", map[string]any{"reason": "broken fan"})
	lock.Release(context.Background())
	c.provision(id, "manage")
	c.waitState(id, "manageable")
}

func TestListPaginationFiltersSorting(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := newClient(t, env)
	var ids []string
	for i := range 7 {
		ids = append(ids, c.createNode(fmt.Sprintf("n%d", i)))
	}
	c.must(200, "PATCH", "/v1/nodes/"+ids[2], []any{
		map[string]any{"op": "add", "path": "/instance_uuid", "value": "11111111-2222-3333-4444-555555555555"},
		map[string]any{"op": "replace", "path": "/resource_class", "value": "gold"},
	})
	c.must(202, "PUT", "/v1/nodes/"+ids[3]+"/maintenance", nil)
	c.provision(ids[4], "manage")
	c.waitState(ids[4], "manageable")

	// Follow next links from page to page: every node once, in order.
	var seen []string
	path := "/v1/nodes?limit=3"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		doc := c.must(200, "GET", path, nil).json(t)
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
		for _, n := range c.must(200, "GET", path, nil).json(t)["nodes"].([]any) {
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
	n := c.must(200, "GET", "/v1/nodes/"+ids[0]+"?fields=uuid,name", nil).json(t)
	if len(n) != 3 || n["name"] != "n0" || n["links"] == nil {
		t.Errorf("fields=uuid,name gave %v", n)
	}
	detail := c.must(200, "GET", "/v1/nodes/detail?limit=1", nil).json(t)["nodes"].([]any)[0].(map[string]any)
	if _, ok := detail["driver_info"]; !ok {
		t.Errorf("detail lacks driver_info: %v", detail)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := newClient(t, env)
	r := c.must(201, "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "driver_info": map[string]any{
		"ipmi_address": "192.0.2.10", "ipmi_password": "hunter2", "redfish_auth_token": "tok123", "ipmi_username": "admin",
	}})
	id := r.json(t)["uuid"].(string)
	c.must(200, "PATCH", "/v1/nodes/"+id, []any{map[string]any{"op": "add", "path": "/instance_info/configdrive", "value": "c2VjcmV0"}})
	for _, path := range []string{"/v1/nodes/" + id, "/v1/nodes/detail", "/v1/nodes/" + id + "?fields=driver_info,instance_info"} {
		body := string(c.must(200, "GET", path, nil).body)
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
	c := newClient(t, env)
	id := c.createNode("h")
	c.provision(id, "manage")
	c.waitState(id, "manageable")
	c.provision(id, "provide")
	c.waitState(id, "available")
	hist := c.must(200, "GET", "/v1/nodes/"+id+"/history", nil).json(t)["history"].([]any)
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
	old := &client{t: t, base: env.URL}
	st := old.must(200, "GET", "/v1/nodes/"+id+"/states", nil).json(t)
	if v, ok := st["provision_state"]; !ok || v != nil {
		t.Errorf("1.1 provision_state = %v, want null", v)
	}
	c10 := &client{t: t, base: env.URL, version: "1.10"}
	born := c10.must(201, "POST", "/v1/nodes", map[string]any{"driver": "fake-hardware"}).json(t)
	if born["provision_state"] != "available" {
		t.Errorf("node created at 1.10 in %v, want available", born["provision_state"])
	}
	old.must(406, "GET", "/v1/nodes/"+id+"/history", nil)
}

// Requests no route matches still get Ironic's error format.
func TestUnroutedInIronicFormat(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := newClient(t, env)
	r := c.must(404, "GET", "/v1/widgets", nil)
	if f := r.fault(t); f != "The resource could not be found." {
		t.Errorf("404 faultstring %q", f)
	}
	r = c.must(405, "PUT", "/v1/nodes", nil)
	if f := r.fault(t); !strings.Contains(f, "PUT is not allowed") || r.hdr.Get("Allow") == "" {
		t.Errorf("405: %q, Allow %q", f, r.hdr.Get("Allow"))
	}
}

// A node's *_interface fields pick its implementations: an unknown name is
// refused, and a "no-..." choice makes the operation fail cleanly.
func TestInterfaceChoice(t *testing.T) {
	env := coordinatortest.Start(t, coordinatortest.Options{})
	c := newClient(t, env)
	id := c.createNode("choosy")
	r := c.must(400, "PATCH", "/v1/nodes/"+id, []any{map[string]any{"op": "replace", "path": "/deploy_interface", "value": "warp"}})
	if f := r.fault(t); !strings.Contains(f, "Valid interfaces are [fake no-deploy]") {
		t.Errorf("faultstring %q", f)
	}
	c.must(200, "PATCH", "/v1/nodes/"+id, []any{map[string]any{"op": "replace", "path": "/deploy_interface", "value": "no-deploy"}})
	c.provision(id, "manage")
	c.waitState(id, "manageable")
	c.provision(id, "provide") // cleaning needs the deploy interface too
	st := c.waitState(id, "clean failed")
	if !strings.Contains(st["last_error"].(string), "not supported") {
		t.Errorf("last_error %v", st["last_error"])
	}
}
