package httpboot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ingot/ingot/coordinator/boot"
	"github.com/ingot/ingot/pkg/testlog"
)

const (
	testMAC  = "52:54:00:aa:bb:cc"
	testNode = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	testBase = "http://192.0.2.1:8080"
)

// fakeBooter answers from a table keyed by MAC, and records the MACs it
// was asked about.
type fakeBooter struct {
	mu    sync.Mutex
	byMAC map[string]boot.Decision
	err   error
	asked []string
}

func (f *fakeBooter) Decide(_ context.Context, mac net.HardwareAddr) (boot.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, mac.String())
	return f.byMAC[mac.String()], f.err
}

func (f *fakeBooter) lastAsked() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) == 0 {
		return ""
	}
	return f.asked[len(f.asked)-1]
}

func newTestServer(t *testing.T, cfg Config, b Booter) *httptest.Server {
	t.Helper()
	if cfg.BaseURL == "" {
		cfg.BaseURL = testBase
	}
	h, err := New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestScripts(t *testing.T) {
	const other = "52:54:00:00:00:01"
	b := &fakeBooter{byMAC: map[string]boot.Decision{
		testMAC: {Action: boot.Agent, Node: testNode},
		other:   {Action: boot.LocalDisk, Node: testNode},
		// Discovery: an unknown machine boots the agent with no node.
		"52:54:00:00:00:02": {Action: boot.Agent},
	}}
	full := newTestServer(t, Config{CoordinatorGRPC: "192.0.2.1:9443", CAFingerprint: "sha256:ab12cd", ExtraKernelArgs: "console=ttyS0,115200 ipv6.disable=1"}, b)
	bare := newTestServer(t, Config{}, b)

	kernelLine := "kernel --name kernel " + testBase + "/images/agent/kernel "
	initrdLine := "initrd --name initramfs " + testBase + "/images/agent/initramfs && goto initrd-done ||"
	for _, tt := range []struct {
		name      string
		srv       *httptest.Server
		mac       string
		status    int
		lines     []string // lines the script must have, in order
		args      []string // kernel arguments that must be present
		noArgs    []string // argument prefixes that must be absent
		forbidden []string // lines that must not appear
	}{
		{
			name: "agent", srv: full, mac: testMAC, status: 200,
			lines: []string{
				"#!ipxe",
				"set ingot-try:int32 0", ":kernel", "inc ingot-try", "iseq ${ingot-try} 5 && goto failed ||", "sleep 5 ||", "goto kernel", ":kernel-done",
				"set ingot-try:int32 0", ":initrd", initrdLine, "inc ingot-try", "goto initrd", ":initrd-done",
				"boot ||", ":failed", "reboot ||", "exit",
			},
			args: []string{"initrd=initramfs", "ingot.node=" + testNode, "ingot.coordinator=192.0.2.1:9443", "ingot.ca=sha256:ab12cd",
				"BOOTIF=01-52-54-00-aa-bb-cc", "console=ttyS0,115200", "ipv6.disable=1"},
		},
		{
			name: "agent without coordinator settings", srv: bare, mac: testMAC, status: 200,
			lines:  []string{"#!ipxe", initrdLine, "boot ||"},
			args:   []string{"ingot.node=" + testNode, "BOOTIF=01-52-54-00-aa-bb-cc", "console=ttyS0,115200"},
			noArgs: []string{"ingot.coordinator=", "ingot.ca="},
		},
		{
			name: "discovery", srv: full, mac: "52:54:00:00:00:02", status: 200,
			lines:  []string{"#!ipxe", initrdLine, "boot ||"},
			args:   []string{"ingot.coordinator=192.0.2.1:9443", "BOOTIF=01-52-54-00-00-00-02"},
			noArgs: []string{"ingot.node="},
		},
		{
			name: "local disk", srv: full, mac: other, status: 200,
			lines: []string{
				"#!ipxe",
				"iseq ${platform} efi && goto efi ||",
				"sanboot --no-describe --drive 0x80 || exit",
				":efi",
				"exit",
			},
			forbidden: []string{"boot ||"},
		},
		{name: "ignore", srv: full, mac: "52:54:00:00:00:03", status: 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.srv.URL+"/boot/"+tt.mac+".ipxe")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status == 404 {
				if got := strings.TrimSpace(string(body)); got != "no boot for this machine" {
					t.Errorf("body %q", got)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			lines := strings.Split(strings.TrimRight(string(body), "\n"), "\n")
			if lines[0] != "#!ipxe" {
				t.Errorf("first line %q", lines[0])
			}
			checkIPXE(t, lines)
			if !inOrder(lines, tt.lines) {
				t.Errorf("script lacks, in order, %q:\n%s", tt.lines, body)
			}
			for _, l := range tt.forbidden {
				if slices.Contains(lines, l) {
					t.Errorf("script has %q:\n%s", l, body)
				}
			}
			if tt.args == nil {
				return
			}
			var kernel string
			for _, l := range lines {
				if strings.HasPrefix(l, kernelLine) {
					kernel = l
				}
			}
			if !strings.HasSuffix(kernel, " && goto kernel-done ||") {
				t.Fatalf("no kernel line %q… && goto kernel-done ||:\n%s", kernelLine, body)
			}
			args := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(kernel, kernelLine), " && goto kernel-done ||"))
			for _, a := range tt.args {
				if !slices.Contains(args, a) {
					t.Errorf("kernel args %q lack %q", args, a)
				}
			}
			for _, a := range tt.noArgs {
				if slices.ContainsFunc(args, func(s string) bool { return strings.HasPrefix(s, a) }) {
					t.Errorf("kernel args %q have %q", args, a)
				}
			}
		})
	}
}

