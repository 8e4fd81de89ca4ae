package api

import (
	"errors"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for _, tt := range []struct {
		in     string
		want   Version
		bad    bool
		unsupp bool
	}{
		{in: "", want: MinVersion},
		{in: "latest", want: MaxVersion},
		{in: "1.1", want: Version{1, 1}},
		{in: "1.82", want: Version{1, 82}},
		{in: " 1.31 ", want: Version{1, 31}},
		{in: "1.99", unsupp: true},
		{in: "1.0", unsupp: true},
		{in: "2.1", unsupp: true},
		{in: "1", bad: true},
		{in: "1.x", bad: true},
		{in: "abc", bad: true},
	} {
		got, err := ParseVersion(tt.in)
		var bv *ErrBadVersion
		var uv *ErrUnsupportedVersion
		switch {
		case tt.bad:
			if !errors.As(err, &bv) {
				t.Errorf("ParseVersion(%q) err = %v, want ErrBadVersion", tt.in, err)
			}
		case tt.unsupp:
			if !errors.As(err, &uv) {
				t.Errorf("ParseVersion(%q) err = %v, want ErrUnsupportedVersion", tt.in, err)
			}
		case err != nil || got != tt.want:
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestUnsupportedMessageMatchesIronic(t *testing.T) {
	_, err := ParseVersion("1.99")
	want := "Version 1.99 was requested but the minor version is not supported by this service. The supported version range is: [1.1, 1.82]."
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
}
