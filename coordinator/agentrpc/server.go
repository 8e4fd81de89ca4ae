// Package agentrpc is the coordinator's side of the agent protocol
// (proto/agent.proto): agents dial in over TLS, look their node up by MAC
// address once and get a token, then heartbeat with it, reporting command
// status and receiving the next command. Tokens and heartbeats live in the
// node's agent session in Redis (store.AgentSession), never in memory.
package agentrpc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/validator"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
	"github.com/ingot/ingot/proto/agentpb"
)

// NodeMetadata is the metadata key an agent names its node with on every
// call after Lookup, beside its token in "authorization: Bearer <token>".
const NodeMetadata = "x-ingot-node"

// Config tunes the service.
type Config struct {
	// HeartbeatInterval is how often agents are told to call.
	HeartbeatInterval time.Duration
	// SessionTTL ends an agent session (and its token) when the agent has
	// not called for that long, so a node whose agent died can be looked
	// up again by its next agent.
	SessionTTL time.Duration
	Logger     *slog.Logger
	// Dispatcher, if set, hears of calls that may move the node's
	// operation on (the conductor).
	Dispatcher Dispatcher
}

// Dispatcher hears of agent calls that may move their node's operation
// on: a lookup, a finished command, or an agent with nothing to do.
type Dispatcher interface {
	AgentCalled(ctx context.Context, node string)
}

// Server implements agentpb.AgentServer.
type Server struct {
	agentpb.UnimplementedAgentServer
	cfg   Config
	store *store.Store
	log   *slog.Logger
}

// New returns the service.
func New(cfg Config, st *store.Store) *Server {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, store: st, log: cfg.Logger}
}

// GRPCServer returns a gRPC server with the service registered behind the
// interceptor chain: panic recovery, logging, validation, and the token
// check on every call but Lookup. creds nil means plain text, which only
// an explicit insecure setting should allow.
func (s *Server) GRPCServer(creds credentials.TransportCredentials) *grpc.Server {
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		s.log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	quietOK := logging.WithLevels(func(c codes.Code) logging.Level {
		if c == codes.OK {
			return logging.LevelDebug // every heartbeat of every node: not news
		}
		return logging.DefaultServerCodeToLevel(c)
	})
	notLookup := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return c.FullMethod() != agentpb.Agent_Lookup_FullMethodName
	})
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
				s.log.ErrorContext(ctx, "agent rpc panic", "panic", fmt.Sprint(p))
				return status.Error(codes.Internal, "internal error")
			})),
			logging.UnaryServerInterceptor(logger, quietOK, logging.WithLogOnEvents(logging.FinishCall)),
			validator.UnaryServerInterceptor(),
			selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(s.authenticate), notLookup),
		),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	g := grpc.NewServer(opts...)
	agentpb.RegisterAgentServer(g, s)
	return g
}

type authKey struct{}

// authenticated is what the auth interceptor establishes.
type authenticated struct{ node, tokenHash string }

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// authenticate checks the bearer token against the node's session.
func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	tok, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, err
	}
	var node string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(NodeMetadata); len(v) == 1 {
			node = v[0]
		}
	}
	if node == "" {
		return nil, status.Error(codes.Unauthenticated, "the call does not name its node ("+NodeMetadata+" metadata)")
	}
	sess, found, err := s.store.AgentSessionOf(ctx, node)
	if err != nil {
		return nil, status.Error(codes.Unavailable, "cannot read the agent session")
	}
	h := hashToken(tok)
	if !found || subtle.ConstantTimeCompare([]byte(sess.TokenHash), []byte(h)) != 1 {
		return nil, status.Error(codes.Unauthenticated, "invalid agent token for this node")
	}
	return context.WithValue(ctx, authKey{}, authenticated{node: node, tokenHash: h}), nil
}

