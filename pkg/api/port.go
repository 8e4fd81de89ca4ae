package api

import (
	"fmt"
	"net"
	"strings"
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

// portFields are a port's attributes in Ironic's output order.
var portFields = []portField{
	{"uuid", 1, false, func(p *Port) any { return p.UUID }},
	{"created_at", 1, false, func(p *Port) any { return nullTime(&p.CreatedAt) }},
	{"updated_at", 1, false, func(p *Port) any { return nullTime(p.UpdatedAt) }},
	{"address", 1, true, func(p *Port) any { return p.Address }},
	{"extra", 1, true, func(p *Port) any { return object(p.Extra) }},
	{"internal_info", 18, false, func(p *Port) any { return object(p.InternalInfo) }},
	{"is_smartnic", 53, true, func(p *Port) any { return p.IsSmartNIC }},
	{"local_link_connection", 19, true, func(p *Port) any { return object(p.LocalLinkConnection) }},
	{"physical_network", 34, true, func(p *Port) any { return nullString(p.PhysicalNetwork) }},
	{"pxe_enabled", 19, true, func(p *Port) any { return p.PXEEnabled }},
	{"node_uuid", 1, true, func(p *Port) any { return p.NodeUUID }},
	{"links", 1, false, nil},
	{"portgroup_uuid", 24, true, func(p *Port) any { return nullString(p.PortgroupUUID) }},
}

type portField struct {
	Name  string
	Since int
	Patch bool
	get   func(*Port) any
}

// PortListFields are a port's fields in a plain list.
var PortListFields = []string{"uuid", "address"}

// PatchablePortFields lists, in order, the port fields version v may PATCH.
func PatchablePortFields(v Version) []string {
	var out []string
	for _, f := range portFields {
		if f.Patch && v.AtLeast(f.Since) {
			out = append(out, f.Name)
		}
	}
	return out
}

// ParsePortFields parses a fields= query value for ports.
func ParsePortFields(s string, v Version) (map[string]bool, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]bool{}
	var bad []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		ok := false
		for _, f := range portFields {
			if f.Name == name && v.AtLeast(f.Since) {
				ok = true
			}
		}
		if !ok {
			bad = append(bad, name)
			continue
		}
		out[name] = true
	}
	if len(bad) > 0 {
		return nil, &ErrInvalidFields{Names: bad}
	}
	return out, nil
}

// AppendPort appends p's JSON representation for view v to buf.
func AppendPort(buf []byte, p *Port, v *View) []byte {
	buf = append(buf, '{')
	first := true
	for i := range portFields {
		f := &portFields[i]
		if !v.Version.AtLeast(f.Since) || (v.Fields != nil && !v.Fields[f.Name] && f.Name != "links") {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendString(buf, f.Name)
		buf = append(buf, ':')
		if f.Name == "links" {
			buf = appendLinks(buf, v.BaseURL, "ports/"+p.UUID)
			continue
		}
		buf = appendValue(buf, f.get(p))
	}
	return append(buf, '}')
}

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
