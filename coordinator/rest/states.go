package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/ingot/ingot/coordinator/conductor"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// stateFields are the fields of GET .../states, in Ironic's order.
var stateFields = []string{"console_enabled", "last_error", "power_state", "provision_state", "target_power_state",
	"target_provision_state", "provision_updated_at", "raid_config", "target_raid_config", "boot_mode", "secure_boot"}

func (s *Server) getStates(w http.ResponseWriter, r *http.Request) error {
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	fields := map[string]bool{}
	for _, f := range stateFields {
		fields[f] = true
	}
	v := s.view(r, fields)
	// The states document has no links; render and drop them.
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(api.AppendNode(nil, n, v), &doc); err != nil {
		return err
	}
	buf := []byte{'{'}
	first := true
	for _, f := range stateFields {
		val, ok := doc[f]
		if !ok {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		kb, _ := json.Marshal(f)
		buf = append(append(append(buf, kb...), ':'), val...)
	}
	writeRaw(w, http.StatusOK, append(buf, '}'))
	return nil
}

// verbSince is the API version each provision verb appeared in.
var verbSince = map[string]int{
	"manage": 4, "inspect": 6, "abort": 13, "clean": 15, "adopt": 17, "deploy": 73, "undeploy": 73,
}

type provisionRequest struct {
	Target      string          `json:"target"`
	ConfigDrive json.RawMessage `json:"configdrive,omitempty"`
	CleanSteps  []any           `json:"clean_steps,omitempty"`
	DeploySteps []any           `json:"deploy_steps,omitempty"`
}

func (s *Server) setProvision(w http.ResponseWriter, r *http.Request) error {
	var req provisionRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	cur, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	notAllowed := func(state string) error {
		return badRequest(`The requested action "%s" can not be performed on node "%s" while it is in state "%s".`, req.Target, cur.UUID, state)
	}
	ev, ok := sm.Verb(req.Target)
	if !ok {
		return notAllowed(cur.ProvisionState)
	}
	if since, ok := verbSince[req.Target]; ok {
		if err := needVersion(r, since, "The provision verb "+req.Target); err != nil {
			return err
		}
	}
	var configDrive any
	if len(req.ConfigDrive) > 0 && string(req.ConfigDrive) != "null" {
		if ev != sm.Deploy && ev != sm.Rebuild {
			return badRequest("Adding a config drive is only supported when setting provision state to active or rebuild")
		}
		if configDrive, err = parseConfigDrive(req.ConfigDrive, version(r)); err != nil {
			return err
		}
	}
	if ev == sm.Clean && len(req.CleanSteps) == 0 {
		return badRequest(`"clean_steps" is required when setting target provision state to clean`)
	}
	if cur.Maintenance && ev != sm.Abort && ev != sm.Manage && ev != sm.Delete {
		return badRequest("Cannot %s node %s: it is in maintenance mode.", req.Target, cur.UUID)
	}
	if cur.Protected && (ev == sm.Delete || ev == sm.Rebuild) {
		return errf(http.StatusForbidden, "Node %s is protected and cannot be undeployed, rebuilt or deleted", cur.UUID)
	}
	n, err := s.store.UpdateNode(r.Context(), cur.UUID, "", func(n *api.Node, fx *store.Effects) error {
		e, err := conductor.ApplyEvent(n, ev, "Aborted by operator", s.cfg.Host, time.Now().UTC())
		var na *sm.ErrNotAllowed
		if errors.As(err, &na) {
			return notAllowed(n.ProvisionState)
		}
		if err != nil {
			return err
		}
		fx.Event = e
		if ev == sm.Deploy || ev == sm.Rebuild {
			if n.InstanceInfo == nil {
				n.InstanceInfo = map[string]any{}
			}
			delete(n.InstanceInfo, "configdrive")
			if configDrive != nil {
				n.InstanceInfo["configdrive"] = configDrive
			}
		}
		if len(req.CleanSteps) > 0 {
			n.DriverInternalInfo = setKey(n.DriverInternalInfo, "clean_steps", req.CleanSteps)
		}
		if sm.State(n.ProvisionState).Busy() {
			fx.Job = conductor.ProvisionJob(n.ProvisionState)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.metrics.Transitions.WithLabelValues(string(ev)).Inc()
	s.logFor(r).Info("provision verb accepted", "node", n.UUID, "verb", req.Target, "provision_state", n.ProvisionState)
	s.accepted(w, r, n.UUID)
	return nil
}

func setKey(m map[string]any, k string, v any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m[k] = v
	return m
}

// parseConfigDrive accepts Ironic's three forms: a gzipped, base64-encoded
// ISO or a URL (strings), or (1.56+) an object to build the drive from.
func parseConfigDrive(raw json.RawMessage, v api.Version) (any, error) {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		if str == "" {
			return nil, badRequest("configdrive must not be empty")
		}
		return str, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, badRequest("configdrive must be a string or an object")
	}
	if !v.AtLeast(56) {
		return nil, errf(http.StatusNotAcceptable, "A config drive given as an object requires API version 1.56 or later.")
	}
	allowed := map[string]bool{"meta_data": true, "network_data": true, "user_data": true}
	if v.AtLeast(59) {
		allowed["vendor_data"] = true
	}
	for k := range obj {
		if !allowed[k] {
			return nil, badRequest("Invalid configdrive key %q: expected meta_data, network_data, user_data or vendor_data", k)
		}
	}
	return obj, nil
}

type powerRequest struct {
	Target  string `json:"target"`
	Timeout *int   `json:"timeout,omitempty"`
}

func (s *Server) setPower(w http.ResponseWriter, r *http.Request) error {
	var req powerRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	cur, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	v := version(r)
	valid := map[string]bool{api.PowerOn: true, api.PowerOff: true, api.Rebooting: true}
	if v.AtLeast(27) {
		valid[api.SoftPowerOff], valid[api.SoftRebooting] = true, true
	}
	if !valid[req.Target] {
		ps := cur.PowerState
		if ps == "" {
			ps = "None"
		}
		return badRequest(`The requested action "%s" can not be performed on node "%s" while it is in state "%s".`, req.Target, cur.UUID, ps)
	}
	timeout := s.cfg.PowerTimeout
	if req.Timeout != nil {
		if err := needVersion(r, 27, "The power timeout"); err != nil {
			return err
		}
		if *req.Timeout < 1 {
			return badRequest("Invalid timeout value %d: it must be a positive integer.", *req.Timeout)
		}
		timeout = time.Duration(*req.Timeout) * time.Second
	}
	if sm.State(cur.ProvisionState).Busy() {
		return errf(http.StatusConflict, "Node %s can not change power state while a provisioning operation is in progress.", cur.UUID)
	}
	resulting := api.PowerOn
	if req.Target == api.PowerOff || req.Target == api.SoftPowerOff {
		resulting = api.PowerOff
	}
	_, err = s.store.UpdateNode(r.Context(), cur.UUID, "", func(n *api.Node, fx *store.Effects) error {
		if n.TargetPowerState != "" {
			return errf(http.StatusConflict, "Node %s is already changing its power state to %s.", n.UUID, n.TargetPowerState)
		}
		n.TargetPowerState = resulting
		fx.Job = conductor.PowerJob(req.Target, timeout)
		return nil
	})
	if err != nil {
		return err
	}
	s.logFor(r).Info("power change accepted", "node", cur.UUID, "target", req.Target)
	s.accepted(w, r, cur.UUID)
	return nil
}

func (s *Server) getBootDevice(w http.ResponseWriter, r *http.Request) error {
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	d, err := s.op.BootDevice(r.Context(), n.UUID)
	if err != nil {
		return err
	}
	if d.Device == "" {
		// The BMC reports no override: Ironic shows both as null.
		writeJSON(w, http.StatusOK, map[string]any{"boot_device": nil, "persistent": nil})
		return nil
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) setBootDevice(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		BootDevice string `json:"boot_device"`
		Persistent bool   `json:"persistent"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	if req.BootDevice == "" {
		return badRequest("Invalid input for field/attribute boot_device. Value: None. Mandatory field missing.")
	}
	if err := s.op.SetBootDevice(r.Context(), n.UUID, driver.BootDevice{Device: req.BootDevice, Persistent: req.Persistent}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) supportedBootDevices(w http.ResponseWriter, r *http.Request) error {
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	devs, err := s.op.SupportedBootDevices(r.Context(), n.UUID)
	if err != nil {
		return err
	}
	if devs == nil {
		devs = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"supported_boot_devices": devs})
	return nil
}

func (s *Server) setMaintenance(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			return err
		}
	}
	return s.maintenance(w, r, true, req.Reason)
}

func (s *Server) unsetMaintenance(w http.ResponseWriter, r *http.Request) error {
	return s.maintenance(w, r, false, "")
}

// maintenance is allowed whatever the node is doing and whoever holds its
// lock: it is how an operator stops Ingot touching a node.
func (s *Server) maintenance(w http.ResponseWriter, r *http.Request, on bool, reason string) error {
	cur, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	_, err = s.store.UpdateNode(r.Context(), cur.UUID, store.AnyOwner, func(n *api.Node, _ *store.Effects) error {
		n.Maintenance, n.MaintenanceReason = on, reason
		if !on {
			n.Fault = ""
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.logFor(r).Info("maintenance changed", "node", cur.UUID, "maintenance", on)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) error {
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	res, err := s.op.Validate(r.Context(), n.UUID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, 78, "Node history"); err != nil {
		return err
	}
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	events, err := s.store.History(r.Context(), n.UUID)
	if err != nil {
		return err
	}
	base := s.baseURL(r)
	out := make([]map[string]any, 0, len(events))
	for _, e := range events {
		out = append(out, map[string]any{
			"uuid": e.UUID, "created_at": e.CreatedAt.Format(api.TimeFormat), "severity": e.Severity,
			"event": e.Event, "event_type": e.EventType, "conductor": e.Conductor, "user": nilIfEmpty(e.User),
			"links": api.Links(base, "nodes/"+n.UUID+"/history/"+e.UUID),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"history": out})
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// accepted answers 202 with the states URL to watch, as Ironic does.
func (s *Server) accepted(w http.ResponseWriter, r *http.Request, node string) {
	w.Header().Set("Location", s.baseURL(r)+"/v1/nodes/"+node+"/states")
	w.WriteHeader(http.StatusAccepted)
}
