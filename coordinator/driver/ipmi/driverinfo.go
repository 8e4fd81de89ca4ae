package ipmi

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ingot/ingot/pkg/api"
)

// driver_info keys, as Ironic's ipmitool interfaces name them.
const (
	keyAddress     = "ipmi_address"
	keyPort        = "ipmi_port"
	keyUsername    = "ipmi_username"
	keyPassword    = "ipmi_password"
	keyPrivLevel   = "ipmi_priv_level"
	keyCipherSuite = "ipmi_cipher_suite"
)

const (
	defaultPort = 623
	// RMCP+ limits: RAKP 1 carries at most 16 bytes of user name, and
	// the key a password becomes is 20 bytes.
	maxUsername = 16
	maxPassword = 20
)

// properties documents the driver_info keys (GET /v1/drivers/ipmi/properties).
var properties = map[string]string{
	keyAddress:       "IP address or host name of the node's BMC. Required.",
	keyPort:          "UDP port of the BMC's RMCP+ service; default is 623. Optional.",
	keyUsername:      "User name on the BMC; default is the NULL (anonymous) user. Optional.",
	keyPassword:      "Password of ipmi_username. Optional.",
	keyPrivLevel:     "Privilege level of the session: ADMINISTRATOR (default), OPERATOR, USER or CALLBACK. Optional.",
	keyCipherSuite:   "RMCP+ cipher suite, 3 or 17; default is the best one the BMC offers. Optional.",
	"deploy_kernel":  "URL or UUID of the deploy kernel. Not used yet: the deploy interface is fake until the agent-based deploy lands. Optional.",
	"deploy_ramdisk": "URL or UUID of the deploy ramdisk. Not used yet: the deploy interface is fake until the agent-based deploy lands. Optional.",
}

var privLevels = map[string]types.PrivilegeLevel{
	"ADMINISTRATOR": types.PrivilegeLevelAdministrator,
	"OPERATOR":      types.PrivilegeLevelOperator,
	"USER":          types.PrivilegeLevelUser,
	"CALLBACK":      types.PrivilegeLevelCallback,
}

func privName(p types.PrivilegeLevel) string {
	for name, l := range privLevels {
		if l == p {
			return name
		}
	}
	return fmt.Sprintf("%#02x", uint8(p))
}

// target is one BMC and how to log in to it, from a node's driver_info.
// It is comparable: a pooled session is reused only for the same target.
type target struct {
	host     string // without IPv6 brackets
	port     int
	username string
	password string
	priv     types.PrivilegeLevel
	cipher   types.CipherSuiteID // 0: let go-ipmi negotiate
}

// addr is the BMC as errors and logs name it, host:port.
func (t target) addr() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

// String and LogValue keep the password out of anything that prints a
// target.
func (t target) String() string { return t.addr() }

func (t target) LogValue() slog.Value { return slog.StringValue(t.addr()) }

// bmcKey identifies a BMC login: commands with the same key run one at a
// time and share a session.
type bmcKey struct{ addr, username string }

func (t target) key() bmcKey { return bmcKey{t.addr(), t.username} }

// parseDriverInfo reads and checks the node's driver_info. Its errors
// name the key at fault and never quote a password.
func parseDriverInfo(n *api.Node) (target, error) {
	info := n.DriverInfo
	t := target{port: defaultPort, priv: types.PrivilegeLevelAdministrator}

	host, ok := info[keyAddress].(string)
	host = strings.TrimSpace(host)
	if !ok || host == "" {
		// Ironic's words, so scripts that look for them keep working.
		//lint:ignore ST1005 Ironic's text
		return t, fmt.Errorf("Missing the following IPMI credentials in node's driver_info: ['%s'].", keyAddress)
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.ContainsAny(host, " \t/[]@") {
		return t, fmt.Errorf("%s %q is neither an IP address nor a host name", keyAddress, host)
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return t, fmt.Errorf("%s %q is not an IPv6 address; a port goes in %s", keyAddress, host, keyPort)
		}
	}
	t.host = host

	if v, ok := info[keyPort]; ok && v != nil {
		p, err := portNumber(v)
		if err != nil {
			return t, err
		}
		t.port = p
	}

	var err error
	if t.username, err = optString(info, keyUsername); err != nil {
		return t, err
	}
	if len(t.username) > maxUsername {
		return t, fmt.Errorf("%s is %d characters long; IPMI allows at most %d", keyUsername, len(t.username), maxUsername)
	}
	if t.password, err = optString(info, keyPassword); err != nil {
		return t, err
	}
	if len(t.password) > maxPassword {
		return t, fmt.Errorf("%s is longer than IPMI's %d characters", keyPassword, maxPassword)
	}

	level, err := optString(info, keyPrivLevel)
	if err != nil {
		return t, err
	}
	if level != "" {
		p, ok := privLevels[strings.ToUpper(level)]
		if !ok {
			//lint:ignore ST1005 Ironic's text
			return t, fmt.Errorf("Invalid privilege level value:%s, the valid value can be one of [ADMINISTRATOR, CALLBACK, OPERATOR, USER]", level)
		}
		t.priv = p
	}

	if v, ok := info[keyCipherSuite]; ok && v != nil && v != "" {
		c, err := integer(v)
		if err != nil || (c != 3 && c != 17) {
			return t, fmt.Errorf("%s %v is not supported: use 3 or 17, or leave it unset to use the best suite the BMC offers", keyCipherSuite, v)
		}
		t.cipher = types.CipherSuiteID(c)
	}
	return t, nil
}

// portNumber accepts a port as a JSON number or a string, as Ironic does.
func portNumber(v any) (int, error) {
	p, err := integer(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a valid port", keyPort, fmt.Sprint(v))
	}
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("%s %d is out of range: valid port numbers are 1 to 65535", keyPort, p)
	}
	return int(p), nil
}

// integer reads a whole number from a decoded JSON value (float64) or a
// string holding one.
func integer(v any) (int64, error) {
	switch x := v.(type) {
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("%v is not a whole number", x)
		}
		return int64(x), nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case string:
		return strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	}
	return 0, fmt.Errorf("%v is not a number", v)
}

func optString(info map[string]any, key string) (string, error) {
	switch v := info[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("%s must be a string", key)
	}
}
