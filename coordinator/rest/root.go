package rest

import (
	"net/http"

	"github.com/ingot/ingot/pkg/api"
)

func (s *Server) versionDoc(base string) map[string]any {
	return map[string]any{
		"id":          "v1",
		"links":       []map[string]string{{"href": base + "/v1/", "rel": "self"}},
		"status":      "CURRENT",
		"min_version": api.MinVersion.String(),
		"version":     api.MaxVersion.String(),
	}
}

// root is version discovery: public, without version headers, as Ironic.
func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	base := s.baseURL(r)
	v := s.versionDoc(base)
	writeJSON(w, http.StatusOK, map[string]any{
		"name":            "Ingot Bare Metal API (OpenStack Ironic compatible)",
		"description":     "Ingot provisions bare-metal machines. It speaks OpenStack Ironic's v1 API.",
		"default_version": v,
		"versions":        []any{v},
	})
}

// v1 lists the API's resources. Which appear depends on the version, as in
// Ironic.
func (s *Server) v1(w http.ResponseWriter, r *http.Request) error {
	base := s.baseURL(r)
	ver := version(r)
	doc := map[string]any{
		"id": "v1",
		"links": []map[string]string{
			{"href": base + "/v1/", "rel": "self"},
			{"href": "https://docs.openstack.org//ironic/latest/contributor//webapi.html", "rel": "describedby", "type": "text/html"},
		},
		"media_types": map[string]string{"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"},
		"version":     s.versionDoc(base),
	}
	for _, res := range []struct {
		name  string
		since int
	}{
		{"chassis", 1}, {"nodes", 1}, {"ports", 1}, {"drivers", 1}, {"portgroups", 24}, {"volume", 32},
		{"lookup", 22}, {"heartbeat", 22}, {"conductors", 49}, {"allocations", 52}, {"events", 54},
		{"deploy_templates", 55}, {"shards", 82},
	} {
		if ver.AtLeast(res.since) {
			doc[res.name] = api.Links(base, res.name+"/")
		}
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// emptyCollection serves resources Ingot does not manage yet (chassis,
// port groups, allocations, deploy templates, shards) as Ironic shows an
// empty one, so clients that list them work.
func (s *Server) emptyCollection(key string, since int) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := needVersion(r, since, "The "+key+" API"); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string][]any{key: {}})
		return nil
	}
}
