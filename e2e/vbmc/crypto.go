package vbmc

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
)

// RMCP+ algorithm numbers (IPMI v2.0 tables 13-17 to 13-19).
const (
	authRAKPHMACSHA1   = 0x01
	authRAKPHMACSHA256 = 0x03

	integrityHMACSHA1_96    = 0x01
	integrityHMACSHA256_128 = 0x04

	confAESCBC128 = 0x01
)

// cipherSuite is one of the suites the BMC accepts (table 22-20). Suite 0
// (no authentication at all) is deliberately absent: a test that got a
// session without the right password would prove nothing.
type cipherSuite struct {
	id        uint8
	auth      uint8
	integrity uint8
	conf      uint8
	newHash   func() hash.Hash
	// codeLen is the length of the RAKP 2 and 3 key exchange codes (the
	// full HMAC); icvLen that of the RAKP 4 check value and of every
	// packet's integrity code (the truncated HMAC).
	codeLen int
	icvLen  int
}

// cipherSuites lists the suites offered, best first: ipmitool and go-ipmi
// both pick 17 when it is there.
var cipherSuites = [...]cipherSuite{
	{id: 17, auth: authRAKPHMACSHA256, integrity: integrityHMACSHA256_128, conf: confAESCBC128, newHash: sha256.New, codeLen: 32, icvLen: 16},
	{id: 3, auth: authRAKPHMACSHA1, integrity: integrityHMACSHA1_96, conf: confAESCBC128, newHash: sha1.New, codeLen: 20, icvLen: 12},
}

// suiteRecords is the Get Channel Cipher Suites record list (§22.15.1):
// per suite a start byte, the suite ID and its algorithms with their tag
// bits.
func suiteRecords() []byte {
	var b []byte
	for _, s := range cipherSuites {
		b = append(b, 0xc0, s.id, s.auth, 0x40|s.integrity, 0x80|s.conf)
	}
	return b
}

// suiteAlgorithms is the same command's "supported algorithms" list.
func suiteAlgorithms() []byte {
	var b []byte
	for _, s := range cipherSuites {
		b = append(b, s.auth, 0x40|s.integrity)
	}
	return append(b, 0x80|confAESCBC128)
}

