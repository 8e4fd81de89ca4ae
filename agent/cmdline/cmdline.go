// Package cmdline reads the agent's settings from the kernel command line,
// where the coordinator's boot script puts them: the ramdisk has no other
// configuration, and nothing on the node is trusted to hold one.
package cmdline

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Config is what the boot script tells the agent.
type Config struct {
	// Coordinator is the agent RPC address, host:port (ingot.coordinator).
	Coordinator string
	// CAFingerprint is the lower-case hex sha256 of the coordinator's CA
	// certificate (ingot.ca), the only CA the agent trusts.
	CAFingerprint string
	// Node is the node's UUID if the boot script knew it (ingot.node);
	// the agent still looks its node up by MAC.
	Node string
	// BootMAC is the MAC the node PXE-booted from (BOOTIF), lower case and
	// colon separated; empty if absent or malformed.
	BootMAC string
	// Insecure allows plain-text gRPC (ingot.insecure=1), for development.
	Insecure bool
}

// Read parses the command line in the file at path (/proc/cmdline).
func Read(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read kernel command line: %w", err)
	}
	return Parse(string(b)), nil
}

// Parse parses a kernel command line. As with the kernel's own parameters,
// a key given twice takes its last value, and unknown keys are ignored
// (the command line is shared with the kernel and init).
func Parse(line string) Config {
	var c Config
	for _, arg := range split(line) {
		key, val, hasVal := strings.Cut(arg, "=")
		switch key {
		case "ingot.coordinator":
			c.Coordinator = val
		case "ingot.ca":
			// Tolerate the "AB:CD:..." form openssl prints.
			c.CAFingerprint = strings.ToLower(strings.ReplaceAll(val, ":", ""))
		case "ingot.node":
			c.Node = val
		case "BOOTIF":
			c.BootMAC = bootIF(val)
		case "ingot.insecure":
			// A bare flag means on, as kernel boolean parameters do.
			c.Insecure = !hasVal || truthy(val)
		}
	}
	return c
}

// Validate reports what the agent cannot run without.
func (c Config) Validate() error {
	var errs []error
	if c.Coordinator == "" {
		errs = append(errs, errors.New("ingot.coordinator=host:port is missing from the kernel command line"))
	} else if _, _, err := net.SplitHostPort(c.Coordinator); err != nil {
		errs = append(errs, fmt.Errorf("ingot.coordinator=%q: %w", c.Coordinator, err))
	}
	if !c.Insecure {
		switch {
		case c.CAFingerprint == "":
			errs = append(errs, errors.New("ingot.ca=<sha256 of the coordinator CA> is missing from the kernel command line (or set ingot.insecure=1)"))
		case !isHex(c.CAFingerprint, 64):
			errs = append(errs, fmt.Errorf("ingot.ca=%q is not a hex sha256 (64 hex digits)", c.CAFingerprint))
		}
	}
	return errors.Join(errs...)
}

// split breaks the line into parameters as the kernel's next_arg does:
// on whitespace outside double quotes, with the quotes themselves removed
// (key="a b" and "key=a b" both give key=a b).
func split(line string) []string {
	var (
		args   []string
		cur    strings.Builder
		quoted bool
		inArg  bool
	)
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inArg = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// bootIF turns PXELINUX/iPXE's BOOTIF=01-aa-bb-cc-dd-ee-ff (ARP hardware
// type 1, Ethernet, then the MAC) into aa:bb:cc:dd:ee:ff.
func bootIF(v string) string {
	v = strings.ToLower(v)
	if len(v) == len("01-aa-bb-cc-dd-ee-ff") && strings.HasPrefix(v, "01-") {
		v = v[3:]
	}
	mac, err := net.ParseMAC(strings.ReplaceAll(v, "-", ":"))
	if err != nil || len(mac) != 6 {
		return ""
	}
	return mac.String()
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "y", "yes", "true", "on":
		return true
	}
	return false
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
