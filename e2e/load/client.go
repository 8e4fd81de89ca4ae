package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ingot/ingot/pkg/api"
)

// apiVersion is the microversion every request asks for: the newest Ingot
// serves, as a current client would.
const apiVersion = "1.82"

// client talks to one coordinator. It is safe for concurrent use.
type client struct {
	base    string
	http    *http.Client
	timeout time.Duration // per request, including reading the body
}

// newClient returns a client that keeps up to conns connections open, so
// that many workers or pollers reuse connections instead of dialing.
func newClient(base string, timeout time.Duration, conns int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 2 * conns
	tr.MaxIdleConnsPerHost = conns
	tr.IdleConnTimeout = 90 * time.Second
	tr.DisableCompression = true
	tr.ForceAttemptHTTP2 = false
	return &client{
		base:    strings.TrimRight(base, "/"),
		http:    &http.Client{Transport: tr},
		timeout: timeout,
	}
}

// statusError is an answer with a status other than the one expected.
type statusError struct {
	method, path string
	got, want    int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: status %d, want %d: %s", e.method, e.path, e.got, e.want, e.body)
}

// isStatus reports whether err is an answer with the given status.
func isStatus(err error, code int) bool {
	var se *statusError
	return errors.As(err, &se) && se.got == code
}

// send makes one request and copies the answer's body to dst (discarded
// when dst is nil). The body is read whole before send returns, so timing
// a send times the complete answer.
func (c *client) send(ctx context.Context, method, path string, body []byte, want int, dst io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set(api.VersionHeader, apiVersion)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error repeats the method and whole URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return &statusError{method: method, path: path, got: resp.StatusCode, want: want, body: strings.TrimSpace(string(msg))}
	}
	if dst == nil {
		dst = io.Discard
	}
	if _, err := io.Copy(dst, resp.Body); err != nil {
		return fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return nil
}

// sendJSON makes one request with v (if not nil) as the JSON body and
// decodes the answer into out (if not nil).
func (c *client) sendJSON(ctx context.Context, method, path string, v any, want int, out any) error {
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
	}
	var buf bytes.Buffer
	if err := c.send(ctx, method, path, body, want, &buf); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(buf.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// ping checks that a coordinator answers at all.
func (c *client) ping(ctx context.Context) error {
	return c.send(ctx, http.MethodGet, "/v1", nil, http.StatusOK, nil)
}

// nodeCreate is the body of POST /v1/nodes.
type nodeCreate struct {
	Driver     string            `json:"driver"`
	Name       string            `json:"name"`
	Properties map[string]any    `json:"properties"`
	DriverInfo map[string]string `json:"driver_info"`
}

func fakeNode(name string) nodeCreate {
	return nodeCreate{
		Driver:     "fake-hardware",
		Name:       name,
		Properties: map[string]any{"cpus": 4, "memory_mb": 8192, "local_gb": 100, "cpu_arch": "x86_64"},
		DriverInfo: map[string]string{"fake_key": "v"},
	}
}

// createNode enrolls a fake-hardware node and returns its UUID.
func (c *client) createNode(ctx context.Context, name string) (string, error) {
	var n struct {
		UUID string `json:"uuid"`
	}
	if err := c.sendJSON(ctx, http.MethodPost, "/v1/nodes", fakeNode(name), http.StatusCreated, &n); err != nil {
		return "", err
	}
	if n.UUID == "" {
		return "", fmt.Errorf("create node %s: answer has no uuid", name)
	}
	return n.UUID, nil
}

// nodeStates is the part of GET /v1/nodes/{id}/states the tool looks at.
type nodeStates struct {
	ProvisionState       string `json:"provision_state"`
	TargetProvisionState string `json:"target_provision_state"`
	LastError            string `json:"last_error"`
}

func (c *client) states(ctx context.Context, node string) (nodeStates, error) {
	var st nodeStates
	err := c.sendJSON(ctx, http.MethodGet, "/v1/nodes/"+node+"/states", nil, http.StatusOK, &st)
	return st, err
}

// setProvision asks for a provision verb.
func (c *client) setProvision(ctx context.Context, node, verb string) error {
	return c.sendJSON(ctx, http.MethodPut, "/v1/nodes/"+node+"/states/provision",
		map[string]string{"target": verb}, http.StatusAccepted, nil)
}

// firstNodes returns the UUIDs of up to limit existing nodes.
func (c *client) firstNodes(ctx context.Context, limit int) ([]string, error) {
	var page struct {
		Nodes []struct {
			UUID string `json:"uuid"`
		} `json:"nodes"`
	}
	path := fmt.Sprintf("/v1/nodes?limit=%d&fields=uuid", limit)
	if err := c.sendJSON(ctx, http.MethodGet, path, nil, http.StatusOK, &page); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(page.Nodes))
	for _, n := range page.Nodes {
		out = append(out, n.UUID)
	}
	return out, nil
}
