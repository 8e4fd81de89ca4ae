// Package guesthash measures how fast the hashes an agent could verify an
// image with run inside a QEMU guest under TCG (no KVM), where every
// instruction is emulated and the ranking of algorithms and of their SIMD
// code paths can differ from native hardware.
//
// BenchmarkGuestHash builds ./hashinit, a tiny static /init, boots it
// directly with the kernel from scripts/fetch-kernel.sh and reads one
// result line per algorithm from the serial console. BenchmarkHostHash
// runs the same algorithms natively, for reference. Both use the table in
// this file, so the guest and the host measure the same code.
package guesthash

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/crypto/blake2b"
)

// ChunkSize is how much each Write hands a hash: the agent's I/O buffer
// size (agent/imagewrite), so per-call overheads match a real deploy.
const ChunkSize = 4 << 20

// Algorithm is one way of hashing a whole buffer.
type Algorithm struct {
	Name string
	// Cryptographic says whether a matching digest proves the image was
	// not altered on the way. The others detect accidents only: anyone on
	// the provisioning network can forge them.
	Cryptographic bool
	// Single says the result is one digest of the whole buffer, usable as
	// an image checksum as it is. The -2x variants are not: they hash two
	// halves independently and only bound what a second CPU could add.
	Single bool
	// Sum hashes buf and returns the digest.
	Sum func(buf []byte) []byte
}

// Algorithms are measured in this order.
var Algorithms = []Algorithm{
	{Name: "sha256", Cryptographic: true, Single: true, Sum: streamed(sha256.New)},
	{Name: "sha512", Cryptographic: true, Single: true, Sum: streamed(sha512.New)},
	{Name: "blake2b-512", Cryptographic: true, Single: true, Sum: streamed(newBlake2b512)},
	{Name: "sha256-2x", Cryptographic: true, Sum: halves(sha256.New)},
	{Name: "sha512-2x", Cryptographic: true, Sum: halves(sha512.New)},
	{Name: "crc32c", Single: true, Sum: streamed(newCRC32C)},
	{Name: "xxhash64", Single: true, Sum: streamed(func() hash.Hash { return xxhash.New() })},
}

// Lookup returns the algorithm called name.
func Lookup(name string) (Algorithm, bool) {
	for _, a := range Algorithms {
		if a.Name == name {
			return a, true
		}
	}
	return Algorithm{}, false
}

func newBlake2b512() hash.Hash {
	h, err := blake2b.New512(nil)
	if err != nil {
		// Only a key longer than 64 bytes is an error, and there is none.
		panic(err)
	}
	return h
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newCRC32C() hash.Hash { return crc32.New(castagnoli) }

// streamed hashes a buffer in ChunkSize writes, as the agent's pipeline
// feeds its hash.
func streamed(newHash func() hash.Hash) func([]byte) []byte {
	return func(buf []byte) []byte {
		h := newHash()
		for len(buf) > 0 {
			n := min(len(buf), ChunkSize)
			h.Write(buf[:n])
			buf = buf[n:]
		}
		return h.Sum(nil)
	}
}

// halves hashes the two halves of a buffer on two goroutines and returns
// both digests one after the other. That is not a checksum of the buffer
// anyone could be handed; it measures what a second CPU could add, an
// upper bound for a chunked (tree) digest built on the same hash.
func halves(newHash func() hash.Hash) func([]byte) []byte {
	sum := streamed(newHash)
	return func(buf []byte) []byte {
		half := len(buf) / 2
		var first []byte
		var wg sync.WaitGroup
		wg.Go(func() { first = sum(buf[:half]) })
		second := sum(buf[half:])
		wg.Wait()
		return append(first, second...)
	}
}

// Fill fills buf with the ChaCha8 stream of seed: incompressible bytes
// that the host can regenerate to check the guest's digests.
func Fill(buf []byte, seed [32]byte) {
	_, _ = rand.NewChaCha8(seed).Read(buf) // never fails
}

// ResultPrefix starts each result line the guest prints.
const ResultPrefix = "GUESTHASH-RESULT"

// Result is one algorithm's measurement.
type Result struct {
	Algorithm string
	Bytes     int64
	Elapsed   time.Duration
	Sum       string // hex digest
}

// MBps is the throughput in 10^6 bytes a second, the unit of
// docs/benchmarks.md.
func (r Result) MBps() float64 {
	return float64(r.Bytes) / r.Elapsed.Seconds() / 1e6
}

// String formats r as the line the guest prints and ParseResult reads.
func (r Result) String() string {
	return fmt.Sprintf("%s algo=%s bytes=%d ns=%d mbps=%.1f sum=%s",
		ResultPrefix, r.Algorithm, r.Bytes, r.Elapsed.Nanoseconds(), r.MBps(), r.Sum)
}

// ParseResult reads a line written by Result.String. The line may carry
// console noise before the prefix (a kernel message printed mid-line).
func ParseResult(line string) (Result, error) {
	i := strings.Index(line, ResultPrefix+" ")
	if i < 0 {
		return Result{}, fmt.Errorf("no %s in %q", ResultPrefix, line)
	}
	var r Result
	for _, f := range strings.Fields(line[i+len(ResultPrefix):]) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Result{}, fmt.Errorf("field %q of %q is not key=value", f, line)
		}
		var err error
		switch k {
		case "algo":
			r.Algorithm = v
		case "bytes":
			r.Bytes, err = strconv.ParseInt(v, 10, 64)
		case "ns":
			var ns int64
			ns, err = strconv.ParseInt(v, 10, 64)
			r.Elapsed = time.Duration(ns)
		case "sum":
			if _, err = hex.DecodeString(v); err == nil {
				r.Sum = v
			}
		}
		if err != nil {
			return Result{}, fmt.Errorf("field %s of %q: %w", k, line, err)
		}
	}
	if r.Algorithm == "" || r.Bytes <= 0 || r.Elapsed <= 0 || r.Sum == "" {
		return Result{}, fmt.Errorf("incomplete result line %q", line)
	}
	return r, nil
}