func (s *cipherSuite) mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(s.newHash, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// kuid is the user's password as the RAKP key: NUL-padded to 20 bytes
// (§13.31). Passwords are at most 20 bytes long.
func kuid(password string) [20]byte {
	var k [20]byte
	copy(k[:], password)
	return k
}

// rakpParams are the values both ends feed the RAKP HMACs (§13.31).
// Names follow the spec: m is the remote console, c the managed system.
type rakpParams struct {
	consoleID uint32   // SIDm
	bmcID     uint32   // SIDc
	rm        [16]byte // Rm, the console's random number
	rc        [16]byte // Rc, the BMC's random number
	guid      [16]byte // GUIDc
	role      uint8    // ROLEm: the whole requested-privilege byte of RAKP 1
	user      string   // UNAMEm
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func (p *rakpParams) nameBytes() []byte {
	return append([]byte{p.role, uint8(len(p.user))}, p.user...)
}

// rakp2Code is the key exchange authentication code the BMC sends in
// RAKP 2: HMAC_Kuid(SIDm, SIDc, Rm, Rc, GUIDc, ROLEm, ULENGTHm, UNAMEm).
func (s *cipherSuite) rakp2Code(k []byte, p *rakpParams) []byte {
	return s.mac(k, le32(p.consoleID), le32(p.bmcID), p.rm[:], p.rc[:], p.guid[:], p.nameBytes())
}

// rakp3Code is the code the console sends in RAKP 3:
// HMAC_Kuid(Rc, SIDm, ROLEm, ULENGTHm, UNAMEm).
func (s *cipherSuite) rakp3Code(k []byte, p *rakpParams) []byte {
	return s.mac(k, p.rc[:], le32(p.consoleID), p.nameBytes())
}

// sik is the session integrity key: HMAC_Kg(Rm, Rc, ROLEm, ULENGTHm,
// UNAMEm), where Kg is Kuid since this BMC has no BMC key (§13.31).
func (s *cipherSuite) sik(kg []byte, p *rakpParams) []byte {
	return s.mac(kg, p.rm[:], p.rc[:], p.nameBytes())
}

// rakp4ICV is the check value of RAKP 4: HMAC_SIK(Rm, SIDc, GUIDc),
// truncated as the integrity algorithm truncates (§13.28.1b).
func (s *cipherSuite) rakp4ICV(sik []byte, p *rakpParams) []byte {
	return s.mac(sik, p.rm[:], le32(p.bmcID), p.guid[:])[:s.icvLen]
}

// additionalKey derives K1 (c = 1) or K2 (c = 2): HMAC_SIK of twenty
// bytes of c (§13.32). ipmitool and go-ipmi use twenty bytes for SHA-256
// suites too, so this does as well.
func (s *cipherSuite) additionalKey(sik []byte, c byte) []byte {
	var k [20]byte
	for i := range k {
		k[i] = c
	}
	return s.mac(sik, k[:])
}

// sessionKeys is the keying material of an active session: an HMAC keyed
// with K1 for packet integrity and AES keyed with the first 16 bytes of K2
// for confidentiality. Both are reused for every packet of the session,
// which only the BMC's packet loop touches.
type sessionKeys struct {
	integrity hash.Hash
	icvLen    int
	block     cipher.Block
	scratch   []byte
}

func newSessionKeys(s *cipherSuite, sik []byte) (*sessionKeys, error) {
	k1 := s.additionalKey(sik, 1)
	k2 := s.additionalKey(sik, 2)
	block, err := aes.NewCipher(k2[:16])
	if err != nil {
		return nil, err
	}
	return &sessionKeys{integrity: hmac.New(s.newHash, k1), icvLen: s.icvLen, block: block}, nil
}

// icv computes a packet's integrity check value over signed.
func (k *sessionKeys) icv(signed []byte) []byte {
	k.integrity.Reset()
	k.integrity.Write(signed)
	k.scratch = k.integrity.Sum(k.scratch[:0])
	return k.scratch[:k.icvLen]
}

func (k *sessionKeys) verify(signed, code []byte) bool {
	return hmac.Equal(k.icv(signed), code)
}

var errCrypt = errors.New("malformed encrypted payload")

// decrypt opens an AES-CBC-128 payload (§13.29): a 16-byte IV, then the
// ciphertext of the message, pad bytes 1, 2, 3 ... and the pad length. It
// decrypts in place.
func (k *sessionKeys) decrypt(p []byte) ([]byte, error) {
	if len(p) < 32 || len(p)%aes.BlockSize != 0 {
		return nil, errCrypt
	}
	iv, ct := p[:aes.BlockSize], p[aes.BlockSize:]
	cipher.NewCBCDecrypter(k.block, iv).CryptBlocks(ct, ct)
	pad := int(ct[len(ct)-1])
	if pad >= aes.BlockSize || pad+1 > len(ct) {
		return nil, errCrypt
	}
	return ct[:len(ct)-1-pad], nil
}

// appendEncrypted appends iv and the encryption of msg under it.
func (k *sessionKeys) appendEncrypted(dst, iv, msg []byte) []byte {
	dst = append(dst, iv...)
	start := len(dst)
	dst = append(dst, msg...)
	pad := (aes.BlockSize - (len(msg)+1)%aes.BlockSize) % aes.BlockSize
	for i := 1; i <= pad; i++ {
		dst = append(dst, byte(i))
	}
	dst = append(dst, byte(pad))
	cipher.NewCBCEncrypter(k.block, iv).CryptBlocks(dst[start:], dst[start:])
	return dst
}
