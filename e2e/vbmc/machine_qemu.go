package vbmc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// QEMUConfig configures a QEMUMachine.
type QEMUConfig struct {
	// Binary is the emulator (default "qemu-system-x86_64", found in PATH).
	Binary string
	// Args are appended to the machine's own arguments (accelerator, CPU,
	// -nographic, QMP socket, boot order): memory, NIC, disk, serial and
	// whatever else the node needs, e.g. {"-m", "512", "-netdev", ...}.
	Args []string
	// Dir holds the QMP socket and, unless Console is set, console.log.
	// Empty: a new temporary directory, removed by Close. Keep its path
	// short: a unix socket path has at most 107 bytes.
	Dir string
	// Accel is the -accel value (default "tcg"; KVM hangs on some hosts).
	Accel string
	// Console receives QEMU's standard output and error, which under
	// -nographic carry the serial console. Nil: Dir/console.log, appended
	// across boots (match only what appears after your action).
	Console io.Writer
	// StartTimeout bounds how long power on waits for QEMU's QMP socket
	// (default 10s); StopTimeout how long power off waits for QEMU to quit
	// before killing it (default 10s).
	StartTimeout time.Duration
	StopTimeout  time.Duration
	// Logger receives QEMU start/exit events. Nil discards.
	Logger *slog.Logger
}

// QEMUMachine is a Machine that owns one QEMU process at a time: power on
// starts QEMU with `-boot order=` for the boot device, power off makes it
// quit, reset and cycle restart it (so a changed boot device takes
// effect), and soft off presses the ACPI power button through QMP. A
// guest that powers itself off makes QEMU exit, which reads as power off.
//
// Boot devices map to boot orders: PXE "nc" (network, then disk), disk
// "c", CD-ROM "d", floppy "a", no override "cn".
type QEMUMachine struct {
	cfg     QEMUConfig
	dir     string
	ownDir  bool
	log     *slog.Logger
	console io.Writer
	logFile *os.File

	mu       sync.Mutex // serializes power operations
	boot     bootState
	proc     *qemuProc
	boots    int
	lastBoot Boot
	closed   bool
}

type qemuProc struct {
	cmd    *exec.Cmd
	qmp    *qmpClient
	exited chan struct{}
	err    error // Wait's result, set before exited is closed
	stderr *tailBuffer
}

// NewQEMUMachine prepares a machine that is off. It checks that the
// emulator exists but starts nothing.
func NewQEMUMachine(cfg QEMUConfig) (*QEMUMachine, error) {
	if cfg.Binary == "" {
		cfg.Binary = "qemu-system-x86_64"
	}
	if cfg.Accel == "" {
		cfg.Accel = "tcg"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("vbmc: qemu: %w", err)
	}
	cfg.Binary = bin
	m := &QEMUMachine{cfg: cfg, dir: cfg.Dir, log: cfg.Logger, console: cfg.Console}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.dir == "" {
		if m.dir, err = os.MkdirTemp("", "vbmc-qemu-"); err != nil {
			return nil, fmt.Errorf("vbmc: qemu: %w", err)
		}
		m.ownDir = true
	} else if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("vbmc: qemu: %w", err)
	}
	if m.console == nil {
		m.logFile, err = os.OpenFile(filepath.Join(m.dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			m.removeDir()
			return nil, fmt.Errorf("vbmc: qemu: %w", err)
		}
		m.console = m.logFile
	}
	return m, nil
}

// Dir returns the directory holding the QMP socket and console log.
func (m *QEMUMachine) Dir() string { return m.dir }

func (m *QEMUMachine) qmpPath() string { return filepath.Join(m.dir, "qmp.sock") }

// bootOrder is the -boot order= value for d.
func bootOrder(d BootDevice) string {
	switch d {
	case BootPXE:
		return "nc"
	case BootDisk, BootDiskSafe, BootRemoteDisk:
		return "c"
	case BootCDROM, BootRemoteCDROM, BootRemoteMedia:
		return "d"
	case BootFloppy, BootRemoteFloppy:
		return "a"
	}
	return "cn"
}

// args is QEMU's command line for a boot from b.
func (m *QEMUMachine) args(b Boot) []string {
	args := []string{
		"-accel", m.cfg.Accel,
		// Without -cpu max a Linux guest's random generator never
		// initializes under TCG and crypto/rand blocks.
		"-cpu", "max",
		"-nographic",
		"-qmp", "unix:" + m.qmpPath() + ",server=on,wait=off",
		"-boot", "order=" + bootOrder(b.Device),
	}
	return append(args, m.cfg.Args...)
}

