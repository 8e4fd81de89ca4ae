package ipmi_test

// Integration tests: the driver against e2e/vbmc, a virtual BMC speaking
// RMCP+ over UDP on 127.0.0.1, so every byte goes through go-ipmi and a
// socket as it would to a real BMC.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/driver/ipmi"
	"github.com/ingot/ingot/e2e/vbmc"
	"github.com/ingot/ingot/pkg/api"
)

const (
	vbmcUser     = "admin"
	vbmcPassword = "s3cret-pw"
)

// startVBMC serves a virtual BMC driving m on 127.0.0.1.
func startVBMC(t *testing.T, m vbmc.Machine) *vbmc.BMC {
	t.Helper()
	b, err := vbmc.New(vbmc.Config{Users: map[string]string{vbmcUser: vbmcPassword}, Machine: m})
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t.Context())
	t.Cleanup(func() { b.Close() })
	return b
}

// rig is a driver (with quick timeouts) and its interfaces.
type rig struct {
	d     *ipmi.Driver
	power driver.Power
	mgmt  driver.Management
}

func newRig(t *testing.T, cfg ipmi.Config) rig {
	t.Helper()
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	cfg.RetryBackoff = 10 * time.Millisecond
	d := ipmi.NewDriver(cfg)
	t.Cleanup(func() { d.Close(context.Background()) })
	hw := d.Hardware()
	return rig{d, hw.Power[ipmi.PowerInterface], hw.Management[ipmi.ManagementInterface]}
}

func vbmcNode(addr string, port int, extra map[string]any) *api.Node {
	info := map[string]any{"ipmi_address": addr, "ipmi_port": float64(port), "ipmi_username": vbmcUser, "ipmi_password": vbmcPassword}
	for k, v := range extra {
		info[k] = v
	}
	return &api.Node{UUID: "0f3a6f1e-9b1c-4f43-8f0e-2b7c1d9e5a10", DriverInfo: info}
}

func nodeFor(b *vbmc.BMC, extra map[string]any) *api.Node {
	return vbmcNode(b.Addr().Addr().String(), int(b.Addr().Port()), extra)
}

// Every power verb, with each cipher suite and with the one go-ipmi
// negotiates, all on one session.
func TestVBMCPower(t *testing.T) {
	for _, suite := range []any{nil, 3.0, "17"} {
		t.Run(fmt.Sprintf("cipher-suite-%v", suite), func(t *testing.T) {
			ctx := t.Context()
			m := vbmc.NewFakeMachine()
			b := startVBMC(t, m)
			r := newRig(t, ipmi.Config{})
			n := nodeFor(b, map[string]any{"ipmi_cipher_suite": suite})

			state := func(want string) {
				t.Helper()
				got, err := r.power.PowerState(ctx, n)
				if err != nil || got != want {
					t.Fatalf("PowerState = %q, %v; want %q", got, err, want)
				}
			}
			set := func(target string) {
				t.Helper()
				if err := r.power.SetPowerState(ctx, n, target, 5*time.Second); err != nil {
					t.Fatalf("SetPowerState(%q): %v", target, err)
				}
			}
			state(api.PowerOff)
			set(api.PowerOn)
			state(api.PowerOn)
			set(api.Rebooting) // on: hard reset
			state(api.PowerOn)
			set(api.PowerOff)
			state(api.PowerOff)
			set(api.Rebooting) // off: power up, not the reset a BMC refuses
			state(api.PowerOn)
			set(api.SoftPowerOff)
			state(api.PowerOff)
			set(api.SoftRebooting) // off: power up
			set(api.SoftRebooting) // on: soft off, power up
			state(api.PowerOn)
			set(api.PowerOn) // already on: nothing sent

			want := map[string]int{"on": 4, "off": 1, "reset": 1, "soft": 2}
			if got := m.Ops(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("machine operations = %v, want %v", got, want)
			}
			if st := b.Stats(); st.SessionsOpened != 1 || st.MaxSessions != 1 || st.AuthFailures != 0 {
				t.Errorf("BMC stats %+v: want one session for everything", st)
			}
		})
	}
}

// A guest that ignores the ACPI power button.
type stubbornMachine struct{ *vbmc.FakeMachine }

func (stubbornMachine) SoftOff(context.Context) error { return nil }

