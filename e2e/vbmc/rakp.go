package vbmc

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"
)

// RMCP+ status codes (table 13-15) the BMC answers with.
const (
	rakpOK                 = 0x00
	rakpNoResources        = 0x01
	rakpInvalidSessionID   = 0x02
	rakpInvalidRole        = 0x09
	rakpUnauthorizedRole   = 0x0a
	rakpInvalidNameLength  = 0x0c
	rakpUnauthorizedName   = 0x0d
	rakpInvalidIntegrity   = 0x0f
	rakpNoCipherSuiteMatch = 0x11
	rakpIllegalParameter   = 0x12
)

// Open Session Request layout (table 13-9).
const (
	algorithmPayloadAuth  = 0x00
	algorithmPayloadInteg = 0x01
	algorithmPayloadConf  = 0x02
	// openSessionHeaderLen is what precedes the algorithm payloads: tag,
	// privilege, two reserved bytes and the console's session ID.
	openSessionHeaderLen  = 8
	algorithmPayloadLen   = 8
	rakpMaxUserNameLength = 16
)

// Session setup (IPMI v2.0 §13.17–13.31): Open Session, then RAKP 1/2 and
// RAKP 3/4. The BMC checks the user name in RAKP 1 and the password (the
// console's RAKP 3 code) before any key is derived.

// algorithmRequest is the proposal of one algorithm payload; wildcard
// means the console left the choice to the BMC (payload length 0).
type algorithmRequest struct {
	alg      uint8
	wildcard bool
}

// parseAlgorithms reads the three algorithm payloads of an Open Session
// Request (eight bytes each), which may come in any order.
func parseAlgorithms(b []byte) (auth, integ, conf algorithmRequest, ok bool) {
	var seen [3]bool
	for ; len(b) >= algorithmPayloadLen; b = b[algorithmPayloadLen:] {
		typ, n := b[0], b[3]
		if n != 0 && n != algorithmPayloadLen {
			return auth, integ, conf, false
		}
		r := algorithmRequest{alg: b[4] & 0x3f, wildcard: n == 0}
		switch typ {
		case algorithmPayloadAuth:
			auth = r
		case algorithmPayloadInteg:
			integ = r
		case algorithmPayloadConf:
			conf = r
		default:
			return auth, integ, conf, false
		}
		seen[typ] = true
	}
	return auth, integ, conf, len(b) == 0 && seen == [3]bool{true, true, true}
}

func (r algorithmRequest) matches(alg uint8) bool { return r.wildcard || r.alg == alg }

func (b *BMC) sendSetup(to netip.AddrPort, ptype uint8, payload []byte) {
	b.out = appendV2Header(b.out[:0], ptype, 0, 0, len(payload))
	b.out = append(b.out, payload...)
	b.send(to, b.out)
}

func (b *BMC) openSession(p []byte, from netip.AddrPort) {
	if len(p) < openSessionHeaderLen {
		b.drop(from, "open session", errShort)
		return
	}
	tag, reqPriv := p[0], p[1]&0x0f
	consoleID := binary.LittleEndian.Uint32(p[4:])
	fail := func(status uint8) {
		rsp := append([]byte{tag, status, 0, 0}, le32(consoleID)...)
		b.sendSetup(from, payloadOpenSessRsp, rsp)
		b.log.Info("open session refused", "from", from, "status", status)
	}
	auth, integ, conf, ok := parseAlgorithms(p[openSessionHeaderLen:])
	if !ok {
		fail(rakpIllegalParameter)
		return
	}
	var suite *cipherSuite
	for i := range cipherSuites {
		s := &cipherSuites[i]
		if auth.matches(s.auth) && integ.matches(s.integrity) && conf.matches(s.conf) {
			suite = s
			break
		}
	}
	if suite == nil {
		fail(rakpNoCipherSuiteMatch)
		return
	}
	if reqPriv == 0 { // "the highest level matching the proposed algorithms"
		reqPriv = privAdmin
	}
	if reqPriv > privAdmin {
		fail(rakpInvalidRole)
		return
	}

	now := time.Now()
	b.mu.Lock()
	// A retransmitted request gets the answer the first one got.
	var s *session
	for _, o := range b.sessions.byID {
		if o.state == stateOpened && o.remote == from && o.consoleID == consoleID && o.suite == suite {
			s = o
			break
		}
	}
	if s == nil {
		b.sessions.expire(now, b.sessionTimeout)
		if len(b.sessions.byID) >= maxSessions && !b.sessions.evictHalfOpen() {
			b.mu.Unlock()
			fail(rakpNoResources)
			return
		}
		s = &session{
			bmcID:     b.sessions.newID(),
			consoleID: consoleID,
			handle:    b.sessions.newHandle(),
			remote:    from,
			suite:     suite,
			state:     stateOpened,
			maxPriv:   reqPriv,
		}
		b.sessions.byID[s.bmcID] = s
		b.maxSessions = max(b.maxSessions, len(b.sessions.byID))
	}
	s.lastSeen = now
	b.mu.Unlock()

	rsp := []byte{tag, rakpOK, s.maxPriv, 0}
	rsp = binary.LittleEndian.AppendUint32(rsp, s.consoleID)
	rsp = binary.LittleEndian.AppendUint32(rsp, s.bmcID)
	rsp = append(rsp,
		algorithmPayloadAuth, 0, 0, 8, suite.auth, 0, 0, 0,
		algorithmPayloadInteg, 0, 0, 8, suite.integrity, 0, 0, 0,
		algorithmPayloadConf, 0, 0, 8, suite.conf, 0, 0, 0)
	b.sendSetup(from, payloadOpenSessRsp, rsp)
}

