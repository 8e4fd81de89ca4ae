package api

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// TimeFormat is how Ironic prints timestamps.
const TimeFormat = "2006-01-02T15:04:05.000000-07:00"

// Masked replaces secret values in API output.
const Masked = "******"

// field is one attribute of a resource (T is Node or Port) in the API.
type field[T any] struct {
	Name   string
	Since  int  // the 1.x microversion that introduced it
	Patch  bool // operators may change it with PATCH
	Object bool // holds a JSON object
	Bool   bool // holds a boolean (which clients may send as a string)
	write  func(buf []byte, r *T, v *View) []byte
}

// Field describes a node or port field for callers outside this package.
type Field struct {
	Name   string
	Since  int
	Patch  bool
	Object bool
	Bool   bool
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

	// shown caches which fields of table shownFor this view renders, by
	// index, so a list of many nodes decides it once.
	shown    []bool
	shownFor any
}

func (v *View) mask(tbl any, names []string, since []int) []bool {
	if v.shownFor != tbl {
		v.shownFor = tbl
		v.shown = make([]bool, len(names))
		for i, name := range names {
			// links are always shown, even when fields= omits them.
			v.shown[i] = v.Version.AtLeast(since[i]) && (v.Fields == nil || v.Fields[name] || name == "links")
		}
	}
	return v.shown
}

// table is a resource's fields with their names and versions laid out for
// the renderer.
type table[T any] struct {
	fields []field[T]
	names  []string
	since  []int
}

func newTable[T any](fields []field[T]) *table[T] {
	t := &table[T]{fields: fields}
	for _, f := range fields {
		t.names = append(t.names, f.Name)
		t.since = append(t.since, f.Since)
	}
	return t
}

func (t *table[T]) lookup(name string) (field[T], bool) {
	for _, f := range t.fields {
		if f.Name == name {
			return f, true
		}
	}
	return field[T]{}, false
}

func (t *table[T]) appendJSON(buf []byte, r *T, v *View) []byte {
	shown := v.mask(t, t.names, t.since)
	buf = append(buf, '{')
	first := true
	for i := range t.fields {
		if !shown[i] {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, '"')
		buf = append(buf, t.fields[i].Name...)
		buf = append(buf, '"', ':')
		buf = t.fields[i].write(buf, r, v)
	}
	return append(buf, '}')
}

