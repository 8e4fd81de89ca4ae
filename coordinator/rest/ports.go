package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

// portSettable are the fields a client may give when creating a port.
var portSettable = map[string]int{
	"uuid": 1, "address": 1, "node_uuid": 1, "extra": 1, "local_link_connection": 19, "pxe_enabled": 19,
	"portgroup_uuid": 24, "physical_network": 34, "is_smartnic": 53,
}

func portNotFound(id string) error {
	return errf(http.StatusNotFound, "Port %s could not be found.", id)
}

// portFromDoc builds a port from a JSON object of API fields.
func portFromDoc(doc map[string]any, v api.Version) (*api.Port, error) {
	for k := range doc {
		since, ok := portSettable[k]
		if !ok {
			return nil, badRequest("Unknown attribute for argument port: %s", k)
		}
		if !v.AtLeast(since) {
			return nil, errf(http.StatusNotAcceptable, "The field %q requires API version 1.%d or later; version %s was requested.", k, since, v)
		}
	}
	coerceBools(doc, isPortBool)
	clean := map[string]any{"pxe_enabled": true}
	for k, val := range doc {
		if val != nil {
			clean[k] = val
		}
	}
	b, _ := json.Marshal(clean)
	var p api.Port
	if err := json.Unmarshal(b, &p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, badRequest("Invalid input for field/attribute %s. Value: %v. Wrong type, expected '%s'.", te.Field, doc[te.Field], te.Type)
		}
		return nil, badRequest("Invalid port: %v", err)
	}
	if p.Address == "" {
		return nil, badRequest("Invalid input for field/attribute address. Value: None. Mandatory field missing.")
	}
	mac, err := api.NormalizeMAC(p.Address)
	if err != nil {
		return nil, err
	}
	p.Address = mac
	if p.NodeUUID == "" {
		return nil, badRequest("Invalid input for field/attribute node_uuid. Value: None. Mandatory field missing.")
	}
	return &p, nil
}

func (s *Server) createPort(w http.ResponseWriter, r *http.Request) error {
	var doc map[string]any
	if err := decodeBody(r, &doc); err != nil {
		return err
	}
	p, err := portFromDoc(doc, version(r))
	if err != nil {
		return err
	}
	// node_uuid may name the node by name too, which clients do.
	id, err := s.store.ResolveNode(r.Context(), p.NodeUUID)
	if errors.Is(err, store.ErrNotFound) {
		return badRequest("Node %s could not be found.", p.NodeUUID)
	}
	if err != nil {
		return err
	}
	p.NodeUUID = id
	if p.UUID == "" {
		p.UUID = uuid.NewString()
	} else if !store.IsUUID(p.UUID) {
		return badRequest("Expected a UUID but received %s.", p.UUID)
	}
	p.CreatedAt = time.Now().UTC()
	if err := s.store.CreatePort(r.Context(), p); err != nil {
		return err
	}
	s.logFor(r).Info("port created", "port", p.UUID, "node", p.NodeUUID, "address", p.Address)
	w.Header().Set("Location", s.baseURL(r)+"/v1/ports/"+p.UUID)
	writeRaw(w, http.StatusCreated, api.AppendPort(nil, p, s.view(r, nil)))
	return nil
}

func (s *Server) getPort(w http.ResponseWriter, r *http.Request) error {
	fields, err := api.ParsePortFields(r.URL.Query().Get("fields"), version(r))
	if err != nil {
		return err
	}
	p, err := s.store.GetPort(r.Context(), r.PathValue("port"))
	if errors.Is(err, store.ErrNotFound) {
		return portNotFound(r.PathValue("port"))
	}
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, api.AppendPort(nil, p, s.view(r, fields)))
	return nil
}

func (s *Server) listPorts(w http.ResponseWriter, r *http.Request) error {
	detail, _ := parseBool(r.URL.Query().Get("detail"))
	return s.portList(w, r, "", detail)
}

