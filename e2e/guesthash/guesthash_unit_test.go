package guesthash

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/crypto/blake2b"
)

func TestResultRoundTrip(t *testing.T) {
	want := Result{Algorithm: "sha512", Bytes: 256 << 20, Elapsed: 10737418240, Sum: "00ff"}
	// Kernel messages can end up before the prefix on the same line.
	got, err := ParseResult("[   12.3] random: crng init done" + want.String() + "\r")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if mbps := got.MBps(); mbps < 24.99 || mbps > 25.01 {
		t.Fatalf("MBps = %v, want 25", mbps)
	}
}

func TestParseResultRejects(t *testing.T) {
	for _, line := range []string{
		"GUESTHASH-DONE",
		ResultPrefix + " algo=sha256 bytes=10 ns=0 sum=00",
		ResultPrefix + " algo=sha256 bytes=10 ns=5 sum=zz",
		ResultPrefix + " algo=sha256 bytes=x ns=5 sum=00",
		ResultPrefix + " algo=sha256 bytes=10 ns=5",
		ResultPrefix + " algo=sha256 junk bytes=10 ns=5 sum=00",
	} {
		if r, err := ParseResult(line); err == nil {
			t.Errorf("ParseResult(%q) = %+v, want an error", line, r)
		}
	}
}

// The single digests are those of the whole buffer, whatever its size
// relative to ChunkSize: what an image checksum would be. The -2x ones are
// the two halves' digests.
func TestDigests(t *testing.T) {
	buf := make([]byte, 2*ChunkSize+12345)
	Fill(buf, [32]byte{7})
	half := len(buf) / 2
	s256, s512, b2 := sha256.Sum256(buf), sha512.Sum512(buf), blake2b.Sum512(buf)
	h1, h2 := sha256.Sum256(buf[:half]), sha256.Sum256(buf[half:])
	l1, l2 := sha512.Sum512(buf[:half]), sha512.Sum512(buf[half:])
	want := map[string][]byte{
		"sha256":      s256[:],
		"sha512":      s512[:],
		"blake2b-512": b2[:],
		"sha256-2x":   append(h1[:], h2[:]...),
		"sha512-2x":   append(l1[:], l2[:]...),
		// hash.Hash.Sum appends both big-endian.
		"crc32c":   binary.BigEndian.AppendUint32(nil, crc32.Checksum(buf, castagnoli)),
		"xxhash64": binary.BigEndian.AppendUint64(nil, xxhash.Sum64(buf)),
	}
	for _, a := range Algorithms {
		w, ok := want[a.Name]
		if !ok {
			t.Errorf("no reference digest for %s", a.Name)
			continue
		}
		if got := a.Sum(buf); !bytes.Equal(got, w) {
			t.Errorf("%s: got %x, want %x", a.Name, got, w)
		}
		if a.Single == strings.HasSuffix(a.Name, "-2x") {
			t.Errorf("%s: Single = %v", a.Name, a.Single)
		}
	}
}
