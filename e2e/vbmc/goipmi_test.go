package vbmc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

func goIPMIClient(t testing.TB, b *BMC, user, password string, suites ...types.CipherSuiteID) *client.Client {
	return goIPMIClientTimeout(t, b, user, password, time.Second, suites...)
}

// goIPMIClientTimeout returns a client that tries twice, waiting timeout
// for each answer.
func goIPMIClientTimeout(t testing.TB, b *BMC, user, password string, timeout time.Duration, suites ...types.CipherSuiteID) *client.Client {
	t.Helper()
	c, err := client.NewClient("127.0.0.1", int(b.Addr().Port()), user, password)
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithInterface(client.InterfaceLanplus).WithTimeout(timeout).WithRetry(1)
	if len(suites) > 0 {
		c = c.WithCipherSuiteID(suites...)
	}
	return c
}

// TestGoIPMI drives the BMC with go-ipmi, the client library a Go driver
// would use, with each suite forced and with the suite it picks itself.
func TestGoIPMI(t *testing.T) {
	for _, tc := range []struct {
		name   string
		suites []types.CipherSuiteID
	}{
		{"suite-3", []types.CipherSuiteID{types.CipherSuiteID3}},
		{"suite-17", []types.CipherSuiteID{types.CipherSuiteID17}},
		{"suite-auto", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			m := NewFakeMachine()
			b := startBMC(t, m)
			c := goIPMIClient(t, b, testUser, testPassword, tc.suites...)
			if err := c.Connect(ctx); err != nil {
				t.Fatalf("connect: %v", err)
			}

			st, err := c.GetChassisStatus(ctx)
			if err != nil || st.PowerIsOn {
				t.Fatalf("chassis status: %+v, %v; want off", st, err)
			}
			if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerCycle); err == nil || !strings.Contains(err.Error(), "0xd5") {
				t.Errorf("power cycle while off: err = %v, want completion code 0xd5", err)
			}
			if err := c.SetBootDevice(ctx, types.BootDeviceSelectorForcePXE, types.BIOSBootTypeEFI, false); err != nil {
				t.Fatalf("set boot device: %v", err)
			}
			if got, want := m.Boot(), (Boot{Device: BootPXE, EFI: true}); got != want {
				t.Errorf("machine boot = %+v, want %+v", got, want)
			}
			flags := &types.BootOptionParam_BootFlags{}
			if err := c.GetSystemBootOptionsParamFor(ctx, flags); err != nil {
				t.Fatalf("get boot flags: %v", err)
			}
			if !flags.BootFlagsValid || flags.Persist || flags.BIOSBootType != types.BIOSBootTypeEFI || flags.BootDeviceSelector != types.BootDeviceSelectorForcePXE {
				t.Errorf("boot flags read back: %+v", flags)
			}
			if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerUp); err != nil {
				t.Fatalf("power up: %v", err)
			}
			if n, last := m.Boots(); n != 1 || last.Device != BootPXE {
				t.Errorf("boots = %d, last %+v; want one PXE boot", n, last)
			}
			if st, err := c.GetChassisStatus(ctx); err != nil || !st.PowerIsOn {
				t.Errorf("chassis status after power up: %+v, %v", st, err)
			}

			// The SetBootParamBootFlags path writes set-in-progress around the flags.
			if err := c.SetBootParamBootFlags(ctx, &types.BootOptionParam_BootFlags{
				BootFlagsValid: true, Persist: true, BootDeviceSelector: types.BootDeviceSelectorForceHardDrive,
			}); err != nil {
				t.Fatalf("set boot flags: %v", err)
			}
			if got, want := m.Boot(), (Boot{Device: BootDisk, Persistent: true}); got != want {
				t.Errorf("machine boot = %+v, want %+v", got, want)
			}
			for _, op := range []chassis.ChassisControl{chassis.ChassisControlHardReset, chassis.ChassisControlPowerCycle} {
				if _, err := c.ChassisControl(ctx, op); err != nil {
					t.Errorf("%v: %v", op, err)
				}
			}
			if n, last := m.Boots(); n != 3 || last != (Boot{Device: BootDisk, Persistent: true}) {
				t.Errorf("boots = %d, last %+v; want 3, from disk", n, last)
			}
			if _, err := c.ChassisControl(ctx, chassis.ChassisControlSoftShutdown); err != nil {
				t.Errorf("soft shutdown: %v", err)
			}
			if on, _ := m.PowerState(ctx); on {
				t.Error("machine still on after soft shutdown")
			}

			if id, err := c.GetDeviceID(ctx); err != nil || id.MajorIPMIVersion != 2 {
				t.Errorf("device ID: %+v, %v", id, err)
			}
			// go-ipmi's keepalive.
			if si, err := c.GetCurrentSessionInfo(ctx); err != nil || si.OperatingPrivilegeLevel != types.PrivilegeLevelAdministrator {
				t.Errorf("session info: %+v, %v", si, err)
			}
			if s := b.Stats(); s.Sessions != 1 {
				t.Errorf("sessions while connected = %d, want 1", s.Sessions)
			}
			if err := c.Close(ctx); err != nil {
				t.Errorf("close: %v", err)
			}
			if s := b.Stats(); s.Sessions != 0 || s.SessionsOpened != 1 {
				t.Errorf("stats after close: %+v", s)
			}
		})
	}
}

