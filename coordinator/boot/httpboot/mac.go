package httpboot

import (
	"fmt"
	"net"
	"strings"
)

// parseMAC accepts an Ethernet MAC in any common form: 52:54:00:aa:bb:cc
// (iPXE's ${net0/mac}), 52-54-00-AA-BB-CC (PXELINUX, Windows),
// 5254.00aa.bbcc (Cisco) and bare 525400aabbcc. Only 6-byte addresses
// are accepted: the boot policy and BOOTIF know nothing else.
func parseMAC(s string) (net.HardwareAddr, error) {
	if len(s) == 12 && isHex(s) {
		var b strings.Builder
		for i := 0; i < 12; i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(s[i : i+2])
		}
		s = b.String()
	}
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("invalid MAC address %q", s)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("invalid MAC address %q: not a 6-byte Ethernet address", s)
	}
	return mac, nil
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// bootIF is PXELINUX's BOOTIF value for mac: the ARP hardware type
// (01, Ethernet) and the address, dash-separated, in lower case. Linux
// ramdisks (and Ingot's agent) read it to find the NIC they booted from.
func bootIF(mac net.HardwareAddr) string {
	return "01-" + strings.ReplaceAll(mac.String(), ":", "-")
}
