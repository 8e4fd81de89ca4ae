package configdrive

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

const (
	testUUID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	testName = "node-1"
)

// requireTool skips the test when prog is missing, unless
// INGOT_REQUIRE_TOOLS is set (CI must not skip silently).
func requireTool(t *testing.T, prog, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		if os.Getenv("INGOT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (INGOT_REQUIRE_TOOLS is set; apt-get install %s): %v", prog, pkg, err)
		}
		t.Skipf("%s not installed (apt-get install %s)", prog, pkg)
	}
	return p
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wrap breaks s into lines of 76 characters, as base64(1) and Python's
// base64.encodebytes do.
func wrap(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

// sampleISO is a config drive built from an object, to feed the string
// forms.
func sampleISO(t *testing.T) []byte {
	t.Helper()
	d, err := Build(map[string]any{"meta_data": map[string]any{"hostname": "h"}}, testUUID, testName)
	if err != nil {
		t.Fatal(err)
	}
	return d.ISO
}

func TestBuildStrings(t *testing.T) {
	iso := sampleISO(t)
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name    string
		in      any
		want    Drive
		wantErr string
	}{
		{name: "http URL", in: "http://images.example.com/cd.iso", want: Drive{URL: "http://images.example.com/cd.iso"}},
		{name: "HTTPS URL, spaces around", in: " HTTPS://example.com/a?b=c\n", want: Drive{URL: "HTTPS://example.com/a?b=c"}},
		{name: "URL without host", in: "http:///x", wantErr: `the config drive URL "http:///x" is invalid`},
		{name: "gzip'd ISO", in: b64(gz(t, iso)), want: Drive{ISO: iso}},
		{name: "gzip'd ISO, wrapped lines", in: wrap(b64(gz(t, iso))), want: Drive{ISO: iso}},
		{name: "plain ISO", in: b64(iso), want: Drive{ISO: iso}},
		{name: "bad base64", in: "not*base64!", wantErr: "neither an http(s) URL nor base64"},
		{name: "truncated base64", in: b64(iso)[:101], wantErr: "neither an http(s) URL nor base64"},
		{name: "not an ISO", in: b64(gz(t, []byte("#cloud-config\n"))), wantErr: "not an ISO 9660 image"},
		{name: "plain text", in: b64(bytes.Repeat([]byte("x"), 40000)), wantErr: "not an ISO 9660 image"},
		{name: "corrupt gzip", in: b64(append([]byte{0x1f, 0x8b}, iso[:100]...)), wantErr: "decompress the config drive"},
		// Concatenated gzip members decompress as one stream: 65 MiB
		// without compressing that much.
		{name: "gzip'd, too large", in: b64(bytes.Repeat(gz(t, make([]byte, 1<<20)), MaxSize>>20+1)), wantErr: "larger than 64 MiB"},
		{name: "empty", in: " ", wantErr: "empty string"},
		{name: "null", in: nil, wantErr: "no config drive given"},
		{name: "number", in: 42.0, wantErr: "must be a string or an object, not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Build(tt.in, testUUID, testName)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "config drive of node "+testUUID+": ") {
					t.Errorf("err = %q does not name the node", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.URL != tt.want.URL || !bytes.Equal(got.ISO, tt.want.ISO) {
				t.Errorf("Build = {URL %q, %d ISO bytes}, want {URL %q, %d ISO bytes}", got.URL, len(got.ISO), tt.want.URL, len(tt.want.ISO))
			}
		})
	}
}