// checkIPXE checks what iPXE would trip on: every goto has its label,
// labels are unique, and the only settings expanded are the script's own
// counter and ${platform}.
func checkIPXE(t *testing.T, lines []string) {
	t.Helper()
	labels := map[string]bool{}
	for _, l := range lines {
		if name, ok := strings.CutPrefix(l, ":"); ok {
			if labels[name] {
				t.Errorf("label %q twice", name)
			}
			labels[name] = true
		}
	}
	gotoRE := regexp.MustCompile(`\bgoto (\S+)`)
	settingRE := regexp.MustCompile(`\$\{([^}]*)\}`)
	for _, l := range lines {
		for _, m := range gotoRE.FindAllStringSubmatch(l, -1) {
			if !labels[m[1]] {
				t.Errorf("goto %s: no such label", m[1])
			}
		}
		for _, m := range settingRE.FindAllStringSubmatch(l, -1) {
			if m[1] != "ingot-try" && m[1] != "platform" {
				t.Errorf("line %q expands ${%s}", l, m[1])
			}
		}
		if strings.Contains(l, "\t") || strings.TrimSpace(l) != l {
			t.Errorf("line %q has stray whitespace", l)
		}
	}
}

// inOrder reports whether want appears in lines as a subsequence.
func inOrder(lines, want []string) bool {
	i := 0
	for _, l := range lines {
		if i < len(want) && l == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestMACForms(t *testing.T) {
	b := &fakeBooter{byMAC: map[string]boot.Decision{testMAC: {Action: boot.Agent, Node: testNode}}}
	srv := newTestServer(t, Config{}, b)
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"52:54:00:aa:bb:cc.ipxe", 200},
		{"52-54-00-AA-BB-CC.ipxe", 200},
		{"52:54:00:AA:BB:CC.ipxe", 200},
		{"525400aabbcc.ipxe", 200},
		{"5254.00aa.bbcc.ipxe", 200},
		{"52%3A54%3A00%3Aaa%3Abb%3Acc.ipxe", 200},
		{"52:54:00:aa:bb.ipxe", 400},
		{"52:54:00:aa:bb:zz.ipxe", 400},
		{"52:54:00:aa:bb:cc:dd:ee.ipxe", 400},                                     // EUI-64
		{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01.ipxe", 400}, // InfiniBand
		{"hello.ipxe", 400},
		{".ipxe", 400},
		{"52:54:00:aa:bb:cc", 404},
		{"52:54:00:aa:bb:cc.php", 404},
	} {
		resp, body := get(t, srv.URL+"/boot/"+tt.path)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.path, resp.StatusCode, tt.status, body)
			continue
		}
		if tt.status == 200 {
			if got := b.lastAsked(); got != testMAC {
				t.Errorf("%s: policy asked about %q, want %s", tt.path, got, testMAC)
			}
			if !bytes.Contains(body, []byte("BOOTIF=01-52-54-00-aa-bb-cc")) {
				t.Errorf("%s: script lacks the normalized BOOTIF", tt.path)
			}
		}
	}
}