// TestGoIPMIRefused checks go-ipmi fails fast on bad credentials.
func TestGoIPMIRefused(t *testing.T) {
	b := startBMC(t, NewFakeMachine())
	for _, tc := range []struct{ name, user, password string }{
		{"wrong password", testUser, "nope"},
		{"unknown user", "mallory", testPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goIPMIClient(t, b, tc.user, tc.password, types.CipherSuiteID17)
			start := time.Now()
			err := c.Connect(t.Context())
			if err == nil {
				c.Close(t.Context())
				t.Fatal("connected with bad credentials")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("refusal took %v", d)
			}
			t.Logf("go-ipmi says: %q", err)
		})
	}
}

// TestSessionExpiry checks an idle session is forgotten: its next command
// gets no answer, and a new session works.
func TestSessionExpiry(t *testing.T) {
	m := NewFakeMachine()
	b, err := New(Config{Users: map[string]string{testUser: testPassword}, Machine: m, SessionTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t.Context())
	defer b.Close()
	c := goIPMIClientTimeout(t, b, testUser, testPassword, 200*time.Millisecond, types.CipherSuiteID3)
	if err := c.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := c.GetChassisStatus(t.Context()); err == nil {
		t.Error("an expired session still answered")
	}
	c2 := goIPMIClient(t, b, testUser, testPassword, types.CipherSuiteID3)
	if err := c2.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.GetChassisStatus(t.Context()); err != nil {
		t.Errorf("new session: %v", err)
	}
	c2.Close(t.Context())
}

// TestSetDown checks an outage: no answers while down, sessions gone
// after it.
func TestSetDown(t *testing.T) {
	b := startBMC(t, NewFakeMachine())
	c := goIPMIClientTimeout(t, b, testUser, testPassword, 200*time.Millisecond, types.CipherSuiteID17)
	if err := c.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.SetDown(true)
	if _, err := c.GetChassisStatus(t.Context()); err == nil {
		t.Error("a down BMC answered")
	}
	c2 := goIPMIClientTimeout(t, b, testUser, testPassword, 200*time.Millisecond, types.CipherSuiteID17)
	if err := c2.Connect(t.Context()); err == nil {
		t.Error("connected to a down BMC")
	}
	b.SetDown(false)
	if _, err := c.GetChassisStatus(t.Context()); err == nil {
		t.Error("a session from before the outage still works")
	}
	c3 := goIPMIClient(t, b, testUser, testPassword, types.CipherSuiteID17)
	if err := c3.Connect(t.Context()); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if _, err := c3.GetChassisStatus(t.Context()); err != nil {
		t.Error(err)
	}
	c3.Close(t.Context())
}

// TestRMCPPing checks the ASF presence ping with go-ipmi's client.
func TestRMCPPing(t *testing.T) {
	b := startBMC(t, NewFakeMachine())
	c := goIPMIClient(t, b, testUser, testPassword)
	pong, err := c.RmcpPing(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !pong.IPMISupported {
		t.Errorf("pong: %+v", pong)
	}
}
