package ipmi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/pkg/api"
)

// Concurrent commands to one BMC never overlap; commands to different
// BMCs do.
func TestOneCommandAtATimePerBMC(t *testing.T) {
	shared := &concurrency{}
	bmcs := map[string]*fakeBMC{}
	for _, addr := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
		bmcs[addr] = &fakeBMC{delay: 2 * time.Millisecond, shared: shared}
	}
	dial := func(ctx context.Context, t target) (session, error) { return bmcs[t.host].dial(ctx, t) }
	d := newDriver(testConfig(), dial)
	defer d.Close(context.Background())
	p, m := power{d}, management{d}

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 60 {
		n := node([]string{"192.0.2.10", "192.0.2.11", "192.0.2.12"}[i%3], nil)
		wg.Go(func() {
			var err error
			switch i % 4 {
			case 0:
				_, err = p.PowerState(context.Background(), n)
			case 1:
				err = p.SetPowerState(context.Background(), n, api.Rebooting, 5*time.Second)
			case 2:
				_, err = m.BootDevice(context.Background(), n)
			case 3:
				err = m.SetBootDevice(context.Background(), n, driver.BootDevice{Device: driver.BootPXE})
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for addr, b := range bmcs {
		if dials, _, _, most := b.snapshot(); most != 1 || dials != 1 {
			t.Errorf("%s: %d commands at once (want 1), %d logins (want 1)", addr, most, dials)
		}
	}
	if shared.max < 2 {
		t.Errorf("at most %d commands at once across 3 BMCs: BMCs wait for each other", shared.max)
	}
}

// The same BMC address with another user is another login.
func TestQueueKeyedByAddressAndUser(t *testing.T) {
	b := &fakeBMC{}
	d := newTestDriver(t, b, testConfig())
	p := power{d}
	for _, user := range []string{"admin", "operator", "admin"} {
		n := node("192.0.2.10", map[string]any{"ipmi_username": user})
		if _, err := p.PowerState(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	if b.dials != 2 {
		t.Errorf("%d logins, want 2 (one per user)", b.dials)
	}
	// A changed password (same key) replaces the session.
	if _, err := p.PowerState(context.Background(), node("192.0.2.10", map[string]any{"ipmi_password": "new-pw"})); err != nil {
		t.Fatal(err)
	}
	if dials, polite, _, _ := b.snapshot(); dials != 3 || polite != 1 {
		t.Errorf("after a password change: %d logins (want 3), %d sessions closed (want 1)", dials, polite)
	}
}

func TestSessionReuseAndReopen(t *testing.T) {
	ctx := context.Background()
	b := &fakeBMC{}
	d := newTestDriver(t, b, testConfig())
	p := power{d}
	n := node("192.0.2.10", nil)
	for range 10 {
		if _, err := p.PowerState(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if b.dials != 1 {
		t.Fatalf("%d logins for 10 commands, want 1", b.dials)
	}

	// A completion code is an answer: the session stays.
	b.cmdErr = func(string) error { return errNotSupported }
	if _, err := p.PowerState(ctx, n); err == nil {
		t.Fatal("no error")
	}
	if dials, polite, rude, _ := b.snapshot(); dials != 1 || polite+rude != 0 {
		t.Fatalf("after a completion code: %d logins, %d closes; want 1, 0", dials, polite+rude)
	}

	// No answer: the session is dropped (without waiting for a goodbye
	// nobody would answer) and the retry logs in again.
	fails := 1
	b.cmdErr = func(string) error {
		if fails > 0 {
			fails--
			return errNoAnswerCmd
		}
		return nil
	}
	if _, err := p.PowerState(ctx, n); err != nil {
		t.Fatal(err)
	}
	if dials, polite, rude, _ := b.snapshot(); dials != 2 || rude != 1 || polite != 0 {
		t.Errorf("after no answer: %d logins (want 2), %d rude closes (want 1), %d polite (want 0)", dials, rude, polite)
	}

	// A garbled answer: dropped politely (the BMC is there).
	fails = 1
	b.cmdErr = func(string) error {
		if fails > 0 {
			fails--
			return types.NewResponseError(types.CodeOK, "unpack response failed")
		}
		return nil
	}
	if _, err := p.PowerState(ctx, n); err != nil {
		t.Fatal(err)
	}
	if dials, polite, _, _ := b.snapshot(); dials != 3 || polite != 1 {
		t.Errorf("after a garbled answer: %d logins (want 3), %d polite closes (want 1)", dials, polite)
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retries   int
		dialErr   error
		cmdErr    error
		wantDials int
		wantCmds  int
		kind      Kind
	}{
		{"wrong password: never retried", 0, errWrongPassword, nil, 1, 0, Auth},
		{"completion code: never retried", 0, nil, errNotSupported, 1, 1, Unsupported},
		{"unreachable: retried", 0, errNoAnswerCap, nil, 3, 0, Unreachable},
		{"refused: retried", 0, errRefused, nil, 3, 0, Unreachable},
		{"no answer: retried on new sessions", 0, nil, errNoAnswerCmd, 3, 3, Timeout},
		{"five retries", 5, nil, errNoAnswerCmd, 6, 6, Timeout},
		{"no retries", -1, nil, errNoAnswerCmd, 1, 1, Timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBMC{
				dialErr: func(int) error { return tc.dialErr },
				cmdErr:  func(string) error { return tc.cmdErr },
			}
			cfg := testConfig()
			cfg.Retries = tc.retries
			_, err := power{newTestDriver(t, b, cfg)}.PowerState(context.Background(), node("192.0.2.10", nil))
			var e *Error
			if !errors.As(err, &e) || e.Kind != tc.kind {
				t.Fatalf("err = %v, want kind %v", err, tc.kind)
			}
			if b.dials != tc.wantDials || len(b.commands) != tc.wantCmds {
				t.Errorf("%d logins, %d commands; want %d, %d", b.dials, len(b.commands), tc.wantDials, tc.wantCmds)
			}
		})
	}
}

// A BMC that never answers costs (retries+1) command timeouts, no more.
func TestCommandTimeoutBoundsAttempts(t *testing.T) {
	b := &fakeBMC{delay: time.Hour}
	cfg := testConfig()
	cfg.CommandTimeout, cfg.Retries = 100*time.Millisecond, 1
	start := time.Now()
	_, err := power{newTestDriver(t, b, cfg)}.PowerState(context.Background(), node("192.0.2.10", nil))
	took := time.Since(start)
	var e *Error
	if !errors.As(err, &e) || !e.Kind.retryable() {
		t.Fatalf("err = %v", err)
	}
	if took < 200*time.Millisecond || took > time.Second {
		t.Errorf("took %v, want about 2 × 100ms", took)
	}
}

// A caller waiting for a busy BMC gives up when its context ends.
func TestWaitForTurnHonoursContext(t *testing.T) {
	b := &fakeBMC{delay: 300 * time.Millisecond}
	cfg := testConfig()
	cfg.CommandTimeout = time.Second
	p := power{newTestDriver(t, b, cfg)}
	n := node("192.0.2.10", nil)
	go p.PowerState(context.Background(), n)
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.PowerState(ctx, n)
	if err == nil || !strings.Contains(err.Error(), "IPMI power status of 192.0.2.10:623: timed out waiting for the BMC's previous command to finish") {
		t.Errorf("err = %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := p.PowerState(ctx, n); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v", err)
	}
}

// Sessions are retired before go-ipmi's 30 s keepalive, both when used
// again and by the janitor when idle; forgotten BMCs leave the map.
func TestSessionLifetime(t *testing.T) {
	if got := sessionLifetime(5 * time.Second); got != 24*time.Second {
		t.Errorf("lifetime with 5s commands = %v, want 24s", got)
	}
	if got := sessionLifetime(time.Second); got != 25*time.Second {
		t.Errorf("lifetime with 1s commands = %v, want 25s", got)
	}
	if got := sessionLifetime(time.Minute); got != 0 {
		t.Errorf("lifetime with 1m commands = %v, want 0 (a session per command)", got)
	}

	b := &fakeBMC{}
	d := newTestDriver(t, b, testConfig())
	var mu sync.Mutex
	now := time.Unix(1e9, 0)
	d.pool.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(dt time.Duration) { mu.Lock(); now = now.Add(dt); mu.Unlock() }
	d.pool.sweep = 10 * time.Millisecond
	p := power{d}
	n := node("192.0.2.10", nil)

	p.PowerState(context.Background(), n)
	advance(20 * time.Second)
	p.PowerState(context.Background(), n)
	if b.dials != 1 {
		t.Fatalf("%d logins within the lifetime, want 1", b.dials)
	}
	advance(5 * time.Second) // 25 s since login
	p.PowerState(context.Background(), n)
	if dials, polite, _, _ := b.snapshot(); dials != 2 || polite != 1 {
		t.Fatalf("past the lifetime: %d logins (want 2), %d closes (want 1)", dials, polite)
	}

	advance(time.Minute)
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, polite, _, _ := b.snapshot()
		d.pool.mu.Lock()
		open, known, janitor := d.pool.open, len(d.pool.bmcs), d.pool.janitor
		d.pool.mu.Unlock()
		if polite == 2 && open == 0 && known == 0 && !janitor {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("janitor: %d closes (want 2), %d open, %d BMCs known, running %v", polite, open, known, janitor)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// And a later command logs in again.
	if _, err := p.PowerState(context.Background(), n); err != nil || b.dials != 3 {
		t.Errorf("after the janitor: %v, %d logins", err, b.dials)
	}
}

func TestClose(t *testing.T) {
	b := &fakeBMC{}
	d := newDriver(testConfig(), b.dial)
	p := power{d}
	for _, addr := range []string{"192.0.2.10", "192.0.2.11"} {
		if _, err := p.PowerState(context.Background(), node(addr, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, polite, _, _ := b.snapshot(); polite != 2 {
		t.Errorf("%d sessions closed, want 2", polite)
	}
	if _, err := p.PowerState(context.Background(), node("192.0.2.10", nil)); !errors.Is(err, errClosed) {
		t.Errorf("after Close: err = %v", err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Neither logs (at debug level, retries included) nor errors carry the
// password.
func TestNoCredentialsInLogsOrErrors(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := &fakeBMC{dialErr: func(n int) error {
		if n <= 2 {
			return fmt.Errorf("%w (password was s3cret-pw)", errNoAnswerCap)
		}
		return nil
	}}
	b.cmdErr = func(string) error { return errNotSupported }
	d := newTestDriver(t, b, cfg)
	_, err := power{d}.PowerState(context.Background(), node("192.0.2.10", nil))
	if err == nil {
		t.Fatal("no error")
	}
	d.Close(context.Background())
	mu.Lock()
	defer mu.Unlock()
	for what, s := range map[string]string{"log": buf.String(), "error": err.Error(), "error %#v": fmt.Sprintf("%#v", err)} {
		if strings.Contains(s, "s3cret-pw") {
			t.Errorf("%s holds the password:\n%s", what, s)
		}
	}
	if !strings.Contains(buf.String(), "retrying") || !strings.Contains(buf.String(), "bmc=192.0.2.10:623") {
		t.Errorf("log lacks the retries:\n%s", buf.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
