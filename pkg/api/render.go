package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TimeFormat is how Ironic prints timestamps.
const TimeFormat = "2006-01-02T15:04:05.000000-07:00"

// Masked replaces secret values in API output.
const Masked = "******"

// Field is one attribute of a resource in the API.
type Field struct {
	Name  string
	Since int  // the 1.x microversion that introduced it
	Patch bool // operators may change it with PATCH
	get   func(n *Node, v *View) any
}

// View says how to render a resource for one request.
type View struct {
	Version Version
	BaseURL string          // e.g. http://127.0.0.1:6385, for links
	Fields  map[string]bool // nil: every field the version has
	// Reservation is the holder of the node's lock, if any; Conductor the
	// coordinator that manages it. Neither is stored on the node.
	Reservation string
	Conductor   string
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(TimeFormat)
}

func object(m map[string]any) any {
	if m == nil {
		return struct{}{}
	}
	return m
}

// secretKeys are substrings of key names whose values are never shown, as
// in Ironic's mask_dict_password.
var secretKeys = []string{"password", "passwd", "secret", "token", "passphrase", "private_key", "encryption_key", "configdrive"}

// IsSecretKey reports whether a driver_info or instance_info key holds a
// secret.
func IsSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// MaskSecrets returns m with every secret value replaced by Masked. m itself
// is not changed.
func MaskSecrets(m map[string]any) any {
	if m == nil {
		return struct{}{}
	}
	var out map[string]any
	for k := range m {
		if IsSecretKey(k) {
			if out == nil {
				out = make(map[string]any, len(m))
				for k2, v2 := range m {
					out[k2] = v2
				}
			}
			out[k] = Masked
		}
	}
	if out == nil {
		return m
	}
	return out
}

