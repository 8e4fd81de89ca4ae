package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/jsonpatch"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// maxLimit caps a page, as Ironic's api.max_limit does.
const maxLimit = 1000

// nameRE is what Ironic accepts as a node name since 1.10: RFC 3986
// unreserved characters.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9\-._~]+$`)

func (s *Server) view(r *http.Request, fields map[string]bool) *api.View {
	return &api.View{Version: version(r), BaseURL: s.baseURL(r), Fields: fields, Conductor: s.cfg.Host}
}

func notFound(ident string) error {
	return errf(http.StatusNotFound, "Node %s could not be found.", ident)
}

// getNodeOr404 loads the node named in the path.
func (s *Server) loadNode(r *http.Request) (*api.Node, string, error) {
	ident := r.PathValue("node")
	n, holder, err := s.store.ViewNode(r.Context(), ident)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", notFound(ident)
	}
	return n, holder, err
}

func (s *Server) writeNode(w http.ResponseWriter, r *http.Request, code int, n *api.Node, holder string, fields map[string]bool) {
	v := s.view(r, fields)
	v.Reservation = holder
	writeRaw(w, code, api.AppendNode(nil, n, v))
}

// nodeFromDoc turns a JSON object of API fields into a node, refusing
// fields that do not exist, that the version lacks, or that a client may
// not set.
func nodeFromDoc(doc map[string]any, v api.Version, creating bool) (*api.Node, error) {
	for k := range doc {
		f, ok := api.NodeField(k)
		settable := ok && (f.Patch || (creating && k == "uuid"))
		if !settable {
			return nil, badRequest("Unknown attribute for argument node: %s", k)
		}
		if !v.AtLeast(f.Since) {
			return nil, errf(http.StatusNotAcceptable, "The field %q requires API version 1.%d or later; version %s was requested.", k, f.Since, v)
		}
	}
	coerceBools(doc, isNodeBool)
	clean := make(map[string]any, len(doc))
	for k, val := range doc {
		if val != nil { // null means unset, which is the zero value
			clean[k] = val
		}
	}
	b, err := json.Marshal(clean)
	if err != nil {
		return nil, badRequest("Invalid node: %v", err)
	}
	var n api.Node
	if err := json.Unmarshal(b, &n); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, badRequest("Invalid input for field/attribute %s. Value: %v. Wrong type, expected '%s'.", te.Field, doc[te.Field], te.Type)
		}
		return nil, badRequest("Invalid node: %v", err)
	}
	return &n, nil
}

// checkNode validates what an operator may have set.
func (s *Server) checkNode(n *api.Node) error {
	if n.Name != "" && (!nameRE.MatchString(n.Name) || store.IsUUID(n.Name)) {
		return badRequest("Cannot create node with invalid name '%s'", n.Name)
	}
	hw, ok := s.drivers.Get(n.Driver)
	if !ok {
		return badRequest(`No valid host was found. Reason: No conductor service registered which supports driver %s for conductor group "%s".`, n.Driver, n.ConductorGroup)
	}
	hw.ApplyDefaults(n)
	if err := hw.CheckInterfaces(n); err != nil {
		return badRequest("%s", err.Error())
	}
	if n.InstanceUUID != "" && !store.IsUUID(n.InstanceUUID) {
		return badRequest("Expected a UUID for instance_uuid: %s", n.InstanceUUID)
	}
	return nil
}

func (s *Server) createNode(w http.ResponseWriter, r *http.Request) error {
	var doc map[string]any
	if err := decodeBody(r, &doc); err != nil {
		return err
	}
	if d, _ := doc["driver"].(string); d == "" {
		return badRequest("Invalid input for field/attribute driver. Value: None. Mandatory field missing.")
	}
	n, err := nodeFromDoc(doc, version(r), true)
	if err != nil {
		return err
	}
	if n.UUID == "" {
		n.UUID = uuid.NewString()
	} else if !store.IsUUID(n.UUID) {
		return badRequest("Expected a UUID but received %s.", n.UUID)
	}
	n.UUID = strings.ToLower(n.UUID)
	if err := s.checkNode(n); err != nil {
		return err
	}
	now := time.Now().UTC()
	n.CreatedAt = now
	// Before 1.11 nodes were born available; since, enroll.
	n.ProvisionState = string(sm.Enroll)
	if !version(r).AtLeast(11) {
		n.ProvisionState = string(sm.Available)
	}
	ev := &store.Event{UUID: uuid.NewString(), CreatedAt: now, Severity: "INFO", EventType: "provisioning",
		Event: "node created in state " + n.ProvisionState, Conductor: s.cfg.Host}
	if err := s.store.CreateNode(r.Context(), n, ev); err != nil {
		return err
	}
	s.logFor(r).Info("node created", "node", n.UUID, "name", n.Name, "driver", n.Driver)
	w.Header().Set("Location", s.baseURL(r)+"/v1/nodes/"+n.UUID)
	s.writeNode(w, r, http.StatusCreated, n, "", nil)
	return nil
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) error {
	fields, err := s.fieldsParam(r)
	if err != nil {
		return err
	}
	n, holder, err := s.loadNode(r)
	if err != nil {
		return err
	}
	s.writeNode(w, r, http.StatusOK, n, holder, fields)
	return nil
}

