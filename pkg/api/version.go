// Package api holds the types of Ingot's REST API, which is Ironic's v1 API:
// nodes, ports, API versions and how each is rendered for a given
// microversion. The coordinator serves them; tests and clients decode them.
// There is one definition of each field here, with the microversion that
// introduced it and whether an operator may PATCH it.
package api

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is an Ironic API microversion, always 1.x.
type Version struct{ Major, Minor int }

// The supported range: 1.1 (what a client that sends no version header
// gets, as with Ironic) up to 1.82, the Ironic release whose recorded
// responses Ingot matches.
var (
	MinVersion = Version{1, 1}
	MaxVersion = Version{1, 82}
)

// VersionHeader is the microversion request and response header.
const (
	VersionHeader    = "X-OpenStack-Ironic-API-Version"
	MinVersionHeader = "X-OpenStack-Ironic-API-Minimum-Version"
	MaxVersionHeader = "X-OpenStack-Ironic-API-Maximum-Version"
)

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// AtLeast reports whether v is 1.minor or later.
func (v Version) AtLeast(minor int) bool { return v.Minor >= minor }

// ErrBadVersion means the version header could not be parsed at all (400);
// ErrUnsupportedVersion means it parsed but is out of range (406).
type ErrBadVersion struct{ Value string }

func (e *ErrBadVersion) Error() string {
	return fmt.Sprintf("Invalid value for %s header: %q. Expected a version such as 1.82 or \"latest\".", VersionHeader, e.Value)
}

type ErrUnsupportedVersion struct{ Version Version }

func (e *ErrUnsupportedVersion) Error() string {
	what := "minor"
	if e.Version.Major != 1 {
		what = "major"
	}
	return fmt.Sprintf("Version %s was requested but the %s version is not supported by this service. The supported version range is: [%s, %s].",
		e.Version, what, MinVersion, MaxVersion)
}

// ParseVersion reads the value of the version header. An empty value means
// the minimum version; "latest" the maximum.
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return MinVersion, nil
	case strings.EqualFold(s, "latest"):
		return MaxVersion, nil
	}
	maj, min, ok := strings.Cut(s, ".")
	if !ok {
		return Version{}, &ErrBadVersion{Value: s}
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	if err1 != nil || err2 != nil || a < 0 || b < 0 {
		return Version{}, &ErrBadVersion{Value: s}
	}
	v := Version{a, b}
	if v.Major != 1 || v.Minor < MinVersion.Minor || v.Minor > MaxVersion.Minor {
		return Version{}, &ErrUnsupportedVersion{Version: v}
	}
	return v, nil
}