func (t *table[T]) patchable(v Version) []string {
	var out []string
	for _, f := range t.fields {
		if f.Patch && v.AtLeast(f.Since) {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out
}

func (t *table[T]) parseFields(s string, v Version) (map[string]bool, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]bool{}
	var bad []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		f, ok := t.lookup(name)
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

// Constructors for the common kinds of field.

func nullStr[T any](name string, since int, patch bool, get func(*T) string) field[T] {
	return field[T]{Name: name, Since: since, Patch: patch, write: func(b []byte, r *T, _ *View) []byte { return appendNullString(b, get(r)) }}
}

func str[T any](name string, since int, patch bool, get func(*T) string) field[T] {
	return field[T]{Name: name, Since: since, Patch: patch, write: func(b []byte, r *T, _ *View) []byte { return appendString(b, get(r)) }}
}

func boolean[T any](name string, since int, patch bool, get func(*T) bool) field[T] {
	return field[T]{Name: name, Since: since, Patch: patch, Bool: true, write: func(b []byte, r *T, _ *View) []byte { return appendBool(b, get(r)) }}
}

func obj[T any](name string, since int, patch bool, get func(*T) map[string]any) field[T] {
	return field[T]{Name: name, Since: since, Patch: patch, Object: true, write: func(b []byte, r *T, _ *View) []byte { return appendObject(b, get(r)) }}
}

// masked is an object whose secret values are never shown.
func masked[T any](name string, since int, patch bool, get func(*T) map[string]any) field[T] {
	return field[T]{Name: name, Since: since, Patch: patch, Object: true, write: func(b []byte, r *T, _ *View) []byte { return appendMasked(b, get(r)) }}
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
		return map[string]any{}
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if IsSecretKey(k) {
			v = Masked
		}
		out[k] = v
	}
	return out
}

// nodes is the node's attributes in Ironic's output order: the one
// definition of what a node shows, at which version, and what PATCH may
// change.
var nodes = newTable([]field[Node]{
	str("uuid", 1, false, func(n *Node) string { return n.UUID }),
	{Name: "created_at", Since: 1, write: func(b []byte, n *Node, _ *View) []byte { return appendTime(b, &n.CreatedAt) }},
	{Name: "updated_at", Since: 1, write: func(b []byte, n *Node, _ *View) []byte { return appendTime(b, n.UpdatedAt) }},
	{Name: "automated_clean", Since: 47, Patch: true, Bool: true, write: func(b []byte, n *Node, _ *View) []byte { return appendBoolPtr(b, n.AutomatedClean) }},
	nullStr("bios_interface", 40, true, func(n *Node) string { return n.BIOSInterface }),
	nullStr("boot_interface", 31, true, func(n *Node) string { return n.BootInterface }),
	nullStr("boot_mode", 75, false, func(n *Node) string { return n.BootMode }),
	obj("clean_step", 7, false, func(n *Node) map[string]any { return n.CleanStep }),
	str("conductor_group", 46, true, func(n *Node) string { return n.ConductorGroup }),
	boolean("console_enabled", 1, false, func(n *Node) bool { return n.ConsoleEnabled }),
	nullStr("console_interface", 31, true, func(n *Node) string { return n.ConsoleInterface }),
	nullStr("deploy_interface", 31, true, func(n *Node) string { return n.DeployInterface }),
	obj("deploy_step", 44, false, func(n *Node) map[string]any { return n.DeployStep }),
	nullStr("description", 51, true, func(n *Node) string { return n.Description }),
	str("driver", 1, true, func(n *Node) string { return n.Driver }),
	masked("driver_info", 1, true, func(n *Node) map[string]any { return n.DriverInfo }),
	masked("driver_internal_info", 3, false, func(n *Node) map[string]any { return n.DriverInternalInfo }),
	obj("extra", 1, true, func(n *Node) map[string]any { return n.Extra }),
	nullStr("fault", 42, false, func(n *Node) string { return n.Fault }),
	{Name: "inspection_finished_at", Since: 6, write: func(b []byte, n *Node, _ *View) []byte { return appendTime(b, n.InspectionFinishedAt) }},
	{Name: "inspection_started_at", Since: 6, write: func(b []byte, n *Node, _ *View) []byte { return appendTime(b, n.InspectionStartedAt) }},
	nullStr("inspect_interface", 31, true, func(n *Node) string { return n.InspectInterface }),
	masked("instance_info", 1, true, func(n *Node) map[string]any { return n.InstanceInfo }),
	nullStr("instance_uuid", 1, true, func(n *Node) string { return n.InstanceUUID }),
	nullStr("last_error", 1, false, func(n *Node) string { return n.LastError }),
	nullStr("lessee", 65, true, func(n *Node) string { return n.Lessee }),
	boolean("maintenance", 1, true, func(n *Node) bool { return n.Maintenance }),
	nullStr("maintenance_reason", 1, false, func(n *Node) string { return n.MaintenanceReason }),
	nullStr("management_interface", 31, true, func(n *Node) string { return n.ManagementInterface }),
	nullStr("name", 5, true, func(n *Node) string { return n.Name }),
	obj("network_data", 66, true, func(n *Node) map[string]any { return n.NetworkData }),
	nullStr("network_interface", 20, true, func(n *Node) string { return n.NetworkInterface }),
	nullStr("owner", 50, true, func(n *Node) string { return n.Owner }),
	nullStr("power_interface", 31, true, func(n *Node) string { return n.PowerInterface }),
	nullStr("power_state", 1, false, func(n *Node) string { return n.PowerState }),
	obj("properties", 1, true, func(n *Node) map[string]any { return n.Properties }),
	boolean("protected", 48, true, func(n *Node) bool { return n.Protected }),
	nullStr("protected_reason", 48, true, func(n *Node) string { return n.ProtectedReason }),
	{Name: "provision_state", Since: 1, write: func(b []byte, n *Node, v *View) []byte {
		return appendNullString(b, ProvisionStateFor(n.ProvisionState, v.Version))
	}},
	{Name: "provision_updated_at", Since: 1, write: func(b []byte, n *Node, _ *View) []byte { return appendTime(b, n.ProvisionUpdatedAt) }},
	obj("raid_config", 12, false, func(n *Node) map[string]any { return n.RaidConfig }),
	nullStr("raid_interface", 31, true, func(n *Node) string { return n.RAIDInterface }),
	nullStr("rescue_interface", 38, true, func(n *Node) string { return n.RescueInterface }),
	{Name: "reservation", Since: 1, write: func(b []byte, _ *Node, v *View) []byte { return appendNullString(b, v.Reservation) }},
	nullStr("resource_class", 21, true, func(n *Node) string { return n.ResourceClass }),
	boolean("retired", 61, true, func(n *Node) bool { return n.Retired }),
	nullStr("retired_reason", 61, true, func(n *Node) string { return n.RetiredReason }),
	{Name: "secure_boot", Since: 75, write: func(b []byte, n *Node, _ *View) []byte { return appendBoolPtr(b, n.SecureBoot) }},
	nullStr("shard", 82, true, func(n *Node) string { return n.Shard }),
	nullStr("storage_interface", 33, true, func(n *Node) string { return n.StorageInterface }),
	nullStr("target_power_state", 1, false, func(n *Node) string { return n.TargetPowerState }),
	{Name: "target_provision_state", Since: 1, write: func(b []byte, n *Node, v *View) []byte {
		return appendNullString(b, ProvisionStateFor(n.TargetProvisionState, v.Version))
	}},
	obj("target_raid_config", 12, false, func(n *Node) map[string]any { return n.TargetRaidConfig }),
	{Name: "traits", Since: 37, write: func(b []byte, n *Node, _ *View) []byte {
		if n.Traits == nil {
			return append(b, "[]"...)
		}
		return appendValue(b, n.Traits)
	}},
	nullStr("vendor_interface", 31, true, func(n *Node) string { return n.VendorInterface }),
	{Name: "links", Since: 1, write: func(b []byte, n *Node, v *View) []byte { return appendLinks(b, v.BaseURL, "nodes", n.UUID) }},
	{Name: "conductor", Since: 49, write: func(b []byte, _ *Node, v *View) []byte { return appendNullString(b, v.Conductor) }},
	{Name: "allocation_uuid", Since: 52, write: func(b []byte, _ *Node, _ *View) []byte { return appendNull(b) }},
	nullStr("chassis_uuid", 1, true, func(n *Node) string { return n.ChassisUUID }),
	subresource("ports", 1),
	subresource("states", 14),
	subresource("portgroups", 24),
	subresource("volume", 32),
})

// subresource is a field rendered as links to a node's sub-collection.
func subresource(name string, since int) field[Node] {
	return field[Node]{Name: name, Since: since, write: func(b []byte, n *Node, v *View) []byte {
		return appendLinks(b, v.BaseURL, "nodes", n.UUID, name)
	}}
}

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
	f, ok := nodes.lookup(name)
	return f.public(), ok
}

