// Package runner is the agent's control loop: it looks its node up on the
// coordinator, heartbeats with the token it got, runs the commands the
// heartbeats bring, one at a time, and reports their status until the
// coordinator moves on. It is the whole agent but for reading its
// settings and setting up logging (agent/main.go).
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ingot/ingot/proto/agentpb"
)

// nodeMetadata is the metadata key naming the node on every call after
// Lookup; it is agentrpc.NodeMetadata, copied so the agent binary does not
// link the coordinator (a test keeps the two equal).
const nodeMetadata = "x-ingot-node"

// Config configures a Runner. Coordinator and, unless Insecure,
// CAFingerprint are required; the rest have defaults for a real node.
type Config struct {
	// Coordinator is the agent RPC address, host:port.
	Coordinator string
	// CAFingerprint is the hex sha256 of the coordinator's CA certificate,
	// the only CA trusted, for gRPC and for HTTPS image downloads.
	CAFingerprint string
	// Insecure talks plain-text gRPC. For development only.
	Insecure bool
	// Version is reported to the coordinator.
	Version string
	// Root is where /sys and /proc are read from for the inventory: "/" on
	// a node, a fixture tree in tests.
	Root string
	// DevRoot is prefixed to device paths (/dev/vda): "/" on a node, a
	// directory of regular files standing in for disks in tests.
	DevRoot string
	// Logger is the console logger; the runner tees everything it logs,
	// debug included, into Logs for CollectLogs.
	Logger *slog.Logger
	// Logs keeps the log for CollectLogs; default a new buffer of
	// DefaultLogBufferSize.
	Logs *LogBuffer
	// Reboot reboots or powers the node off; default sync and reboot(2).
	// Called only after the coordinator was told the command succeeded.
	Reboot func(ctx context.Context, poweroff bool) error
	// HeartbeatInterval, if set, wins over the interval the coordinator
	// sends (which is in whole seconds); for tests.
	HeartbeatInterval time.Duration
	// BackoffMin and BackoffMax bound the wait between failed lookups,
	// doubling from the one to the other; default 1 s and 30 s.
	BackoffMin, BackoffMax time.Duration
	// CallTimeout bounds each RPC; default 30 s.
	CallTimeout time.Duration
	// HTTPClient downloads images; default one that trusts only the
	// pinned CA for HTTPS (and plain HTTP, whose integrity the image
	// checksum guards).
	HTTPClient *http.Client
	// Now is the clock for certificate validity; default time.Now.
	Now func() time.Time
}

func (c Config) now() time.Time { return c.Now() }

// Runner is the agent's control loop. Run it once.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	logs  *LogBuffer
	track *tracker
	cmds  sync.WaitGroup // the running command, at most one
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Runner, error) {
	if cfg.Coordinator == "" {
		return nil, errors.New("runner: no coordinator address")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if !cfg.Insecure {
		// Fail now, not at the first handshake, on a malformed pin.
		if _, err := pinnedTLS(cfg.CAFingerprint, cfg.Now); err != nil {
			return nil, fmt.Errorf("runner: %w", err)
		}
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.DevRoot == "" {
		cfg.DevRoot = "/"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Logs == nil {
		cfg.Logs = NewLogBuffer(DefaultLogBufferSize)
	}
	if cfg.Reboot == nil {
		cfg.Reboot = reboot
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(30*time.Second, cfg.BackoffMin)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = httpClient(cfg)
	}
	log := slog.New(teeHandler{cfg.Logger.Handler(), slog.NewTextHandler(cfg.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	return &Runner{cfg: cfg, log: log, logs: cfg.Logs, track: newTracker()}, nil
}

// httpClient has no overall timeout (an image takes minutes; the context
// cancels it) but gives up on a server that does not answer, and for
// HTTPS trusts only the coordinator's CA, as gRPC does.
func httpClient(cfg Config) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil, // the ramdisk talks to the coordinator directly
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       90 * time.Second,
	}
	if !cfg.Insecure {
		tr.TLSClientConfig, _ = pinnedTLS(cfg.CAFingerprint, cfg.Now) // checked in New
	}
	return &http.Client{Transport: tr}
}

// Run looks the node up and serves it until ctx ends (then it returns
// nil) or another agent owns the node (PermissionDenied: an error). A
// session the coordinator ends (Unauthenticated) sends it back to Lookup.
func (r *Runner) Run(ctx context.Context) error {
	conn, err := dial(r.cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := agentpb.NewAgentClient(conn)
	defer r.cmds.Wait()
	for {
		sess, err := r.lookup(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		r.serve(ctx, client, sess)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// serve heartbeats for one session and runs its commands; it returns when
// the session or ctx ends, with no command left running.
func (r *Runner) serve(ctx context.Context, client agentpb.AgentClient, sess session) {
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		// Commands belong to the session: the operation that queued them
		// is over (or the coordinator lost track of this agent).
		cancel()
		r.cmds.Wait()
		r.track.reset()
	}()
	r.heartbeat(ctx, client, sess)
}
