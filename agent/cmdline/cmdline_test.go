package cmdline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name, line string
		want       Config
	}{
		{"empty", "", Config{}},
		{"typical",
			"initrd=ingot.img console=ttyS0 ingot.coordinator=10.0.0.1:6385 ingot.ca=" + fp +
				" ingot.node=6f0c1d2e-0000-4000-8000-000000000001 BOOTIF=01-52-54-00-AB-CD-01\n",
			Config{Coordinator: "10.0.0.1:6385", CAFingerprint: fp, Node: "6f0c1d2e-0000-4000-8000-000000000001", BootMAC: "52:54:00:ab:cd:01"}},
		{"quoted value", `ingot.coordinator="[fd00::1]:6385" foo="a b c" ingot.node=x`,
			Config{Coordinator: "[fd00::1]:6385", Node: "x"}},
		{"quoted whole parameter", `"ingot.node=a b"	ingot.insecure`, Config{Node: "a b", Insecure: true}},
		{"repeated keys: last wins", "ingot.coordinator=a:1 ingot.coordinator=b:2 ingot.insecure=1 ingot.insecure=0",
			Config{Coordinator: "b:2"}},
		{"missing values", "ingot.coordinator= ingot.ca ingot.node BOOTIF=", Config{}},
		{"fingerprint with colons and capitals", "ingot.ca=" + strings.ToUpper(colons(fp)), Config{CAFingerprint: fp}},
		{"malformed BOOTIF", "BOOTIF=01-zz-54-00-ab-cd-01", Config{}},
		{"BOOTIF without hardware type", "BOOTIF=52-54-00-ab-cd-01", Config{BootMAC: "52:54:00:ab:cd:01"}},
		{"insecure spellings", "ingot.insecure=yes", Config{Insecure: true}},
		{"lookalike keys ignored", "xingot.coordinator=a:1 ingot.coordinatorx=b:2", Config{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Parse(tt.line); got != tt.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.line, got, tt.want)
			}
		})
	}
}

func colons(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i : i+2])
	}
	return b.String()
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for none
	}{
		{"ok", Config{Coordinator: "h:1", CAFingerprint: fp}, ""},
		{"insecure needs no CA", Config{Coordinator: "h:1", Insecure: true}, ""},
		{"no coordinator", Config{CAFingerprint: fp}, "ingot.coordinator"},
		{"no port", Config{Coordinator: "h", CAFingerprint: fp}, "missing port"},
		{"no CA", Config{Coordinator: "h:1"}, "ingot.ca"},
		{"short CA", Config{Coordinator: "h:1", CAFingerprint: "abcd"}, "64 hex"},
	} {
		err := tt.cfg.Validate()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(p, []byte("ingot.coordinator=c:1 ingot.insecure=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Read(p)
	if err != nil || c != (Config{Coordinator: "c:1", Insecure: true}) {
		t.Errorf("Read = %+v, %v", c, err)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Read of a missing file succeeded")
	}
}