// readISO opens iso with go-diskfs and returns the contents of every
// path in names (by its long Rock Ridge name, relative to the root as
// io/fs wants it), absent ones left out.
func readISO(t *testing.T, iso []byte, names []string) (label string, files map[string]string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cd.iso")
	if err := os.WriteFile(p, iso, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := iso9660.Read(file.New(f, true), int64(len(iso)), 0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	files = map[string]string{}
	for _, n := range names {
		if b, err := fs.ReadFile(n); err == nil {
			files[n] = string(b)
		}
	}
	return strings.TrimRight(fs.Label(), " \x00"), files
}

func TestBuildObject(t *testing.T) {
	const latest, dated = "openstack/latest/", "openstack/2012-08-10/"
	names := []string{
		latest + "meta_data.json", latest + "network_data.json", latest + "user_data", latest + "vendor_data2.json",
		dated + "meta_data.json", dated + "network_data.json", dated + "user_data", dated + "vendor_data2.json",
	}
	network := map[string]any{"links": []any{map[string]any{"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:ab:cd:01"}}}
	tests := []struct {
		name     string
		in       map[string]any
		nodeName string
		want     map[string]any // file name under latest/ → decoded JSON, or string for user_data
	}{
		{
			name: "empty object: uuid and name from the node",
			in:   map[string]any{}, nodeName: testName,
			want: map[string]any{"meta_data.json": map[string]any{"uuid": testUUID, "name": testName}},
		},
		{
			name: "node without a name",
			in:   map[string]any{"meta_data": nil},
			want: map[string]any{"meta_data.json": map[string]any{"uuid": testUUID}},
		},
		{
			name:     "request-given uuid and name win",
			in:       map[string]any{"meta_data": map[string]any{"uuid": "mine", "name": "", "hostname": "web-1"}},
			nodeName: testName,
			want:     map[string]any{"meta_data.json": map[string]any{"uuid": "mine", "name": "", "hostname": "web-1"}},
		},
		{
			name: "every key",
			in: map[string]any{
				"meta_data":    map[string]any{"public_keys": map[string]any{"0": "ssh-ed25519 AAAA"}},
				"network_data": network,
				"user_data":    "#cloud-config\nusers: []\n",
				"vendor_data":  map[string]any{"cloud-init": "#cloud-config\n"},
			},
			nodeName: testName,
			want: map[string]any{
				"meta_data.json":    map[string]any{"uuid": testUUID, "name": testName, "public_keys": map[string]any{"0": "ssh-ed25519 AAAA"}},
				"network_data.json": network,
				"user_data":         "#cloud-config\nusers: []\n",
				"vendor_data2.json": map[string]any{"cloud-init": "#cloud-config\n"},
			},
		},
		{
			name: "user_data as an object (Ignition) is JSON-encoded",
			in:   map[string]any{"user_data": map[string]any{"ignition": map[string]any{"version": "3.4.0"}}},
			want: map[string]any{
				"meta_data.json": map[string]any{"uuid": testUUID},
				"user_data":      `{"ignition":{"version":"3.4.0"}}`,
			},
		},
		{
			name: "user_data as a list",
			in:   map[string]any{"user_data": []any{"a", 1.0}},
			want: map[string]any{"meta_data.json": map[string]any{"uuid": testUUID}, "user_data": `["a",1]`},
		},
		{
			name: "empty values are left out",
			in:   map[string]any{"user_data": "", "network_data": map[string]any{}, "vendor_data": nil},
			want: map[string]any{"meta_data.json": map[string]any{"uuid": testUUID}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := json.Marshal(tt.in)
			d, err := Build(tt.in, testUUID, tt.nodeName)
			if err != nil {
				t.Fatal(err)
			}
			if d.URL != "" || !IsISO(d.ISO) {
				t.Fatalf("Build = {URL %q, %d bytes}, want an ISO", d.URL, len(d.ISO))
			}
			if after, _ := json.Marshal(tt.in); !bytes.Equal(before, after) {
				t.Errorf("Build changed its input: %s → %s", before, after)
			}
			label, files := readISO(t, d.ISO, names)
			if label != Label {
				t.Errorf("volume label %q, want %q", label, Label)
			}
			if len(files) != 2*len(tt.want) {
				t.Errorf("files %v, want %d under each version", keys(files), len(tt.want))
			}
			for name, want := range tt.want {
				got, ok := files[latest+name]
				if !ok {
					t.Errorf("%s%s missing", latest, name)
					continue
				}
				if files[dated+name] != got {
					t.Errorf("%s%s = %q, differs from latest's %q", dated, name, files[dated+name], got)
				}
				if s, ok := want.(string); ok {
					if got != s {
						t.Errorf("%s = %q, want %q", name, got, s)
					}
					continue
				}
				var v any
				if err := json.Unmarshal([]byte(got), &v); err != nil {
					t.Errorf("%s is not JSON: %v: %q", name, err, got)
				} else if !reflect.DeepEqual(v, want) {
					t.Errorf("%s = %s, want %v", name, got, want)
				}
			}
		})
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestBuildObjectErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]any
		wantErr string
	}{
		{"unknown key", map[string]any{"metadata": map[string]any{}}, `invalid config drive key "metadata"`},
		{"meta_data a string", map[string]any{"meta_data": "x"}, "meta_data must be an object, not a string"},
		{"network_data a list", map[string]any{"network_data": []any{}}, "network_data must be an object, not a list"},
		{"vendor_data a number", map[string]any{"vendor_data": 1.0}, "vendor_data must be an object, not a number"},
		{"user_data a Boolean", map[string]any{"user_data": true}, "user_data must be a string, an object or a list, not a Boolean"},
		{"too large", map[string]any{"user_data": strings.Repeat("x", MaxSize/2+1)}, "larger than 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.in, testUUID, testName)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

// The real tools see what cloud-init would: blkid finds the label it
// searches for, and isoinfo reads the long names through Rock Ridge.
func TestBuildReadByTools(t *testing.T) {
	blkid := requireTool(t, "blkid", "util-linux")
	isoinfo := requireTool(t, "isoinfo", "genisoimage")
	d, err := Build(map[string]any{
		"meta_data": map[string]any{"hostname": "web-1"},
		"user_data": "#cloud-config\n",
	}, testUUID, testName)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cd.iso")
	if err := os.WriteFile(p, d.ISO, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(prog string, args ...string) string {
		t.Helper()
		out, err := exec.Command(prog, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	if got := strings.TrimSpace(run(blkid, "-p", "-o", "value", "-s", "LABEL", p)); got != Label {
		t.Errorf("blkid LABEL = %q, want %q", got, Label)
	}
	listing := run(isoinfo, "-R", "-f", "-i", p)
	for _, want := range []string{"/openstack/latest/meta_data.json", "/openstack/latest/user_data", "/openstack/2012-08-10/meta_data.json"} {
		if !strings.Contains(listing, want+"\n") {
			t.Errorf("isoinfo -R -f does not list %s:\n%s", want, listing)
		}
	}
	// Padded with spaces, as genisoimage pads it.
	if id := string(d.ISO[volumeIDOff : volumeIDOff+volumeIDLen]); id != fmt.Sprintf("%-32s", Label) {
		t.Errorf("volume identifier %q", id)
	}
	var md map[string]any
	if err := json.Unmarshal([]byte(run(isoinfo, "-R", "-i", p, "-x", "/openstack/latest/meta_data.json")), &md); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"uuid": testUUID, "name": testName, "hostname": "web-1"}; !reflect.DeepEqual(md, want) {
		t.Errorf("meta_data.json read by isoinfo = %v, want %v", md, want)
	}
}

// An ISO made by genisoimage as openstacksdk makes it goes through the
// string form unchanged.
func TestBuildGenisoimageDrive(t *testing.T) {
	genisoimage := requireTool(t, "genisoimage", "genisoimage")
	dir := t.TempDir()
	src := filepath.Join(dir, "src", "openstack", "latest")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "meta_data.json"), []byte(`{"uuid":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cd.iso")
	if b, err := exec.Command(genisoimage, "-o", out, "-quiet", "-J", "-r", "-V", Label, filepath.Join(dir, "src")).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, b)
	}
	iso, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Build(base64.StdEncoding.EncodeToString(gz(t, iso)), testUUID, testName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.ISO, iso) {
		t.Error("the decoded ISO differs from genisoimage's")
	}
	if label, files := readISO(t, d.ISO, []string{"openstack/latest/meta_data.json"}); label != Label || files["openstack/latest/meta_data.json"] != `{"uuid":"x"}` {
		t.Errorf("label %q, files %v", label, files)
	}
}

// The staging directory and the image file hold user data: nothing is
// left behind in the temporary directory.
func TestBuildLeavesNoTempFiles(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if _, err := Build(map[string]any{"user_data": "#cloud-config\npassword: secret\n"}, testUUID, testName); err != nil {
		t.Fatal(err)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}
