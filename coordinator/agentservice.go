package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/ingot/ingot/coordinator/agentrpc"
	"github.com/ingot/ingot/coordinator/store"
)

// agentOptions configure the agent RPC service.
type agentOptions struct {
	listen    string
	insecure  bool
	hosts     string
	heartbeat time.Duration
	session   time.Duration
}

func (a *agentOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&a.listen, "agent-listen", "", "gRPC address agents dial (default <boot-server-ip>:9443 when the boot service runs; empty otherwise: off)")
	fs.BoolVar(&a.insecure, "agent-insecure", false, "serve agents in plain text instead of TLS (testing only)")
	fs.StringVar(&a.hosts, "agent-tls-hosts", "", "extra names or IPs for the agent server certificate, comma-separated")
	fs.DurationVar(&a.heartbeat, "agent-heartbeat-interval", 10*time.Second, "how often agents call")
	fs.DurationVar(&a.session, "agent-session-ttl", 5*time.Minute, "an agent silent this long loses its token")
}

// startAgentRPC serves agents when configured. It returns the address and
// CA fingerprint agents must be given, for the boot service's kernel
// command line.
func startAgentRPC(ctx context.Context, a *agentOptions, listen, dataDir string, st *store.Store, calls agentrpc.Dispatcher, log *slog.Logger) (addr, fingerprint string, wait func(), err error) {
	if listen == "" {
		return "", "", func() {}, nil
	}
	srv := agentrpc.New(agentrpc.Config{HeartbeatInterval: a.heartbeat, SessionTTL: a.session, Logger: log.With("service", "agent-rpc"), Dispatcher: calls}, st)
	var creds credentials.TransportCredentials
	if !a.insecure {
		ca, err := agentrpc.LoadOrCreateCA(filepath.Join(dataDir, "ca"))
		if err != nil {
			return "", "", nil, err
		}
		host, _, _ := net.SplitHostPort(listen)
		hosts := append([]string{host}, splitList(a.hosts)...)
		tlsCfg, err := ca.ServerTLS(hosts)
		if err != nil {
			return "", "", nil, err
		}
		creds, fingerprint = credentials.NewTLS(tlsCfg), ca.Fingerprint()
	} else {
		log.Warn("agents are served in plain text (--agent-insecure)")
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", "", nil, fmt.Errorf("agent rpc: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := agentrpc.Serve(ctx, srv.GRPCServer(creds), ln); err != nil {
			log.Error("agent rpc stopped", "err", err)
		}
	}()
	log.Info("agent rpc serving", "addr", ln.Addr().String(), "tls", !a.insecure, "ca_fingerprint", fingerprint)
	return ln.Addr().String(), fingerprint, func() { <-done }, nil
}
