package api

import (
	"time"
)

// Node is the record of one bare-metal server, as stored and as Ironic's
// API shows it (same JSON names). Fields that Ironic shows as null when
// unset are pointers or empty strings rendered as null; see nodeFields.
type Node struct {
	UUID      string     `json:"uuid"`
	Name      string     `json:"name,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`

	Driver             string         `json:"driver"`
	DriverInfo         map[string]any `json:"driver_info,omitempty"`
	DriverInternalInfo map[string]any `json:"driver_internal_info,omitempty"`
	Properties         map[string]any `json:"properties,omitempty"`
	InstanceInfo       map[string]any `json:"instance_info,omitempty"`
	InstanceUUID       string         `json:"instance_uuid,omitempty"`
	Extra              map[string]any `json:"extra,omitempty"`
	NetworkData        map[string]any `json:"network_data,omitempty"`
	Traits             []string       `json:"traits,omitempty"`
	ResourceClass      string         `json:"resource_class,omitempty"`
	Description        string         `json:"description,omitempty"`
	Owner              string         `json:"owner,omitempty"`
	Lessee             string         `json:"lessee,omitempty"`
	ConductorGroup     string         `json:"conductor_group,omitempty"`
	Shard              string         `json:"shard,omitempty"`
	ChassisUUID        string         `json:"chassis_uuid,omitempty"`

	ProvisionState       string         `json:"provision_state"`
	TargetProvisionState string         `json:"target_provision_state,omitempty"`
	ProvisionUpdatedAt   *time.Time     `json:"provision_updated_at,omitempty"`
	PowerState           string         `json:"power_state,omitempty"`
	TargetPowerState     string         `json:"target_power_state,omitempty"`
	LastError            string         `json:"last_error,omitempty"`
	Fault                string         `json:"fault,omitempty"`
	Maintenance          bool           `json:"maintenance,omitempty"`
	MaintenanceReason    string         `json:"maintenance_reason,omitempty"`
	ConsoleEnabled       bool           `json:"console_enabled,omitempty"`
	AutomatedClean       *bool          `json:"automated_clean,omitempty"`
	Protected            bool           `json:"protected,omitempty"`
	ProtectedReason      string         `json:"protected_reason,omitempty"`
	Retired              bool           `json:"retired,omitempty"`
	RetiredReason        string         `json:"retired_reason,omitempty"`
	BootMode             string         `json:"boot_mode,omitempty"`
	SecureBoot           *bool          `json:"secure_boot,omitempty"`
	CleanStep            map[string]any `json:"clean_step,omitempty"`
	DeployStep           map[string]any `json:"deploy_step,omitempty"`
	RaidConfig           map[string]any `json:"raid_config,omitempty"`
	TargetRaidConfig     map[string]any `json:"target_raid_config,omitempty"`
	InspectionStartedAt  *time.Time     `json:"inspection_started_at,omitempty"`
	InspectionFinishedAt *time.Time     `json:"inspection_finished_at,omitempty"`

	BIOSInterface       string `json:"bios_interface,omitempty"`
	BootInterface       string `json:"boot_interface,omitempty"`
	ConsoleInterface    string `json:"console_interface,omitempty"`
	DeployInterface     string `json:"deploy_interface,omitempty"`
	InspectInterface    string `json:"inspect_interface,omitempty"`
	ManagementInterface string `json:"management_interface,omitempty"`
	NetworkInterface    string `json:"network_interface,omitempty"`
	PowerInterface      string `json:"power_interface,omitempty"`
	RAIDInterface       string `json:"raid_interface,omitempty"`
	RescueInterface     string `json:"rescue_interface,omitempty"`
	StorageInterface    string `json:"storage_interface,omitempty"`
	VendorInterface     string `json:"vendor_interface,omitempty"`

	// Version counts writes; the store's compare-and-set uses it so two
	// writers can never both win. Not part of the API.
	Version int64 `json:"-"`
}

// Interfaces returns pointers to the node's driver interface fields by
// their API names, so code that sets defaults or validates them does it in
// one loop instead of twelve copies.
func (n *Node) Interfaces() map[string]*string {
	return map[string]*string{
		"bios_interface":       &n.BIOSInterface,
		"boot_interface":       &n.BootInterface,
		"console_interface":    &n.ConsoleInterface,
		"deploy_interface":     &n.DeployInterface,
		"inspect_interface":    &n.InspectInterface,
		"management_interface": &n.ManagementInterface,
		"network_interface":    &n.NetworkInterface,
		"power_interface":      &n.PowerInterface,
		"raid_interface":       &n.RAIDInterface,
		"rescue_interface":     &n.RescueInterface,
		"storage_interface":    &n.StorageInterface,
		"vendor_interface":     &n.VendorInterface,
	}
}

// Power states, as Ironic spells them.
const (
	PowerOn       = "power on"
	PowerOff      = "power off"
	Rebooting     = "rebooting"
	SoftPowerOff  = "soft power off"
	SoftRebooting = "soft rebooting"
)