func (b *BMC) findUser(name string) *user {
	for i := range b.users {
		if b.users[i].name == name {
			return &b.users[i]
		}
	}
	return nil
}

// rakp1 checks the user name and answers with RAKP 2, whose code proves
// the BMC knows the user's password.
func (b *BMC) rakp1(p []byte, from netip.AddrPort) {
	if len(p) < 28 {
		b.drop(from, "rakp 1", errShort)
		return
	}
	tag := p[0]
	bmcID := binary.LittleEndian.Uint32(p[4:])
	var rm [16]byte
	copy(rm[:], p[8:24])
	role, nameLen := p[24], int(p[27])
	fail := func(consoleID uint32, status uint8) {
		b.sendSetup(from, payloadRAKP2, append([]byte{tag, status, 0, 0}, le32(consoleID)...))
	}

	now := time.Now()
	s := b.lookup(bmcID, now)
	if s == nil || s.state == stateActive {
		fail(0, rakpInvalidSessionID)
		return
	}
	b.touch(s, now)
	if s.state == stateRAKP2Sent && s.rakp.rm == rm && s.rakp2 != nil {
		b.sendSetup(from, payloadRAKP2, s.rakp2) // retransmitted RAKP 1
		return
	}
	if nameLen > rakpMaxUserNameLength || len(p) < 28+nameLen {
		b.refuse(s, from, "invalid name length")
		fail(s.consoleID, rakpInvalidNameLength)
		return
	}
	priv := role & 0x0f
	if priv == 0 || priv > privAdmin {
		b.refuse(s, from, "invalid role")
		fail(s.consoleID, rakpInvalidRole)
		return
	}
	if priv > s.maxPriv {
		b.refuse(s, from, "role above the session's maximum")
		fail(s.consoleID, rakpUnauthorizedRole)
		return
	}
	name := string(p[28 : 28+nameLen])
	u := b.findUser(name)
	if u == nil {
		b.refuse(s, from, "unknown user", "user", name)
		fail(s.consoleID, rakpUnauthorizedName)
		return
	}

	s.rakp = rakpParams{consoleID: s.consoleID, bmcID: s.bmcID, rm: rm, guid: b.guid, role: role, user: name}
	rand.Read(s.rakp.rc[:])
	s.maxPriv, s.userID = priv, u.id
	b.setState(s, stateRAKP2Sent)
	rsp := []byte{tag, rakpOK, 0, 0}
	rsp = binary.LittleEndian.AppendUint32(rsp, s.consoleID)
	rsp = append(rsp, s.rakp.rc[:]...)
	rsp = append(rsp, b.guid[:]...)
	rsp = append(rsp, s.suite.rakp2Code(u.kuid[:], &s.rakp)...)
	s.rakp2 = rsp
	b.sendSetup(from, payloadRAKP2, rsp)
}

// refuse forgets a session whose setup failed and counts the failure.
func (b *BMC) refuse(s *session, from netip.AddrPort, why string, attrs ...any) {
	b.forget(s)
	b.authFailures.Add(1)
	b.log.Info("session refused", append([]any{"from", from, "reason", why}, attrs...)...)
}

// rakp3 checks the console's proof of the password and, if it holds,
// derives the session keys and activates the session with RAKP 4.
func (b *BMC) rakp3(p []byte, from netip.AddrPort) {
	if len(p) < 8 {
		b.drop(from, "rakp 3", errShort)
		return
	}
	tag, status := p[0], p[1]
	bmcID := binary.LittleEndian.Uint32(p[4:])
	code := p[8:]
	fail := func(consoleID uint32, status uint8) {
		b.sendSetup(from, payloadRAKP4, append([]byte{tag, status, 0, 0}, le32(consoleID)...))
	}

	now := time.Now()
	s := b.lookup(bmcID, now)
	if s == nil || s.state == stateOpened {
		fail(0, rakpInvalidSessionID)
		return
	}
	u := b.findUser(s.rakp.user) // there since RAKP 1: users never change
	valid := status == rakpOK && hmac.Equal(code, s.suite.rakp3Code(u.kuid[:], &s.rakp))
	if s.state == stateActive {
		// A retransmitted RAKP 3 gets RAKP 4 again; anything else for a
		// live session is ignored, so it cannot be torn down from outside.
		if valid {
			b.sendSetup(from, payloadRAKP4, s.rakp4)
		}
		return
	}
	b.touch(s, now)
	if status != rakpOK {
		// The console refused our RAKP 2 (a console that checks it, as
		// ipmitool and go-ipmi do, gives up without RAKP 3 instead).
		b.refuse(s, from, "console rejected RAKP 2", "user", s.rakp.user, "status", status)
		return
	}
	if !valid {
		b.refuse(s, from, "wrong password", "user", s.rakp.user)
		fail(s.consoleID, rakpInvalidIntegrity)
		return
	}

	sik := s.suite.sik(u.kuid[:], &s.rakp)
	keys, err := newSessionKeys(s.suite, sik)
	if err != nil {
		b.log.Error("session keys", "err", err)
		b.forget(s)
		return
	}
	s.keys = keys
	b.setState(s, stateActive)
	s.priv = min(privUser, s.maxPriv) // RMCP+ sessions start at User level
	s.rakp2 = nil
	rsp := []byte{tag, rakpOK, 0, 0}
	rsp = binary.LittleEndian.AppendUint32(rsp, s.consoleID)
	rsp = append(rsp, s.suite.rakp4ICV(sik, &s.rakp)...)
	s.rakp4 = rsp
	b.sessionsOpened.Add(1)
	b.log.Debug("session opened", "from", from, "session", s.bmcID, "user", s.rakp.user, "suite", s.suite.id)
	b.sendSetup(from, payloadRAKP4, rsp)
}
