package rest

import (
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ingot/ingot/proto/agentpb"
)

// inventory is GET /v1/nodes/{node}/inventory (API 1.81): the hardware
// inventory the agent reported at the node's last inspection, in the
// shape of ironic-python-agent's, so `baremetal node inventory save`
// and tools written for Ironic read it unchanged.
func (s *Server) inventory(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, 81, "Node inventory"); err != nil {
		return err
	}
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	raw, found, err := s.store.NodeInventory(r.Context(), n.UUID)
	if err != nil {
		return err
	}
	if !found {
		return errf(http.StatusNotFound, "Inventory not found for node %s.", n.UUID)
	}
	var inv agentpb.Inventory
	if err := protojson.Unmarshal(raw, &inv); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"inventory": ironicInventory(&inv), "plugin_data": map[string]any{}})
	return nil
}

func ironicInventory(inv *agentpb.Inventory) map[string]any {
	ifaces := []map[string]any{}
	for _, i := range inv.GetInterfaces() {
		ifaces = append(ifaces, map[string]any{
			"name": i.GetName(), "mac_address": i.GetMacAddress(), "ipv4_address": nilIfEmpty(i.GetIpv4Address()),
			"has_carrier": i.GetHasCarrier(), "speed_mbps": i.GetSpeedMbps(),
		})
	}
	disks := []map[string]any{}
	for _, d := range inv.GetDisks() {
		disks = append(disks, map[string]any{
			"name": d.GetName(), "size": d.GetSizeBytes(), "model": d.GetModel(), "vendor": d.GetVendor(),
			"serial": nilIfEmpty(d.GetSerial()), "wwn": nilIfEmpty(d.GetWwn()), "rotational": d.GetRotational(),
			"hctl": nilIfEmpty(d.GetHctl()), "by_path": nilIfEmpty(d.GetByPath()),
			"wwn_with_extension": nilIfEmpty(d.GetWwnWithExtension()), "wwn_vendor_extension": nilIfEmpty(d.GetWwnVendorExtension()),
		})
	}
	cpu, mem, sys := inv.GetCpu(), inv.GetMemory(), inv.GetSystemVendor()
	return map[string]any{
		"interfaces": ifaces,
		"cpu": map[string]any{
			"model_name": cpu.GetModelName(), "count": cpu.GetCount(), "architecture": cpu.GetArchitecture(), "flags": cpu.GetFlags(),
		},
		"memory": map[string]any{"total": mem.GetTotalBytes(), "physical_mb": mem.GetPhysicalMb()},
		"disks":  disks,
		"system_vendor": map[string]any{
			"manufacturer": sys.GetManufacturer(), "product_name": sys.GetProductName(), "serial_number": sys.GetSerialNumber(),
		},
		"boot": map[string]any{"current_boot_mode": inv.GetBootMode()},
	}
}
