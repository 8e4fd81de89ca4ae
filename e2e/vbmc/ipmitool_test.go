package vbmc

import (
	"strings"
	"testing"
	"time"
)

// TestIPMItool drives a fake machine through its whole power and boot
// device repertoire with the real ipmitool, once per cipher suite choice
// (ipmitool's own pick, which is 17, and each forced), checking the
// machine after every command.
func TestIPMItool(t *testing.T) {
	requireTool(t, "ipmitool")
	type step struct {
		args  string
		ok    bool     // ipmitool exits zero
		want  []string // substrings of its output
		check func(t *testing.T, m *FakeMachine)
	}
	power := func(want bool) func(*testing.T, *FakeMachine) {
		return func(t *testing.T, m *FakeMachine) {
			t.Helper()
			if on, _ := m.PowerState(t.Context()); on != want {
				t.Errorf("machine power on = %v, want %v", on, want)
			}
		}
	}
	boot := func(want Boot) func(*testing.T, *FakeMachine) {
		return func(t *testing.T, m *FakeMachine) {
			t.Helper()
			if got := m.Boot(); got != want {
				t.Errorf("machine boot setting = %+v, want %+v", got, want)
			}
		}
	}
	lastBoot := func(n int, want Boot) func(*testing.T, *FakeMachine) {
		return func(t *testing.T, m *FakeMachine) {
			t.Helper()
			if gotN, got := m.Boots(); gotN != n || got != want {
				t.Errorf("boots = %d, last %+v; want %d, last %+v", gotN, got, n, want)
			}
		}
	}
	steps := []step{
		{args: "chassis power status", ok: true, want: []string{"Chassis Power is off"}, check: power(false)},
		{args: "chassis power on", ok: true, want: []string{"Up/On"}, check: power(true)},
		{args: "chassis power status", ok: true, want: []string{"Chassis Power is on"}},
		{args: "chassis status", ok: true, want: []string{"System Power         : on", "Last Power Event     : command"}},
		{args: "mc info", ok: true, want: []string{"IPMI Version              : 2.0", "Chassis Device"}},
		{args: "chassis bootdev pxe", ok: true, want: []string{"Set Boot Device to pxe"}, check: boot(Boot{Device: BootPXE})},
		{args: "chassis bootparam get 5", ok: true, want: []string{"Boot Flag Valid", "Force PXE", "Options apply to only next boot", "BIOS PC Compatible (legacy) boot"}},
		// The one-time PXE setting is used by this boot, then gone.
		{args: "chassis power cycle", ok: true, want: []string{"Cycle"}, check: lastBoot(2, Boot{Device: BootPXE})},
		{args: "chassis bootparam get 5", ok: true, want: []string{"Boot Flag Invalid", "No override"}, check: boot(Boot{})},
		{args: "chassis bootdev disk options=persistent,efiboot", ok: true, want: []string{"Set Boot Device to disk"},
			check: boot(Boot{Device: BootDisk, Persistent: true, EFI: true})},
		{args: "chassis bootparam get 5", ok: true, want: []string{"Force Boot from default Hard-Drive", "Options apply to all future boots", "BIOS EFI boot"}},
		{args: "chassis power reset", ok: true, want: []string{"Reset"}, check: lastBoot(3, Boot{Device: BootDisk, Persistent: true, EFI: true})},
		{args: "chassis bootparam get 5", ok: true, want: []string{"Force Boot from default Hard-Drive", "Options apply to all future boots"},
			check: boot(Boot{Device: BootDisk, Persistent: true, EFI: true})},
		{args: "chassis power soft", ok: true, want: []string{"Soft"}, check: power(false)},
		// Real BMCs refuse to cycle or reset a machine that is off.
		{args: "chassis power cycle", ok: false, want: []string{"Command not supported in present state"}, check: power(false)},
		{args: "chassis power reset", ok: false, want: []string{"Command not supported in present state"}, check: lastBoot(3, Boot{Device: BootDisk, Persistent: true, EFI: true})},
		{args: "chassis power off", ok: true, want: []string{"Down/Off"}, check: power(false)},
		{args: "chassis power on", ok: true, check: lastBoot(4, Boot{Device: BootDisk, Persistent: true, EFI: true})},
		{args: "chassis power off", ok: true, check: power(false)},
		{args: "raw 0x06 0xff", ok: false, want: []string{"rsp=0xc1", "Invalid command"}},
		{args: "raw 0x30 0x01", ok: false, want: []string{"rsp=0xc1"}},
		{args: "session info active", ok: true, want: []string{"privilege level               : ADMINISTRATOR", "IPMIv2/RMCP+"}},
		{args: "mc guid", ok: true, want: []string{"GUID Encoding : IPMI"}},
	}
	for _, suite := range []string{"", "3", "17"} {
		name := "suite-" + suite
		if suite == "" {
			name = "suite-auto"
		}
		t.Run(name, func(t *testing.T) {
			m := NewFakeMachine()
			b := startBMC(t, m)
			for _, st := range steps {
				out, ok := ipmitool(t, b, testUser, testPassword, suite, strings.Fields(st.args)...)
				if ok != st.ok {
					t.Fatalf("ipmitool %s: exit ok = %v, want %v; output:\n%s", st.args, ok, st.ok, out)
				}
				for _, w := range st.want {
					if !strings.Contains(out, w) {
						t.Errorf("ipmitool %s: output lacks %q:\n%s", st.args, w, out)
					}
				}
				if st.check != nil {
					st.check(t, m)
				}
			}
			if s := b.Stats(); s.Sessions != 0 || s.MaxSessions != 1 || s.AuthFailures != 0 {
				t.Errorf("stats after serial ipmitool runs: %+v; want no session left, at most one at a time", s)
			}
		})
	}
}

