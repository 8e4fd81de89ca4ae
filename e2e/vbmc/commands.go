package vbmc

import (
	"context"
	"encoding/binary"
	"slices"
)

// Network functions and commands served (IPMI v2.0 appendix G).
const (
	netFnChassis = 0x00
	netFnApp     = 0x06

	// App.
	cmdGetDeviceID            = 0x01
	cmdGetSystemGUID          = 0x37
	cmdGetChannelAuthCaps     = 0x38
	cmdSetSessionPrivLevel    = 0x3b
	cmdCloseSession           = 0x3c
	cmdGetSessionInfo         = 0x3d
	cmdGetChannelCipherSuites = 0x54

	// Chassis.
	cmdGetChassisStatus     = 0x01
	cmdChassisControl       = 0x02
	cmdSetSystemBootOptions = 0x08
	cmdGetSystemBootOptions = 0x09
)

const (
	lanChannel  = 0x01 // the one channel: LAN
	thisChannel = 0x0e // "the channel this request came in on"
	// cipherSuiteChunk is how many record bytes one Get Channel Cipher
	// Suites response carries (§22.15).
	cipherSuiteChunk = 16
)

// Completion codes (table 5-2).
const (
	ccOK                  = 0x00
	ccParamNotSupported   = 0x80 // Get/Set System Boot Options
	ccPrivExceedsLimit    = 0x81 // Set Session Privilege Level
	ccInvalidSessionID    = 0x87 // Close Session
	ccInvalidSessionHdl   = 0x88
	ccInvalidCommand      = 0xc1
	ccReqDataLenInvalid   = 0xc7
	ccInvalidDataField    = 0xcc
	ccInsufficientPriv    = 0xd4
	ccNotInPresentState   = 0xd5
	ccSubFunctionDisabled = 0xd6
	ccUnspecified         = 0xff
)

// respond carries out req and appends the response message to dst. s is
// nil outside a session, where only the commands a console needs before
// it has one are served.
func (b *BMC) respond(ctx context.Context, s *session, req *ipmiRequest, dst []byte) []byte {
	cc, data := b.dispatch(ctx, s, req)
	if b.debug() {
		attrs := []any{"netfn", req.netFn, "cmd", req.cmd, "cc", cc}
		if s != nil {
			attrs = append(attrs, "session", s.bmcID, "user", s.rakp.user)
		}
		b.log.Debug("command", attrs...)
	}
	if cc != ccOK {
		data = nil
	}
	return appendIPMIResponse(dst, req, cc, data)
}

// command is one entry of the command table: the privilege it needs and
// whether it may run outside a session.
type command struct {
	priv        uint8
	sessionless bool
	run         func(b *BMC, ctx context.Context, s *session, data []byte) (uint8, []byte)
}

func lookupCommand(netFn, cmd uint8) (command, bool) {
	switch uint16(netFn)<<8 | uint16(cmd) {
	case netFnApp<<8 | cmdGetDeviceID:
		return command{priv: privUser, run: (*BMC).getDeviceID}, true
	case netFnApp<<8 | cmdGetSystemGUID:
		return command{priv: privUser, sessionless: true, run: (*BMC).getSystemGUID}, true
	case netFnApp<<8 | cmdGetChannelAuthCaps:
		return command{priv: privCallback, sessionless: true, run: (*BMC).getChannelAuthCaps}, true
	case netFnApp<<8 | cmdGetChannelCipherSuites:
		return command{priv: privCallback, sessionless: true, run: (*BMC).getChannelCipherSuites}, true
	case netFnApp<<8 | cmdSetSessionPrivLevel:
		return command{priv: privUser, run: (*BMC).setSessionPrivLevel}, true
	case netFnApp<<8 | cmdCloseSession:
		return command{priv: privCallback, run: (*BMC).closeSession}, true
	case netFnApp<<8 | cmdGetSessionInfo:
		return command{priv: privUser, run: (*BMC).getSessionInfo}, true
	case netFnChassis<<8 | cmdGetChassisStatus:
		return command{priv: privUser, run: (*BMC).getChassisStatus}, true
	case netFnChassis<<8 | cmdChassisControl:
		return command{priv: privOperator, run: (*BMC).chassisControl}, true
	case netFnChassis<<8 | cmdSetSystemBootOptions:
		return command{priv: privOperator, run: (*BMC).setSystemBootOptions}, true
	case netFnChassis<<8 | cmdGetSystemBootOptions:
		return command{priv: privOperator, run: (*BMC).getSystemBootOptions}, true
	}
	return command{}, false
}

