package ipmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// session is one open RMCP+ session: the go-ipmi client calls the driver
// makes, so the power and boot logic is testable without a BMC.
// *client.Client implements it.
type session interface {
	GetChassisStatus(ctx context.Context) (*chassis.GetChassisStatusResponse, error)
	ChassisControl(ctx context.Context, control chassis.ChassisControl) (*chassis.ChassisControlResponse, error)
	SetSystemBootOptionsParamFor(ctx context.Context, param types.BootOptionParameter) error
	GetSystemBootOptionsParamFor(ctx context.Context, param types.BootOptionParameter) error
	Close(ctx context.Context) error
}

// dialer logs in to t; ctx bounds the login.
type dialer func(ctx context.Context, t target) (session, error)

// errClosed is returned for commands after the driver was closed.
var errClosed = errors.New("ipmi driver closed")

// pool runs IPMI commands, one at a time per BMC, on sessions it keeps
// open between commands.
//
// BMCs are small, slow computers: many mishandle concurrent requests, and
// a login costs them more than a command, so each BMC (address and user)
// has a queue of one and a session reused by every command. A session is
// dropped after any failure other than a completion code, and retired
// before it gets old: some BMCs expire idle sessions at about 30 s, and
// go-ipmi's keepalive (a fixed 30 s after login, on its own goroutine)
// would otherwise race the driver's commands on the same session.
type pool struct {
	dial     dialer
	timeout  time.Duration // one attempt: login (if needed) and command
	retries  int
	backoff  time.Duration
	lifetime time.Duration // a session older than this is not used again
	sweep    time.Duration // how often the janitor looks for old sessions
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	bmcs    map[bmcKey]*bmc
	open    int  // sessions open
	janitor bool // the janitor goroutine runs
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// bmc is one BMC login's queue and session.
type bmc struct {
	// turn holds a token while a command runs: a mutex that a waiting
	// caller can give up on when its context ends.
	turn chan struct{}
	// users counts callers holding or waiting for turn (under pool.mu), so
	// the janitor never forgets a bmc someone is about to use.
	users int

	// Owned by whoever holds turn.
	sess   session
	target target
	opened time.Time
}

// sessionLifetime is how long a session is used: until ~25 s, and never
// so long that a command begun on it could still run when go-ipmi's
// keepalive fires at 30 s.
func sessionLifetime(commandTimeout time.Duration) time.Duration {
	return max(0, min(25*time.Second, 29*time.Second-commandTimeout))
}

func newPool(dial dialer, cfg Config) *pool {
	return &pool{
		dial:     dial,
		timeout:  cfg.CommandTimeout,
		retries:  max(cfg.Retries, 0),
		backoff:  cfg.RetryBackoff,
		lifetime: sessionLifetime(cfg.CommandTimeout),
		sweep:    time.Second,
		log:      cfg.Logger,
		now:      time.Now,
		bmcs:     map[bmcKey]*bmc{},
		stop:     make(chan struct{}),
	}
}

// do runs fn on a session to t, waiting for the BMC's turn. Each attempt
// (login if needed, then fn) has the command timeout; failures of the
// transport are tried again, on a fresh session, after a pause that
// doubles. fn may send several commands, and must be safe to repeat.
func (p *pool) do(ctx context.Context, t target, op string, fn func(context.Context, session) error) error {
	b, err := p.acquire(ctx, t)
	if err != nil {
		if errors.Is(err, errClosed) {
			return err
		}
		return p.ctxError(ctx, t, op, "waiting for the BMC's previous command to finish")
	}
	defer p.release(b)

	for attempt := 0; ; attempt++ {
		st, err := p.try(ctx, b, t, fn)
		if err == nil {
			return nil
		}
		if errors.Is(err, errClosed) {
			return err
		}
		if !isCompletionCode(err) {
			// The session may be dead or out of step: never reuse it. A BMC
			// that did not answer would not answer a goodbye either.
			p.closeSession(ctx, b, !noAnswer(err), "failed")
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("IPMI %s of %s: %w", op, t.addr(), ctx.Err())
		}
		e := classify(err, t, op, st, p.timeout)
		p.log.Debug("IPMI command failed", "bmc", t, "op", op, "attempt", attempt+1, "kind", e.Kind, "err", e.Err, "detail", redact(err.Error(), t))
		if !e.Kind.retryable() || attempt >= p.retries || ctx.Err() != nil {
			return e
		}
		pause := p.backoff << attempt
		pause = pause/2 + rand.N(pause/2+1) // jitter: callers whose BMCs failed together do not retry in step
		p.log.Warn("IPMI command failed; retrying", "bmc", t, "op", op, "attempt", attempt+1, "retry_in", pause, "err", e.Err)
		if !sleep(ctx, pause) {
			return e
		}
	}
}

// try runs one attempt of fn, logging in first unless a session is open.
func (p *pool) try(ctx context.Context, b *bmc, t target, fn func(context.Context, session) error) (stage, error) {
	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if b.sess != nil && b.target != t {
		p.closeSession(ctx, b, true, "driver_info changed")
	}
	if b.sess != nil && p.now().Sub(b.opened) >= p.lifetime {
		p.closeSession(ctx, b, true, "expired")
	}
	if b.sess == nil {
		if p.isClosed() {
			return stageLogin, errClosed
		}
		s, err := p.dial(actx, t)
		if err != nil {
			return stageLogin, err
		}
		p.opened(b, s, t)
	}
	return stageCommand, fn(actx, b.sess)
}

// acquire waits for the BMC's turn.
func (p *pool) acquire(ctx context.Context, t target) (*bmc, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosed
	}
	b := p.bmcs[t.key()]
	if b == nil {
		b = &bmc{turn: make(chan struct{}, 1)}
		p.bmcs[t.key()] = b
	}
	b.users++
	p.mu.Unlock()

	select {
	case b.turn <- struct{}{}:
		return b, nil
	case <-ctx.Done():
		p.mu.Lock()
		b.users--
		p.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (p *pool) release(b *bmc) {
	<-b.turn
	p.mu.Lock()
	b.users--
	p.mu.Unlock()
}

// opened records a new session of b (whose turn the caller holds) and
// makes sure the janitor runs.
func (p *pool) opened(b *bmc, s session, t target) {
	b.sess, b.target, b.opened = s, t, p.now()
	p.log.Debug("IPMI session opened", "bmc", t, "user", t.username)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open++
	if !p.janitor && !p.closed {
		p.janitor = true
		p.wg.Add(1)
		go p.runJanitor()
	}
}

// closeSession ends b's session (the caller holds b's turn). A polite
// close tells the BMC, freeing its session slot at once; otherwise only
// the socket is released, because waiting for a silent BMC is pointless.
func (p *pool) closeSession(ctx context.Context, b *bmc, polite bool, why string) {
	s, t := b.sess, b.target
	if s == nil {
		return
	}
	b.sess = nil
	p.mu.Lock()
	p.open--
	p.mu.Unlock()

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(time.Second, p.timeout))
	if !polite {
		// go-ipmi then fails the Close Session exchange at once and just
		// closes its socket.
		cancel()
	}
	defer cancel()
	err := s.Close(cctx)
	p.log.Debug("IPMI session closed", "bmc", t, "why", why, "polite", polite, "err", err)
}

// runJanitor closes sessions that outlived their use while any are open,
// so an idle BMC is not kept logged in (nor pinged by go-ipmi's keepalive).
func (p *pool) runJanitor() {
	defer p.wg.Done()
	tick := time.NewTicker(p.sweep)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		if !p.sweepOnce() {
			return
		}
	}
}

