package agentpb

import (
	"errors"
	"fmt"
	"net"
)

// Validate methods are hand-written (not generated) and run in the
// coordinator's validator interceptor, so a malformed call is refused with
// InvalidArgument before any handler sees it.

// Validate checks a lookup carries at least one usable MAC address.
func (r *LookupRequest) Validate() error {
	if r.GetInventory() == nil || len(r.GetInventory().GetInterfaces()) == 0 {
		return errors.New("lookup: the inventory lists no network interfaces")
	}
	for _, ifc := range r.GetInventory().GetInterfaces() {
		if _, err := net.ParseMAC(ifc.GetMacAddress()); err == nil {
			return nil
		}
	}
	return errors.New("lookup: no interface has a valid MAC address")
}

// Validate checks a heartbeat names its node.
func (r *HeartbeatRequest) Validate() error {
	if r.GetNodeUuid() == "" {
		return errors.New("heartbeat: node_uuid is required")
	}
	if st := r.GetStatus(); st != nil && st.GetCommandId() == "" {
		return fmt.Errorf("heartbeat: a status needs the command_id it reports on")
	}
	return nil
}
