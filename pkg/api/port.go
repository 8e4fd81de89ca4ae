package api

import (
	"fmt"
	"net"
	"time"
)

// Port is one NIC of a node, known by its MAC address.
type Port struct {
	UUID                string         `json:"uuid"`
	Address             string         `json:"address"`
	NodeUUID            string         `json:"node_uuid"`
	CreatedAt           time.Time      `json:"created_at"`
	UpdatedAt           *time.Time     `json:"updated_at,omitempty"`
	Extra               map[string]any `json:"extra,omitempty"`
	InternalInfo        map[string]any `json:"internal_info,omitempty"`
	LocalLinkConnection map[string]any `json:"local_link_connection,omitempty"`
	PhysicalNetwork     string         `json:"physical_network,omitempty"`
	PXEEnabled          bool           `json:"pxe_enabled"`
	IsSmartNIC          bool           `json:"is_smartnic,omitempty"`
	PortgroupUUID       string         `json:"portgroup_uuid,omitempty"`
	Version             int64          `json:"_version,omitempty"`
}

// ports is a port's attributes in Ironic's output order.
var ports = newTable([]field[Port]{
	str("uuid", 1, false, func(p *Port) string { return p.UUID }),
	{Name: "created_at", Since: 1, write: func(b []byte, p *Port, _ *View) []byte { return appendTime(b, &p.CreatedAt) }},
	{Name: "updated_at", Since: 1, write: func(b []byte, p *Port, _ *View) []byte { return appendTime(b, p.UpdatedAt) }},
	str("address", 1, true, func(p *Port) string { return p.Address }),
	obj("extra", 1, true, func(p *Port) map[string]any { return p.Extra }),
	obj("internal_info", 18, false, func(p *Port) map[string]any { return p.InternalInfo }),
	boolean("is_smartnic", 53, true, func(p *Port) bool { return p.IsSmartNIC }),
	obj("local_link_connection", 19, true, func(p *Port) map[string]any { return p.LocalLinkConnection }),
	nullStr("physical_network", 34, true, func(p *Port) string { return p.PhysicalNetwork }),
	boolean("pxe_enabled", 19, true, func(p *Port) bool { return p.PXEEnabled }),
	str("node_uuid", 1, true, func(p *Port) string { return p.NodeUUID }),
	{Name: "links", Since: 1, write: func(b []byte, p *Port, v *View) []byte { return appendLinks(b, v.BaseURL, "ports", p.UUID) }},
	nullStr("portgroup_uuid", 24, true, func(p *Port) string { return p.PortgroupUUID }),
})

// PortListFields are a port's fields in a plain list.
var PortListFields = []string{"uuid", "address"}

// PatchablePortFields lists, sorted, the port fields version v may PATCH.
func PatchablePortFields(v Version) []string { return ports.patchable(v) }

// ParsePortFields parses a fields= query value for ports.
func ParsePortFields(s string, v Version) (map[string]bool, error) { return ports.parseFields(s, v) }

// AppendPort appends p's JSON representation for view v to buf.
func AppendPort(buf []byte, p *Port, v *View) []byte { return ports.appendJSON(buf, p, v) }

// ErrBadMAC is the error for an address that is not a MAC.
type ErrBadMAC struct{ Value string }

func (e *ErrBadMAC) Error() string {
	return fmt.Sprintf("Expected valid MAC address for address: %s", e.Value)
}

// NormalizeMAC returns a 48-bit MAC address in Ironic's canonical form:
// lower case, colon separated.
func NormalizeMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", &ErrBadMAC{Value: s}
	}
	return hw.String(), nil
}
