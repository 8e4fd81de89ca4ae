// Package driver defines what the conductor needs from hardware, one small
// interface per capability (as bmclib does), and the hardware types that
// bundle them. Drivers never touch Redis: they act on the node they are
// given, and the conductor records what they changed.
package driver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ingot/ingot/pkg/api"
)

// Power reads and changes a node's power state.
type Power interface {
	PowerState(ctx context.Context, n *api.Node) (string, error)
	// SetPowerState moves the node to target (api.PowerOn, PowerOff,
	// Rebooting, SoftPowerOff, SoftRebooting) and returns once the
	// hardware reports the resulting state, or fails after timeout.
	SetPowerState(ctx context.Context, n *api.Node, target string, timeout time.Duration) error
}

// BootDevice is where a node boots next.
type BootDevice struct {
	Device     string `json:"boot_device"`
	Persistent bool   `json:"persistent"`
}

// Boot devices, as Ironic names them.
const (
	BootPXE   = "pxe"
	BootDisk  = "disk"
	BootCDROM = "cdrom"
	BootBIOS  = "bios"
	BootSafe  = "safe"
)

// Management reads and sets the boot device.
type Management interface {
	BootDevice(ctx context.Context, n *api.Node) (BootDevice, error)
	SetBootDevice(ctx context.Context, n *api.Node, d BootDevice) error
	SupportedBootDevices(n *api.Node) []string
}

// Result says whether an operation finished or now waits for the node's
// agent to call back (the node then moves to the matching wait state).
type Result int

const (
	Done Result = iota
	Wait
)

// Deploy writes and removes instances, and cleans disks.
type Deploy interface {
	Deploy(ctx context.Context, n *api.Node) (Result, error)
	TearDown(ctx context.Context, n *api.Node) (Result, error)
	Clean(ctx context.Context, n *api.Node, manual bool) (Result, error)
}

// Inspect discovers a node's hardware and records it in n.Properties.
type Inspect interface {
	Inspect(ctx context.Context, n *api.Node) (Result, error)
}

// Validator is implemented by interfaces that can check a node's
// configuration before they are used (GET /v1/nodes/{id}/validate).
type Validator interface {
	Validate(n *api.Node) error
}

// Interfaces are the implementations one node uses, picked by its
// *_interface fields. A nil member means the node's choice offers nothing
// (a "no-..." interface).
type Interfaces struct {
	Power      Power
	Management Management
	Deploy     Deploy
	Inspect    Inspect
}

// Hardware is a hardware type: for each kind of interface, the
// implementations a node of this type may choose by name, and the default
// choice, as Ironic composes hardware types from interfaces.
type Hardware struct {
	Name string
	// Defaults are the interface names a new node of this type gets, for
	// every *_interface field.
	Defaults map[string]string
	// Others lists the names allowed for interface fields Ingot has no
	// implementations for (bios, console, raid, ...).
	Others map[string][]string
	// Properties documents the driver_info keys the type understands.
	Properties map[string]string

	Power      map[string]Power
	Management map[string]Management
	Deploy     map[string]Deploy
	Inspect    map[string]Inspect
}

// For returns the implementations node n has chosen.
func (h *Hardware) For(n *api.Node) Interfaces {
	return Interfaces{
		Power:      h.Power[n.PowerInterface],
		Management: h.Management[n.ManagementInterface],
		Deploy:     h.Deploy[n.DeployInterface],
		Inspect:    h.Inspect[n.InspectInterface],
	}
}

// enabled lists the names allowed for an interface field.
func (h *Hardware) enabled(field string) []string {
	var names []string
	add := func(keys []string) { names = append(names, keys...) }
	switch field {
	case "power_interface":
		add(slices.Collect(maps.Keys(h.Power)))
	case "management_interface":
		add(slices.Collect(maps.Keys(h.Management)))
	case "deploy_interface":
		add(slices.Collect(maps.Keys(h.Deploy)))
	case "inspect_interface":
		add(slices.Collect(maps.Keys(h.Inspect)))
	}
	add(h.Others[field])
	slices.Sort(names)
	return slices.Compact(names)
}

// ErrUnsupported is returned for an operation a hardware type lacks.
var ErrUnsupported = errors.New("not supported by this driver")

// Registry holds the hardware types a coordinator offers.
type Registry struct{ types map[string]*Hardware }

// NewRegistry returns a registry of hw.
func NewRegistry(hw ...*Hardware) *Registry {
	r := &Registry{types: map[string]*Hardware{}}
	for _, h := range hw {
		r.types[h.Name] = h
	}
	return r
}

// Get returns the hardware type called name.
func (r *Registry) Get(name string) (*Hardware, bool) {
	h, ok := r.types[name]
	return h, ok
}

// Names lists the hardware types, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ApplyDefaults fills a new node's empty interface fields from its type.
func (h *Hardware) ApplyDefaults(n *api.Node) {
	for field, p := range n.Interfaces() {
		if *p == "" {
			*p = h.Defaults[field]
		}
	}
}

// ErrBadInterface is an interface value a hardware type does not offer;
// its text is Ironic's.
type ErrBadInterface struct {
	Field, Value string
	Valid        []string
}

func (e *ErrBadInterface) Error() string {
	return fmt.Sprintf("Could not find the following interface in the 'ironic.hardware.interfaces.%s' entrypoint: %s. Valid interfaces are %v.",
		strings.TrimSuffix(e.Field, "_interface"), e.Value, e.Valid)
}

// CheckInterfaces refuses interface values the type does not offer.
func (h *Hardware) CheckInterfaces(n *api.Node) error {
	for field, p := range n.Interfaces() {
		if valid := h.enabled(field); !slices.Contains(valid, *p) {
			return &ErrBadInterface{Field: field, Value: *p, Valid: valid}
		}
	}
	return nil
}
