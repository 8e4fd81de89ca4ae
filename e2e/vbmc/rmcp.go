package vbmc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire formats: the RMCP header (DMTF ASF 2.0 §3.2.2), ASF presence
// ping/pong, the IPMI v1.5 session wrapper (IPMI v2.0 §13.6), the RMCP+
// session header and trailer (§13.6, §13.28) and the IPMI LAN message
// (§13.8). Decoders return slices into the datagram and never copy; encoders
// append to a caller's buffer so the packet loop reuses one.

const (
	rmcpVersion   = 0x06
	rmcpSeqNoAck  = 0xff // IPMI messages never ask for an RMCP ACK
	rmcpClassASF  = 0x06
	rmcpClassIPMI = 0x07

	asfIANA     = 4542
	asfTypePing = 0x80
	asfTypePong = 0x40

	authTypeNone     = 0x00
	authTypeRMCPPlus = 0x06

	// Payload types (table 13-16).
	payloadIPMI        = 0x00
	payloadOEM         = 0x02
	payloadOpenSession = 0x10
	payloadOpenSessRsp = 0x11
	payloadRAKP1       = 0x12
	payloadRAKP2       = 0x13
	payloadRAKP3       = 0x14
	payloadRAKP4       = 0x15

	payloadEncrypted     = 0x80
	payloadAuthenticated = 0x40

	// nextHeader is the fixed "next header" byte of an RMCP+ trailer.
	nextHeader = 0x07

	bmcSlaveAddr = 0x20 // the BMC's IPMB address, rsAddr of every request
)

var errShort = errors.New("packet too short")

// rmcpHeader is the four bytes in front of every datagram.
type rmcpHeader struct {
	seq   uint8
	class uint8
}

func parseRMCP(b []byte) (rmcpHeader, []byte, error) {
	if len(b) < 4 {
		return rmcpHeader{}, nil, errShort
	}
	if b[0] != rmcpVersion {
		return rmcpHeader{}, nil, fmt.Errorf("rmcp version %#x", b[0])
	}
	// Bit 7 of the class marks an RMCP ACK, which carries no message.
	return rmcpHeader{seq: b[2], class: b[3]}, b[4:], nil
}

func appendRMCP(dst []byte, class uint8) []byte {
	return append(dst, rmcpVersion, 0x00, rmcpSeqNoAck, class)
}

// asfMessage is an ASF message (ASF 2.0 §3.2.4): ping and pong are all we
// speak.
type asfMessage struct {
	typ uint8
	tag uint8
}

func parseASF(b []byte) (asfMessage, error) {
	if len(b) < 8 {
		return asfMessage{}, errShort
	}
	if binary.BigEndian.Uint32(b) != asfIANA {
		return asfMessage{}, fmt.Errorf("asf enterprise %d", binary.BigEndian.Uint32(b))
	}
	return asfMessage{typ: b[4], tag: b[5]}, nil
}

// appendPong answers a presence ping: IPMI is supported, as is ASF 1.0.
func appendPong(dst []byte, tag uint8) []byte {
	dst = appendRMCP(dst, rmcpClassASF)
	dst = binary.BigEndian.AppendUint32(dst, asfIANA)
	dst = append(dst, asfTypePong, tag, 0x00, 16)
	dst = binary.BigEndian.AppendUint32(dst, asfIANA) // IANA of the OEM fields: none
	dst = binary.BigEndian.AppendUint32(dst, 0)       // OEM defined
	dst = append(dst, 0x81, 0x00)                     // supported entities: IPMI, ASF 1.0; interactions: none
	return append(dst, make([]byte, 6)...)
}

// v15Session is an IPMI v1.5 session wrapper. Only its unauthenticated,
// sessionless form is served: ipmitool sends Get Channel Authentication
// Capabilities that way before it opens an RMCP+ session.
type v15Session struct {
	authType  uint8
	seq       uint32
	sessionID uint32
	msg       []byte
}

func parseV15(b []byte) (v15Session, error) {
	if len(b) < 10 {
		return v15Session{}, errShort
	}
	s := v15Session{
		authType:  b[0],
		seq:       binary.LittleEndian.Uint32(b[1:]),
		sessionID: binary.LittleEndian.Uint32(b[5:]),
	}
	b = b[9:]
	if s.authType != authTypeNone {
		if len(b) < 17 {
			return v15Session{}, errShort
		}
		b = b[16:] // AuthCode
	}
	n := int(b[0])
	if len(b) < 1+n {
		return v15Session{}, errShort
	}
	s.msg = b[1 : 1+n]
	return s, nil
}

// appendV15 wraps msg in a sessionless IPMI v1.5 header.
func appendV15(dst, msg []byte) []byte {
	dst = appendRMCP(dst, rmcpClassIPMI)
	dst = append(dst, authTypeNone, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(msg)))
	return append(dst, msg...)
}

