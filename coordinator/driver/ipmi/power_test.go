package ipmi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/chassis"

	"github.com/ingot/ingot/pkg/api"
)

func TestSetPowerState(t *testing.T) {
	const (
		up    = chassis.ChassisControlPowerUp
		down  = chassis.ChassisControlPowerDown
		reset = chassis.ChassisControlHardReset
		soft  = chassis.ChassisControlSoftShutdown
	)
	for _, tc := range []struct {
		name   string
		on     bool
		lag    int // status reads before a change shows
		target string
		want   []chassis.ChassisControl
		wantOn bool
	}{
		{"on from off", false, 0, api.PowerOn, []chassis.ChassisControl{up}, true},
		{"on from off, slow BMC", false, 3, api.PowerOn, []chassis.ChassisControl{up}, true},
		{"on when on", true, 0, api.PowerOn, nil, true},
		{"off from on", true, 0, api.PowerOff, []chassis.ChassisControl{down}, false},
		{"off from on, slow BMC", true, 3, api.PowerOff, []chassis.ChassisControl{down}, false},
		{"off when off", false, 0, api.PowerOff, nil, false},
		{"reboot when on: hard reset", true, 0, api.Rebooting, []chassis.ChassisControl{reset}, true},
		// Reset while off is 0xD5 on real BMCs (and on the fake): power up.
		{"reboot when off: power up", false, 0, api.Rebooting, []chassis.ChassisControl{up}, true},
		{"soft off from on", true, 0, api.SoftPowerOff, []chassis.ChassisControl{soft}, false},
		{"soft off from on, slow guest", true, 4, api.SoftPowerOff, []chassis.ChassisControl{soft}, false},
		{"soft off when off", false, 0, api.SoftPowerOff, nil, false},
		{"soft reboot from on", true, 0, api.SoftRebooting, []chassis.ChassisControl{soft, up}, true},
		{"soft reboot from on, slow", true, 2, api.SoftRebooting, []chassis.ChassisControl{soft, up}, true},
		{"soft reboot when off", false, 0, api.SoftRebooting, []chassis.ChassisControl{up}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBMC{on: tc.on, lag: tc.lag}
			p := power{newTestDriver(t, b, testConfig())}
			n := node("192.0.2.10", nil)
			if err := p.SetPowerState(context.Background(), n, tc.target, 5*time.Second); err != nil {
				t.Fatalf("SetPowerState(%q): %v", tc.target, err)
			}
			if !slices.Equal(b.controls, tc.want) {
				t.Errorf("chassis controls = %v, want %v", b.controls, tc.want)
			}
			if b.on != tc.wantOn {
				t.Errorf("chassis on = %v, want %v", b.on, tc.wantOn)
			}
			got, err := p.PowerState(context.Background(), n)
			if err != nil || got != stateName(tc.wantOn) {
				t.Errorf("PowerState = %q, %v; want %q", got, err, stateName(tc.wantOn))
			}
			if b.dials != 1 {
				t.Errorf("%d logins, want 1 (one session for the whole change)", b.dials)
			}
		})
	}
}

func TestSetPowerStateTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bmc    *fakeBMC
		target string
		want   []string
	}{
		{"soft power off ignored", &fakeBMC{on: true, ignoreSoft: true}, api.SoftPowerOff,
			[]string{"IPMI soft power off of 192.0.2.10:623: soft power off timed out after 300ms", "the BMC still reports power on"}},
		{"soft reboot, soft off ignored", &fakeBMC{on: true, ignoreSoft: true}, api.SoftRebooting,
			[]string{"IPMI soft reboot of 192.0.2.10:623: soft power off timed out after 300ms", "still reports power on"}},
		{"power off stuck", &fakeBMC{on: true, ignoreOff: true}, api.PowerOff,
			[]string{"IPMI power off of 192.0.2.10:623: timed out after 300ms waiting for power off", "the BMC still reports power on"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := power{newTestDriver(t, tc.bmc, testConfig())}
			start := time.Now()
			err := p.SetPowerState(context.Background(), node("192.0.2.10", nil), tc.target, 300*time.Millisecond)
			took := time.Since(start)
			var e *Error
			if !errors.As(err, &e) || e.Kind != Timeout {
				t.Fatalf("err = %v, want a timeout *Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if took < 300*time.Millisecond || took > 2*time.Second {
				t.Errorf("gave up after %v, want about 300ms", took)
			}
			if slices.Contains(tc.bmc.controls, chassis.ChassisControlPowerUp) {
				t.Errorf("powered on after a failed soft off: %v", tc.bmc.controls)
			}
		})
	}
}

// A poll that fails now and then does not end the wait: BMCs stall while
// the chassis changes state.
func TestWaitSurvivesFailedPolls(t *testing.T) {
	polls := 0
	b := &fakeBMC{lag: 6}
	b.cmdErr = func(cmd string) error {
		if cmd == "status" {
			// Polls 3 to 5: one read, all its retries, fail.
			if polls++; polls >= 3 && polls <= 5 {
				return errNoAnswerCmd
			}
		}
		return nil
	}
	p := power{newTestDriver(t, b, testConfig())}
	if err := p.SetPowerState(context.Background(), node("192.0.2.10", nil), api.PowerOn, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !b.on {
		t.Error("not on")
	}
}

// A completion code while waiting is an answer: stop at once.
func TestWaitStopsOnCompletionCode(t *testing.T) {
	b := &fakeBMC{lag: 100}
	b.cmdErr = func(cmd string) error {
		if cmd == "status" && len(b.controls) > 0 {
			return errNotSupported
		}
		return nil
	}
	p := power{newTestDriver(t, b, testConfig())}
	err := p.SetPowerState(context.Background(), node("192.0.2.10", nil), api.PowerOn, 5*time.Second)
	var e *Error
	if !errors.As(err, &e) || e.Kind != Unsupported {
		t.Fatalf("err = %v, want Unsupported", err)
	}
}

func TestPowerStateErrors(t *testing.T) {
	b := &fakeBMC{dialErr: func(int) error { return errWrongPassword }}
	p := power{newTestDriver(t, b, testConfig())}
	_, err := p.PowerState(context.Background(), node("192.0.2.10", nil))
	const want = "IPMI power status of 192.0.2.10:623: wrong user name or password"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if b.dials != 1 {
		t.Errorf("%d logins, want 1: a refused login is not retried", b.dials)
	}

	_, err = p.PowerState(context.Background(), &api.Node{DriverInfo: map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), "ipmi_address") {
		t.Errorf("missing address: err = %v", err)
	}
	err = p.SetPowerState(context.Background(), node("192.0.2.10", nil), "sideways", time.Second)
	if err == nil || !strings.Contains(err.Error(), `"sideways"`) {
		t.Errorf("unknown target: err = %v", err)
	}
}
