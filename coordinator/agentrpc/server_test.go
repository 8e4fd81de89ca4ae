package agentrpc_test

import (
	"context"
	"crypto/tls"
	"github.com/ingot/ingot/coordinator/agentrpc/agentrpctest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ingot/ingot/coordinator/agentrpc"
	"github.com/ingot/ingot/proto/agentpb"
)

type env struct {
	*agentrpctest.Env
	client agentpb.AgentClient
}

// start serves the agent service over TLS on loopback, with a real Redis,
// and returns a client that trusts only the coordinator's CA.
func start(t *testing.T) *env {
	t.Helper()
	e := agentrpctest.Start(t, agentrpc.Config{HeartbeatInterval: 2 * time.Second})
	conn, err := grpc.NewClient(e.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: e.CA.Pool(), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{Env: e, client: agentpb.NewAgentClient(conn)}
}

func (e *env) node(t *testing.T, state, mac string) string { return e.Node(t, state, mac) }

func lookup(macs ...string) *agentpb.LookupRequest {
	inv := &agentpb.Inventory{}
	for _, m := range macs {
		inv.Interfaces = append(inv.Interfaces, &agentpb.NetworkInterface{Name: "eth", MacAddress: m})
	}
	return &agentpb.LookupRequest{Inventory: inv, AgentVersion: "test-1"}
}

func authed(node, token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token, agentrpc.NodeMetadata, node)
}

func code(err error) codes.Code { return status.Code(err) }

