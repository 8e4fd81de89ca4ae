package tftp

import (
	"path/filepath"
	"strings"
	"testing"
)

const fuzzRoot = "/srv/tftp"

func TestResolve(t *testing.T) {
	for _, tt := range []struct {
		name string
		want string // "" when refused
	}{
		{"undionly.kpxe", "/srv/tftp/undionly.kpxe"},
		{"ipxe.efi", "/srv/tftp/ipxe.efi"},
		{"efi/ipxe.efi", "/srv/tftp/efi/ipxe.efi"},
		{"./undionly.kpxe", "/srv/tftp/undionly.kpxe"},
		{"a//b", "/srv/tftp/a/b"},
		{"ünïcode.efi", "/srv/tftp/ünïcode.efi"},
		{"", ""},
		{".", ""},
		{"./", ""},
		{"..", ""},
		{"../etc/passwd", ""},
		{"a/../../b", ""},
		{"a/../b", ""}, // stays inside, but nobody asks for that honestly
		{"a/..", ""},
		{"/etc/passwd", ""},
		{"/undionly.kpxe", ""},
		{"..\\etc\\passwd", ""},
		{"a\\b", ""},
		{"undionly.kpxe\x00.png", ""},
		{"a\nb", ""},
		{"\xff\xfe", ""},
		{strings.Repeat("a", maxNameLen), "/srv/tftp/" + strings.Repeat("a", maxNameLen)},
		{strings.Repeat("a", maxNameLen+1), ""},
	} {
		got, err := resolve(fuzzRoot, tt.name)
		if tt.want == "" {
			if err == nil {
				t.Errorf("resolve(%q) = %q, want refusal", tt.name, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolve(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// FuzzResolve checks that no name resolves outside the root or to the
// root itself. Seeds live in testdata/fuzz/FuzzResolve.
func FuzzResolve(f *testing.F) {
	f.Add("undionly.kpxe")
	f.Fuzz(func(t *testing.T, name string) {
		p, err := resolve(fuzzRoot, name)
		if err != nil {
			if p != "" {
				t.Fatalf("resolve(%q) returned %q with error %v", name, p, err)
			}
			return
		}
		if !strings.HasPrefix(p, fuzzRoot+"/") {
			t.Fatalf("resolve(%q) = %q: outside %s", name, p, fuzzRoot)
		}
		if p != filepath.Clean(p) {
			t.Fatalf("resolve(%q) = %q: not clean", name, p)
		}
		rel, err := filepath.Rel(fuzzRoot, p)
		if err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("resolve(%q) = %q: relative %q, %v", name, p, rel, err)
		}
		for elem := range strings.SplitSeq(rel, "/") {
			if elem == ".." || elem == "." || elem == "" {
				t.Fatalf("resolve(%q) = %q: element %q", name, p, elem)
			}
		}
		if strings.ContainsAny(p, "\x00\\") {
			t.Fatalf("resolve(%q) = %q: NUL or backslash", name, p)
		}
	})
}
