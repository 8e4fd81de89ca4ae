package rest

import (
	"net/http"
	"slices"
	"strings"

	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

// driverHosts maps each driver to the live coordinators offering it.
func (s *Server) driverHosts(r *http.Request) (map[string][]string, []store.Conductor, error) {
	cs, err := s.store.Conductors(r.Context())
	if err != nil {
		return nil, nil, err
	}
	hosts := map[string][]string{}
	for _, c := range cs {
		for _, d := range c.Drivers {
			hosts[d] = append(hosts[d], c.Hostname)
		}
	}
	return hosts, cs, nil
}

func (s *Server) driverDoc(r *http.Request, name string, hosts []string) map[string]any {
	base := s.baseURL(r)
	if hosts == nil {
		hosts = []string{}
	}
	return map[string]any{
		"name": name, "hosts": hosts, "type": "dynamic",
		"links":      api.Links(base, "drivers/"+name),
		"properties": api.Links(base, "drivers/"+name+"/properties"),
	}
}

func (s *Server) listDrivers(w http.ResponseWriter, r *http.Request) error {
	hosts, _, err := s.driverHosts(r)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	if t := r.URL.Query().Get("type"); t != "" && t != "dynamic" {
		writeJSON(w, http.StatusOK, map[string]any{"drivers": out})
		return nil
	}
	for _, name := range s.drivers.Names() {
		out = append(out, s.driverDoc(r, name, hosts[name]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"drivers": out})
	return nil
}

func (s *Server) getDriver(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("driver")
	if _, ok := s.drivers.Get(name); !ok {
		return errf(http.StatusNotFound, "Could not find the following driver(s) or hardware type(s): %s.", name)
	}
	hosts, _, err := s.driverHosts(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.driverDoc(r, name, hosts[name]))
	return nil
}

func (s *Server) driverProperties(w http.ResponseWriter, r *http.Request) error {
	hw, ok := s.drivers.Get(r.PathValue("driver"))
	if !ok {
		return errf(http.StatusNotFound, "Could not find the following driver(s) or hardware type(s): %s.", r.PathValue("driver"))
	}
	writeJSON(w, http.StatusOK, hw.Properties)
	return nil
}

func (s *Server) conductorDoc(r *http.Request, c store.Conductor, detail bool) map[string]any {
	doc := map[string]any{
		"hostname": c.Hostname, "conductor_group": c.ConductorGroup, "alive": true,
		"links": api.Links(s.baseURL(r), "conductors/"+c.Hostname),
	}
	if detail {
		doc["drivers"] = c.Drivers
		doc["created_at"] = c.CreatedAt.Format(api.TimeFormat)
		doc["updated_at"] = c.UpdatedAt.Format(api.TimeFormat)
	}
	return doc
}

func (s *Server) listConductors(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, 49, "The conductors API"); err != nil {
		return err
	}
	cs, err := s.store.Conductors(r.Context())
	if err != nil {
		return err
	}
	slices.SortFunc(cs, func(a, b store.Conductor) int { return strings.Compare(a.Hostname, b.Hostname) })
	detail, _ := parseBool(r.URL.Query().Get("detail"))
	out := []map[string]any{}
	for _, c := range cs {
		out = append(out, s.conductorDoc(r, c, detail))
	}
	writeJSON(w, http.StatusOK, map[string]any{"conductors": out})
	return nil
}

func (s *Server) getConductor(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, 49, "The conductors API"); err != nil {
		return err
	}
	cs, err := s.store.Conductors(r.Context())
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.Hostname == r.PathValue("host") {
			writeJSON(w, http.StatusOK, s.conductorDoc(r, c, true))
			return nil
		}
	}
	return errf(http.StatusNotFound, "Conductor %s could not be found.", r.PathValue("host"))
}