// nodeFields are the node's attributes in Ironic's output order.
var nodeFields = []Field{
	{"uuid", 1, false, func(n *Node, _ *View) any { return n.UUID }},
	{"created_at", 1, false, func(n *Node, _ *View) any { return nullTime(&n.CreatedAt) }},
	{"updated_at", 1, false, func(n *Node, _ *View) any { return nullTime(n.UpdatedAt) }},
	{"automated_clean", 47, true, func(n *Node, _ *View) any { return n.AutomatedClean }},
	{"bios_interface", 40, true, func(n *Node, _ *View) any { return nullString(n.BIOSInterface) }},
	{"boot_interface", 31, true, func(n *Node, _ *View) any { return nullString(n.BootInterface) }},
	{"boot_mode", 75, false, func(n *Node, _ *View) any { return nullString(n.BootMode) }},
	{"clean_step", 7, false, func(n *Node, _ *View) any { return object(n.CleanStep) }},
	{"conductor_group", 46, true, func(n *Node, _ *View) any { return n.ConductorGroup }},
	{"console_enabled", 1, false, func(n *Node, _ *View) any { return n.ConsoleEnabled }},
	{"console_interface", 31, true, func(n *Node, _ *View) any { return nullString(n.ConsoleInterface) }},
	{"deploy_interface", 31, true, func(n *Node, _ *View) any { return nullString(n.DeployInterface) }},
	{"deploy_step", 44, false, func(n *Node, _ *View) any { return object(n.DeployStep) }},
	{"description", 51, true, func(n *Node, _ *View) any { return nullString(n.Description) }},
	{"driver", 1, true, func(n *Node, _ *View) any { return n.Driver }},
	{"driver_info", 1, true, func(n *Node, _ *View) any { return MaskSecrets(n.DriverInfo) }},
	{"driver_internal_info", 3, false, func(n *Node, _ *View) any { return MaskSecrets(n.DriverInternalInfo) }},
	{"extra", 1, true, func(n *Node, _ *View) any { return object(n.Extra) }},
	{"fault", 42, false, func(n *Node, _ *View) any { return nullString(n.Fault) }},
	{"inspection_finished_at", 6, false, func(n *Node, _ *View) any { return nullTime(n.InspectionFinishedAt) }},
	{"inspection_started_at", 6, false, func(n *Node, _ *View) any { return nullTime(n.InspectionStartedAt) }},
	{"inspect_interface", 31, true, func(n *Node, _ *View) any { return nullString(n.InspectInterface) }},
	{"instance_info", 1, true, func(n *Node, _ *View) any { return MaskSecrets(n.InstanceInfo) }},
	{"instance_uuid", 1, true, func(n *Node, _ *View) any { return nullString(n.InstanceUUID) }},
	{"last_error", 1, false, func(n *Node, _ *View) any { return nullString(n.LastError) }},
	{"lessee", 65, true, func(n *Node, _ *View) any { return nullString(n.Lessee) }},
	{"maintenance", 1, true, func(n *Node, _ *View) any { return n.Maintenance }},
	{"maintenance_reason", 1, false, func(n *Node, _ *View) any { return nullString(n.MaintenanceReason) }},
	{"management_interface", 31, true, func(n *Node, _ *View) any { return nullString(n.ManagementInterface) }},
	{"name", 5, true, func(n *Node, _ *View) any { return nullString(n.Name) }},
	{"network_data", 66, true, func(n *Node, _ *View) any { return object(n.NetworkData) }},
	{"network_interface", 20, true, func(n *Node, _ *View) any { return nullString(n.NetworkInterface) }},
	{"owner", 50, true, func(n *Node, _ *View) any { return nullString(n.Owner) }},
	{"power_interface", 31, true, func(n *Node, _ *View) any { return nullString(n.PowerInterface) }},
	{"power_state", 1, false, func(n *Node, _ *View) any { return nullString(n.PowerState) }},
	{"properties", 1, true, func(n *Node, _ *View) any { return object(n.Properties) }},
	{"protected", 48, true, func(n *Node, _ *View) any { return n.Protected }},
	{"protected_reason", 48, true, func(n *Node, _ *View) any { return nullString(n.ProtectedReason) }},
	{"provision_state", 1, false, func(n *Node, v *View) any { return nullString(ProvisionStateFor(n.ProvisionState, v.Version)) }},
	{"provision_updated_at", 1, false, func(n *Node, _ *View) any { return nullTime(n.ProvisionUpdatedAt) }},
	{"raid_config", 12, false, func(n *Node, _ *View) any { return object(n.RaidConfig) }},
	{"raid_interface", 31, true, func(n *Node, _ *View) any { return nullString(n.RAIDInterface) }},
	{"rescue_interface", 38, true, func(n *Node, _ *View) any { return nullString(n.RescueInterface) }},
	{"reservation", 1, false, func(_ *Node, v *View) any { return nullString(v.Reservation) }},
	{"resource_class", 21, true, func(n *Node, _ *View) any { return nullString(n.ResourceClass) }},
	{"retired", 61, true, func(n *Node, _ *View) any { return n.Retired }},
	{"retired_reason", 61, true, func(n *Node, _ *View) any { return nullString(n.RetiredReason) }},
	{"secure_boot", 75, false, func(n *Node, _ *View) any { return n.SecureBoot }},
	{"shard", 82, true, func(n *Node, _ *View) any { return nullString(n.Shard) }},
	{"storage_interface", 33, true, func(n *Node, _ *View) any { return nullString(n.StorageInterface) }},
	{"target_power_state", 1, false, func(n *Node, _ *View) any { return nullString(n.TargetPowerState) }},
	{"target_provision_state", 1, false, func(n *Node, v *View) any {
		return nullString(ProvisionStateFor(n.TargetProvisionState, v.Version))
	}},
	{"target_raid_config", 12, false, func(n *Node, _ *View) any { return object(n.TargetRaidConfig) }},
	{"traits", 37, false, func(n *Node, _ *View) any {
		if n.Traits == nil {
			return []string{}
		}
		return n.Traits
	}},
	{"vendor_interface", 31, true, func(n *Node, _ *View) any { return nullString(n.VendorInterface) }},
	{"links", 1, false, nil},
	{"conductor", 49, false, func(_ *Node, v *View) any { return nullString(v.Conductor) }},
	{"allocation_uuid", 52, false, func(*Node, *View) any { return nil }},
	{"chassis_uuid", 1, true, func(n *Node, _ *View) any { return nullString(n.ChassisUUID) }},
	{"ports", 1, false, nil},
	{"states", 14, false, nil},
	{"portgroups", 24, false, nil},
	{"volume", 32, false, nil},
}