func TestVBMCSoftPowerOffTimeout(t *testing.T) {
	m := stubbornMachine{vbmc.NewFakeMachine()}
	m.SetPower(true)
	b := startVBMC(t, m)
	r := newRig(t, ipmi.Config{})
	start := time.Now()
	err := r.power.SetPowerState(t.Context(), nodeFor(b, nil), api.SoftPowerOff, 500*time.Millisecond)
	var e *ipmi.Error
	if !errors.As(err, &e) || e.Kind != ipmi.Timeout || !strings.Contains(err.Error(), "soft power off timed out after 500ms: the BMC still reports power on") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v for a 500ms timeout", took)
	}
}

func TestVBMCBootDevice(t *testing.T) {
	ctx := t.Context()
	m := vbmc.NewFakeMachine()
	b := startVBMC(t, m)
	r := newRig(t, ipmi.Config{})
	n := nodeFor(b, nil)

	if got, err := r.mgmt.BootDevice(ctx, n); err != nil || got != (driver.BootDevice{}) {
		t.Errorf("fresh BMC: BootDevice = %+v, %v; want no override", got, err)
	}
	for _, tc := range []struct {
		dev  driver.BootDevice
		caps string
		want vbmc.Boot
	}{
		{driver.BootDevice{Device: "pxe"}, "", vbmc.Boot{Device: vbmc.BootPXE}},
		{driver.BootDevice{Device: "disk", Persistent: true}, "boot_mode:uefi", vbmc.Boot{Device: vbmc.BootDisk, Persistent: true, EFI: true}},
		{driver.BootDevice{Device: "cdrom"}, "boot_mode:bios", vbmc.Boot{Device: vbmc.BootCDROM}},
		{driver.BootDevice{Device: "bios"}, "", vbmc.Boot{Device: vbmc.BootBIOSSetup}},
		{driver.BootDevice{Device: "safe", Persistent: true}, "boot_mode:uefi", vbmc.Boot{Device: vbmc.BootDiskSafe, Persistent: true, EFI: true}},
		{driver.BootDevice{Device: "pxe"}, "boot_mode:uefi", vbmc.Boot{Device: vbmc.BootPXE, EFI: true}},
	} {
		n.Properties = map[string]any{"capabilities": tc.caps}
		if err := r.mgmt.SetBootDevice(ctx, n, tc.dev); err != nil {
			t.Fatalf("SetBootDevice(%+v): %v", tc.dev, err)
		}
		if got := m.Boot(); got != tc.want {
			t.Errorf("after %+v (%q): machine boots %+v, want %+v", tc.dev, tc.caps, got, tc.want)
		}
		if got, err := r.mgmt.BootDevice(ctx, n); err != nil || got != tc.dev {
			t.Errorf("BootDevice = %+v, %v; want %+v", got, err, tc.dev)
		}
	}
	// The one-time PXE boot is used by the next power on, then the
	// persistent safe-mode disk again.
	if err := r.power.SetPowerState(ctx, n, api.PowerOn, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, last := m.Boots(); last.Device != vbmc.BootPXE {
		t.Errorf("booted %+v, want PXE", last)
	}
	if got, err := r.mgmt.BootDevice(ctx, n); err != nil || got != (driver.BootDevice{Device: "safe", Persistent: true}) {
		t.Errorf("after the boot: BootDevice = %+v, %v", got, err)
	}
}

// A wrong password fails at once, clearly, without retries.
func TestVBMCWrongCredentials(t *testing.T) {
	b := startVBMC(t, vbmc.NewFakeMachine())
	r := newRig(t, ipmi.Config{CommandTimeout: 2 * time.Second})
	for _, tc := range []struct {
		name, user, password string
		within               time.Duration
	}{
		{"wrong password", vbmcUser, "wrong", time.Second},
		// Some BMCs do not answer a user they do not know: allow the
		// command timeout.
		{"unknown user", "nobody", vbmcPassword, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := nodeFor(b, map[string]any{"ipmi_username": tc.user, "ipmi_password": tc.password})
			start := time.Now()
			_, err := r.power.PowerState(t.Context(), n)
			took := time.Since(start)
			var e *ipmi.Error
			if !errors.As(err, &e) || e.Kind != ipmi.Auth {
				t.Fatalf("err = %v, want an Auth *Error", err)
			}
			want := fmt.Sprintf("IPMI power status of %s: wrong user name or password", b.Addr())
			if err.Error() != want {
				t.Errorf("message %q", err)
			}
			if took > tc.within {
				t.Errorf("took %v, want under %v", took, tc.within)
			}
			t.Logf("%v (%v)", err, took.Round(time.Millisecond))
		})
	}
	if st := b.Stats(); st.SessionsOpened != 0 {
		t.Errorf("sessions opened with bad credentials: %+v", st)
	}
}