func (b *BMC) dispatch(ctx context.Context, s *session, req *ipmiRequest) (uint8, []byte) {
	if req.rsAddr != bmcSlaveAddr || req.rsLUN != 0 {
		return ccInvalidCommand, nil // nothing sits behind the BMC to bridge to
	}
	c, ok := lookupCommand(req.netFn, req.cmd)
	if !ok {
		return ccInvalidCommand, nil
	}
	if s == nil && !c.sessionless {
		return ccInsufficientPriv, nil
	}
	if s != nil && s.priv < c.priv {
		return ccInsufficientPriv, nil
	}
	b.data = b.data[:0]
	return c.run(b, ctx, s, req.data)
}

func (b *BMC) getDeviceID(_ context.Context, _ *session, _ []byte) (uint8, []byte) {
	d := append(b.data,
		0x20,    // device ID
		0x01,    // device revision 1, no device SDRs
		0x01,    // firmware 1 (bit 7 clear: normal operation)
		0x00,    // firmware .00 (BCD)
		0x02,    // IPMI 2.0
		0x80,    // additional device support: chassis device
		0, 0, 0, // manufacturer ID: none (IANA 0)
		0x01, 0x00, // product ID
		0, 0, 0, 0, // auxiliary firmware revision
	)
	return ccOK, d
}

func (b *BMC) getSystemGUID(_ context.Context, _ *session, _ []byte) (uint8, []byte) {
	return ccOK, append(b.data, b.guid[:]...)
}

// getChannelAuthCaps answers both the IPMI v1.5 form and the v2.0 form
// (bit 7 of the channel byte) that ipmitool and go-ipmi send first.
func (b *BMC) getChannelAuthCaps(_ context.Context, _ *session, data []byte) (uint8, []byte) {
	if len(data) != 2 {
		return ccReqDataLenInvalid, nil
	}
	if ch := data[0] & 0x0f; ch != thisChannel && ch != lanChannel {
		return ccInvalidDataField, nil
	}
	if p := data[1] & 0x0f; p == 0 || p > privAdmin+1 {
		return ccInvalidDataField, nil
	}
	v2 := data[0]&0x80 != 0
	authTypes, ext := uint8(0), uint8(0)
	if v2 {
		authTypes, ext = 0x80, 0x02 // extended data present; IPMI v2.0 connections supported
	}
	// Byte 3: per-message and user-level authentication enabled, non-null
	// user names only (no anonymous login), Kg is the default (zeros).
	return ccOK, append(b.data, lanChannel, authTypes, 0x04, ext, 0, 0, 0, 0)
}

func (b *BMC) getChannelCipherSuites(_ context.Context, _ *session, data []byte) (uint8, []byte) {
	if len(data) != 3 {
		return ccReqDataLenInvalid, nil
	}
	if ch := data[0] & 0x0f; ch != thisChannel && ch != lanChannel {
		return ccInvalidDataField, nil
	}
	list := suiteAlgorithms()
	if data[2]&0x80 != 0 {
		list = suiteRecords()
	}
	start := int(data[2]&0x3f) * cipherSuiteChunk
	d := append(b.data, lanChannel)
	if start < len(list) {
		d = append(d, list[start:min(len(list), start+cipherSuiteChunk)]...)
	}
	return ccOK, d
}

