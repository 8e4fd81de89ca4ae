// Package agent provides the deploy and inspect interfaces whose work the
// node's own agent does, as Ironic's "direct" deploy and "agent" inspect
// interfaces: the conductor boots the node into the agent ramdisk, and as
// the agent calls in, hands it the commands that Steps lists for the
// node's operation one at a time (coordinator/conductor/agent.go). This
// package decides what those commands are; it never touches Redis nor the
// hardware.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ingot/ingot/coordinator/configdrive"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/imagecache"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
	"github.com/ingot/ingot/proto/agentpb"
)

// Interface names, as in Ironic.
const (
	DeployInterface  = "direct"
	InspectInterface = "agent"
)

// imageKey is where Deploy records, in driver_internal_info, the cached
// image the agent is to write.
const imageKey = "agent_image"

// Images is the image cache: it fetches, verifies and keeps an image, and
// says how agents download it.
type Images interface {
	Get(ctx context.Context, src imagecache.Source) (imagecache.Entry, error)
}

// Deploy is the "direct" deploy interface.
type Deploy struct {
	Images Images
	// ImageURL is the base URL agents fetch cached images from: an image
	// named N is at ImageURL + "/" + N.
	ImageURL string
}

// Inspect is the "agent" inspect interface.
type Inspect struct{}

// Add offers the agent interfaces on hardware type h and makes them its
// defaults, as Ironic's hardware types default to direct deploy.
func Add(h *driver.Hardware, d *Deploy, i *Inspect) *driver.Hardware {
	h.Deploy[DeployInterface] = d
	h.Inspect[InspectInterface] = i
	h.Defaults["deploy_interface"] = DeployInterface
	h.Defaults["inspect_interface"] = InspectInterface
	return h
}

// Deploy resolves the node's image through the cache (downloading and
// verifying it once), records what the agent must write, and asks for
// the agent.
func (d *Deploy) Deploy(ctx context.Context, n *api.Node) (driver.Result, error) {
	src, err := imageSource(n)
	if err != nil {
		return 0, err
	}
	layout, err := partitionLayout(n)
	if err != nil {
		return 0, err
	}
	e, err := d.Images.Get(ctx, src)
	if err != nil {
		return 0, fmt.Errorf("image %s: %w", src.URL, err)
	}
	format := e.Format
	if format == "" {
		format = "raw"
	}
	rawSize := e.RawSize
	if rawSize == 0 {
		rawSize = e.Size
	}
	rec := map[string]any{
		"url":    strings.TrimRight(d.ImageURL, "/") + "/" + e.Name,
		"format": format, "sha256": e.SHA256, "sha512": e.SHA512, "size": rawSize,
	}
	if layout != nil {
		rec["partition"] = layout
	}
	setInternal(n, imageKey, rec)
	if cd, ok := n.InstanceInfo["configdrive"]; ok && cd != nil {
		// Built now so a bad config drive fails the deploy before the
		// node is even booted.
		if _, err := configdrive.Build(cd, n.UUID, n.Name); err != nil {
			return 0, fmt.Errorf("config drive: %w", err)
		}
	}
	return driver.Wait, nil
}

// TearDown has nothing to remove that cleaning does not: the agent
// erases the disks in the clean that follows.
func (d *Deploy) TearDown(_ context.Context, n *api.Node) (driver.Result, error) {
	delete(n.DriverInternalInfo, imageKey)
	return driver.Done, nil
}

// Clean asks for the agent, which erases the disks.
func (d *Deploy) Clean(context.Context, *api.Node, bool) (driver.Result, error) {
	return driver.Wait, nil
}

// Validate checks what a deploy needs before one is asked for.
func (d *Deploy) Validate(n *api.Node) error {
	if n.ProvisionState == string(sm.Available) || n.ProvisionState == string(sm.Deploying) {
		_, err := imageSource(n)
		return err
	}
	return nil
}