// Nothing listening: an "unreachable" error within the command timeout,
// retries included, never a hang.
func TestVBMCUnreachable(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()

	r := newRig(t, ipmi.Config{CommandTimeout: time.Second})
	start := time.Now()
	_, err = r.power.PowerState(t.Context(), vbmcNode("127.0.0.1", port, nil))
	took := time.Since(start)
	var e *ipmi.Error
	if !errors.As(err, &e) || e.Kind != ipmi.Unreachable || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v, want Unreachable", err)
	}
	if took > time.Second {
		t.Errorf("took %v, want under the 1s command timeout", took)
	}
	t.Logf("%v (%v)", err, took.Round(time.Millisecond))
}

// A BMC that stops answering for a while (and forgets its sessions, as a
// rebooting BMC does): commands during the outage time out; the first
// after it works, on a new session.
func TestVBMCOutage(t *testing.T) {
	ctx := t.Context()
	b := startVBMC(t, vbmc.NewFakeMachine())
	r := newRig(t, ipmi.Config{CommandTimeout: 500 * time.Millisecond, Retries: 1})
	n := nodeFor(b, nil)
	if _, err := r.power.PowerState(ctx, n); err != nil {
		t.Fatal(err)
	}

	b.SetDown(true)
	start := time.Now()
	_, err := r.power.PowerState(ctx, n)
	took := time.Since(start)
	var e *ipmi.Error
	if !errors.As(err, &e) || (e.Kind != ipmi.Timeout && e.Kind != ipmi.Unreachable) {
		t.Fatalf("during the outage: err = %v, want a timeout", err)
	}
	if took > 1500*time.Millisecond {
		t.Errorf("during the outage: took %v, want about 2 × 500ms", took)
	}
	t.Logf("during the outage: %v (%v)", err, took.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	b.SetDown(false)

	if got, err := r.power.PowerState(ctx, n); err != nil || got != api.PowerOff {
		t.Fatalf("after the outage: %q, %v", got, err)
	}
	if err := r.power.SetPowerState(ctx, n, api.PowerOn, 5*time.Second); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if st := b.Stats(); st.SessionsOpened != 2 {
		t.Errorf("sessions opened: %d, want 2 (one before, one after)", st.SessionsOpened)
	}
}

// Many callers at once: one session, one command at a time; Close logs
// out.
func TestVBMCConcurrentCallers(t *testing.T) {
	ctx := t.Context()
	m := vbmc.NewFakeMachine()
	b := startVBMC(t, m)
	r := newRig(t, ipmi.Config{})
	n := nodeFor(b, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			var err error
			switch i % 4 {
			case 0:
				_, err = r.power.PowerState(ctx, n)
			case 1:
				err = r.power.SetPowerState(ctx, n, api.Rebooting, 5*time.Second)
			case 2:
				err = r.mgmt.SetBootDevice(ctx, n, driver.BootDevice{Device: "pxe"})
			case 3:
				_, err = r.mgmt.BootDevice(ctx, n)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if st := b.Stats(); st.SessionsOpened != 1 || st.MaxSessions != 1 {
		t.Errorf("BMC stats %+v: want one session", st)
	}
	if err := r.d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Sessions != 0 {
		t.Errorf("%d sessions left open after Close", st.Sessions)
	}
	if _, err := r.power.PowerState(ctx, n); err == nil {
		t.Error("command after Close succeeded")
	}
}

// go-ipmi joins host and port with "%s:%d": IPv6 literals must reach it
// in brackets.
func TestVBMCIPv6(t *testing.T) {
	m := vbmc.NewFakeMachine()
	b, err := vbmc.New(vbmc.Config{Addr: "[::1]:0", Users: map[string]string{vbmcUser: vbmcPassword}, Machine: m})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	b.Start(t.Context())
	t.Cleanup(func() { b.Close() })
	r := newRig(t, ipmi.Config{})
	n := vbmcNode("::1", int(b.Addr().Port()), nil)
	if err := r.power.SetPowerState(t.Context(), n, api.PowerOn, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if on, _ := m.PowerState(t.Context()); !on {
		t.Error("machine not on")
	}
}
