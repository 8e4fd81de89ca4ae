// Package agentrpctest runs the coordinator's agent service for tests: a
// real redis-server, the store, and the gRPC service over TLS with a fresh
// CA on a loopback port.
package agentrpctest

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/credentials"

	"github.com/ingot/ingot/coordinator/agentrpc"
	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

// Env is a running agent service.
type Env struct {
	Store *store.Store
	CA    *agentrpc.CA
	Addr  string
	// Accepts counts TCP connections, to see retries that never reach an
	// RPC (a refused TLS handshake).
	Accepts atomic.Int32
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Start serves the agent service, on a Redis of its own, until the test
// ends.
func Start(t testing.TB, cfg agentrpc.Config) *Env {
	t.Helper()
	rs := redisproc.StartForTest(t)
	st, err := store.Open(context.Background(), rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return StartWith(t, cfg, st)
}

// StartWith serves the agent service on st until the test ends.
func StartWith(t testing.TB, cfg agentrpc.Config, st *store.Store) *Env {
	t.Helper()
	ca, err := agentrpc.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := ca.ServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Store: st, CA: ca}
	g := agentrpc.New(cfg, st).GRPCServer(credentials.NewTLS(tlsCfg))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.Addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agentrpc.Serve(ctx, g, countingListener{ln, &e.Accepts}) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// Node stores a node in state with one PXE port of mac, and returns its
// UUID.
func (e *Env) Node(t testing.TB, state, mac string) string {
	t.Helper()
	ctx := context.Background()
	n := &api.Node{UUID: uuid.NewString(), Driver: "fake-hardware", ProvisionState: state, CreatedAt: time.Now().UTC()}
	if err := e.Store.CreateNode(ctx, n, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.CreatePort(ctx, &api.Port{UUID: uuid.NewString(), Address: mac, NodeUUID: n.UUID, PXEEnabled: true, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return n.UUID
}

// SetState moves a node to state behind the state machine's back, as a
// test needs to.
func (e *Env) SetState(t testing.TB, node, state string) {
	t.Helper()
	if _, err := e.Store.UpdateNode(context.Background(), node, "", func(n *api.Node, _ *store.Effects) error {
		n.ProvisionState = state
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