// nodeSubresources are the fields rendered as links to a sub-collection.
var nodeSubresources = map[string]bool{"ports": true, "states": true, "portgroups": true, "volume": true}

// NodeListFields are the fields of a node in a plain (not detailed) list,
// in Ironic's order.
var NodeListFields = []string{"uuid", "instance_uuid", "maintenance", "power_state", "provision_state", "name"}

// ProvisionStateFor returns how a state is shown to a client of version v:
// before 1.2, "available" was shown as null ("NOSTATE").
func ProvisionStateFor(s string, v Version) string {
	if s == "available" && !v.AtLeast(2) {
		return ""
	}
	return s
}

// NodeField looks up a node field by API name.
func NodeField(name string) (Field, bool) {
	for _, f := range nodeFields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// PatchableNodeFields lists, sorted, the node fields a client of version v
// may PATCH.
func PatchableNodeFields(v Version) []string {
	var out []string
	for _, f := range nodeFields {
		if f.Patch && v.AtLeast(f.Since) {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out
}

// ErrInvalidFields is returned for a fields= parameter naming unknown
// fields.
type ErrInvalidFields struct{ Names []string }

func (e *ErrInvalidFields) Error() string {
	return fmt.Sprintf("Field(s) %q are not valid", strings.Join(e.Names, ", "))
}

// ParseNodeFields parses a fields= query value for version v.
func ParseNodeFields(s string, v Version) (map[string]bool, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]bool{}
	var bad []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		f, ok := NodeField(name)
		if !ok || !v.AtLeast(f.Since) {
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

// AppendNode appends n's JSON representation for view v to buf.
func AppendNode(buf []byte, n *Node, v *View) []byte {
	buf = append(buf, '{')
	first := true
	for i := range nodeFields {
		f := &nodeFields[i]
		if !v.Version.AtLeast(f.Since) {
			continue
		}
		// links are always shown, even when fields= does not name them.
		if v.Fields != nil && !v.Fields[f.Name] && f.Name != "links" {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendString(buf, f.Name)
		buf = append(buf, ':')
		switch {
		case f.Name == "links":
			buf = appendLinks(buf, v.BaseURL, "nodes/"+n.UUID)
		case nodeSubresources[f.Name]:
			buf = appendLinks(buf, v.BaseURL, "nodes/"+n.UUID+"/"+f.Name)
		default:
			buf = appendValue(buf, f.get(n, v))
		}
	}
	return append(buf, '}')
}

// appendLinks writes Ironic's self and bookmark links for path.
func appendLinks(buf []byte, base, path string) []byte {
	buf = append(buf, `[{"href":`...)
	buf = appendString(buf, base+"/v1/"+path)
	buf = append(buf, `,"rel":"self"},{"href":`...)
	buf = appendString(buf, base+"/"+path)
	return append(buf, `,"rel":"bookmark"}]`...)
}

// Links returns self and bookmark links, for responses built as maps.
func Links(base, path string) []map[string]string {
	return []map[string]string{
		{"href": base + "/v1/" + path, "rel": "self"},
		{"href": base + "/" + path, "rel": "bookmark"},
	}
}

// appendValue is json.Marshal with fast paths for the common scalars,
// which are most of a node and make detailed lists cheap.
func appendValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case string:
		return appendString(buf, x)
	case bool:
		return strconv.AppendBool(buf, x)
	case *bool:
		if x == nil {
			return append(buf, "null"...)
		}
		return strconv.AppendBool(buf, *x)
	case struct{}:
		return append(buf, "{}"...)
	case map[string]any:
		if len(x) == 0 {
			return append(buf, "{}"...)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only values decoded from JSON are stored, so they encode.
		return append(buf, "null"...)
	}
	return append(buf, b...)
}

func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// IsObject reports whether the field holds a JSON object.
func (f Field) IsObject() bool {
	if f.get == nil {
		return false
	}
	_, ok := f.get(&Node{}, &View{}).(struct{})
	return ok
}

// CopyNodeFields sets dst's fields named (by API name) in names to src's
// values: how a patch's result replaces only what a patch may change.
func CopyNodeFields(dst, src *Node, names []string) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	dv, sv := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	t := dv.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if want[tag] {
			dv.Field(i).Set(sv.Field(i))
		}
	}
}
