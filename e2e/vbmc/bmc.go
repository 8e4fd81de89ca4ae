package vbmc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures one BMC.
type Config struct {
	// Addr is the UDP address to listen on, e.g. "127.0.0.1:6230";
	// "127.0.0.1:0" (the default when empty) picks a free port, which
	// BMC.Addr then reports.
	Addr string
	// Users maps user names (1–16 bytes) to passwords (at most 20 bytes).
	// Every user may reach Administrator privilege. At least one is
	// required.
	Users map[string]string
	// Machine is what the BMC controls. Required.
	Machine Machine
	// Logger receives session and power events (Info) and every command
	// (Debug). Nil discards. Passwords and keys are never logged.
	Logger *slog.Logger
	// SessionTimeout is how long a session may stay idle before the BMC
	// forgets it (default 60s, as on most BMCs).
	SessionTimeout time.Duration
	// CommandTimeout bounds each call into Machine (default 30s).
	CommandTimeout time.Duration
	// GUID is the system GUID sent in RAKP 2 and Get System GUID, in IPMI
	// byte order (the RFC 4122 bytes reversed); zero picks a random one.
	GUID [16]byte
}

// BMC is a virtual IPMI v2.0 BMC serving RMCP+ (ipmitool's "lanplus") on
// one UDP socket. It handles one datagram at a time, in the order they
// arrive, as the single-threaded firmware of a real BMC does; a Machine
// call that takes a while (starting QEMU) holds up that BMC only.
type BMC struct {
	conn    *net.UDPConn
	addr    netip.AddrPort
	machine Machine
	users   []user
	log     *slog.Logger
	guid    [16]byte

	sessionTimeout time.Duration
	commandTimeout time.Duration

	mu          sync.Mutex
	sessions    sessionTable
	maxSessions int // most sessions held at once

	down    atomic.Bool
	serving atomic.Bool
	done    chan struct{}

	packets         atomic.Uint64
	commands        atomic.Uint64
	sessionsOpened  atomic.Uint64
	authFailures    atomic.Uint64
	chassisControls atomic.Uint64

	// Owned by the packet loop.
	out, msg, data []byte
	boot           bootOptions
	lastOnByIPMI   bool
}

type user struct {
	id   uint8
	name string
	kuid [20]byte
}

