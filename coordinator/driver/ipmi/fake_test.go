package ipmi

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ingot/ingot/pkg/api"
)

// fakeBMC is a BMC behind the session interface: a chassis whose power
// and boot flags change as real ones do, with faults to inject, that
// records what it was asked and how many commands overlapped.
type fakeBMC struct {
	mu sync.Mutex

	on    bool
	flags types.BootOptionParam_BootFlags
	// lag is how many status reads a power change takes to show.
	lag     int
	pending *bool
	// ignoreSoft and ignoreOff make the chassis stay on (a guest that
	// ignores ACPI, a stuck relay).
	ignoreSoft, ignoreOff bool
	// noProgress and noParam3 make the BMC refuse those boot parameters
	// with a completion code, as some do.
	noProgress, noParam3 bool

	delay time.Duration
	// dialErr and cmdErr, when set, fail the nth login or the next
	// command (n counts from 1).
	dialErr func(n int) error
	cmdErr  func(cmd string) error

	dials, politeCloses, rudeCloses int
	controls                        []chassis.ChassisControl
	params                          []types.BootOptionParamSelector
	commands                        []string
	inFlight, maxInFlight           int
	// shared counts commands in flight across BMCs.
	shared *concurrency
}

type concurrency struct {
	mu       sync.Mutex
	now, max int
}

func (c *concurrency) enter() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now++
	c.max = max(c.max, c.now)
}

func (c *concurrency) exit() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now--
}

// dial is the fakeBMC's dialer.
func (b *fakeBMC) dial(ctx context.Context, t target) (session, error) {
	if err := b.enter(ctx); err != nil {
		return nil, err
	}
	defer b.exit()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dials++
	if b.dialErr != nil {
		if err := b.dialErr(b.dials); err != nil {
			return nil, err
		}
	}
	return &fakeSession{b: b, id: b.dials}, nil
}

func (b *fakeBMC) enter(ctx context.Context) error {
	b.mu.Lock()
	b.inFlight++
	b.maxInFlight = max(b.maxInFlight, b.inFlight)
	delay := b.delay
	b.mu.Unlock()
	if b.shared != nil {
		b.shared.enter()
	}
	if delay > 0 {
		if !sleep(ctx, delay) {
			b.exit()
			return fmt.Errorf("canceled from caller: %w", ctx.Err())
		}
	}
	return nil
}

func (b *fakeBMC) exit() {
	if b.shared != nil {
		b.shared.exit()
	}
	b.mu.Lock()
	b.inFlight--
	b.mu.Unlock()
}

// command runs one command: overlap accounting and injected faults.
func (b *fakeBMC) command(ctx context.Context, name string, fn func() error) error {
	if err := b.enter(ctx); err != nil {
		return err
	}
	defer b.exit()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.commands = append(b.commands, name)
	if b.cmdErr != nil {
		if err := b.cmdErr(name); err != nil {
			return err
		}
	}
	return fn()
}

func (b *fakeBMC) setPower(on bool) {
	if b.lag == 0 {
		b.on = on
		return
	}
	b.pending = &on
}

type fakeSession struct {
	b      *fakeBMC
	id     int
	closed bool
}

var errNotSupported = types.NewResponseError(types.CodeNotSupported, "ipmiRes CompletionCode (0xd5) is not normal: Command not supported in present state")

func (s *fakeSession) GetChassisStatus(ctx context.Context) (*chassis.GetChassisStatusResponse, error) {
	var res *chassis.GetChassisStatusResponse
	err := s.b.command(ctx, "status", func() error {
		b := s.b
		if b.pending != nil {
			if b.lag--; b.lag <= 0 {
				b.on, b.pending, b.lag = *b.pending, nil, 0
			}
		}
		res = &chassis.GetChassisStatusResponse{PowerIsOn: b.on}
		return nil
	})
	return res, err
}

func (s *fakeSession) ChassisControl(ctx context.Context, c chassis.ChassisControl) (*chassis.ChassisControlResponse, error) {
	err := s.b.command(ctx, "control", func() error {
		b := s.b
		switch c {
		case chassis.ChassisControlHardReset, chassis.ChassisControlPowerCycle:
			if !b.on {
				return errNotSupported
			}
		}
		b.controls = append(b.controls, c)
		switch c {
		case chassis.ChassisControlPowerUp:
			b.setPower(true)
		case chassis.ChassisControlPowerDown:
			if !b.ignoreOff {
				b.setPower(false)
			}
		case chassis.ChassisControlSoftShutdown:
			if !b.ignoreSoft {
				b.setPower(false)
			}
		}
		return nil
	})
	return &chassis.ChassisControlResponse{}, err
}

func (s *fakeSession) SetSystemBootOptionsParamFor(ctx context.Context, p types.BootOptionParameter) error {
	return s.b.command(ctx, "set boot param", func() error {
		b := s.b
		sel, _, _ := p.BootOptionParameter()
		switch {
		case sel == types.BootOptionParamSelector_SetInProgress && b.noProgress,
			sel == types.BootOptionParamSelector_BMCBootFlagValidBitClear && b.noParam3:
			return types.NewResponseError(types.CodeParameterNotSupported, "parameter not supported")
		}
		b.params = append(b.params, sel)
		if f, ok := p.(*types.BootOptionParam_BootFlags); ok {
			b.flags = *f
		}
		return nil
	})
}

func (s *fakeSession) GetSystemBootOptionsParamFor(ctx context.Context, p types.BootOptionParameter) error {
	return s.b.command(ctx, "get boot param", func() error {
		// Through the wire format, as go-ipmi would.
		return p.Unpack(s.b.flags.Pack())
	})
}

func (s *fakeSession) Close(ctx context.Context) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.closed {
		panic("session closed twice") // go-ipmi would panic too (close of closed channel)
	}
	s.closed = true
	if ctx.Err() != nil {
		s.b.rudeCloses++
	} else {
		s.b.politeCloses++
	}
	return nil
}

// snapshot returns counters under the lock.
func (b *fakeBMC) snapshot() (dials, polite, rude, maxInFlight int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dials, b.politeCloses, b.rudeCloses, b.maxInFlight
}

// testConfig is quick: tests wait for timeouts and retries.
func testConfig() Config {
	return Config{CommandTimeout: 200 * time.Millisecond, RetryBackoff: time.Millisecond, PollInterval: 5 * time.Millisecond}
}

// newTestDriver returns a driver whose every BMC is b.
func newTestDriver(t *testing.T, b *fakeBMC, cfg Config) *Driver {
	t.Helper()
	d := newDriver(cfg, b.dial)
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// node returns a node whose BMC is at addr (TEST-NET-1: nothing is ever
// sent there by these tests, the fake answers).
func node(addr string, extra map[string]any) *api.Node {
	info := map[string]any{"ipmi_address": addr, "ipmi_username": "admin", "ipmi_password": "s3cret-pw"}
	for k, v := range extra {
		info[k] = v
	}
	return &api.Node{UUID: "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", DriverInfo: info}
}