// Inspect asks for the agent, which reports the inventory.
func (Inspect) Inspect(context.Context, *api.Node) (driver.Result, error) {
	return driver.Wait, nil
}

// Command is one step of an operation run by the agent.
type Command struct {
	Name string // what last_error and the log call the step
	*agentpb.Command
}

// Steps lists the agent commands of the operation node n waits in:
// writing the image and config drive for a deploy, erasing disks for a
// clean, reporting the inventory for an inspection. Their ids are left
// for the caller to set.
func (d *Deploy) Steps(n *api.Node) ([]Command, error) {
	switch sm.State(n.ProvisionState) {
	case sm.DeployWait:
		return d.deploySteps(n)
	case sm.CleanWait:
		return cleanSteps(n)
	}
	return nil, fmt.Errorf("deploy interface %s has no agent steps for state %q", DeployInterface, n.ProvisionState)
}

// Steps lists the inspection's commands.
func (Inspect) Steps(n *api.Node) ([]Command, error) {
	if sm.State(n.ProvisionState) != sm.InspectWait {
		return nil, fmt.Errorf("inspect interface %s has no agent steps for state %q", InspectInterface, n.ProvisionState)
	}
	return []Command{{Name: "inspect", Command: &agentpb.Command{Kind: &agentpb.Command_GetInventory{GetInventory: &agentpb.GetInventory{}}}}}, nil
}

func (d *Deploy) deploySteps(n *api.Node) ([]Command, error) {
	img, _ := n.DriverInternalInfo[imageKey].(map[string]any)
	url, _ := img["url"].(string)
	if url == "" {
		return nil, errors.New("the image to write was not recorded: deploy again")
	}
	format, _ := img["format"].(string)
	sum, _ := img["sha256"].(string)
	checksums := map[string]string{"sha256": sum}
	if s, _ := img["sha512"].(string); s != "" {
		checksums["sha512"] = s
	}
	hints, err := RootDeviceHints(n)
	if err != nil {
		return nil, err
	}
	write := &agentpb.WriteImage{
		Url: url, Format: format, ChecksumAlgorithm: "sha256", Checksum: sum,
		SizeBytes: uint64(Number(img["size"])), RootDevice: hints, Checksums: checksums,
	}
	if p, ok := img["partition"].(map[string]any); ok {
		write.PartitionLayout = &agentpb.PartitionLayout{
			RootMib: uint64(Number(p["root_mib"])), EfiSystemPartition: p["efi"] == true,
		}
	}
	steps := []Command{{Name: "write_image", Command: &agentpb.Command{Kind: &agentpb.Command_WriteImage{WriteImage: write}}}}
	if cd, ok := n.InstanceInfo["configdrive"]; ok && cd != nil {
		drive, err := configdrive.Build(cd, n.UUID, n.Name)
		if err != nil {
			return nil, fmt.Errorf("config drive: %w", err)
		}
		install := &agentpb.InstallConfigDrive{RootDevice: hints}
		if drive.URL != "" {
			install.Source = &agentpb.InstallConfigDrive_Url{Url: drive.URL}
		} else {
			install.Source = &agentpb.InstallConfigDrive_Iso{Iso: drive.ISO}
		}
		steps = append(steps, Command{Name: "install_config_drive", Command: &agentpb.Command{Kind: &agentpb.Command_InstallConfigDrive{InstallConfigDrive: install}}})
	}
	return steps, nil
}

// cleanSteps are Ironic's: automated cleaning erases disk metadata;
// manual cleaning runs the steps asked for, of those the agent knows.
func cleanSteps(n *api.Node) ([]Command, error) {
	meta := Command{Name: "erase_devices_metadata", Command: &agentpb.Command{Kind: &agentpb.Command_EraseMetadata{EraseMetadata: &agentpb.EraseMetadata{}}}}
	full := Command{Name: "erase_devices", Command: &agentpb.Command{Kind: &agentpb.Command_FullErase{FullErase: &agentpb.FullErase{}}}}
	asked, _ := n.DriverInternalInfo["clean_steps"].([]any)
	if n.TargetProvisionState != string(sm.Manageable) || len(asked) == 0 {
		return []Command{meta}, nil
	}
	var steps []Command
	for _, s := range asked {
		m, _ := s.(map[string]any)
		switch step, _ := m["step"].(string); step {
		case meta.Name:
			steps = append(steps, meta)
		case full.Name:
			steps = append(steps, full)
		default:
			return nil, fmt.Errorf("clean step %q is not supported by the agent (supported: %s, %s)", step, meta.Name, full.Name)
		}
	}
	return steps, nil
}

