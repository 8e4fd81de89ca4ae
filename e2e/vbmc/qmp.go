package vbmc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmpClient speaks the QEMU Machine Protocol over a unix socket: one JSON
// object per line, commands answered in order, asynchronous events (which
// carry "event") interleaved and skipped.
type qmpClient struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// dialQMP connects to QEMU's QMP socket, retrying until QEMU has created
// it, ctx ends or exited is closed (QEMU died before listening), then
// leaves capabilities negotiation mode.
func dialQMP(ctx context.Context, path string, exited <-chan struct{}) (*qmpClient, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			c := &qmpClient{conn: conn, r: bufio.NewReader(conn)}
			if err := c.handshake(ctx); err != nil {
				conn.Close()
				return nil, err
			}
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-exited:
			return nil, errors.New("qemu exited before its QMP socket answered")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *qmpClient) handshake(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline(ctx)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("qmp greeting: %w", err)
	}
	if err := json.Unmarshal(line, &greeting); err != nil || greeting.QMP == nil {
		return fmt.Errorf("qmp greeting %q: not QMP", line)
	}
	_, err = c.executeLocked("qmp_capabilities", nil)
	return err
}

func (c *qmpClient) deadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	c.conn.SetDeadline(dl)
}

// Execute runs one QMP command and returns its "return" value.
func (c *qmpClient) Execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline(ctx)
	return c.executeLocked(cmd, args)
}

type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (c *qmpClient) executeLocked(cmd string, args any) (json.RawMessage, error) {
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
	}{cmd, args}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		var rsp struct {
			Return json.RawMessage `json:"return"`
			Error  *qmpError       `json:"error"`
			Event  string          `json:"event"`
		}
		if err := json.Unmarshal(line, &rsp); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		switch {
		case rsp.Event != "":
			continue
		case rsp.Error != nil:
			return nil, fmt.Errorf("qmp %s: %s: %s", cmd, rsp.Error.Class, rsp.Error.Desc)
		default:
			return rsp.Return, nil
		}
	}
}

// Status returns query-status's run state ("running", "paused", ...).
func (c *qmpClient) Status(ctx context.Context) (string, error) {
	raw, err := c.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("qmp query-status: %w", err)
	}
	return st.Status, nil
}

func (c *qmpClient) Close() error { return c.conn.Close() }
