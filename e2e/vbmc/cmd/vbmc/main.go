// Command vbmc runs virtual BMCs: one in front of a QEMU machine, one in
// front of an in-memory fake machine, or a fleet of fake ones for scale
// tests.
//
//	vbmc --listen 127.0.0.1:6230 --user admin --password pw --fake
//	vbmc --listen 127.0.0.1:6230 --user admin --password pw --qemu-args '-m 512 -netdev ...'
//	vbmc --fleet 1000 --base-port 7000 --user admin --password pw
//
// Every flag can come from the environment instead: --base-port is
// VBMC_BASE_PORT, and so on. A fleet prints its addresses, one a line, on
// standard output once all of them listen. It runs until SIGINT or
// SIGTERM; a QEMU machine is powered off on the way out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ingot/ingot/e2e/vbmc"
	"github.com/ingot/ingot/pkg/flagenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vbmc:", err)
		os.Exit(1)
	}
}

type options struct {
	listen         string
	user, password string
	fake           bool
	qemuArgs       string
	qemuBinary     string
	qemuDir        string
	qemuAccel      string
	fleet          int
	basePort       int
	sessionTimeout time.Duration
	logFormat      string
	logLevel       string
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("vbmc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:6230", "UDP address to serve IPMI on (host only is used with --fleet)")
	fs.StringVar(&o.user, "user", "admin", "IPMI user name")
	fs.StringVar(&o.password, "password", "password", "IPMI password (at most 20 bytes)")
	fs.BoolVar(&o.fake, "fake", false, "drive an in-memory machine (the default without --qemu-args)")
	fs.StringVar(&o.qemuArgs, "qemu-args", "", "drive a QEMU machine, with these extra arguments (shell-style quoting)")
	fs.StringVar(&o.qemuBinary, "qemu-binary", "qemu-system-x86_64", "QEMU emulator")
	fs.StringVar(&o.qemuDir, "qemu-dir", "", "directory for QMP socket and console.log (default: a temporary one)")
	fs.StringVar(&o.qemuAccel, "qemu-accel", "tcg", "QEMU accelerator")
	fs.IntVar(&o.fleet, "fleet", 0, "run this many fake BMCs instead of one")
	fs.IntVar(&o.basePort, "base-port", 0, "first port of a fleet (0: ports the system picks)")
	fs.DurationVar(&o.sessionTimeout, "session-timeout", 60*time.Second, "idle time after which a session is forgotten")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	flagenv.Usage(fs, "VBMC")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := flagenv.Apply(fs, "VBMC"); err != nil {
		return nil, err
	}
	if o.fake && o.qemuArgs != "" {
		return nil, errors.New("--fake and --qemu-args exclude each other")
	}
	if o.fleet > 0 && o.qemuArgs != "" {
		return nil, errors.New("a --fleet is fake machines only")
	}
	return o, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// run serves until ctx ends. A fleet's addresses go to stdout, logs to
// stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}

	cfg := vbmc.Config{
		Addr:           o.listen,
		Users:          map[string]string{o.user: o.password},
		Logger:         log,
		SessionTimeout: o.sessionTimeout,
	}
	if o.fleet > 0 {
		f, err := vbmc.ServeFleet(ctx, o.fleet, o.basePort, cfg)
		if err != nil {
			return err
		}
		defer f.Close()
		var sb strings.Builder
		for _, a := range f.Addrs() {
			sb.WriteString(a.String())
			sb.WriteByte('\n')
		}
		if _, err := io.WriteString(stdout, sb.String()); err != nil {
			return err
		}
		log.Info("fleet serving", "bmcs", f.Len(), "user", o.user)
		<-ctx.Done()
		return nil
	}

	if o.qemuArgs != "" {
		qargs, err := splitArgs(o.qemuArgs)
		if err != nil {
			return fmt.Errorf("--qemu-args: %w", err)
		}
		m, err := vbmc.NewQEMUMachine(vbmc.QEMUConfig{
			Binary: o.qemuBinary,
			Args:   qargs,
			Dir:    o.qemuDir,
			Accel:  o.qemuAccel,
			Logger: log,
		})
		if err != nil {
			return err
		}
		defer m.Close()
		log.Info("qemu machine", "dir", m.Dir())
		cfg.Machine = m
	} else {
		cfg.Machine = vbmc.NewFakeMachine()
	}
	b, err := vbmc.New(cfg)
	if err != nil {
		return err
	}
	log.Info("vbmc listening", "addr", b.Addr(), "user", o.user)
	return b.Serve(ctx)
}

// splitArgs splits s into words as a POSIX shell would, with single and
// double quotes and backslash escapes but no expansion.
func splitArgs(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote rune
		esc   bool
	)
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			esc, in = true, true
		case quote == '"':
			if r == '"' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 || esc {
		return nil, errors.New("unterminated quote or escape")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
