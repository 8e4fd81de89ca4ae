package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startCoordinator runs the coordinator as main does, with only a listen
// address and data directory, and returns a stop function.
func startCoordinator(t *testing.T, dataDir, addr string) func() {
	t.Helper()
	o, err := parseFlags([]string{"--listen", addr, "--data-dir", dataDir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v1")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("coordinator exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("coordinator never answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coordinator: %v", err)
		}
	}
}

func apiCall(t *testing.T, method, url, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("X-OpenStack-Ironic-API-Version", "1.82")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %v", method, url, resp.StatusCode, m)
	}
	return m
}

// With no Redis configured the coordinator runs its own redis-server, and
// a restarted coordinator finds everything it had.
func TestEmbeddedRedisKeepsStateAcrossRestarts(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("INGOT_REQUIRE_REDIS") == "" {
		t.Skip("redis-server not installed")
	}
	dir, err := os.MkdirTemp("", "ingot-main")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	addr := freeAddr(t)
	base := "http://" + addr

	stop := startCoordinator(t, dir, addr)
	node := apiCall(t, "POST", base+"/v1/nodes", `{"driver":"fake-hardware","name":"survivor"}`)
	apiCall(t, "PUT", base+"/v1/nodes/survivor/states/provision", `{"target":"manage"}`)
	deadline := time.Now().Add(10 * time.Second)
	for apiCall(t, "GET", base+"/v1/nodes/survivor", "")["provision_state"] != "manageable" {
		if time.Now().After(deadline) {
			t.Fatal("never manageable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	metrics, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(text), `ingot_nodes{provision_state="manageable"} 1`) {
		t.Errorf("/metrics lacks the node count:\n%s", text)
	}
	stop()

	// The embedded redis-server stopped with the coordinator.
	if conn, err := net.Dial("unix", dir+"/redis/redis.sock"); err == nil {
		conn.Close()
		t.Error("redis-server still answers after the coordinator stopped")
	}

	stop = startCoordinator(t, dir, addr)
	defer stop()
	got := apiCall(t, "GET", base+"/v1/nodes/survivor", "")
	if got["uuid"] != node["uuid"] || got["provision_state"] != "manageable" {
		t.Errorf("after restart: %v", got)
	}
}