func TestLookupIssuesTokenOnce(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	id := e.node(t, "wait call-back", "52:54:00:00:01:01")

	// Any of the node's MACs finds it, in any case.
	resp, err := e.client.Lookup(ctx, lookup("52:54:00:ff:ff:ff", "52:54:00:00:01:01"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetNodeUuid() != id || len(resp.GetAgentToken()) < 32 || resp.GetConfig().GetHeartbeatIntervalSeconds() != 2 {
		t.Fatalf("lookup: %v", resp)
	}
	// A second agent cannot take the node over.
	if _, err := e.client.Lookup(ctx, lookup("52:54:00:00:01:01")); code(err) != codes.PermissionDenied {
		t.Errorf("second lookup: %v", err)
	}
	// Unknown MACs, nodes not running an agent and malformed lookups fail.
	if _, err := e.client.Lookup(ctx, lookup("52:54:00:99:99:99")); code(err) != codes.NotFound {
		t.Errorf("unknown mac: %v", err)
	}
	e.node(t, "available", "52:54:00:00:01:02")
	if _, err := e.client.Lookup(ctx, lookup("52:54:00:00:01:02")); code(err) != codes.FailedPrecondition {
		t.Errorf("available node: %v", err)
	}
	if _, err := e.client.Lookup(ctx, &agentpb.LookupRequest{}); code(err) != codes.InvalidArgument {
		t.Errorf("empty lookup: %v", err)
	}
	// The token is stored only as a hash.
	sess, found, err := e.Store.AgentSessionOf(ctx, id)
	if err != nil || !found || sess.TokenHash == resp.GetAgentToken() || sess.Version != "test-1" {
		t.Errorf("session %+v %v %v", sess, found, err)
	}
}

func TestHeartbeatNeedsTheToken(t *testing.T) {
	e := start(t)
	id := e.node(t, "clean wait", "52:54:00:00:02:01")
	other := e.node(t, "clean wait", "52:54:00:00:02:02")
	resp, err := e.client.Lookup(context.Background(), lookup("52:54:00:00:02:01"))
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.GetAgentToken()
	otherResp, err := e.client.Lookup(context.Background(), lookup("52:54:00:00:02:02"))
	if err != nil {
		t.Fatal(err)
	}
	hb := &agentpb.HeartbeatRequest{NodeUuid: id, AgentVersion: "test-1"}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		req  *agentpb.HeartbeatRequest
		want codes.Code
	}{
		{"no token", context.Background(), hb, codes.Unauthenticated},
		{"wrong token", authed(id, "not-the-token"), hb, codes.Unauthenticated},
		{"another node's token", authed(id, otherResp.GetAgentToken()), hb, codes.Unauthenticated},
		{"token for other node in body", authed(other, otherResp.GetAgentToken()), hb, codes.PermissionDenied},
		{"no node", authed(id, tok), &agentpb.HeartbeatRequest{}, codes.InvalidArgument},
		{"good", authed(id, tok), hb, codes.OK},
	} {
		_, err := e.client.Heartbeat(tt.ctx, tt.req)
		if code(err) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestCommandsAndProgress(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	id := e.node(t, "wait call-back", "52:54:00:00:03:01")
	resp, err := e.client.Lookup(ctx, lookup("52:54:00:00:03:01"))
	if err != nil {
		t.Fatal(err)
	}
	actx := authed(id, resp.GetAgentToken())
	hb, err := e.client.Heartbeat(actx, &agentpb.HeartbeatRequest{NodeUuid: id})
	if err != nil || hb.GetCommand() != nil {
		t.Fatalf("idle heartbeat: %v %v", hb, err)
	}
	cmd := &agentpb.Command{Id: "c1", Kind: &agentpb.Command_WriteImage{WriteImage: &agentpb.WriteImage{Url: "http://192.0.2.1/img.raw", Format: "raw"}}}
	raw, _ := proto.Marshal(cmd)
	if err := e.Store.SetAgentCommand(ctx, id, raw); err != nil {
		t.Fatal(err)
	}
	hb, err = e.client.Heartbeat(actx, &agentpb.HeartbeatRequest{NodeUuid: id})
	if err != nil || hb.GetCommand().GetId() != "c1" || hb.GetCommand().GetWriteImage().GetUrl() != "http://192.0.2.1/img.raw" {
		t.Fatalf("command delivery: %v %v", hb, err)
	}
	running := &agentpb.CommandStatus{CommandId: "c1", State: agentpb.CommandStatus_RUNNING,
		Progress: &agentpb.Progress{Phase: "write", BytesDone: 1 << 20, BytesTotal: 4 << 20}}
	hb, err = e.client.Heartbeat(actx, &agentpb.HeartbeatRequest{NodeUuid: id, Status: running})
	if err != nil || hb.GetCommand() != nil {
		t.Fatalf("once started, the command is not repeated: %v %v", hb, err)
	}
	n, _, err := e.Store.GetNode(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := n.DriverInternalInfo["agent_progress"].(map[string]any)
	if !ok || p["command_id"] != "c1" || p["state"] != "RUNNING" {
		t.Errorf("progress in driver_internal_info: %v", n.DriverInternalInfo)
	}

	// Leaving the agent's states ends the session: the token dies with it
	// and the next agent may look the node up.
	e.SetState(t, id, "deploy failed")
	if _, err := e.client.Heartbeat(actx, &agentpb.HeartbeatRequest{NodeUuid: id}); code(err) != codes.Unauthenticated {
		t.Errorf("heartbeat after the session ended: %v", err)
	}
	e.SetState(t, id, "deploying")
	if _, err := e.client.Lookup(ctx, lookup("52:54:00:00:03:01")); err != nil {
		t.Errorf("lookup by a new agent: %v", err)
	}
}

// A client that does not trust the coordinator's CA cannot talk to it.
func TestOnlyTheCATrusted(t *testing.T) {
	e := start(t)
	other, err := agentrpc.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(e.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: other.Pool(), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e.node(t, "deploying", "52:54:00:00:04:01")
	if _, err := agentpb.NewAgentClient(conn).Lookup(context.Background(), lookup("52:54:00:00:04:01")); code(err) != codes.Unavailable {
		t.Errorf("lookup to a server of another CA: %v, want a failed handshake", err)
	}
	if other.Fingerprint() == e.CA.Fingerprint() || len(e.CA.Fingerprint()) != 64 {
		t.Errorf("fingerprints %s %s", other.Fingerprint(), e.CA.Fingerprint())
	}
	// Reloading the same directory gives the same CA.
	dir := t.TempDir()
	a, _ := agentrpc.LoadOrCreateCA(dir)
	b, err := agentrpc.LoadOrCreateCA(dir)
	if err != nil || a.Fingerprint() != b.Fingerprint() {
		t.Errorf("reloaded CA differs: %v", err)
	}
}