func (s *Server) listPortsDetail(w http.ResponseWriter, r *http.Request) error {
	return s.portList(w, r, "", true)
}

func (s *Server) nodePorts(w http.ResponseWriter, r *http.Request) error {
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	return s.portList(w, r, n.UUID, false)
}

func (s *Server) nodePortsDetail(w http.ResponseWriter, r *http.Request) error {
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	return s.portList(w, r, n.UUID, true)
}

func (s *Server) portList(w http.ResponseWriter, r *http.Request, node string, detail bool) error {
	q := r.URL.Query()
	page, err := parsePage(q)
	if err != nil {
		return err
	}
	fields, err := api.ParsePortFields(q.Get("fields"), version(r))
	if err != nil {
		return err
	}
	if fields == nil && !detail {
		fields = map[string]bool{}
		for _, f := range api.PortListFields {
			fields[f] = true
		}
	}
	for _, param := range []string{"node", "node_uuid"} {
		if ident := q.Get(param); ident != "" && node == "" {
			id, err := s.store.ResolveNode(r.Context(), ident)
			if errors.Is(err, store.ErrNotFound) {
				return notFound(ident)
			}
			if err != nil {
				return err
			}
			node = id
		}
	}
	var ports []*api.Port
	if addr := q.Get("address"); addr != "" {
		mac, err := api.NormalizeMAC(addr)
		if err != nil {
			return err
		}
		p, err := s.store.PortByMAC(r.Context(), mac)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if p != nil && (node == "" || p.NodeUUID == node) {
			ports = append(ports, p)
		}
	} else {
		ports, err = s.store.ListPorts(r.Context(), store.PortListOptions{Node: node, Marker: page.marker, Limit: page.limit, Desc: page.desc})
		if errors.Is(err, store.ErrMarkerNotFound) {
			return portNotFound(page.marker)
		}
		if err != nil {
			return err
		}
	}
	v := s.view(r, fields)
	buf := []byte(`{"ports":[`)
	for i, p := range ports {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = api.AppendPort(buf, p, v)
	}
	buf = append(buf, `]}`...)
	writeRaw(w, http.StatusOK, buf)
	return nil
}

func (s *Server) patchPort(w http.ResponseWriter, r *http.Request) error {
	v := version(r)
	allowed := api.PatchablePortFields(v)
	p, err := decodePatch(r, allowed)
	if err != nil {
		return err
	}
	id := r.PathValue("port")
	port, err := s.store.UpdatePort(r.Context(), id, func(cur *api.Port) error {
		b, _ := json.Marshal(cur)
		var doc map[string]any
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return err
		}
		settable := map[string]any{}
		for _, f := range allowed {
			settable[f] = doc[f]
			if settable[f] == nil && (f == "extra" || f == "local_link_connection") {
				settable[f] = map[string]any{}
			}
		}
		patched, err := p.Apply(settable)
		if err != nil {
			return badRequest("%s", err.Error())
		}
		upd, err := portFromDoc(patched, v)
		if err != nil {
			return err
		}
		nodeID, err := s.store.ResolveNode(r.Context(), upd.NodeUUID)
		if err != nil {
			return badRequest("Node %s could not be found.", upd.NodeUUID)
		}
		upd.UUID, upd.NodeUUID, upd.CreatedAt, upd.InternalInfo, upd.Version = cur.UUID, nodeID, cur.CreatedAt, cur.InternalInfo, cur.Version
		*cur = *upd
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return portNotFound(id)
	}
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, api.AppendPort(nil, port, s.view(r, nil)))
	return nil
}

func (s *Server) deletePort(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("port")
	p, err := s.store.GetPort(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return portNotFound(id)
	}
	if err != nil {
		return err
	}
	if err := s.store.DeletePort(r.Context(), p); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return portNotFound(id)
		}
		return err
	}
	s.logFor(r).Info("port deleted", "port", p.UUID, "node", p.NodeUUID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
