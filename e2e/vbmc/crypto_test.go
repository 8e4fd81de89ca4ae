package vbmc

import (
	"bytes"
	"encoding/hex"
	"testing"

	ipmicrypto "github.com/bougou/go-ipmi/pkg/crypto"
	"github.com/bougou/go-ipmi/pkg/types"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func suiteByID(id uint8) *cipherSuite {
	for i := range cipherSuites {
		if cipherSuites[i].id == id {
			return &cipherSuites[i]
		}
	}
	return nil
}

// TestKeyDerivationRecorded checks K1, K2 and the RAKP 4 check value
// against a session ipmitool opened with a Dell iDRAC (suite 3), from
// ipmitool's -vv trace: its SIK, random numbers, BMC session ID and GUID,
// and the keys and check value it printed.
func TestKeyDerivationRecorded(t *testing.T) {
	s := suiteByID(3)
	sik := unhex(t, "8ca1a9ac0255fbbe9cebba57572befe67f896851")
	p := rakpParams{bmcID: 0x0200ac00}
	copy(p.rm[:], unhex(t, "0eb189b4bcaf69f1ecdc81046dd0679b"))
	copy(p.rc[:], unhex(t, "bc85ebd8a092a8b0ac6b48da4f272569"))
	copy(p.guid[:], unhex(t, "44454c4c530010398032c8c04f313332"))
	if got, want := s.additionalKey(sik, 1), unhex(t, "a7bb21947ad2ea6701c8f37e980345bf25839378"); !bytes.Equal(got, want) {
		t.Errorf("K1 = %x, want %x", got, want)
	}
	if got, want := s.additionalKey(sik, 2), unhex(t, "50afe9bc45af89fc26573245de373315524d1a8e"); !bytes.Equal(got, want) {
		t.Errorf("K2 = %x, want %x", got, want)
	}
	if got, want := s.rakp4ICV(sik, &p), unhex(t, "3313799a7f2ead1725e7210c"); !bytes.Equal(got, want) {
		t.Errorf("RAKP 4 ICV = %x, want %x", got, want)
	}
}

// TestRAKPMath checks every RAKP code and key against go-ipmi's
// independent implementation, for both suites and a few inputs.
func TestRAKPMath(t *testing.T) {
	for _, tc := range []struct {
		suite    uint8
		authAlg  types.AuthAlg
		user     string
		password string
		role     uint8
	}{
		{3, types.AuthAlg_HMAC_SHA1, "admin", "pw", 0x14},
		{3, types.AuthAlg_HMAC_SHA1, "root", "calvin-longer-pass20", 0x04},
		{17, types.AuthAlg_HMAC_SHA256, "admin", "pw", 0x14},
		{17, types.AuthAlg_HMAC_SHA256, "sixteen-byte-usr", "", 0x13},
	} {
		s := suiteByID(tc.suite)
		p := rakpParams{consoleID: 0xa0a1a2a3, bmcID: 0x12345678, role: tc.role, user: tc.user}
		for i := range 16 {
			p.rm[i], p.rc[i], p.guid[i] = byte(i), byte(0x80+i), byte(0xf0-i)
		}
		k := kuid(tc.password)
		kk := ipmicrypto.PadPassword20([]byte(tc.password))

		want, _ := ipmicrypto.RAKP2AuthCode(tc.authAlg, p.consoleID, p.bmcID, p.rm[:], p.rc[:], p.guid[:], p.role, p.user, kk)
		if got := s.rakp2Code(k[:], &p); !bytes.Equal(got, want) || len(got) != s.codeLen {
			t.Errorf("suite %d RAKP 2 code = %x, want %x", tc.suite, got, want)
		}
		want, _ = ipmicrypto.RAKP3AuthCode(tc.authAlg, p.rc[:], p.consoleID, p.role, p.user, kk)
		if got := s.rakp3Code(k[:], &p); !bytes.Equal(got, want) {
			t.Errorf("suite %d RAKP 3 code = %x, want %x", tc.suite, got, want)
		}
		wantSIK, wantK1, wantK2, _ := ipmicrypto.DeriveSessionKeys(tc.authAlg, p.rm[:], p.rc[:], p.role, p.user, kk)
		sik := s.sik(k[:], &p)
		if !bytes.Equal(sik, wantSIK) {
			t.Errorf("suite %d SIK = %x, want %x", tc.suite, sik, wantSIK)
		}
		if got := s.additionalKey(sik, 1); !bytes.Equal(got, wantK1) {
			t.Errorf("suite %d K1 = %x, want %x", tc.suite, got, wantK1)
		}
		if got := s.additionalKey(sik, 2); !bytes.Equal(got, wantK2) {
			t.Errorf("suite %d K2 = %x, want %x", tc.suite, got, wantK2)
		}
		want, _ = ipmicrypto.RAKP4ICV(tc.authAlg, p.rm[:], p.bmcID, p.guid[:], sik)
		if got := s.rakp4ICV(sik, &p); !bytes.Equal(got, want) || len(got) != s.icvLen {
			t.Errorf("suite %d RAKP 4 ICV = %x, want %x", tc.suite, got, want)
		}

		// Packet integrity and confidentiality.
		keys, err := newSessionKeys(s, sik)
		if err != nil {
			t.Fatal(err)
		}
		signed := []byte("0123456789abcdefghij")
		integ := map[uint8]types.IntegrityAlg{3: types.IntegrityAlg_HMAC_SHA1_96, 17: types.IntegrityAlg_HMAC_SHA256_128}[tc.suite]
		want, _ = ipmicrypto.SessionIntegrityAuthCode(integ, signed, wantK1, tc.password)
		if got := keys.icv(signed); !bytes.Equal(got, want) {
			t.Errorf("suite %d integrity code = %x, want %x", tc.suite, got, want)
		}
		for _, n := range []int{0, 1, 14, 15, 16, 17, 40} {
			msg := bytes.Repeat([]byte{0x5a}, n)
			iv := bytes.Repeat([]byte{0x11}, 16)
			enc := keys.appendEncrypted(nil, iv, msg)
			wantEnc, _ := ipmicrypto.EncryptAESPayload(msg, wantK2, iv)
			if !bytes.Equal(enc, wantEnc) {
				t.Errorf("suite %d encrypt %d bytes = %x, want %x", tc.suite, n, enc, wantEnc)
			}
			dec, err := keys.decrypt(bytes.Clone(enc))
			if err != nil || !bytes.Equal(dec, msg) {
				t.Errorf("suite %d decrypt %d bytes = %x, %v", tc.suite, n, dec, err)
			}
		}
	}
}

func TestDecryptRejects(t *testing.T) {
	keys, err := newSessionKeys(suiteByID(17), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	badPad := make([]byte, 16)
	badPad[15] = 16 // a pad length no block can have
	for name, p := range map[string][]byte{
		"empty":          nil,
		"iv only":        make([]byte, 16),
		"not a block":    make([]byte, 40),
		"bad pad length": encryptRaw(keys, badPad),
	} {
		if _, err := keys.decrypt(p); err == nil {
			t.Errorf("%s: decrypt accepted it", name)
		}
	}
}

// encryptRaw encrypts one raw block with a zero IV and no IPMI padding.
func encryptRaw(k *sessionKeys, blk []byte) []byte {
	out := make([]byte, 32)
	k.block.Encrypt(out[16:], blk) // CBC with a zero IV is plain AES for one block
	return out
}

func TestSuiteTables(t *testing.T) {
	want := []byte{0xc0, 17, 0x03, 0x44, 0x81, 0xc0, 3, 0x01, 0x41, 0x81}
	if got := suiteRecords(); !bytes.Equal(got, want) {
		t.Errorf("cipher suite records = %x, want %x", got, want)
	}
}