// partitionLayout is nil for a whole-disk image; for a partition image
// (image_type "partition", set by the conductor from kernel and ramdisk
// as Ironic does) it is the root partition's size, from root_gb, and
// whether an EFI system partition goes first (UEFI boot mode).
func partitionLayout(n *api.Node) (map[string]any, error) {
	if n.InstanceInfo["image_type"] != "partition" {
		return nil, nil
	}
	gb := Number(n.InstanceInfo["root_gb"])
	if s, ok := n.InstanceInfo["root_gb"].(string); ok {
		if _, err := fmt.Sscan(s, &gb); err != nil {
			gb = 0
		}
	}
	if gb <= 0 {
		return nil, fmt.Errorf("node %s: a partition image needs instance_info.root_gb, a whole number of GiB above 0", n.UUID)
	}
	uefi := n.BootMode == "uefi" || n.Properties["boot_mode"] == "uefi" ||
		strings.Contains(fmt.Sprint(n.Properties["capabilities"]), "boot_mode:uefi")
	return map[string]any{"root_mib": gb * 1024, "efi": uefi}, nil
}

// imageSource reads instance_info's image fields.
func imageSource(n *api.Node) (imagecache.Source, error) {
	str := func(k string) string { s, _ := n.InstanceInfo[k].(string); return s }
	src := imagecache.Source{
		URL: str("image_source"), Checksum: str("image_checksum"),
		HashAlgo: str("image_os_hash_algo"), HashValue: str("image_os_hash_value"),
		DiskFormat: str("image_disk_format"),
	}
	var missing []string
	if src.URL == "" {
		missing = append(missing, "image_source")
	}
	if src.Checksum == "" && src.HashValue == "" {
		missing = append(missing, "image_checksum (or image_os_hash_algo and image_os_hash_value)")
	}
	if len(missing) > 0 {
		return src, fmt.Errorf("node %s: instance_info lacks %s", n.UUID, strings.Join(missing, " and "))
	}
	return src, nil
}

// RootDeviceHints turns properties.root_device into the agent's hints,
// every value as a string (Ironic accepts numbers and booleans too).
func RootDeviceHints(n *api.Node) (*agentpb.RootDeviceHints, error) {
	raw, ok := n.Properties["root_device"]
	if !ok || raw == nil {
		return nil, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("properties.root_device must be an object, not %T", raw)
	}
	hints := map[string]string{}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			hints[k] = v
		case bool:
			hints[k] = fmt.Sprint(v)
		case float64:
			hints[k] = fmt.Sprint(int64(v))
		case int, int64:
			hints[k] = fmt.Sprint(v)
		default:
			return nil, fmt.Errorf("properties.root_device.%s: unsupported value %v", k, v)
		}
	}
	return &agentpb.RootDeviceHints{Hints: hints}, nil
}

// Number reads a JSON number from a decoded field of a node (instance_info,
// driver_internal_info) however it was decoded: float64 after a trip
// through Redis, an int when set in this process. Anything else is 0.
func Number(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case int:
		return int64(x)
	case int64:
		return x
	case json.Number:
		i, _ := x.Int64()
		return i
	}
	return 0
}

func setInternal(n *api.Node, k string, v any) {
	if n.DriverInternalInfo == nil {
		n.DriverInternalInfo = map[string]any{}
	}
	n.DriverInternalInfo[k] = v
}