// running reports whether QEMU runs, reaping a process that exited.
func (m *QEMUMachine) runningLocked() bool {
	p := m.proc
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		p.qmp.Close()
		m.proc = nil
		return false
	default:
		return true
	}
}

func (m *QEMUMachine) startLocked(ctx context.Context) error {
	if m.closed {
		return errors.New("vbmc: qemu machine closed")
	}
	boot := m.boot.next()
	os.Remove(m.qmpPath())
	cmd := exec.Command(m.cfg.Binary, m.args(boot)...)
	cmd.Dir = m.dir
	p := &qemuProc{cmd: cmd, exited: make(chan struct{}), stderr: &tailBuffer{max: 4096}}
	cmd.Stdout = m.console
	cmd.Stderr = io.MultiWriter(m.console, p.stderr)
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vbmc: start qemu: %w", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
		m.log.Info("qemu exited", "pid", cmd.Process.Pid, "status", cmd.ProcessState.String())
	}()
	sctx, cancel := context.WithTimeout(ctx, m.cfg.StartTimeout)
	defer cancel()
	qmp, err := dialQMP(sctx, m.qmpPath(), p.exited)
	if err != nil {
		cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("vbmc: start qemu: %w; stderr: %s", err, p.stderr.String())
	}
	p.qmp = qmp
	m.proc = p
	m.boot.consume()
	m.boots++
	m.lastBoot = boot
	m.log.Info("qemu started", "pid", cmd.Process.Pid, "boot", boot.Device.String(), "order", bootOrder(boot.Device))
	return nil
}

// stopLocked makes QEMU quit through QMP, killing it if it does not exit
// within StopTimeout or ctx.
func (m *QEMUMachine) stopLocked(ctx context.Context) error {
	if !m.runningLocked() {
		return nil
	}
	p := m.proc
	m.proc = nil
	defer p.qmp.Close()
	// QEMU may close the socket before answering quit; its exit is what
	// counts, so the error is only logged.
	if _, err := p.qmp.Execute(ctx, "quit", nil); err != nil {
		m.log.Debug("qmp quit", "err", err)
	}
	t := time.NewTimer(m.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	m.log.Warn("qemu did not quit; killing it", "pid", p.cmd.Process.Pid)
	p.cmd.Process.Kill()
	<-p.exited
	return nil
}

// PowerState implements Machine: on while the QEMU process runs.
func (m *QEMUMachine) PowerState(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runningLocked(), nil
}

// PowerOn implements Machine.
func (m *QEMUMachine) PowerOn(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runningLocked() {
		return nil
	}
	return m.startLocked(ctx)
}

// PowerOff implements Machine.
func (m *QEMUMachine) PowerOff(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopLocked(ctx)
}

// Reset implements Machine by restarting QEMU, so the boot device now set
// is the one used.
func (m *QEMUMachine) Reset(ctx context.Context) error {
	return m.restart(ctx)
}

// Cycle implements Machine; like Reset, it restarts QEMU.
func (m *QEMUMachine) Cycle(ctx context.Context) error {
	return m.restart(ctx)
}

func (m *QEMUMachine) restart(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		return ErrPoweredOff
	}
	if err := m.stopLocked(ctx); err != nil {
		return err
	}
	return m.startLocked(ctx)
}

// SoftOff implements Machine with QMP system_powerdown (an ACPI power
// button press): QEMU exits only if the guest acts on it.
func (m *QEMUMachine) SoftOff(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		return nil
	}
	_, err := m.proc.qmp.Execute(ctx, "system_powerdown", nil)
	return err
}

// SetBoot implements Machine.
func (m *QEMUMachine) SetBoot(b Boot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.boot.set(b)
}

// Boot implements Machine.
func (m *QEMUMachine) Boot() Boot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.boot.next()
}

// Boots returns how many times QEMU was started and the boot setting the
// last start used.
func (m *QEMUMachine) Boots() (n int, last Boot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.boots, m.lastBoot
}

// PID returns the running QEMU's process ID, or 0 when powered off.
func (m *QEMUMachine) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// Status returns QMP query-status's run state ("running", "paused",
// "shutdown", ...), or "off" when QEMU does not run.
func (m *QEMUMachine) Status(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		return "off", nil
	}
	return m.proc.qmp.Status(ctx)
}

// Close powers the machine off and removes the directory it created.
func (m *QEMUMachine) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.StopTimeout+time.Second)
	defer cancel()
	err := m.stopLocked(ctx)
	if m.logFile != nil {
		m.logFile.Close()
	}
	m.removeDir()
	return err
}

func (m *QEMUMachine) removeDir() {
	if m.ownDir {
		os.RemoveAll(m.dir)
	}
}

// tailBuffer keeps the last max bytes written to it: QEMU's stderr, for
// the error when it fails to start.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
