package testimage

import (
	"bytes"
	"strings"
)

// Boot is what the image's init reported on the console.
type Boot struct {
	UUID  string // the node's UUID from the config drive's meta_data.json
	Name  string // its name
	Disk  string // the device the config drive was found on, e.g. /dev/vda2
	Error string // why no UUID could be read; empty on success
}

// ParseMarker finds the last marker line in a console log and decodes
// it; ok is false when the image's init never printed one. Logs of a
// reused machine accumulate, so callers should pass only the output
// written since their own boot.
func ParseMarker(console []byte) (b Boot, ok bool) {
	i := bytes.LastIndex(console, []byte(Marker+" "))
	if i < 0 {
		return Boot{}, false
	}
	line, _, _ := bytes.Cut(console[i+len(Marker)+1:], []byte("\n"))
	rest := strings.TrimRight(string(line), "\r")
	// "uuid=U name=N disk=D" or "uuid= error=E": the UUID has no spaces,
	// the device is last, and the name or error text may hold spaces.
	id, rest, _ := strings.Cut(rest, " ")
	b.UUID = strings.TrimPrefix(id, "uuid=")
	if e, isErr := strings.CutPrefix(rest, "error="); isErr {
		b.Error = e
		return b, true
	}
	if i := strings.LastIndex(rest, " disk="); i >= 0 {
		b.Disk = rest[i+len(" disk="):]
		rest = rest[:i]
	}
	b.Name = strings.TrimPrefix(rest, "name=")
	return b, true
}
