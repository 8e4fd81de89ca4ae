package inventory

import (
	"net"
	"strconv"
	"strings"

	"github.com/ingot/ingot/proto/agentpb"
)

// interfaces lists the physical NICs: those in /sys/class/net with a
// "device" link to the hardware behind them. Loopback, bridges, bonds,
// VLANs and tunnels have none.
func (s sysfs) interfaces(live bool) []*agentpb.NetworkInterface {
	var nics []*agentpb.NetworkInterface
	for _, name := range s.list("sys/class/net") {
		dir := "sys/class/net/" + name
		if name == "lo" || !s.exists(dir, "device") {
			continue
		}
		nic := &agentpb.NetworkInterface{
			Name:       name,
			MacAddress: strings.ToLower(s.read(dir, "address")),
			// Reading carrier or speed of a link that is down fails
			// (EINVAL): no carrier, unknown speed.
			HasCarrier: s.read(dir, "carrier") == "1",
		}
		// The kernel says -1 (SPEED_UNKNOWN) when the driver cannot tell.
		if speed, err := strconv.ParseInt(s.read(dir, "speed"), 10, 64); err == nil && speed > 0 {
			nic.SpeedMbps = uint32(speed)
		}
		if live {
			nic.Ipv4Address = ipv4(name)
		}
		nics = append(nics, nic)
	}
	return nics
}

// ipv4 is the interface's first IPv4 address, "" if none.
func ipv4(name string) string {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return ""
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
