// Command coordinator is Ingot's service: the Ironic-compatible REST API,
// the conductor that provisions nodes, and (unless told to use another
// Redis) the redis-server that holds all state. It runs with no flags.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ingot/ingot/coordinator/auth"
	"github.com/ingot/ingot/coordinator/conductor"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/driver/agent"
	"github.com/ingot/ingot/coordinator/driver/fake"
	"github.com/ingot/ingot/coordinator/driver/ipmi"
	"github.com/ingot/ingot/coordinator/imagecache"
	"github.com/ingot/ingot/coordinator/metrics"
	"github.com/ingot/ingot/coordinator/redisproc"
	"github.com/ingot/ingot/coordinator/rest"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/flagenv"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

type options struct {
	listen, publicURL, host, group string
	redisURL, redisServer, dataDir string
	authStrategy, htpasswd         string
	logLevel, logFormat            string
	workers, powerSyncWorkers      int
	powerTimeout, powerSync        time.Duration
	deployWait, cleanWait          time.Duration
	inspectWait, busyTimeout       time.Duration
	ipmiTimeout                    time.Duration
	ipmiRetries                    int
	boot                           bootOptions
	agent                          agentOptions
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/ingot"
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".local", "state", "ingot")
	}
	return "ingot-data"
}

func parseFlags(args []string) (*options, error) {
	host, _ := os.Hostname()
	o := &options{}
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:6385", "address of the REST API and /metrics")
	fs.StringVar(&o.publicURL, "public-url", "", "base URL of links in API responses (default: from each request)")
	fs.StringVar(&o.host, "host", host, "this coordinator's name, shown as conductor and reservation")
	fs.StringVar(&o.group, "conductor-group", "", "conductor group")
	fs.StringVar(&o.redisURL, "redis-url", "", "Redis to keep state in (redis://, unix://); empty runs an embedded redis-server")
	fs.StringVar(&o.redisServer, "redis-server", "redis-server", "redis-server binary for the embedded Redis")
	fs.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "directory for the embedded Redis's data")
	fs.StringVar(&o.authStrategy, "auth-strategy", auth.NoAuth, "noauth or http_basic")
	fs.StringVar(&o.htpasswd, "htpasswd", "/etc/ingot/htpasswd", "bcrypt htpasswd file for http_basic (reloaded on SIGHUP)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.IntVar(&o.workers, "workers", 64, "conductor jobs run at once")
	fs.IntVar(&o.powerSyncWorkers, "power-sync-workers", 8, "BMCs the power sync queries at once")
	fs.DurationVar(&o.powerTimeout, "power-timeout", 60*time.Second, "time a power change may take")
	fs.DurationVar(&o.powerSync, "power-sync-interval", 60*time.Second, "how often power states are read from the hardware")
	fs.DurationVar(&o.deployWait, "deploy-callback-timeout", 30*time.Minute, "time a node may wait in 'wait call-back' (0: forever)")
	fs.DurationVar(&o.cleanWait, "clean-callback-timeout", 30*time.Minute, "time a node may wait in 'clean wait' (0: forever)")
	fs.DurationVar(&o.inspectWait, "inspect-wait-timeout", 30*time.Minute, "time a node may wait in 'inspect wait' (0: forever)")
	fs.DurationVar(&o.busyTimeout, "busy-timeout", time.Hour, "time a node may sit in a busy state with no worker on it")
	fs.DurationVar(&o.ipmiTimeout, "ipmi-command-timeout", ipmi.DefaultCommandTimeout, "time one IPMI command may take, resends included")
	fs.IntVar(&o.ipmiRetries, "ipmi-retries", ipmi.DefaultRetries, "further attempts of an IPMI command whose transport failed (0: the default, -1: none)")
	o.boot.flags(fs)
	o.agent.flags(fs)
	flagenv.Usage(fs, "INGOT")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := flagenv.Apply(fs, "INGOT"); err != nil {
		return nil, err
	}
	return o, nil
}

