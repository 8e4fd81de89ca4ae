package vbmc

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	ipmicrypto "github.com/bougou/go-ipmi/pkg/crypto"
	"github.com/bougou/go-ipmi/pkg/types"
)

// console is a bare-bones remote console for the protocol paths real
// clients never take (a RAKP 3 with a wrong code, retransmissions, forged
// packets). Its cryptography is go-ipmi's, so it checks the BMC against an
// independent implementation.
type console struct {
	t    testing.TB
	conn *net.UDPConn

	consoleID, bmcID uint32
	rm, rc, guid     [16]byte
	role             uint8
	user             string
	k1, k2           []byte
	seq              uint32
	rqSeq            uint8
}

func dialConsole(t testing.TB, b *BMC) *console {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &console{t: t, conn: conn, consoleID: 0x0badcafe, role: 0x14}
}

// exchange sends pkt (after its RMCP header) and returns the answer after
// the RMCP header, or nil if none came within 300ms.
func (c *console) exchange(pkt []byte) []byte {
	c.t.Helper()
	if _, err := c.conn.Write(append([]byte{0x06, 0x00, 0xff, 0x07}, pkt...)); err != nil {
		c.t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	n, err := c.conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[4:n]
}

func setupPacket(ptype uint8, payload []byte) []byte {
	return append(appendV2Header(nil, ptype, 0, 0, len(payload))[4:], payload...)
}

// setup sends a session setup payload and returns the answer's payload.
func (c *console) setup(ptype uint8, payload []byte, wantType uint8) []byte {
	c.t.Helper()
	rsp := c.exchange(setupPacket(ptype, payload))
	if rsp == nil {
		c.t.Fatalf("no answer to payload type %#x", ptype)
	}
	p, err := parseV2(rsp)
	if err != nil || p.payloadType != wantType {
		c.t.Fatalf("answer to %#x: %+v, %v", ptype, p, err)
	}
	return p.payload
}

func openSessionPayload(consoleID uint32, auth, integ, conf uint8) []byte {
	p := []byte{0x07, 0x04, 0, 0}
	p = binary.LittleEndian.AppendUint32(p, consoleID)
	return append(p,
		0, 0, 0, 8, auth, 0, 0, 0,
		1, 0, 0, 8, integ, 0, 0, 0,
		2, 0, 0, 8, conf, 0, 0, 0)
}

// open runs Open Session with suite 17 and returns the status.
func (c *console) open() uint8 {
	rsp := c.setup(payloadOpenSession, openSessionPayload(c.consoleID, authRAKPHMACSHA256, integrityHMACSHA256_128, confAESCBC128), payloadOpenSessRsp)
	if rsp[1] == rakpOK {
		c.bmcID = binary.LittleEndian.Uint32(rsp[8:])
	}
	return rsp[1]
}

func (c *console) rakp1Payload() []byte {
	p := []byte{0x08, 0, 0, 0}
	p = binary.LittleEndian.AppendUint32(p, c.bmcID)
	p = append(p, c.rm[:]...)
	p = append(p, c.role, 0, 0, byte(len(c.user)))
	return append(p, c.user...)
}

// rakp1 sends RAKP 1 and returns RAKP 2's status, checking its code with
// password when it is OK.
func (c *console) rakp1(password string) uint8 {
	c.t.Helper()
	for i := range c.rm {
		c.rm[i] = byte(3 * i)
	}
	rsp := c.setup(payloadRAKP1, c.rakp1Payload(), payloadRAKP2)
	if rsp[1] != rakpOK {
		return rsp[1]
	}
	copy(c.rc[:], rsp[8:24])
	copy(c.guid[:], rsp[24:40])
	want, _ := ipmicrypto.RAKP2AuthCode(types.AuthAlg_HMAC_SHA256, c.consoleID, c.bmcID, c.rm[:], c.rc[:], c.guid[:], c.role, c.user, ipmicrypto.PadPassword20([]byte(password)))
	if !bytes.Equal(rsp[40:], want) {
		c.t.Fatalf("RAKP 2 code %x, want %x", rsp[40:], want)
	}
	return rakpOK
}

func (c *console) rakp3Payload(password string) []byte {
	kuid := ipmicrypto.PadPassword20([]byte(password))
	code, _ := ipmicrypto.RAKP3AuthCode(types.AuthAlg_HMAC_SHA256, c.rc[:], c.consoleID, c.role, c.user, kuid)
	p := []byte{0x09, 0, 0, 0}
	p = binary.LittleEndian.AppendUint32(p, c.bmcID)
	return append(p, code...)
}

// rakp3 sends RAKP 3 and returns RAKP 4's status, checking its check
// value and deriving the session keys when it is OK.
func (c *console) rakp3(password string) uint8 {
	c.t.Helper()
	rsp := c.setup(payloadRAKP3, c.rakp3Payload(password), payloadRAKP4)
	if rsp[1] != rakpOK {
		return rsp[1]
	}
	sik, k1, k2, _ := ipmicrypto.DeriveSessionKeys(types.AuthAlg_HMAC_SHA256, c.rm[:], c.rc[:], c.role, c.user, ipmicrypto.PadPassword20([]byte(password)))
	icv, _ := ipmicrypto.RAKP4ICV(types.AuthAlg_HMAC_SHA256, c.rm[:], c.bmcID, c.guid[:], sik)
	if !bytes.Equal(rsp[8:], icv) {
		c.t.Fatalf("RAKP 4 ICV %x, want %x", rsp[8:], icv)
	}
	c.k1, c.k2 = k1, k2
	return rakpOK
}

// request builds an authenticated, encrypted IPMI request packet.
func (c *console) request(netFn, cmd uint8, data ...byte) []byte {
	c.rqSeq = (c.rqSeq + 1) & 0x3f
	msg := []byte{0x20, netFn << 2}
	msg = append(msg, checksum(msg))
	msg = append(msg, 0x81, c.rqSeq<<2, cmd)
	msg = append(msg, data...)
	msg = append(msg, checksum(msg[3:]))
	iv := bytes.Repeat([]byte{byte(c.seq)}, 16)
	enc, err := ipmicrypto.EncryptAESPayload(msg, c.k2, iv)
	if err != nil {
		c.t.Fatal(err)
	}
	c.seq++
	pkt := appendV2Header(nil, payloadIPMI|payloadEncrypted|payloadAuthenticated, c.bmcID, c.seq, len(enc))[4:]
	pkt = append(pkt, enc...)
	pad := integrityPad(len(pkt))
	for range pad {
		pkt = append(pkt, 0xff)
	}
	pkt = append(pkt, byte(pad), nextHeader)
	code, _ := ipmicrypto.SessionIntegrityAuthCode(types.IntegrityAlg_HMAC_SHA256_128, pkt, c.k1, "")
	return append(pkt, code...)
}

// response checks and decrypts an answer and returns its completion code
// and data.
func (c *console) response(rsp []byte) (uint8, []byte) {
	c.t.Helper()
	if rsp == nil {
		c.t.Fatal("no answer")
	}
	p, err := parseV2(rsp)
	if err != nil || p.sessionID != c.consoleID || !p.authenticated || !p.encrypted {
		c.t.Fatalf("answer %+v, %v", p, err)
	}
	signed, code, err := p.checkTrailer(rsp, 16)
	if err != nil {
		c.t.Fatal(err)
	}
	want, _ := ipmicrypto.SessionIntegrityAuthCode(types.IntegrityAlg_HMAC_SHA256_128, signed, c.k1, "")
	if !bytes.Equal(code, want) {
		c.t.Fatalf("answer's integrity code %x, want %x", code, want)
	}
	msg, err := ipmicrypto.DecryptAESPayload(p.payload, c.k2)
	if err != nil {
		c.t.Fatal(err)
	}
	if checksum(msg[:3]) != 0 || checksum(msg[3:]) != 0 {
		c.t.Fatalf("answer's checksums: %x", msg)
	}
	return msg[6], msg[7 : len(msg)-1]
}

func (c *console) connect(user, password string) {
	c.t.Helper()
	c.user = user
	if st := c.open(); st != rakpOK {
		c.t.Fatalf("open session: status %#x", st)
	}
	if st := c.rakp1(password); st != rakpOK {
		c.t.Fatalf("RAKP 2: status %#x", st)
	}
	if st := c.rakp3(password); st != rakpOK {
		c.t.Fatalf("RAKP 4: status %#x", st)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	b := startBMC(t, NewFakeMachine())

	c := dialConsole(t, b)
	rsp := c.setup(payloadOpenSession, openSessionPayload(1, 0, 0, 0), payloadOpenSessRsp)
	if rsp[1] != rakpNoCipherSuiteMatch {
		t.Errorf("suite 0 proposal: status %#x, want %#x", rsp[1], rakpNoCipherSuiteMatch)
	}
	rsp = c.setup(payloadOpenSession, openSessionPayload(1, authRAKPHMACSHA1, integrityHMACSHA256_128, confAESCBC128), payloadOpenSessRsp)
	if rsp[1] != rakpNoCipherSuiteMatch {
		t.Errorf("mixed suite proposal: status %#x", rsp[1])
	}

	c.bmcID = 0x01020304
	c.user = testUser
	if st := c.rakp1(testPassword); st != rakpInvalidSessionID {
		t.Errorf("RAKP 1 for no session: status %#x", st)
	}

	c.open()
	c.user = "a-name-of-17-byte"
	if st := c.rakp1(testPassword); st != rakpInvalidNameLength {
		t.Errorf("17-byte name: status %#x", st)
	}

	c.open()
	c.user, c.role = testUser, 0x15 // OEM privilege
	if st := c.rakp1(testPassword); st != rakpInvalidRole {
		t.Errorf("OEM role: status %#x", st)
	}
	c.role = 0x14

	// A console that ignores a wrong RAKP 2 and proves a wrong password
	// gets RAKP 4 "invalid integrity check value", and the session is gone.
	c.open()
	c.user = testUser
	rsp = c.setup(payloadRAKP1, c.rakp1Payload(), payloadRAKP2)
	copy(c.rc[:], rsp[8:24])
	if got := c.setup(payloadRAKP3, c.rakp3Payload("guess"), payloadRAKP4); got[1] != rakpInvalidIntegrity {
		t.Errorf("RAKP 3 with a wrong password: status %#x, want %#x", got[1], rakpInvalidIntegrity)
	}
	if got := c.setup(payloadRAKP3, c.rakp3Payload(testPassword), payloadRAKP4); got[1] != rakpInvalidSessionID {
		t.Errorf("RAKP 3 after a refusal: status %#x, want the session gone", got[1])
	}
	if s := b.Stats(); s.Sessions != 0 || s.AuthFailures != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestSessionPackets(t *testing.T) {
	m := NewFakeMachine()
	b := startBMC(t, m)
	c := dialConsole(t, b)
	c.connect(testUser, testPassword)

	// A retransmitted RAKP 3 gets RAKP 4 again; a wrong one for the live
	// session is ignored.
	if rsp := c.setup(payloadRAKP3, c.rakp3Payload(testPassword), payloadRAKP4); rsp[1] != rakpOK {
		t.Errorf("retransmitted RAKP 3: status %#x", rsp[1])
	}
	if c.exchange(setupPacket(payloadRAKP3, c.rakp3Payload("guess"))) != nil {
		t.Error("a wrong RAKP 3 for a live session was answered")
	}

	// Sessions start at User level.
	if cc, _ := c.response(c.exchange(c.request(netFnChassis, cmdChassisControl, chassisPowerUp))); cc != ccInsufficientPriv {
		t.Errorf("power up at User level: cc %#x", cc)
	}
	if cc, data := c.response(c.exchange(c.request(netFnApp, cmdSetSessionPrivLevel, privAdmin))); cc != ccOK || data[0] != privAdmin {
		t.Fatalf("set privilege: cc %#x data %x", cc, data)
	}
	if cc, data := c.response(c.exchange(c.request(netFnApp, cmdSetSessionPrivLevel, privAdmin+1))); cc != ccPrivExceedsLimit {
		t.Errorf("set OEM privilege: cc %#x data %x", cc, data)
	}

	// A retransmission is answered but not carried out again.
	pkt := c.request(netFnChassis, cmdChassisControl, chassisPowerUp)
	if cc, _ := c.response(c.exchange(pkt)); cc != ccOK {
		t.Fatalf("power up: cc %#x", cc)
	}
	if cc, _ := c.response(c.exchange(pkt)); cc != ccOK {
		t.Fatalf("power up again: cc %#x", cc)
	}
	pkt = c.request(netFnChassis, cmdChassisControl, chassisPowerCycle)
	c.response(c.exchange(pkt))
	c.response(c.exchange(pkt))
	// ipmitool's way: the same message under a new session sequence number.
	c.rqSeq--
	if cc, _ := c.response(c.exchange(c.request(netFnChassis, cmdChassisControl, chassisPowerCycle))); cc != ccOK {
		t.Errorf("power cycle retried with a new session sequence number: cc %#x", cc)
	}
	if ops := m.Ops(); ops["on"] != 1 || ops["cycle"] != 1 {
		t.Errorf("retransmitted commands ran again: %v", ops)
	}
	// A new request (new requester sequence number) runs.
	if cc, _ := c.response(c.exchange(c.request(netFnChassis, cmdChassisControl, chassisPowerCycle))); cc != ccOK || m.Ops()["cycle"] != 2 {
		t.Errorf("second power cycle: cc %#x, ops %v", cc, m.Ops())
	}
	// Reads are never answered from the cache under a new sequence number.
	c.response(c.exchange(c.request(netFnChassis, cmdGetChassisStatus)))
	m.SetPower(false)
	c.rqSeq--
	if cc, data := c.response(c.exchange(c.request(netFnChassis, cmdGetChassisStatus))); cc != ccOK || data[0]&1 != 0 {
		t.Errorf("repeated chassis status: cc %#x data %x, want fresh (off)", cc, data)
	}
	m.SetPower(true)
	if cc, _ := c.response(c.exchange(c.request(netFnChassis, cmdChassisControl, 0x09))); cc != ccInvalidDataField {
		t.Errorf("chassis control 9: cc %#x", cc)
	}

	// Forged, stale or unprotected packets get no answer.
	forged := c.request(netFnChassis, cmdChassisControl, chassisPowerDown)
	forged[len(forged)-1] ^= 1
	if c.exchange(forged) != nil {
		t.Error("a packet with a bad integrity code was answered")
	}
	c.seq += 100
	if c.exchange(c.request(netFnChassis, cmdChassisControl, chassisPowerDown)) != nil {
		t.Error("a packet far ahead of the sequence window was answered")
	}
	c.seq -= 100
	plain := setupPacket(payloadIPMI, []byte{0x20, 0x00, 0xe0, 0x81, 0x04, 0x02, 0x00, 0x79})
	binary.LittleEndian.PutUint32(plain[2:], c.bmcID)
	if c.exchange(plain) != nil {
		t.Error("an unauthenticated packet inside a session was answered")
	}
	if on, _ := m.PowerState(t.Context()); !on {
		t.Error("a refused packet powered the machine off")
	}

	// Sessionless, only the pre-session commands are served.
	msg := []byte{0x20, netFnChassis << 2, 0, 0x81, 0x04, cmdChassisControl, chassisPowerDown, 0}
	msg[2], msg[7] = checksum(msg[:2]), checksum(msg[3:7])
	rsp := c.exchange(setupPacket(payloadIPMI, msg))
	if p, err := parseV2(rsp); err != nil || p.payload[6] != ccInsufficientPriv {
		t.Errorf("sessionless chassis control: %x, %v", rsp, err)
	}
	// The v1.5 form of Get Channel Authentication Capabilities.
	rsp = c.exchange(getChannelAuthCapsV15)
	if s, err := parseV15(rsp); err != nil || s.msg[6] != ccOK || s.msg[8]&0x80 == 0 || s.msg[10] != 0x02 {
		t.Errorf("v1.5 Get Channel Auth Caps: %x, %v", rsp, err)
	}

	// Close Session ends it: the next request gets no answer.
	if cc, _ := c.response(c.exchange(c.request(netFnApp, cmdCloseSession, binary.LittleEndian.AppendUint32(nil, c.bmcID)...))); cc != ccOK {
		t.Errorf("close session: cc %#x", cc)
	}
	if c.exchange(c.request(netFnChassis, cmdGetChassisStatus)) != nil {
		t.Error("a closed session answered")
	}
}

// TestSessionLimit checks the slots: half-open sessions give way to new
// ones, established ones do not.
func TestSessionLimit(t *testing.T) {
	b := startBMC(t, NewFakeMachine())
	for i := range maxSessions {
		c := dialConsole(t, b)
		c.consoleID = uint32(i + 1)
		c.connect(testUser, testPassword)
	}
	c := dialConsole(t, b)
	c.user = testUser
	if st := c.open(); st != rakpNoResources {
		t.Errorf("open session with every slot taken: status %#x", st)
	}
	if s := b.Stats(); s.Sessions != maxSessions || s.MaxSessions != maxSessions {
		t.Errorf("stats %+v", s)
	}
	b.ResetMaxSessions()
	b.SetDown(true)
	b.SetDown(false)
	if s := b.Stats(); s.Sessions != 0 || s.MaxSessions != maxSessions {
		t.Errorf("stats after an outage %+v", s)
	}
	for i := range maxSessions + 5 { // half-open: each evicts the oldest
		c := dialConsole(t, b)
		c.consoleID = uint32(i + 1)
		if st := c.open(); st != rakpOK {
			t.Fatalf("half-open session %d: status %#x", i, st)
		}
	}
	c.connect(testUser, testPassword)
}