// v2Session is a parsed RMCP+ packet. signed covers the bytes the
// integrity check value protects (AuthType through Next Header) and
// authCode the check value itself; both are set only when the packet is
// authenticated, after splitTrailer learned the session's code length.
type v2Session struct {
	payloadType   uint8 // bits 5:0
	encrypted     bool
	authenticated bool
	sessionID     uint32
	seq           uint32
	payload       []byte
	trailer       []byte // everything after the payload
	header        []byte // AuthType through payload length
}

func parseV2(b []byte) (v2Session, error) {
	if len(b) < 12 {
		return v2Session{}, errShort
	}
	s := v2Session{
		payloadType:   b[1] & 0x3f,
		encrypted:     b[1]&payloadEncrypted != 0,
		authenticated: b[1]&payloadAuthenticated != 0,
	}
	off := 2
	if s.payloadType == payloadOEM {
		off += 6 // OEM IANA and payload ID
		if len(b) < off+10 {
			return v2Session{}, errShort
		}
	}
	s.sessionID = binary.LittleEndian.Uint32(b[off:])
	s.seq = binary.LittleEndian.Uint32(b[off+4:])
	n := int(binary.LittleEndian.Uint16(b[off+8:]))
	off += 10
	if len(b) < off+n {
		return v2Session{}, errShort
	}
	s.header = b[:off]
	s.payload = b[off : off+n]
	s.trailer = b[off+n:]
	return s, nil
}

// checkTrailer verifies an authenticated packet's trailer layout and
// returns the bytes under the integrity code (start is the whole packet
// after the RMCP header) and the code.
func (s *v2Session) checkTrailer(pkt []byte, codeLen int) (signed, code []byte, err error) {
	t := s.trailer
	if len(t) < 2+codeLen {
		return nil, nil, errShort
	}
	body := t[:len(t)-codeLen]
	if body[len(body)-1] != nextHeader {
		return nil, nil, fmt.Errorf("next header %#x", body[len(body)-1])
	}
	padLen := int(body[len(body)-2])
	if padLen != len(body)-2 {
		return nil, nil, fmt.Errorf("integrity pad length %d, have %d bytes", padLen, len(body)-2)
	}
	return pkt[:len(pkt)-codeLen], t[len(t)-codeLen:], nil
}

// appendV2Header appends the RMCP header and the RMCP+ session header of a
// packet whose payload is n bytes long.
func appendV2Header(dst []byte, ptype uint8, sessionID, seq uint32, n int) []byte {
	dst = appendRMCP(dst, rmcpClassIPMI)
	dst = append(dst, authTypeRMCPPlus, ptype)
	dst = binary.LittleEndian.AppendUint32(dst, sessionID)
	dst = binary.LittleEndian.AppendUint32(dst, seq)
	return binary.LittleEndian.AppendUint16(dst, uint16(n))
}

// integrityPad is how many 0xFF bytes make the signed part of a packet
// (from AuthType, through the pad length and next header bytes) a
// multiple of four, as §13.28.4 requires.
func integrityPad(signedLen int) int {
	return (4 - (signedLen+2)%4) % 4
}

// ipmiRequest is an IPMI LAN request message (§13.8).
type ipmiRequest struct {
	rsAddr uint8
	netFn  uint8
	rsLUN  uint8
	rqAddr uint8
	rqSeq  uint8
	rqLUN  uint8
	cmd    uint8
	data   []byte
}

func checksum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return -s
}

func parseIPMIRequest(b []byte) (ipmiRequest, error) {
	if len(b) < 7 {
		return ipmiRequest{}, errShort
	}
	if checksum(b[:2]) != b[2] {
		return ipmiRequest{}, errors.New("bad header checksum")
	}
	if checksum(b[3:len(b)-1]) != b[len(b)-1] {
		return ipmiRequest{}, errors.New("bad data checksum")
	}
	return ipmiRequest{
		rsAddr: b[0],
		netFn:  b[1] >> 2,
		rsLUN:  b[1] & 3,
		rqAddr: b[3],
		rqSeq:  b[4] >> 2,
		rqLUN:  b[4] & 3,
		cmd:    b[5],
		data:   b[6 : len(b)-1],
	}, nil
}

// appendIPMIResponse appends the response message to req with completion
// code cc and data.
func appendIPMIResponse(dst []byte, req *ipmiRequest, cc uint8, data []byte) []byte {
	start := len(dst)
	dst = append(dst, req.rqAddr, (req.netFn|1)<<2|req.rqLUN)
	dst = append(dst, checksum(dst[start:]))
	body := len(dst)
	dst = append(dst, req.rsAddr, req.rqSeq<<2|req.rsLUN, req.cmd, cc)
	dst = append(dst, data...)
	return append(dst, checksum(dst[body:]))
}