// PortField looks up a port field by API name.
func PortField(name string) (Field, bool) {
	f, ok := ports.lookup(name)
	return f.public(), ok
}

func (f field[T]) public() Field {
	return Field{Name: f.Name, Since: f.Since, Patch: f.Patch, Object: f.Object, Bool: f.Bool}
}

// PatchableNodeFields lists, sorted, the node fields a client of version v
// may PATCH.
func PatchableNodeFields(v Version) []string { return nodes.patchable(v) }

// ParseNodeFields parses a fields= query value for version v.
func ParseNodeFields(s string, v Version) (map[string]bool, error) { return nodes.parseFields(s, v) }

// AppendNode appends n's JSON representation for view v to buf.
func AppendNode(buf []byte, n *Node, v *View) []byte { return nodes.appendJSON(buf, n, v) }

// ErrInvalidFields is returned for a fields= parameter naming unknown
// fields.
type ErrInvalidFields struct{ Names []string }

func (e *ErrInvalidFields) Error() string {
	return fmt.Sprintf("Field(s) %q are not valid", strings.Join(e.Names, ", "))
}

// Links returns self and bookmark links, for responses built as maps.
func Links(base, path string) []map[string]string {
	return []map[string]string{
		{"href": base + "/v1/" + path, "rel": "self"},
		{"href": base + "/" + path, "rel": "bookmark"},
	}
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