func (b *BMC) setSessionPrivLevel(_ context.Context, s *session, data []byte) (uint8, []byte) {
	if len(data) != 1 {
		return ccReqDataLenInvalid, nil
	}
	switch p := data[0] & 0x0f; {
	case p == 0: // report the present level
	case p < privUser || p > privAdmin+1:
		return ccInvalidDataField, nil
	case p > s.maxPriv:
		return ccPrivExceedsLimit, nil
	default:
		s.priv = p
	}
	return ccOK, append(b.data, s.priv)
}

// closesSelf reports whether Close Session request data names s itself,
// by session ID or (ID 0) by handle.
func closesSelf(s *session, data []byte) bool {
	if len(data) < 4 {
		return false
	}
	id := binary.LittleEndian.Uint32(data)
	return id == s.bmcID || (id == 0 && len(data) > 4 && data[4] == s.handle)
}

// closeSession closes the named session. The caller's own session is
// forgotten only after the response went out under its keys.
func (b *BMC) closeSession(_ context.Context, s *session, data []byte) (uint8, []byte) {
	if len(data) != 4 && len(data) != 5 {
		return ccReqDataLenInvalid, nil
	}
	if closesSelf(s, data) {
		return ccOK, nil
	}
	if s.priv < privAdmin {
		return ccInsufficientPriv, nil
	}
	id := binary.LittleEndian.Uint32(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range b.sessions.byID {
		if (id != 0 && o.bmcID == id) || (id == 0 && len(data) == 5 && o.handle == data[4]) {
			delete(b.sessions.byID, o.bmcID)
			b.log.Debug("session closed by another", "session", o.bmcID)
			return ccOK, nil
		}
	}
	if id == 0 {
		return ccInvalidSessionHdl, nil
	}
	return ccInvalidSessionID, nil
}

// getSessionInfo serves go-ipmi's keepalive and `ipmitool session info`.
func (b *BMC) getSessionInfo(_ context.Context, s *session, data []byte) (uint8, []byte) {
	if len(data) < 1 {
		return ccReqDataLenInvalid, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	active := make([]*session, 0, len(b.sessions.byID))
	for _, o := range b.sessions.byID {
		if o.state == stateActive {
			active = append(active, o)
		}
	}
	var target *session
	switch idx := data[0]; {
	case idx == 0:
		target = s
	case idx == 0xff:
		if len(data) != 5 {
			return ccReqDataLenInvalid, nil
		}
		target = b.sessions.byID[binary.LittleEndian.Uint32(data[1:])]
		if target == nil || target.state != stateActive {
			return ccInvalidDataField, nil
		}
	case idx == 0xfe:
		if len(data) != 2 {
			return ccReqDataLenInvalid, nil
		}
		for _, o := range active {
			if o.handle == data[1] {
				target = o
			}
		}
		if target == nil {
			return ccInvalidDataField, nil
		}
	default:
		// The nth active session, in handle order.
		slices.SortFunc(active, func(a, b *session) int { return int(a.handle) - int(b.handle) })
		if int(idx) <= len(active) {
			target = active[idx-1]
		}
	}
	d := append(b.data, 0, maxSessions, uint8(len(active)))
	if target == nil {
		return ccOK, d
	}
	d[0] = target.handle
	d = append(d, target.userID, target.priv, 0x10|lanChannel) // aux 1: IPMI v2.0/RMCP+
	ip := target.remote.Addr().Unmap()
	if ip.Is4() {
		a := ip.As4()
		d = append(d, a[:]...)
	} else {
		d = append(d, 0, 0, 0, 0)
	}
	d = append(d, 0, 0, 0, 0, 0, 0) // remote console MAC: unknown over UDP
	return ccOK, binary.LittleEndian.AppendUint16(d, target.remote.Port())
}

// machineCtx bounds one call into the Machine.
func (b *BMC) machineCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.commandTimeout)
}

func (b *BMC) machineErr(op string, err error) uint8 {
	b.log.Error("machine", "op", op, "err", err)
	return ccUnspecified
}