// Lookup finds the node by MAC and issues its token, once per session.
func (s *Server) Lookup(ctx context.Context, req *agentpb.LookupRequest) (*agentpb.LookupResponse, error) {
	n, err := s.findNode(ctx, req.GetInventory().GetInterfaces())
	if err != nil {
		return nil, err
	}
	if !sm.State(n.ProvisionState).BootsAgent() {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is in state %q, which does not run an agent", n.UUID, n.ProvisionState)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, status.Error(codes.Internal, "cannot make a token")
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	issued, err := s.store.IssueAgentToken(ctx, n.UUID, hashToken(tok), req.GetAgentVersion(), s.cfg.SessionTTL)
	if err != nil {
		return nil, status.Error(codes.Unavailable, "cannot record the agent session")
	}
	if !issued {
		// As Ironic's agent_token: a second agent cannot take the node over
		// while the first one's session lives.
		return nil, status.Errorf(codes.PermissionDenied, "an agent token was already issued for node %s", n.UUID)
	}
	if err := s.store.SetAgentInventory(ctx, n.UUID, mustMarshal(req.GetInventory())); err != nil {
		s.log.WarnContext(ctx, "record inventory", "node", n.UUID, "err", err)
	}
	s.log.InfoContext(ctx, "agent looked up its node", "node", n.UUID, "agent_version", req.GetAgentVersion(), "state", n.ProvisionState)
	s.dispatch(ctx, n.UUID)
	return &agentpb.LookupResponse{
		NodeUuid:   n.UUID,
		AgentToken: tok,
		Config:     &agentpb.AgentConfig{HeartbeatIntervalSeconds: uint32(s.cfg.HeartbeatInterval / time.Second)},
	}, nil
}

func (s *Server) findNode(ctx context.Context, ifaces []*agentpb.NetworkInterface) (*api.Node, error) {
	for _, ifc := range ifaces {
		mac, err := api.NormalizeMAC(ifc.GetMacAddress())
		if err != nil {
			continue
		}
		p, err := s.store.PortByMAC(ctx, mac)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, status.Error(codes.Unavailable, "cannot read ports")
		}
		n, _, err := s.store.ViewNode(ctx, p.NodeUUID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, status.Error(codes.Unavailable, "cannot read the node")
		}
		return n, nil
	}
	return nil, status.Error(codes.NotFound, "no enrolled node has any of these MAC addresses")
}

// Heartbeat records the agent's call and status and hands it the command
// waiting, if any.
func (s *Server) Heartbeat(ctx context.Context, req *agentpb.HeartbeatRequest) (*agentpb.HeartbeatResponse, error) {
	who, _ := ctx.Value(authKey{}).(authenticated)
	if who.node != req.GetNodeUuid() {
		return nil, status.Error(codes.PermissionDenied, "the token is for another node")
	}
	var st []byte
	if req.GetStatus() != nil {
		st = mustMarshal(req.GetStatus())
	}
	raw, err := s.store.AgentHeartbeat(ctx, who.node, who.tokenHash, req.GetAgentVersion(), st, s.cfg.SessionTTL)
	if errors.Is(err, store.ErrAgentToken) {
		return nil, status.Error(codes.Unauthenticated, "invalid agent token for this node")
	}
	if err != nil {
		return nil, status.Error(codes.Unavailable, "cannot record the heartbeat")
	}
	if p := req.GetStatus().GetProgress(); p != nil {
		s.recordProgress(ctx, who.node, req.GetStatus())
	}
	resp := &agentpb.HeartbeatResponse{HeartbeatIntervalSeconds: uint32(s.cfg.HeartbeatInterval / time.Second)}
	if len(raw) > 0 {
		cmd := new(agentpb.Command)
		if err := proto.Unmarshal(raw, cmd); err != nil {
			return nil, status.Error(codes.Internal, "the waiting command is unreadable")
		}
		// Repeated until the agent reports it started, so a lost answer
		// loses nothing.
		if req.GetStatus().GetCommandId() != cmd.GetId() {
			resp.Command = cmd
		} else if st := req.GetStatus().GetState(); st == agentpb.CommandStatus_SUCCEEDED || st == agentpb.CommandStatus_FAILED {
			s.dispatch(ctx, who.node)
		}
	} else {
		s.dispatch(ctx, who.node) // idle: maybe it has work coming
	}
	return resp, nil
}

func (s *Server) dispatch(ctx context.Context, node string) {
	if s.cfg.Dispatcher != nil {
		s.cfg.Dispatcher.AgentCalled(context.WithoutCancel(ctx), node)
	}
}

// recordProgress shows a running command's progress in the node's
// driver_internal_info, where operators (and the baremetal CLI) look.
func (s *Server) recordProgress(ctx context.Context, node string, st *agentpb.CommandStatus) {
	progress, _ := protojson.Marshal(st.GetProgress())
	_, err := s.store.UpdateNode(ctx, node, store.AnyOwner, func(n *api.Node, _ *store.Effects) error {
		if n.DriverInternalInfo == nil {
			n.DriverInternalInfo = map[string]any{}
		}
		n.DriverInternalInfo["agent_last_heartbeat"] = time.Now().UTC().Format(time.RFC3339)
		n.DriverInternalInfo["agent_progress"] = map[string]any{
			"command_id": st.GetCommandId(), "state": st.GetState().String(), "progress": string(progress),
		}
		return nil
	})
	if err != nil {
		s.log.WarnContext(ctx, "record agent progress", "node", node, "err", err)
	}
}

func mustMarshal(m proto.Message) []byte {
	b, _ := proto.Marshal(m)
	return b
}

// Serve serves g on ln until ctx ends.
func Serve(ctx context.Context, g *grpc.Server, ln net.Listener) error {
	go func() { <-ctx.Done(); g.GracefulStop() }()
	if err := g.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("agent rpc: %w", err)
	}
	return nil
}