// New validates cfg and binds the BMC's socket, so Addr is valid at once;
// call Serve or Start to answer packets.
func New(cfg Config) (*BMC, error) {
	if cfg.Machine == nil {
		return nil, errors.New("vbmc: Config.Machine is required")
	}
	if len(cfg.Users) == 0 {
		return nil, errors.New("vbmc: Config.Users needs at least one user")
	}
	names := make([]string, 0, len(cfg.Users))
	for name, pw := range cfg.Users {
		if len(name) == 0 || len(name) > 16 {
			return nil, fmt.Errorf("vbmc: user name %q must be 1-16 bytes", name)
		}
		if len(pw) > 20 {
			return nil, fmt.Errorf("vbmc: password of user %q is longer than 20 bytes", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	b := &BMC{
		machine:        cfg.Machine,
		log:            cfg.Logger,
		guid:           cfg.GUID,
		sessionTimeout: cfg.SessionTimeout,
		commandTimeout: cfg.CommandTimeout,
		sessions:       sessionTable{byID: map[uint32]*session{}},
		done:           make(chan struct{}),
		out:            make([]byte, 0, 1024),
		msg:            make([]byte, 0, 256),
		data:           make([]byte, 0, 256),
	}
	for i, name := range names {
		// User ID 1 is the anonymous user on real BMCs; named users follow.
		b.users = append(b.users, user{id: uint8(i + 2), name: name, kuid: kuid(cfg.Users[name])})
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.sessionTimeout <= 0 {
		b.sessionTimeout = 60 * time.Second
	}
	if b.commandTimeout <= 0 {
		b.commandTimeout = 30 * time.Second
	}
	if b.guid == [16]byte{} {
		b.guid = newGUID()
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("vbmc: listen address: %w", err)
	}
	b.conn, err = net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("vbmc: %w", err)
	}
	b.addr = b.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	b.log = b.log.With("bmc", b.addr.String())
	return b, nil
}

// Addr returns the address the BMC listens on.
func (b *BMC) Addr() netip.AddrPort { return b.addr }

// Serve answers packets until ctx is done or Close is called, then
// returns nil; it returns an error only if reading the socket fails
// otherwise. It may be called once.
func (b *BMC) Serve(ctx context.Context) error {
	if !b.serving.CompareAndSwap(false, true) {
		return errors.New("vbmc: Serve called twice")
	}
	defer close(b.done)
	stop := context.AfterFunc(ctx, func() { b.conn.Close() })
	defer stop()
	b.log.Info("serving IPMI")
	buf := make([]byte, 2048)
	for {
		n, from, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("vbmc %s: %w", b.addr, err)
		}
		b.packets.Add(1)
		if b.down.Load() {
			continue
		}
		b.handle(ctx, buf[:n], from)
	}
}

// Start runs Serve in a goroutine.
func (b *BMC) Start(ctx context.Context) {
	go func() {
		if err := b.Serve(ctx); err != nil {
			b.log.Error("serve", "err", err)
		}
	}()
}

// Close stops the BMC and waits for Serve to return. It does not touch
// the Machine.
func (b *BMC) Close() error {
	err := b.conn.Close()
	if b.serving.Load() {
		<-b.done
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// SetDown makes the BMC stop answering (true) or answer again (false), as
// a BMC that is rebooting or unreachable would. Going down also forgets
// every session, as a BMC reboot does: a client must open a new one.
func (b *BMC) SetDown(down bool) {
	if b.down.Swap(down) == down {
		return
	}
	if down {
		b.mu.Lock()
		clear(b.sessions.byID)
		b.mu.Unlock()
	}
	b.log.Info("availability changed", "down", down)
}

// Stats are a BMC's counters since it started.
type Stats struct {
	Packets         uint64 // datagrams received, answered or not
	Commands        uint64 // IPMI requests answered inside sessions
	SessionsOpened  uint64 // sessions that completed RAKP
	AuthFailures    uint64 // RAKP exchanges refused (unknown user, wrong password)
	ChassisControls uint64 // Chassis Control commands carried out
	// Sessions is the number of sessions held now, established or in
	// RAKP; MaxSessions the most held at once. A client that keeps at
	// most one operation in flight per BMC and closes its sessions keeps
	// MaxSessions at 1 (sessions it abandons count until they expire).
	Sessions    int
	MaxSessions int
}

// Stats returns the BMC's counters.
func (b *BMC) Stats() Stats {
	b.mu.Lock()
	b.sessions.expire(time.Now(), b.sessionTimeout)
	n, maxN := len(b.sessions.byID), b.maxSessions
	b.mu.Unlock()
	return Stats{
		Packets:         b.packets.Load(),
		Commands:        b.commands.Load(),
		SessionsOpened:  b.sessionsOpened.Load(),
		AuthFailures:    b.authFailures.Load(),
		ChassisControls: b.chassisControls.Load(),
		Sessions:        n,
		MaxSessions:     maxN,
	}
}

// ResetMaxSessions restarts the MaxSessions high-water mark from the
// sessions held now, so a benchmark can measure one phase.
func (b *BMC) ResetMaxSessions() {
	b.mu.Lock()
	b.maxSessions = len(b.sessions.byID)
	b.mu.Unlock()
}

func (b *BMC) debug() bool { return b.log.Enabled(context.Background(), slog.LevelDebug) }

// handle answers one datagram, or drops it as a real BMC drops what it
// cannot parse or authenticate.
func (b *BMC) handle(ctx context.Context, pkt []byte, from netip.AddrPort) {
	hdr, body, err := parseRMCP(pkt)
	if err != nil {
		b.drop(from, "rmcp", err)
		return
	}
	switch {
	case hdr.class == rmcpClassASF:
		b.handleASF(body, from)
	case hdr.class == rmcpClassIPMI && len(body) > 0 && body[0] == authTypeRMCPPlus:
		b.handleV2(ctx, body, from)
	case hdr.class == rmcpClassIPMI && len(body) > 0:
		b.handleV15(ctx, body, from)
	default:
		b.drop(from, "rmcp class", fmt.Errorf("%#x", hdr.class))
	}
}

func (b *BMC) drop(from netip.AddrPort, what string, err error) {
	if b.debug() {
		b.log.Debug("dropped packet", "from", from, "what", what, "err", err)
	}
}

func (b *BMC) send(to netip.AddrPort, pkt []byte) {
	if _, err := b.conn.WriteToUDPAddrPort(pkt, to); err != nil && !errors.Is(err, net.ErrClosed) {
		b.log.Warn("send", "to", to, "err", err)
	}
}

func (b *BMC) handleASF(body []byte, from netip.AddrPort) {
	m, err := parseASF(body)
	if err != nil {
		b.drop(from, "asf", err)
		return
	}
	if m.typ != asfTypePing {
		return
	}
	b.out = appendPong(b.out[:0], m.tag)
	b.send(from, b.out)
}

// handleV15 serves sessionless IPMI v1.5 requests; sessions are RMCP+ only.
func (b *BMC) handleV15(ctx context.Context, body []byte, from netip.AddrPort) {
	s, err := parseV15(body)
	if err != nil {
		b.drop(from, "ipmi 1.5", err)
		return
	}
	if s.authType != authTypeNone || s.sessionID != 0 {
		b.drop(from, "ipmi 1.5 session", errors.New("v1.5 sessions are not supported"))
		return
	}
	req, err := parseIPMIRequest(s.msg)
	if err != nil {
		b.drop(from, "ipmi message", err)
		return
	}
	b.msg = b.respond(ctx, nil, &req, b.msg[:0])
	b.out = appendV15(b.out[:0], b.msg)
	b.send(from, b.out)
}

func (b *BMC) handleV2(ctx context.Context, body []byte, from netip.AddrPort) {
	p, err := parseV2(body)
	if err != nil {
		b.drop(from, "rmcp+", err)
		return
	}
	switch p.payloadType {
	case payloadOpenSession:
		b.openSession(p.payload, from)
	case payloadRAKP1:
		b.rakp1(p.payload, from)
	case payloadRAKP3:
		b.rakp3(p.payload, from)
	case payloadIPMI:
		if p.sessionID == 0 {
			b.sessionless(ctx, &p, from)
			return
		}
		b.inSession(ctx, body, &p, from)
	default:
		b.drop(from, "payload type", fmt.Errorf("%#x", p.payloadType))
	}
}

// sessionless answers an IPMI request outside any session (Get Channel
// Authentication Capabilities, Get Channel Cipher Suites, ...).
func (b *BMC) sessionless(ctx context.Context, p *v2Session, from netip.AddrPort) {
	if p.authenticated || p.encrypted {
		b.drop(from, "session 0", errors.New("authenticated payload without a session"))
		return
	}
	req, err := parseIPMIRequest(p.payload)
	if err != nil {
		b.drop(from, "ipmi message", err)
		return
	}
	b.msg = b.respond(ctx, nil, &req, b.msg[:0])
	b.out = appendV2Header(b.out[:0], payloadIPMI, 0, 0, len(b.msg))
	b.out = append(b.out, b.msg...)
	b.send(from, b.out)
}

// lookup returns the session with BMC session ID id, forgetting it if it
// idled out.
func (b *BMC) lookup(id uint32, now time.Time) *session {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sessions.byID[id]
	if s != nil && s.expired(now, b.sessionTimeout) {
		delete(b.sessions.byID, id)
		b.log.Debug("session expired", "session", id)
		return nil
	}
	return s
}

// touch records that s was used now. Stats reads lastSeen and state from
// another goroutine, so the packet loop writes them under the lock.
func (b *BMC) touch(s *session, now time.Time) {
	b.mu.Lock()
	s.lastSeen = now
	b.mu.Unlock()
}

func (b *BMC) setState(s *session, st sessionState) {
	b.mu.Lock()
	s.state = st
	b.mu.Unlock()
}

func (b *BMC) forget(s *session) {
	b.mu.Lock()
	delete(b.sessions.byID, s.bmcID)
	b.mu.Unlock()
}

// inSession checks, decrypts and answers an IPMI request of an active
// session. Anything that fails a check is dropped without an answer, so
// a client with a stale or forged session sees a timeout, as with real
// hardware.
func (b *BMC) inSession(ctx context.Context, pkt []byte, p *v2Session, from netip.AddrPort) {
	now := time.Now()
	s := b.lookup(p.sessionID, now)
	if s == nil || s.state != stateActive {
		b.drop(from, "session", fmt.Errorf("no active session %#x", p.sessionID))
		return
	}
	// Both offered suites integrity-protect and encrypt every message.
	if !p.authenticated || !p.encrypted {
		b.drop(from, "session", errors.New("payload not authenticated and encrypted"))
		return
	}
	signed, code, err := p.checkTrailer(pkt, s.keys.icvLen)
	if err != nil {
		b.drop(from, "trailer", err)
		return
	}
	if !s.keys.verify(signed, code) {
		b.drop(from, "integrity", errors.New("bad integrity check value"))
		return
	}
	if !s.acceptSeq(p.seq) {
		b.drop(from, "sequence", fmt.Errorf("sequence number %d outside the window of %d", p.seq, s.inSeq))
		return
	}
	msg, err := s.keys.decrypt(p.payload)
	if err != nil {
		b.drop(from, "decrypt", err)
		return
	}
	b.touch(s, now)
	s.remote = from
	if s.isRetry(p.seq, msg, now) {
		b.sendInSession(s, s.lastRsp, from)
		return
	}
	req, err := parseIPMIRequest(msg)
	if err != nil {
		b.drop(from, "ipmi message", err)
		return
	}
	b.commands.Add(1)
	b.msg = b.respond(ctx, s, &req, b.msg[:0])
	s.remember(p.seq, msg, b.msg, now)
	if req.netFn == netFnApp && req.cmd == cmdCloseSession && b.msg[6] == ccOK && closesSelf(s, req.data) {
		// Forgotten before the answer leaves, so whoever sees the answer
		// sees the session gone; s still holds the keys to send it.
		b.forget(s)
		b.log.Debug("session closed", "session", s.bmcID, "user", s.rakp.user)
	}
	b.sendInSession(s, b.msg, from)
}

// sendInSession encrypts msg and protects it with the session's integrity
// code.
func (b *BMC) sendInSession(s *session, msg []byte, to netip.AddrPort) {
	n := 16 + (len(msg)+1+15)/16*16
	out := appendV2Header(b.out[:0], payloadIPMI|payloadEncrypted|payloadAuthenticated, s.consoleID, s.nextOutSeq(), n)
	var iv [16]byte
	rand.Read(iv[:])
	out = s.keys.appendEncrypted(out, iv[:], msg)
	pad := integrityPad(len(out) - 4)
	for range pad {
		out = append(out, 0xff)
	}
	out = append(out, byte(pad), nextHeader)
	out = append(out, s.keys.icv(out[4:])...)
	b.out = out
	b.send(to, out)
}

// newGUID returns a random GUID in IPMI's byte order (IPMI v2.0 table
// 22-18: the RFC 4122 bytes reversed), marked version 1 (time-based, the
// version IPMI asks for) with a random multicast node ID as RFC 4122 §4.5
// allows. ipmitool guesses a GUID's byte order from where a valid version
// number sits, so the byte where RFC 4122 order keeps it is made invalid.
func newGUID() [16]byte {
	var u [16]byte // RFC 4122 order
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x10 // version 1
	u[8] = u[8]&0x3f | 0x80 // variant 10
	u[9] &= 0x0f            // no version number where other byte orders look for one
	u[10] |= 0x01           // multicast node ID
	slices.Reverse(u[:])
	return u
}