func (s *Server) fieldsParam(r *http.Request) (map[string]bool, error) {
	raw := r.URL.Query().Get("fields")
	if raw == "" {
		return nil, nil
	}
	if err := needVersion(r, 8, "The fields parameter"); err != nil {
		return nil, err
	}
	return api.ParseNodeFields(raw, version(r))
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) error {
	detail := r.URL.Query().Get("detail")
	if detail != "" {
		if err := needVersion(r, 43, "The detail parameter"); err != nil {
			return err
		}
		if d, err := strconv.ParseBool(detail); err != nil {
			return badRequest("Invalid value for detail: %s", detail)
		} else if d {
			return s.nodeList(w, r, true)
		}
	}
	return s.nodeList(w, r, false)
}

func (s *Server) listNodesDetail(w http.ResponseWriter, r *http.Request) error {
	return s.nodeList(w, r, true)
}

// pageParams reads limit, marker, sort_key and sort_dir.
type pageParams struct {
	limit   int
	marker  string
	sortKey string
	desc    bool
}

func parsePage(q url.Values) (pageParams, error) {
	p := pageParams{limit: maxLimit, sortKey: "id"}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return p, badRequest("Limit must be positive: %s", l)
		}
		if n > 0 && n < maxLimit {
			p.limit = n
		}
	}
	p.marker = q.Get("marker")
	if k := q.Get("sort_key"); k != "" {
		p.sortKey = k
	}
	switch d := q.Get("sort_dir"); d {
	case "", "asc":
	case "desc":
		p.desc = true
	default:
		return p, badRequest("Invalid sort direction: %s. Acceptable values are 'asc' or 'desc'", d)
	}
	return p, nil
}