func newLogger(o *options) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", o.logFormat)
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(2)
	}
	log, err := newLogger(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(2)
	}
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("coordinator stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options, log *slog.Logger) error {
	redisURL := o.redisURL
	if redisURL == "" {
		srv, stopRedis, err := redisproc.Supervise(ctx, redisproc.Config{
			Binary: o.redisServer, Dir: filepath.Join(o.dataDir, "redis"), Persist: true, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		// Redis stops last, after the API and workers are done with it.
		defer stopRedis()
		redisURL = srv.URL()
		log.Info("embedded redis-server started", "socket", srv.SocketPath(), "pid", srv.Pid())
	}
	st, err := store.Open(ctx, redisURL)
	if err != nil {
		return err
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg, st)
	ipmiDriver := ipmi.NewDriver(ipmi.Config{CommandTimeout: o.ipmiTimeout, Retries: o.ipmiRetries, Logger: log.With("driver", ipmi.Name)})
	// Runs after the conductor has stopped: logs out of the BMCs.
	defer ipmiDriver.Close(context.Background())
	if err := o.boot.resolve(); err != nil {
		return err
	}
	images, err := imagecache.New(imagecache.Config{
		Dir:      o.boot.cacheDir(o.dataDir),
		MaxBytes: o.boot.imageCacheMiB << 20,
		ImageDir: cmp.Or(o.boot.imageDir, filepath.Join(o.dataDir, "image-sources")),
		Logger:   log.With("service", "image-cache"),
	})
	if err != nil {
		return err
	}
	deploy := &agent.Deploy{Images: images, ImageURL: o.boot.httpURL + "/images/cache"}
	drivers := driver.NewRegistry(fake.New(), agent.Add(ipmiDriver.Hardware(), deploy, &agent.Inspect{}))

	cond := conductor.New(conductor.Config{
		Host: o.host, Group: o.group, Workers: o.workers, PowerTimeout: o.powerTimeout,
		PowerSyncInterval: o.powerSync, PowerSyncWorkers: o.powerSyncWorkers,
		Timeouts: map[sm.State]time.Duration{
			sm.DeployWait: o.deployWait, sm.CleanWait: o.cleanWait, sm.InspectWait: o.inspectWait,
			sm.Deploying: o.busyTimeout, sm.Cleaning: o.busyTimeout, sm.Inspecting: o.busyTimeout,
			sm.Verifying: o.busyTimeout, sm.Deleting: o.busyTimeout, sm.Adopting: o.busyTimeout,
		},
	}, st, drivers, m, log)

	api := rest.New(rest.Config{PublicURL: o.publicURL, Host: o.host, PowerTimeout: o.powerTimeout}, st, drivers, cond, m, log)
	var authn func(http.Handler, func(*http.Request) bool) http.Handler
	switch o.authStrategy {
	case auth.NoAuth:
		if host, _, _ := net.SplitHostPort(o.listen); !isLoopback(host) {
			log.Warn("the API listens beyond loopback with no authentication; use --auth-strategy http_basic", "listen", o.listen)
		}
	case auth.HTTPBasic:
		basic, err := auth.NewBasic(o.htpasswd)
		if err != nil {
			return err
		}
		authn = basic.Middleware
		go reloadOnHUP(ctx, basic, log)
	default:
		return fmt.Errorf("auth strategy %q: want %s or %s", o.authStrategy, auth.NoAuth, auth.HTTPBasic)
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", api.Handler(authn))
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("coordinator ready", "api", "http://"+ln.Addr().String(), "host", o.host, "drivers", drivers.Names(), "auth", o.authStrategy)

	bootCtx, stopBoot := context.WithCancel(ctx)
	waitBoot, err := startBoot(bootCtx, &o.boot, &o.agent, o.dataDir, st, cond, log)
	if err != nil {
		stopBoot()
		return err
	}
	defer func() { stopBoot(); waitBoot() }()

	condCtx, stopCond := context.WithCancel(context.WithoutCancel(ctx))
	condDone := make(chan error, 1)
	go func() { condDone <- cond.Run(condCtx) }()
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		stopCond()
		<-condDone
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	httpSrv.Shutdown(sctx)
	stopCond()
	return <-condDone
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func reloadOnHUP(ctx context.Context, b *auth.Basic, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := b.Reload(); err != nil {
				log.Error("reload htpasswd", "err", err)
			} else {
				log.Info("htpasswd reloaded")
			}
		}
	}
}
