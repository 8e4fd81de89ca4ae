package vbmc

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"
)

// IPMI privilege levels (table 6-3).
const (
	privCallback = 0x01
	privUser     = 0x02
	privOperator = 0x03
	privAdmin    = 0x04
)

const (
	// maxSessions bounds the sessions (established or still in RAKP) one
	// BMC holds; past it Open Session answers "insufficient resources",
	// as a real BMC with its handful of slots does.
	maxSessions = 32
	// setupTimeout is how long a session may sit between Open Session and
	// RAKP 3. A console that finds RAKP 2 wrong (a wrong password) just
	// goes away, and its half-open session should not hold a slot for a
	// whole idle timeout.
	setupTimeout = 10 * time.Second
	// seqWindow is how far an inbound sequence number may stray from the
	// highest seen (§6.12.13 asks for at least 8 behind; 32 is lenient).
	seqWindow = 32
)

type sessionState uint8

const (
	stateOpened    sessionState = iota // Open Session answered, waiting for RAKP 1
	stateRAKP2Sent                     // waiting for RAKP 3
	stateActive                        // RAKP 4 sent: IPMI messages flow
)

// session is one RMCP+ session. Only the packet loop uses one, except
// that Stats reads state and lastSeen: those the loop writes under the
// BMC's lock, which also guards the table that holds the sessions.
type session struct {
	bmcID     uint32
	consoleID uint32
	handle    uint8
	remote    netip.AddrPort
	suite     *cipherSuite
	state     sessionState
	lastSeen  time.Time

	maxPriv uint8 // granted in RAKP: the most Set Session Privilege Level may ask
	priv    uint8 // operating level
	userID  uint8

	rakp rakpParams
	keys *sessionKeys

	inSeq  uint32 // highest inbound sequence number seen
	outSeq uint32

	// Cached answers, so a retransmitted request is answered again rather
	// than acted on twice (a retried "power cycle" must not cycle twice).
	rakp2, rakp4 []byte
	lastReq      []byte // last IPMI request message of the session
	lastRsp      []byte // the response message sent to it
	lastSeq      uint32 // its session sequence number
	lastAt       time.Time
}

// acceptSeq applies the sliding window of §6.12.13 loosely: zero and
// numbers far from the highest seen are refused; repeats are let through
// because the duplicate cache answers them.
func (s *session) acceptSeq(seq uint32) bool {
	if seq == 0 {
		return false
	}
	if seq > s.inSeq {
		if seq-s.inSeq > seqWindow && s.inSeq != 0 {
			return false
		}
		s.inSeq = seq
		return true
	}
	return s.inSeq-seq <= seqWindow
}

// retryWindow is how long after a Chassis Control an identical one
// (same requester sequence number, same data) counts as a retry.
const retryWindow = 10 * time.Second

// isRetry reports whether an IPMI request is a retransmission of the
// session's last one, to be answered from the cache. go-ipmi resends the
// very same packet (same session sequence number); ipmitool rebuilds it
// with the same requester sequence number but a new session sequence
// number. Only Chassis Control is matched the second way: re-running any
// other command is harmless, and a client that never changes its
// requester sequence number should still see fresh answers.
func (s *session) isRetry(seq uint32, msg []byte, now time.Time) bool {
	if s.lastRsp == nil || !bytes.Equal(msg, s.lastReq) {
		return false
	}
	if seq == s.lastSeq {
		return true
	}
	return len(msg) > 5 && msg[1]>>2 == netFnChassis && msg[5] == cmdChassisControl && now.Sub(s.lastAt) < retryWindow
}

func (s *session) remember(seq uint32, req, rsp []byte, now time.Time) {
	s.lastReq = append(s.lastReq[:0], req...)
	s.lastRsp = append(s.lastRsp[:0], rsp...)
	s.lastSeq, s.lastAt = seq, now
}

func (s *session) nextOutSeq() uint32 {
	s.outSeq++
	if s.outSeq == 0 {
		s.outSeq = 1
	}
	return s.outSeq
}

// sessionTable holds a BMC's sessions by the BMC-side session ID.
type sessionTable struct {
	byID       map[uint32]*session
	nextHandle uint8
}

func (t *sessionTable) newID() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		id := binary.LittleEndian.Uint32(b[:])
		if _, taken := t.byID[id]; id != 0 && !taken {
			return id
		}
	}
}

func (t *sessionTable) newHandle() uint8 {
	for {
		t.nextHandle++
		if t.nextHandle == 0 {
			continue
		}
		taken := false
		for _, s := range t.byID {
			if s.handle == t.nextHandle {
				taken = true
				break
			}
		}
		if !taken {
			return t.nextHandle
		}
	}
}

// expired reports whether s has idled out: established sessions after
// timeout, half-open ones after setupTimeout (or timeout if shorter).
func (s *session) expired(now time.Time, timeout time.Duration) bool {
	if s.state != stateActive {
		timeout = min(timeout, setupTimeout)
	}
	return now.Sub(s.lastSeen) > timeout
}

// expire forgets the sessions that idled out.
func (t *sessionTable) expire(now time.Time, timeout time.Duration) {
	for id, s := range t.byID {
		if s.expired(now, timeout) {
			delete(t.byID, id)
		}
	}
}

// evictHalfOpen forgets the half-open session idle longest, to make room
// for a new one; it reports whether there was one.
func (t *sessionTable) evictHalfOpen() bool {
	var oldest *session
	for _, s := range t.byID {
		if s.state != stateActive && (oldest == nil || s.lastSeen.Before(oldest.lastSeen)) {
			oldest = s
		}
	}
	if oldest == nil {
		return false
	}
	delete(t.byID, oldest.bmcID)
	return true
}