// sortable lists the node fields a list can be sorted by: scalars only, as
// Ironic refuses JSON fields.
func nodeSortKey(key string) (func(*api.Node) any, error) {
	switch key {
	case "id", "created_at":
		return nil, nil // creation order, from the index
	case "uuid":
		return func(n *api.Node) any { return n.UUID }, nil
	case "name":
		return func(n *api.Node) any { return n.Name }, nil
	case "updated_at":
		return func(n *api.Node) any { return timeOrZero(n.UpdatedAt) }, nil
	case "provision_updated_at":
		return func(n *api.Node) any { return timeOrZero(n.ProvisionUpdatedAt) }, nil
	case "provision_state":
		return func(n *api.Node) any { return n.ProvisionState }, nil
	case "power_state":
		return func(n *api.Node) any { return n.PowerState }, nil
	case "driver":
		return func(n *api.Node) any { return n.Driver }, nil
	case "maintenance":
		return func(n *api.Node) any { return n.Maintenance }, nil
	case "resource_class":
		return func(n *api.Node) any { return n.ResourceClass }, nil
	case "instance_uuid":
		return func(n *api.Node) any { return n.InstanceUUID }, nil
	case "conductor_group":
		return func(n *api.Node) any { return n.ConductorGroup }, nil
	case "owner":
		return func(n *api.Node) any { return n.Owner }, nil
	}
	return nil, badRequest(`The sort_key value "%s" is an invalid field for sorting`, key)
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// nodeFilter builds the list filter from query parameters.
func nodeFilter(r *http.Request) (func(*api.Node) bool, error) {
	q := r.URL.Query()
	var preds []func(*api.Node) bool
	str := func(param string, get func(*api.Node) string) {
		if vals, ok := q[param]; ok {
			want := vals[0]
			preds = append(preds, func(n *api.Node) bool { return get(n) == want })
		}
	}
	boolean := func(param string, get func(*api.Node) bool) error {
		raw := q.Get(param)
		if raw == "" {
			return nil
		}
		want, err := parseBool(raw)
		if err != nil {
			return badRequest("Invalid value for %s: %s", param, raw)
		}
		preds = append(preds, func(n *api.Node) bool { return get(n) == want })
		return nil
	}
	str("driver", func(n *api.Node) string { return n.Driver })
	str("resource_class", func(n *api.Node) string { return n.ResourceClass })
	str("conductor_group", func(n *api.Node) string { return n.ConductorGroup })
	str("owner", func(n *api.Node) string { return n.Owner })
	str("lessee", func(n *api.Node) string { return n.Lessee })
	str("instance_uuid", func(n *api.Node) string { return n.InstanceUUID })
	str("shard", func(n *api.Node) string { return n.Shard })
	str("fault", func(n *api.Node) string { return n.Fault })
	for _, err := range []error{
		boolean("maintenance", func(n *api.Node) bool { return n.Maintenance }),
		boolean("associated", func(n *api.Node) bool { return n.InstanceUUID != "" }),
		boolean("retired", func(n *api.Node) bool { return n.Retired }),
		boolean("protected", func(n *api.Node) bool { return n.Protected }),
	} {
		if err != nil {
			return nil, err
		}
	}
	if len(preds) == 0 {
		return nil, nil
	}
	return func(n *api.Node) bool {
		for _, p := range preds {
			if !p(n) {
				return false
			}
		}
		return true
	}, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on", "y", "t":
		return true, nil
	case "false", "0", "no", "off", "n", "f":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %s", s)
}

func (s *Server) nodeList(w http.ResponseWriter, r *http.Request, detail bool) error {
	q := r.URL.Query()
	page, err := parsePage(q)
	if err != nil {
		return err
	}
	fields, err := s.fieldsParam(r)
	if err != nil {
		return err
	}
	if fields != nil && detail {
		return badRequest("Can not specify ?detail=True and fields in the same request.")
	}
	listFields := fields
	if fields == nil && !detail {
		listFields = map[string]bool{}
		for _, f := range api.NodeListFields {
			listFields[f] = true
		}
	}
	filter, err := nodeFilter(r)
	if err != nil {
		return err
	}
	sortKey, err := nodeSortKey(page.sortKey)
	if err != nil {
		return err
	}
	state := q.Get("provision_state")
	if state != "" && !slices.Contains(sm.All(), sm.State(state)) {
		return badRequest("Invalid provision state: %s", state)
	}
	nodes, holders, err := s.store.ListNodes(r.Context(), store.ListOptions{
		State: state, Filter: filter, Marker: page.marker, Limit: page.limit, SortKey: sortKey, Desc: page.desc,
	})
	if errors.Is(err, store.ErrMarkerNotFound) {
		return notFound(page.marker)
	}
	if err != nil {
		return err
	}
	v := s.view(r, listFields)
	// A detailed node is about 2.4 KB; a plain one 350 bytes.
	buf := make([]byte, 0, 512+len(nodes)*2560)
	buf = append(buf, `{"nodes":[`...)
	for i, n := range nodes {
		if i > 0 {
			buf = append(buf, ',')
		}
		v.Reservation = holders[i]
		buf = api.AppendNode(buf, n, v)
	}
	buf = append(buf, ']')
	if len(nodes) == page.limit && len(nodes) > 0 {
		path := "/v1/nodes"
		if detail {
			path = "/v1/nodes/detail"
		}
		next := nextURL(s.baseURL(r), path, q, page, listFields, detail || fields != nil, nodes[len(nodes)-1].UUID)
		buf = append(buf, `,"next":`...)
		nb, _ := json.Marshal(next)
		buf = append(buf, nb...)
	}
	buf = append(buf, '}')
	writeRaw(w, http.StatusOK, buf)
	return nil
}

// nextURL is Ironic's link to the following page: the same query with the
// last item as marker.
func nextURL(base, path string, q url.Values, page pageParams, fields map[string]bool, keepFields bool, marker string) string {
	nq := url.Values{}
	for k, v := range q {
		nq[k] = v
	}
	nq.Set("sort_key", page.sortKey)
	nq.Set("sort_dir", map[bool]string{false: "asc", true: "desc"}[page.desc])
	if !keepFields {
		nq.Set("fields", strings.Join(api.NodeListFields, ","))
	}
	nq.Set("limit", strconv.Itoa(page.limit))
	nq.Set("marker", marker)
	return base + path + "?" + nq.Encode()
}

// patchDoc is the node as a patch sees it: every patchable field present,
// null or {} when unset, so "replace" and "add /extra/x" work on fields
// never set, as in Ironic.
func patchDoc(n *api.Node, v api.Version) (map[string]any, error) {
	b, err := json.Marshal(n)
	if err != nil {
		return nil, err
	}
	var full map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&full); err != nil {
		return nil, err
	}
	doc := map[string]any{}
	for _, name := range api.PatchableNodeFields(v) {
		if val, ok := full[name]; ok {
			doc[name] = val
			continue
		}
		f, _ := api.NodeField(name)
		doc[name] = nil
		if f.Object {
			doc[name] = map[string]any{}
		}
	}
	return doc, nil
}

