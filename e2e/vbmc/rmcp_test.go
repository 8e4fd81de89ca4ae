package vbmc

import (
	"bytes"
	"testing"
)

func TestParseRMCP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		class   uint8
		rest    int
		wantErr bool
	}{
		{name: "ipmi", in: []byte{0x06, 0x00, 0xff, 0x07, 0x06}, class: rmcpClassIPMI, rest: 1},
		{name: "asf", in: []byte{0x06, 0x00, 0xff, 0x06}, class: rmcpClassASF},
		{name: "short", in: []byte{0x06, 0x00, 0xff}, wantErr: true},
		{name: "version", in: []byte{0x05, 0x00, 0xff, 0x07}, wantErr: true},
	} {
		h, rest, err := parseRMCP(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if err == nil && (h.class != tc.class || len(rest) != tc.rest) {
			t.Errorf("%s: class %#x rest %d", tc.name, h.class, len(rest))
		}
	}
}

func TestASFPong(t *testing.T) {
	ping := []byte{0x00, 0x00, 0x11, 0xbe, asfTypePing, 0x42, 0x00, 0x00}
	m, err := parseASF(ping)
	if err != nil || m.typ != asfTypePing || m.tag != 0x42 {
		t.Fatalf("ping: %+v, %v", m, err)
	}
	pong := appendPong(nil, m.tag)
	want := []byte{
		0x06, 0x00, 0xff, 0x06, // RMCP, ASF class
		0x00, 0x00, 0x11, 0xbe, asfTypePong, 0x42, 0x00, 0x10, // IANA 4542, pong, tag, length 16
		0x00, 0x00, 0x11, 0xbe, 0, 0, 0, 0, 0x81, 0x00, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(pong, want) {
		t.Errorf("pong = %x\nwant   %x", pong, want)
	}
	if _, err := parseASF([]byte{0, 0, 0, 1, asfTypePing, 0, 0, 0}); err == nil {
		t.Error("accepted a foreign enterprise number")
	}
}

// getChannelAuthCapsV15 is ipmitool's first packet to a lanplus BMC, as it
// sends it (minus the RMCP header).
var getChannelAuthCapsV15 = []byte{
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // auth none, seq 0, session 0
	0x09,                         // message length
	0x20, 0x18, 0xc8, 0x81, 0x00, // rsAddr, netFn App, chk, rqAddr, rqSeq 0
	0x38, 0x8e, 0x04, 0xb5, // Get Channel Auth Caps, channel E + v2 bit, admin, chk
}

func TestParseV15AndRequest(t *testing.T) {
	s, err := parseV15(getChannelAuthCapsV15)
	if err != nil {
		t.Fatal(err)
	}
	req, err := parseIPMIRequest(s.msg)
	if err != nil {
		t.Fatal(err)
	}
	if req.netFn != netFnApp || req.cmd != cmdGetChannelAuthCaps || !bytes.Equal(req.data, []byte{0x8e, 0x04}) || req.rqAddr != 0x81 {
		t.Errorf("request %+v", req)
	}
	bad := bytes.Clone(s.msg)
	bad[len(bad)-1]++
	if _, err := parseIPMIRequest(bad); err == nil {
		t.Error("accepted a bad data checksum")
	}
	bad = bytes.Clone(s.msg)
	bad[2]++
	if _, err := parseIPMIRequest(bad); err == nil {
		t.Error("accepted a bad header checksum")
	}
	if _, err := parseV15(getChannelAuthCapsV15[:12]); err == nil {
		t.Error("accepted a truncated message")
	}
}

func TestAppendIPMIResponse(t *testing.T) {
	req := ipmiRequest{rsAddr: 0x20, netFn: netFnChassis, rqAddr: 0x81, rqSeq: 5, rqLUN: 0, cmd: cmdGetChassisStatus}
	got := appendIPMIResponse(nil, &req, ccOK, []byte{0x01, 0x10, 0x00, 0x00})
	want := []byte{0x81, 0x04, 0x7b, 0x20, 0x14, 0x01, 0x00, 0x01, 0x10, 0x00, 0x00}
	want = append(want, checksum(want[3:]))
	if !bytes.Equal(got, want) {
		t.Errorf("response = %x, want %x", got, want)
	}
	if checksum(got[:3]) != 0 || checksum(got[3:]) != 0 {
		t.Error("checksums do not sum to zero")
	}
}

func TestParseV2(t *testing.T) {
	payload := []byte{1, 2, 3, 4, 5}
	pkt := appendV2Header(nil, payloadIPMI|payloadAuthenticated, 0xdeadbeef, 7, len(payload))[4:]
	pkt = append(pkt, payload...)
	signedLen := len(pkt)
	pad := integrityPad(signedLen)
	for range pad {
		pkt = append(pkt, 0xff)
	}
	pkt = append(pkt, byte(pad), nextHeader)
	if (len(pkt))%4 != 0 {
		t.Fatalf("signed part %d bytes, not a multiple of 4", len(pkt))
	}
	pkt = append(pkt, bytes.Repeat([]byte{0xaa}, 12)...)

	p, err := parseV2(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if p.payloadType != payloadIPMI || !p.authenticated || p.encrypted || p.sessionID != 0xdeadbeef || p.seq != 7 || !bytes.Equal(p.payload, payload) {
		t.Errorf("parsed %+v", p)
	}
	signed, code, err := p.checkTrailer(pkt, 12)
	if err != nil {
		t.Fatal(err)
	}
	if len(signed) != len(pkt)-12 || !bytes.Equal(code, bytes.Repeat([]byte{0xaa}, 12)) {
		t.Errorf("signed %d bytes, code %x", len(signed), code)
	}
	if _, _, err := p.checkTrailer(pkt, 16); err == nil {
		t.Error("accepted a trailer read with the wrong code length")
	}
	if _, err := parseV2(pkt[:14]); err == nil {
		t.Error("accepted a truncated payload")
	}
	// An OEM payload carries six more header bytes.
	oem := []byte{authTypeRMCPPlus, payloadOEM, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0}
	if p, err := parseV2(oem); err != nil || p.sessionID != 1 || p.seq != 2 || len(p.payload) != 0 {
		t.Errorf("oem: %+v, %v", p, err)
	}
}

func TestIntegrityPad(t *testing.T) {
	for n := range 12 {
		if got := integrityPad(n); (n+got+2)%4 != 0 || got > 3 {
			t.Errorf("integrityPad(%d) = %d", n, got)
		}
	}
}

func TestParseAlgorithms(t *testing.T) {
	full := func(typ, alg uint8) []byte { return []byte{typ, 0, 0, 8, alg, 0, 0, 0} }
	wild := func(typ uint8) []byte { return []byte{typ, 0, 0, 0, 0, 0, 0, 0} }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tc := range []struct {
		name       string
		in         []byte
		ok         bool
		auth, conf algorithmRequest
	}{
		{"suite 17", cat(full(0, 3), full(1, 4), full(2, 1)), true, algorithmRequest{alg: 3}, algorithmRequest{alg: 1}},
		{"any order", cat(full(2, 1), full(0, 1), full(1, 1)), true, algorithmRequest{alg: 1}, algorithmRequest{alg: 1}},
		{"wildcards", cat(wild(0), full(1, 1), wild(2)), true, algorithmRequest{wildcard: true}, algorithmRequest{wildcard: true}},
		{"trailing bytes", cat(full(0, 3), full(1, 4), full(2, 1), []byte{0}), false, algorithmRequest{}, algorithmRequest{}},
		{"missing one", cat(full(0, 3), full(1, 4)), false, algorithmRequest{}, algorithmRequest{}},
		{"bad type", cat(full(0, 3), full(1, 4), full(5, 1)), false, algorithmRequest{}, algorithmRequest{}},
		{"bad length", cat(full(0, 3), full(1, 4), []byte{2, 0, 0, 6, 1, 0, 0, 0}), false, algorithmRequest{}, algorithmRequest{}},
	} {
		auth, _, conf, ok := parseAlgorithms(tc.in)
		if ok != tc.ok || (ok && (auth != tc.auth || conf != tc.conf)) {
			t.Errorf("%s: auth %+v conf %+v ok %v", tc.name, auth, conf, ok)
		}
	}
}

func TestSequenceWindow(t *testing.T) {
	s := &session{}
	for _, tc := range []struct {
		seq  uint32
		want bool
	}{
		{0, false}, {1, true}, {2, true}, {2, true}, {1, true}, {40, false}, {30, true}, {60, true}, {20, false}, {29, true},
	} {
		if got := s.acceptSeq(tc.seq); got != tc.want {
			t.Errorf("acceptSeq(%d) after %d = %v, want %v", tc.seq, s.inSeq, got, tc.want)
		}
	}
}

func TestBootFlagsEncoding(t *testing.T) {
	m := NewFakeMachine()
	b := &BMC{machine: m, log: testLogger(t)}
	s := &session{}
	for _, tc := range []struct {
		name  string
		flags []byte
		boot  Boot
	}{
		{"pxe once", []byte{0x80, 0x04, 0, 0, 0}, Boot{Device: BootPXE}},
		{"disk persistent efi", []byte{0xe0, 0x08, 0, 0, 0}, Boot{Device: BootDisk, Persistent: true, EFI: true}},
		{"cdrom with cmos clear", []byte{0xc0, 0x94, 0x01, 0, 0}, Boot{Device: BootCDROM, Persistent: true}},
		{"invalid flags clear the override", []byte{0x00, 0x04, 0, 0, 0}, Boot{Device: BootNone, Persistent: true}},
	} {
		cc, _ := b.setSystemBootOptions(t.Context(), s, append([]byte{bootParamBootFlags}, tc.flags...))
		if cc != ccOK {
			t.Fatalf("%s: set cc %#x", tc.name, cc)
		}
		if got := m.Boot(); got != tc.boot {
			t.Errorf("%s: machine boot %+v, want %+v", tc.name, got, tc.boot)
		}
		cc, data := b.getSystemBootOptions(t.Context(), s, []byte{bootParamBootFlags, 0, 0})
		if cc != ccOK || len(data) != 7 || data[0] != bootParamVersion || data[1] != bootParamBootFlags {
			t.Fatalf("%s: get cc %#x data %x", tc.name, cc, data)
		}
		want := bytes.Clone(tc.flags)
		if tc.boot.Device == BootNone {
			want[0] = tc.flags[0]&^0xe0 | 0x40
			want[1] = tc.flags[1] &^ 0x3c
		}
		if !bytes.Equal(data[2:], want) {
			t.Errorf("%s: read back %x, want %x", tc.name, data[2:], want)
		}
	}
	for _, tc := range []struct {
		name string
		set  []byte
		cc   uint8
	}{
		{"set in progress", []byte{0x00, 0x01}, ccOK},
		{"set in progress reserved value", []byte{0x00, 0x03}, ccInvalidDataField},
		{"boot info ack (ipmitool)", []byte{0x04, 0x01, 0x01}, ccOK},
		{"boot flags too short", []byte{0x05, 0x80, 0x04}, ccReqDataLenInvalid},
		{"unsupported parameter", []byte{0x07, 0x00}, ccParamNotSupported},
	} {
		if cc, _ := b.setSystemBootOptions(t.Context(), s, tc.set); cc != tc.cc {
			t.Errorf("%s: cc %#x, want %#x", tc.name, cc, tc.cc)
		}
	}
	if cc, data := b.getSystemBootOptions(t.Context(), s, []byte{0x00, 0, 0}); cc != ccOK || !bytes.Equal(data, []byte{1, 0, 1}) {
		t.Errorf("get set-in-progress: cc %#x data %x", cc, data)
	}
	if cc, data := b.getSystemBootOptions(t.Context(), s, []byte{0x04, 0, 0}); cc != ccOK || !bytes.Equal(data, []byte{1, 4, 0, 1}) {
		t.Errorf("get boot info ack: cc %#x data %x", cc, data)
	}
}

func TestCipherSuitesCommand(t *testing.T) {
	b := &BMC{}
	cc, data := b.getChannelCipherSuites(t.Context(), nil, []byte{0x0e, 0x00, 0x80})
	if cc != ccOK || !bytes.Equal(data, append([]byte{lanChannel}, suiteRecords()...)) {
		t.Errorf("index 0: cc %#x data %x", cc, data)
	}
	if cc, data := b.getChannelCipherSuites(t.Context(), nil, []byte{0x0e, 0x00, 0x81}); cc != ccOK || len(data) != 1 {
		t.Errorf("index 1: cc %#x data %x", cc, data)
	}
	if cc, _ := b.getChannelCipherSuites(t.Context(), nil, []byte{0x05, 0x00, 0x80}); cc != ccInvalidDataField {
		t.Errorf("channel 5: cc %#x", cc)
	}
}

func TestChannelAuthCaps(t *testing.T) {
	b := &BMC{}
	cc, data := b.getChannelAuthCaps(t.Context(), nil, []byte{0x8e, 0x04})
	if want := []byte{0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0}; cc != ccOK || !bytes.Equal(data, want) {
		t.Errorf("v2 form: cc %#x data %x, want %x", cc, data, want)
	}
	cc, data = b.getChannelAuthCaps(t.Context(), nil, []byte{0x0e, 0x04})
	if cc != ccOK || data[1]&0x80 != 0 || data[3] != 0 {
		t.Errorf("v1.5 form: cc %#x data %x", cc, data)
	}
	if cc, _ := b.getChannelAuthCaps(t.Context(), nil, []byte{0x0e}); cc != ccReqDataLenInvalid {
		t.Errorf("short request: cc %#x", cc)
	}
}

func TestGUIDOrder(t *testing.T) {
	for range 20 {
		g := newGUID()
		if g[9]>>4 != 1 || g[7]>>6 != 2 || g[6]>>4 != 0 {
			t.Fatalf("GUID %x: version/variant not where IPMI order puts them", g)
		}
	}
}