// sweepOnce closes old sessions of BMCs nobody is using and forgets idle
// BMCs; it reports whether the janitor is still needed.
func (p *pool) sweepOnce() bool {
	p.mu.Lock()
	bmcs := make(map[bmcKey]*bmc, len(p.bmcs))
	for k, b := range p.bmcs {
		bmcs[k] = b
	}
	p.mu.Unlock()

	for k, b := range bmcs {
		select {
		case b.turn <- struct{}{}:
		default:
			continue // busy: its command checks the session's age itself
		}
		if b.sess != nil && p.now().Sub(b.opened) >= p.lifetime {
			p.closeSession(context.Background(), b, true, "expired")
		}
		p.mu.Lock()
		if b.sess == nil && b.users == 0 && p.bmcs[k] == b {
			delete(p.bmcs, k)
		}
		p.mu.Unlock()
		<-b.turn
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == 0 || p.closed {
		p.janitor = false
		return false
	}
	return true
}

func (p *pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close logs out of every BMC (a few at once), waiting for commands in
// flight unless ctx ends first. Later commands fail.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	bmcs := make([]*bmc, 0, len(p.bmcs))
	for _, b := range p.bmcs {
		bmcs = append(bmcs, b)
	}
	p.mu.Unlock()
	p.wg.Wait()

	limit := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, b := range bmcs {
		wg.Go(func() {
			select {
			case b.turn <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-b.turn }()
			select {
			case limit <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-limit }()
			p.closeSession(ctx, b, true, "shutdown")
		})
	}
	wg.Wait()
	return ctx.Err()
}

// ctxError reports a command given up because ctx ended before it ran.
func (p *pool) ctxError(ctx context.Context, t target, op, while string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Kind: Timeout, BMC: t.addr(), Op: op, Err: because(ctx.Err(), "timed out %s", while)}
	}
	return fmt.Errorf("IPMI %s of %s: %w", op, t.addr(), ctx.Err())
}

// sleep waits for d unless ctx ends first; it reports whether it slept.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
