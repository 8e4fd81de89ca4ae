package ipmi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ingot/ingot/pkg/api"
)

func TestParseDriverInfo(t *testing.T) {
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"ipmi_address": "192.0.2.10"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	admin := types.PrivilegeLevelAdministrator
	for _, tc := range []struct {
		name string
		info map[string]any
		want target
		err  string
	}{
		{"minimal", base(nil), target{host: "192.0.2.10", port: 623, priv: admin}, ""},
		{"full", base(map[string]any{"ipmi_port": 6230.0, "ipmi_username": "admin", "ipmi_password": "pw",
			"ipmi_priv_level": "OPERATOR", "ipmi_cipher_suite": 17.0, "deploy_kernel": "k", "deploy_ramdisk": "r"}),
			target{host: "192.0.2.10", port: 6230, username: "admin", password: "pw", priv: types.PrivilegeLevelOperator, cipher: 17}, ""},
		{"port as string", base(map[string]any{"ipmi_port": "6231"}), target{host: "192.0.2.10", port: 6231, priv: admin}, ""},
		{"priv level in lower case", base(map[string]any{"ipmi_priv_level": "user"}), target{host: "192.0.2.10", port: 623, priv: types.PrivilegeLevelUser}, ""},
		{"cipher suite as string", base(map[string]any{"ipmi_cipher_suite": "3"}), target{host: "192.0.2.10", port: 623, priv: admin, cipher: 3}, ""},
		{"empty cipher suite", base(map[string]any{"ipmi_cipher_suite": ""}), target{host: "192.0.2.10", port: 623, priv: admin}, ""},
		{"null port", base(map[string]any{"ipmi_port": nil}), target{host: "192.0.2.10", port: 623, priv: admin}, ""},
		{"host name", map[string]any{"ipmi_address": " bmc-7.example.net "}, target{host: "bmc-7.example.net", port: 623, priv: admin}, ""},
		{"IPv6", map[string]any{"ipmi_address": "2001:db8::7"}, target{host: "2001:db8::7", port: 623, priv: admin}, ""},
		{"IPv6 link-local with zone", map[string]any{"ipmi_address": "fe80::7%eth0"}, target{host: "fe80::7%eth0", port: 623, priv: admin}, ""},
		{"IPv6 in brackets", map[string]any{"ipmi_address": "[2001:db8::7]"}, target{host: "2001:db8::7", port: 623, priv: admin}, ""},

		{"no driver_info", nil, target{}, "Missing the following IPMI credentials in node's driver_info: ['ipmi_address']."},
		{"empty address", map[string]any{"ipmi_address": ""}, target{}, "['ipmi_address']"},
		{"address not a string", map[string]any{"ipmi_address": 7.0}, target{}, "['ipmi_address']"},
		{"address with a path", map[string]any{"ipmi_address": "http://192.0.2.10/"}, target{}, "neither an IP address nor a host name"},
		{"port in the address", map[string]any{"ipmi_address": "192.0.2.10:6230"}, target{}, `ipmi_address "192.0.2.10:6230" is not an IPv6 address; a port goes in ipmi_port`},
		{"port not a number", base(map[string]any{"ipmi_port": "ipmi"}), target{}, `ipmi_port "ipmi" is not a valid port`},
		{"port fraction", base(map[string]any{"ipmi_port": 623.5}), target{}, "ipmi_port \"623.5\" is not a valid port"},
		{"port zero", base(map[string]any{"ipmi_port": 0.0}), target{}, "ipmi_port 0 is out of range"},
		{"port too big", base(map[string]any{"ipmi_port": "70000"}), target{}, "ipmi_port 70000 is out of range"},
		{"port a list", base(map[string]any{"ipmi_port": []any{623.0}}), target{}, "is not a valid port"},
		{"unknown priv level", base(map[string]any{"ipmi_priv_level": "ROOT"}), target{}, "Invalid privilege level value:ROOT, the valid value can be one of [ADMINISTRATOR, CALLBACK, OPERATOR, USER]"},
		{"cipher suite 1", base(map[string]any{"ipmi_cipher_suite": 1.0}), target{}, "ipmi_cipher_suite 1 is not supported: use 3 or 17"},
		{"cipher suite word", base(map[string]any{"ipmi_cipher_suite": "best"}), target{}, "ipmi_cipher_suite best is not supported"},
		{"user name too long", base(map[string]any{"ipmi_username": strings.Repeat("u", 17)}), target{}, "ipmi_username is 17 characters long; IPMI allows at most 16"},
		{"user name not a string", base(map[string]any{"ipmi_username": 1.0}), target{}, "ipmi_username must be a string"},
		{"password too long", base(map[string]any{"ipmi_password": strings.Repeat("p", 21)}), target{}, "ipmi_password is longer than IPMI's 20 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDriverInfo(&api.Node{DriverInfo: tc.info})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				if pw, _ := tc.info["ipmi_password"].(string); pw != "" && strings.Contains(err.Error(), pw) {
					t.Errorf("error %q quotes the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("target = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestTargetHidesPassword(t *testing.T) {
	tg := target{host: "192.0.2.10", port: 623, username: "admin", password: "s3cret-pw"}
	for _, s := range []string{fmt.Sprint(tg), fmt.Sprintf("%v", tg), tg.LogValue().String()} {
		if strings.Contains(s, "s3cret-pw") || s != "192.0.2.10:623" {
			t.Errorf("target prints as %q", s)
		}
	}
	if got := (target{host: "2001:db8::7", port: 623}).addr(); got != "[2001:db8::7]:623" {
		t.Errorf("IPv6 addr = %q", got)
	}
}
