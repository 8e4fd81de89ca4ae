package coordinatortest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Client is a tiny Ironic API client for tests: it fails the test on
// transport errors and unexpected status codes.
type Client struct {
	T       testing.TB
	Base    string
	Version string // X-OpenStack-Ironic-API-Version; "" sends none
}

// NewClient returns a client of env's API at version 1.82.
func NewClient(t testing.TB, env *Env) *Client {
	return &Client{T: t, Base: env.URL, Version: "1.82"}
}

// Response is an API answer.
type Response struct {
	Code   int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as an object.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

// Fault returns the faultstring of an Ironic error body.
func (r Response) Fault(t testing.TB) string {
	t.Helper()
	var outer struct {
		ErrorMessage string `json:"error_message"`
	}
	if err := json.Unmarshal(r.Body, &outer); err != nil || outer.ErrorMessage == "" {
		t.Fatalf("not an Ironic error body: %s", r.Body)
	}
	var inner struct {
		Faultstring string `json:"faultstring"`
	}
	if err := json.Unmarshal([]byte(outer.ErrorMessage), &inner); err != nil {
		t.Fatalf("error_message is not JSON: %q", outer.ErrorMessage)
	}
	return inner.Faultstring
}

// Do sends a request; body is a string sent as is or a value sent as JSON.
func (c *Client) Do(method, path string, body any) Response {
	c.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		c.T.Fatal(err)
	}
	if c.Version != "" {
		req.Header.Set("X-OpenStack-Ironic-API-Version", c.Version)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Code: resp.StatusCode, Header: resp.Header, Body: b}
}

// Must is Do that fails the test unless the answer has status code.
func (c *Client) Must(code int, method, path string, body any) Response {
	c.T.Helper()
	r := c.Do(method, path, body)
	if r.Code != code {
		c.T.Fatalf("%s %s: %d %s, want %d", method, path, r.Code, r.Body, code)
	}
	return r
}

// CreateNode creates a node (fake-hardware unless body says otherwise) and
// returns its UUID.
func (c *Client) CreateNode(body map[string]any) string {
	c.T.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["driver"]; !ok {
		body["driver"] = "fake-hardware"
	}
	return c.Must(201, "POST", "/v1/nodes", body).JSON(c.T)["uuid"].(string)
}

// Provision sends a provision verb.
func (c *Client) Provision(id, target string) {
	c.T.Helper()
	c.Must(202, "PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": target})
}

// WaitStates polls a node's states until ok accepts them, or fails the
// test after 15 s.
func (c *Client) WaitStates(id string, what string, ok func(map[string]any) bool) map[string]any {
	c.T.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var st map[string]any
	for time.Now().Before(deadline) {
		st = c.Must(200, "GET", "/v1/nodes/"+id+"/states", nil).JSON(c.T)
		if ok(st) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.T.Fatalf("node %s: states %v, want %s", id, st, what)
	return nil
}

// WaitState waits until the node rests in provision state state.
func (c *Client) WaitState(id, state string) map[string]any {
	c.T.Helper()
	return c.WaitStates(id, "provision_state "+state, func(st map[string]any) bool {
		return st["provision_state"] == state && st["target_provision_state"] == nil
	})
}

// WaitPower waits until the node's power state is power and no change is
// pending.
func (c *Client) WaitPower(id, power string) map[string]any {
	c.T.Helper()
	return c.WaitStates(id, "power_state "+power, func(st map[string]any) bool {
		return st["power_state"] == power && st["target_power_state"] == nil
	})
}
