package vbmc

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// qemuCmdline returns the command line of process pid.
func qemuCmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatalf("QEMU process %d: %v", pid, err)
	}
	return strings.ReplaceAll(string(b), "\x00", " ")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQEMU drives a real QEMU (TCG, no disk, no NIC: it sits in SeaBIOS)
// with ipmitool.
func TestQEMU(t *testing.T) {
	requireTool(t, "qemu-system-x86_64")
	requireTool(t, "ipmitool")
	m, err := NewQEMUMachine(QEMUConfig{
		Args:        []string{"-m", "128", "-nodefaults"},
		Dir:         t.TempDir(),
		Logger:      testLogger(t),
		StopTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	b := startBMC(t, m)
	run := func(args string, want string) {
		t.Helper()
		out, ok := ipmitool(t, b, testUser, testPassword, "", strings.Fields(args)...)
		if !ok || !strings.Contains(out, want) {
			t.Fatalf("ipmitool %s: ok=%v, want %q in:\n%s", args, ok, want, out)
		}
	}

	run("chassis power status", "Chassis Power is off")
	run("chassis bootdev pxe", "Set Boot Device to pxe")
	run("chassis power on", "Up/On")
	pid := m.PID()
	if pid == 0 {
		t.Fatal("no QEMU process after power on")
	}
	if st, err := m.Status(t.Context()); err != nil || st != "running" {
		t.Errorf("query-status = %q, %v; want running", st, err)
	}
	if cl := qemuCmdline(t, pid); !strings.Contains(cl, "-boot order=nc") || !strings.Contains(cl, "-accel tcg") || !strings.Contains(cl, "-m 128") {
		t.Errorf("QEMU command line: %s", cl)
	}
	run("chassis power status", "Chassis Power is on")

	// The one-time PXE boot is spent: a reset restarts QEMU with the
	// default order.
	run("chassis power reset", "Reset")
	newPID := m.PID()
	if newPID == 0 || newPID == pid {
		t.Fatalf("reset: QEMU pid %d -> %d, want a new process", pid, newPID)
	}
	if cl := qemuCmdline(t, newPID); !strings.Contains(cl, "-boot order=cn") {
		t.Errorf("after reset, QEMU command line: %s", cl)
	}
	run("chassis bootdev disk options=persistent", "Set Boot Device to disk")
	run("chassis power cycle", "Cycle")
	if cl := qemuCmdline(t, m.PID()); !strings.Contains(cl, "-boot order=c ") {
		t.Errorf("after cycle with disk, QEMU command line: %s", cl)
	}
	// SeaBIOS ignores the ACPI button: QEMU stays up.
	run("chassis power soft", "Soft")
	if st, err := m.Status(t.Context()); err != nil || st != "running" {
		t.Errorf("after soft off, query-status = %q, %v", st, err)
	}

	pid = m.PID()
	run("chassis power off", "Down/Off")
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("QEMU %d still runs after power off", pid)
	}
	run("chassis power status", "Chassis Power is off")
	out, ok := ipmitool(t, b, testUser, testPassword, "", "chassis", "power", "reset")
	if ok || !strings.Contains(out, "not supported in present state") {
		t.Errorf("reset while off: ok=%v\n%s", ok, out)
	}

	// QEMU exiting on its own (a guest powering off) reads as power off.
	run("chassis power on", "Up/On")
	if err := syscall.Kill(m.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "QEMU to exit", func() bool { return m.PID() == 0 })
	run("chassis power status", "Chassis Power is off")
	if n, last := m.Boots(); n != 4 || last != (Boot{Device: BootDisk, Persistent: true}) {
		t.Errorf("boots = %d, last %+v", n, last)
	}
}

func TestQEMUStartFailure(t *testing.T) {
	requireTool(t, "qemu-system-x86_64")
	m, err := NewQEMUMachine(QEMUConfig{Args: []string{"-no-such-option"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.PowerOn(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("power on with a bad argument: %v; want QEMU's complaint", err)
	}
	if on, _ := m.PowerState(t.Context()); on {
		t.Error("powered on after a failed start")
	}
	if _, err := NewQEMUMachine(QEMUConfig{Binary: "no-such-qemu"}); err == nil {
		t.Error("accepted a missing emulator")
	}
}
