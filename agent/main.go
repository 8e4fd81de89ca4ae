// Command agent is the ramdisk program of an Ingot node: it reads its
// settings from the kernel command line, then looks its node up on the
// coordinator and runs the commands it is given (agent/runner) until it is
// told to reboot or gets SIGTERM. It holds wiring only.
//
// In the ramdisk it is /init, PID 1 (initramfs/README.md says why not
// u-root's init): it then mounts what an init mounts, loads its kernel
// modules (agent/kmod), brings every NIC up with DHCP (agent/netup), and
// never exits, since the kernel panics when init does: whatever fails is
// retried. Started by u-root's init as uinit instead, -early-boot does
// the same setup (mounts already there are left alone) and the agent
// exits on failure, which hands the console to u-root's shell.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ingot/ingot/agent/cmdline"
	"github.com/ingot/ingot/agent/inventory"
	"github.com/ingot/ingot/agent/kmod"
	"github.com/ingot/ingot/agent/netup"
	"github.com/ingot/ingot/agent/runner"
	"github.com/ingot/ingot/pkg/flagenv"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// retryEvery is the pause before PID 1 tries a failed step again.
const retryEvery = 10 * time.Second

type options struct {
	earlyBoot   bool
	dhcpTimeout time.Duration
}

func main() {
	pid1 := os.Getpid() == 1
	o, flagErr := parseFlags(pid1)
	if flagErr != nil && !pid1 {
		if errors.Is(flagErr, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ingot-agent:", flagErr)
		os.Exit(2)
	}
	var mountErr error
	if o.earlyBoot {
		mountErr = mountFilesystems() // /proc/cmdline and /dev/console need them
	}
	tuneForEmulation()
	cons := console()
	log := slog.New(slog.NewTextHandler(cons, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if flagErr != nil {
		// The kernel hands init the command line words it does not know:
		// none may stop the agent.
		log.Warn("ignoring arguments", "err", flagErr)
	}
	if mountErr != nil {
		log.Warn("mount filesystems", "err", mountErr)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := run(ctx, o, pid1, log)
	if !pid1 {
		if err != nil {
			log.Error("ingot agent stopped", "err", err)
			os.Exit(1)
		}
		return
	}
	// Init must not exit. Only a bad command line (which no retry fixes)
	// or a signal gets here: reboot, after a pause to read the error, so
	// that the node boots whatever the coordinator now says.
	if err != nil {
		log.Error("ingot agent cannot run; rebooting in 60s", "err", err)
		time.Sleep(time.Minute)
	} else {
		log.Info("ingot agent stopped by a signal; rebooting")
	}
	drain(cons)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	for { // the reboot fails only without CAP_SYS_BOOT; init must stay
		time.Sleep(time.Hour)
	}
}

// tuneForEmulation starts the agent again with GODEBUG=cpu.avx2=off in
// an emulated CPU (QEMU's TCG), where Go's AVX2 hash code is the slow
// code: sha512's generic code runs ~2.5x faster there (e2e/guesthash),
// and the agent then verifies images with sha512. Go picks its code paths
// when a process starts, hence the exec; PID 1 stays PID 1.
func tuneForEmulation() {
	if os.Getenv("GODEBUG") != "" {
		return
	}
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || !bytes.Contains(cpuinfo, []byte(inventory.EmulatedModel)) {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	// Returns only if the exec failed: then run as we are.
	_ = syscall.Exec(exe, os.Args, append(os.Environ(), "GODEBUG=cpu.avx2=off"))
}

func parseFlags(pid1 bool) (options, error) {
	var o options
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	if pid1 {
		fs.SetOutput(io.Discard)
	}
	flagenv.Usage(fs, "INGOT_AGENT")
	fs.BoolVar(&o.earlyBoot, "early-boot", pid1, "mount /proc, /sys, /dev, /tmp and /run if needed, load kernel modules and bring NICs up with DHCP before running (default when PID 1; set it when started as u-root's uinit)")
	fs.DurationVar(&o.dhcpTimeout, "dhcp-timeout", netup.DefaultTimeout, "time to get a DHCP lease on some NIC")
	err := fs.Parse(os.Args[1:])
	if err == nil {
		err = flagenv.Apply(fs, "INGOT_AGENT")
	}
	return o, err
}

// run is the agent: setup as asked, then the runner. As PID 1 (retry) it
// returns only for a bad command line or when ctx ends.
func run(ctx context.Context, o options, retry bool, log *slog.Logger) error {
	cfg, err := cmdline.Read("/proc/cmdline")
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bad kernel command line: %w", err)
	}
	log.Info("ingot agent starting", "version", version, "coordinator", cfg.Coordinator,
		"boot_mac", cfg.BootMAC, "node", cfg.Node, "insecure", cfg.Insecure, "pid", os.Getpid())
	if cfg.Insecure {
		log.Warn("ingot.insecure is set: talking to the coordinator in plain text")
	}

	if o.earlyBoot {
		if _, err := (&kmod.Loader{Logger: log}).Load(ctx, kmod.Agent...); err != nil {
			// Whatever did load may be enough: the network step says.
			log.Warn("kernel modules", "err", err)
		}
		for {
			_, err := netup.Up(ctx, netup.Config{BootMAC: cfg.BootMAC, Timeout: o.dhcpTimeout, ResolvConf: "/etc/resolv.conf", Logger: log})
			if err == nil {
				break
			}
			if !retry || ctx.Err() != nil {
				return fmt.Errorf("network: %w", err)
			}
			log.Error("network", "err", err, "retry_in", retryEvery)
			sleep(ctx, retryEvery)
		}
	}

	for {
		r, err := runner.New(runner.Config{
			Coordinator:   cfg.Coordinator,
			CAFingerprint: cfg.CAFingerprint,
			Insecure:      cfg.Insecure,
			Version:       version,
			Logger:        log,
		})
		if err != nil {
			return err // a malformed CA pin: the command line again
		}
		err = r.Run(ctx)
		if err == nil || !retry || ctx.Err() != nil {
			return err
		}
		// Another agent holds the node, or the coordinator is unreachable
		// for good: as a service manager would, start over.
		log.Error("ingot agent stopped; starting over", "err", err, "retry_in", retryEvery)
		sleep(ctx, retryEvery)
	}
}

// mountFilesystems mounts what the agent reads (/proc, /sys, /dev) and
// the scratch space it may write to, as an init does; anything already
// mounted there (by u-root's init) is left as it is.
func mountFilesystems() error {
	const nodev = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	var errs []error
	for _, m := range []struct {
		fstype, target string
		flags          uintptr
		data           string
	}{
		{"proc", "/proc", nodev, ""},
		{"sysfs", "/sys", nodev, ""},
		{"devtmpfs", "/dev", unix.MS_NOSUID, "mode=0755"},
		{"tmpfs", "/tmp", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"tmpfs", "/run", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if mounted(m.target) {
			continue
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	return errors.Join(errs...)
}

// mounted reports whether dir is a mount point: on another device than
// its parent. It needs no /proc, which may be the one to mount.
func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(dir+"/..", &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// console is where the log goes: /dev/console, which the operator sees on
// the serial console or BMC, or stderr where there is none (a dev run).
// Under u-root's init stdout is a pipe that init copies, which loses the
// last lines at power off.
func console() io.Writer {
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|syscall.O_NOCTTY, 0); err == nil {
		return f
	}
	return os.Stderr
}

// drain waits for the console to send what it holds, so that the last
// lines are not lost to the reboot.
func drain(w io.Writer) {
	if f, ok := w.(*os.File); ok {
		unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