// TestIPMItoolRefused checks that wrong credentials fail at once, as with
// a real BMC, and that a session stays at the level it asked for.
func TestIPMItoolRefused(t *testing.T) {
	requireTool(t, "ipmitool")
	m := NewFakeMachine()
	b := startBMC(t, m)
	for _, tc := range []struct {
		name, user, password, suite string
	}{
		{"wrong password", testUser, "wrong", ""},
		{"wrong password suite 3", testUser, "wrong", "3"},
		{"unknown user", "nobody", testPassword, "17"},
		{"other user's password", "operator", testPassword, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, ok := ipmitool(t, b, tc.user, tc.password, tc.suite, "chassis", "power", "on")
			if ok {
				t.Fatalf("ipmitool succeeded:\n%s", out)
			}
			if !strings.Contains(out, "Unable to establish IPMI v2 / RMCP+ session") {
				t.Errorf("output:\n%s", out)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("refusal took %v; a real BMC refuses at once", d)
			}
		})
	}
	if ops := m.Ops(); len(ops) != 0 {
		t.Errorf("refused clients reached the machine: %v", ops)
	}
	if s := b.Stats(); s.AuthFailures < 1 || s.SessionsOpened != 0 {
		t.Errorf("stats %+v: want the unknown user counted and no session opened", s)
	}

	// A session at User privilege may look but not touch.
	out, ok := ipmitool(t, b, "operator", "op-secret", "", "-L", "USER", "chassis", "power", "on")
	if ok || !strings.Contains(out, "Insufficient privilege level") {
		t.Errorf("power on at User privilege: ok=%v\n%s", ok, out)
	}
	if out, ok := ipmitool(t, b, "operator", "op-secret", "", "-L", "USER", "chassis", "power", "status"); !ok {
		t.Errorf("power status at User privilege failed:\n%s", out)
	}
	if out, ok := ipmitool(t, b, "operator", "op-secret", "", "-L", "OPERATOR", "chassis", "power", "on"); !ok {
		t.Errorf("power on at Operator privilege failed:\n%s", out)
	}
}