// applyNodePatch returns n changed by p, checked as a create would be.
func (s *Server) applyNodePatch(n *api.Node, p jsonpatch.Patch, v api.Version) (*api.Node, error) {
	doc, err := patchDoc(n, v)
	if err != nil {
		return nil, err
	}
	patched, err := p.Apply(doc)
	if err != nil {
		return nil, badRequest("%s", err.Error())
	}
	upd, err := nodeFromDoc(patched, v, false)
	if err != nil {
		return nil, err
	}
	// Take the patchable fields from the patched node and everything
	// else from the stored one.
	out := *n
	api.CopyNodeFields(&out, upd, api.PatchableNodeFields(v))
	if err := s.checkNode(&out); err != nil {
		return nil, err
	}
	if out.Maintenance != n.Maintenance && !out.Maintenance {
		out.MaintenanceReason = ""
	}
	return &out, nil
}

func (s *Server) patchNode(w http.ResponseWriter, r *http.Request) error {
	v := version(r)
	p, err := decodePatch(r, api.PatchableNodeFields(v))
	if err != nil {
		return err
	}
	cur, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	if sm.State(cur.ProvisionState).Busy() {
		return errf(http.StatusConflict, "Node %s can not be updated while a state transition is in progress.", cur.UUID)
	}
	var holder string
	n, err := s.store.UpdateNode(r.Context(), cur.UUID, "", func(n *api.Node, _ *store.Effects) error {
		upd, err := s.applyNodePatch(n, p, v)
		if err != nil {
			return err
		}
		*n = *upd
		return nil
	})
	if err != nil {
		return err
	}
	s.logFor(r).Info("node updated", "node", n.UUID)
	s.writeNode(w, r, http.StatusOK, n, holder, nil)
	return nil
}

// decodePatch reads a JSON Patch whose every path (and move/copy source)
// starts with one of the allowed fields.
func decodePatch(r *http.Request, allowed []string) (jsonpatch.Patch, error) {
	var raw json.RawMessage
	if err := decodeBody(r, &raw); err != nil {
		return nil, err
	}
	p, err := jsonpatch.Decode(raw)
	if err != nil {
		return nil, badRequest("Invalid patch: %v", err)
	}
	for _, op := range p {
		paths := []string{op.Path}
		if op.From != "" {
			paths = append(paths, op.From)
		}
		for _, path := range paths {
			tokens, err := jsonpatch.SplitPath(path)
			if err != nil || len(tokens) == 0 || !slices.Contains(allowed, tokens[0]) {
				return nil, badRequest("Cannot patch %s. Only the following can be updated: %s", path, strings.Join(allowed, ", "))
			}
		}
	}
	return p, nil
}

func (s *Server) deleteNode(w http.ResponseWriter, r *http.Request) error {
	n, _, err := s.loadNode(r)
	if err != nil {
		return err
	}
	state := sm.State(n.ProvisionState)
	if !state.Deletable() && !n.Maintenance {
		var names []string
		for _, st := range sm.DeletableStates() {
			names = append(names, "'"+string(st)+"'")
		}
		return errf(http.StatusConflict, `Can not delete node "%s" while it is in provision state "%s". Valid provision states to perform deletion are: "(%s)", or set the node into maintenance mode`,
			n.UUID, n.ProvisionState, strings.Join(names, ", "))
	}
	if n.Protected {
		return errf(http.StatusForbidden, "Node %s is protected and cannot be undeployed, rebuilt or deleted", n.UUID)
	}
	if n.InstanceUUID != "" {
		return errf(http.StatusConflict, "Node %s is associated with instance %s.", n.UUID, n.InstanceUUID)
	}
	if err := s.store.DeleteNode(r.Context(), n, ""); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errf(http.StatusConflict, "Node %s changed while it was being deleted; retry.", n.UUID)
		}
		if errors.Is(err, store.ErrNotFound) {
			return notFound(n.UUID)
		}
		return err
	}
	s.logFor(r).Info("node deleted", "node", n.UUID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
