// Command agent is the ramdisk program of an Ingot node: it reads its
// settings from the kernel command line, then looks its node up on the
// coordinator and runs the commands it is given (agent/runner) until it is
// told to reboot or gets SIGTERM. It will be the init of a u-root
// initramfs; it holds wiring only.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ingot/ingot/agent/cmdline"
	"github.com/ingot/ingot/agent/runner"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ingot-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := cmdline.Read("/proc/cmdline")
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bad kernel command line: %w", err)
	}
	log := slog.New(slog.NewTextHandler(console(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	log.Info("ingot agent starting", "version", version, "coordinator", cfg.Coordinator,
		"boot_mac", cfg.BootMAC, "node", cfg.Node, "insecure", cfg.Insecure)
	if cfg.Insecure {
		log.Warn("ingot.insecure is set: talking to the coordinator in plain text")
	}
	r, err := runner.New(runner.Config{
		Coordinator:   cfg.Coordinator,
		CAFingerprint: cfg.CAFingerprint,
		Insecure:      cfg.Insecure,
		Version:       version,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return r.Run(ctx)
}

// console is where the log goes: /dev/console, which the operator sees on
// the serial console or BMC, or stderr where there is none (a dev run).
func console() io.Writer {
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|syscall.O_NOCTTY, 0); err == nil {
		return f
	}
	return os.Stderr
}