func TestLeaseOwner(t *testing.T) {
	b := &fakeBooter{byMAC: map[string]boot.Decision{
		testMAC:             {Action: boot.Agent, Node: testNode},
		"52:54:00:00:00:01": {Action: boot.Agent, Node: "other-node"},
	}}
	loopback := netip.MustParseAddr("127.0.0.1")
	owner := func(mac string, ok bool) func(netip.Addr) (string, bool) {
		return func(ip netip.Addr) (string, bool) {
			if ip != loopback {
				t.Errorf("LeaseOwner asked about %v, want %v", ip, loopback)
			}
			return mac, ok
		}
	}
	for _, tt := range []struct {
		name   string
		owner  func(netip.Addr) (string, bool)
		strict bool
		mac    string
		status int
	}{
		{"own script", owner("52-54-00-AA-BB-CC", true), false, testMAC, 200},
		{"another node's script", owner(testMAC, true), false, "52:54:00:00:00:01", 403},
		{"no lease for the client", owner("", false), false, "52:54:00:00:00:01", 200},
		{"no lease, leases required", owner("", false), true, "52:54:00:00:00:01", 403},
		{"own script, leases required", owner("52-54-00-AA-BB-CC", true), true, testMAC, 200},
		{"unreadable lease owner", owner("garbage", true), false, testMAC, 403},
		{"proxy DHCP", nil, false, "52:54:00:00:00:01", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, Config{LeaseOwner: tt.owner, RequireLease: tt.strict}, b)
			resp, body := get(t, srv.URL+"/boot/"+tt.mac+".ipxe")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status == 403 && bytes.Contains(body, []byte("ingot.node")) {
				t.Error("403 carries a script")
			}
		})
	}
}

func TestDecisionError(t *testing.T) {
	b := &fakeBooter{err: errors.New("redis down")}
	srv := newTestServer(t, Config{}, b)
	resp, body := get(t, srv.URL+"/boot/"+testMAC+".ipxe")
	if resp.StatusCode != 500 || bytes.Contains(body, []byte("redis")) {
		t.Errorf("status %d, body %q: want 500 without internals", resp.StatusCode, body)
	}
	// A node ID that could break out of its script line is refused.
	b = &fakeBooter{byMAC: map[string]boot.Decision{testMAC: {Action: boot.Agent, Node: "x\nchain http://evil/"}}}
	srv = newTestServer(t, Config{}, b)
	if resp, body := get(t, srv.URL+"/boot/"+testMAC+".ipxe"); resp.StatusCode != 500 {
		t.Errorf("unsafe node ID: status %d: %s", resp.StatusCode, body)
	}
}

func TestIgnoreLoggedOncePerMinute(t *testing.T) {
	var logs testlog.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	srv := newTestServer(t, Config{Logger: logger}, &fakeBooter{})
	for _, mac := range []string{testMAC, testMAC, "52-54-00-aa-bb-cc", "52:54:00:00:00:09", testMAC} {
		if resp, _ := get(t, srv.URL+"/boot/"+mac+".ipxe"); resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := strings.Count(logs.String(), `msg="not booting this machine"`); n != 2 {
		t.Errorf("%d log lines for two ignored MACs, want 2:\n%s", n, logs.String())
	}
}

func TestNewValidates(t *testing.T) {
	b := &fakeBooter{}
	for _, cfg := range []Config{
		{},
		{BaseURL: "192.0.2.1:8080"},
		{BaseURL: "ftp://192.0.2.1/"},
		{BaseURL: "http://192.0.2.1/?x=1"},
		{BaseURL: "http://192.0.2.1/${net0/ip}"},
		{BaseURL: testBase, CAFingerprint: "ab cd"},
		{BaseURL: testBase, CoordinatorGRPC: "${net0/ip}:9443"},
		{BaseURL: testBase, ExtraKernelArgs: `quiet "init=/bin/sh"`},
	} {
		if _, err := New(cfg, b); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	h, err := New(Config{BaseURL: testBase + "/"}, b)
	if err != nil {
		t.Fatal(err)
	}
	if h.base != testBase {
		t.Errorf("base %q: trailing slash kept", h.base)
	}
	if _, err := New(Config{BaseURL: testBase}, nil); err == nil {
		t.Error("New accepted a nil Booter")
	}
}
