package imagewrite

import "bytes"

// zeros is compared against in chunks: bytes.Equal is the runtime's
// vectorised memequal, several GB/s, so checking a 4 MiB buffer costs well
// under a millisecond, far less than writing it.
var zeros [64 << 10]byte

// isZero reports whether b is entirely zero bytes.
func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
