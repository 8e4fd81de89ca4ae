// Package rest serves Ingot's REST API, which is Ironic's v1 API: the same
// paths, fields, state names, status codes and error bodies, so the
// `baremetal` CLI and gophercloud work unchanged. Handlers only read and
// compare-and-set records in Redis and enqueue jobs; nothing slow runs in a
// handler.
package rest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ingot/ingot/coordinator/conductor"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/metrics"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
)

// Operator does the few node operations the API runs synchronously (as
// Ironic does): quick BMC calls made under the node's lock.
type Operator interface {
	BootDevice(ctx context.Context, node string) (driver.BootDevice, error)
	SetBootDevice(ctx context.Context, node string, d driver.BootDevice) error
	SupportedBootDevices(ctx context.Context, node string) ([]string, error)
	Validate(ctx context.Context, node string) (map[string]conductor.Validation, error)
}

// Config configures the server.
type Config struct {
	// PublicURL is the base of links in responses; empty means taken from
	// each request's Host.
	PublicURL string
	Host      string // this coordinator, shown as conductor
	// MaxBody bounds request bodies (413 beyond); MaxProvisionBody bounds
	// provision requests, which may carry a config drive.
	MaxBody          int64
	MaxProvisionBody int64
	PowerTimeout     time.Duration
}

// Server is the API.
type Server struct {
	cfg     Config
	store   *store.Store
	drivers *driver.Registry
	op      Operator
	metrics *metrics.Metrics
	log     *slog.Logger
	mux     *http.ServeMux
}

// New returns the API handler.
func New(cfg Config, st *store.Store, drivers *driver.Registry, op Operator, m *metrics.Metrics, log *slog.Logger) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxProvisionBody == 0 {
		cfg.MaxProvisionBody = 96 << 20
	}
	s := &Server{cfg: cfg, store: st, drivers: drivers, op: op, metrics: m, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) routes() {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		s.mux.Handle(pattern, s.wrap(fn))
	}
	s.mux.HandleFunc("GET /{$}", s.root)
	h("GET /v1", s.v1)

	h("POST /v1/nodes", s.createNode)
	h("GET /v1/nodes", s.listNodes)
	h("GET /v1/nodes/detail", s.listNodesDetail)
	h("GET /v1/nodes/{node}", s.getNode)
	h("PATCH /v1/nodes/{node}", s.patchNode)
	h("DELETE /v1/nodes/{node}", s.deleteNode)
	h("GET /v1/nodes/{node}/states", s.getStates)
	h("PUT /v1/nodes/{node}/states/provision", s.setProvision)
	h("PUT /v1/nodes/{node}/states/power", s.setPower)
	h("GET /v1/nodes/{node}/management/boot_device", s.getBootDevice)
	h("PUT /v1/nodes/{node}/management/boot_device", s.setBootDevice)
	h("GET /v1/nodes/{node}/management/boot_device/supported", s.supportedBootDevices)
	h("PUT /v1/nodes/{node}/maintenance", s.setMaintenance)
	h("DELETE /v1/nodes/{node}/maintenance", s.unsetMaintenance)
	h("GET /v1/nodes/{node}/validate", s.validate)
	h("GET /v1/nodes/{node}/history", s.history)
	h("GET /v1/nodes/{node}/inventory", s.inventory)
	h("GET /v1/nodes/{node}/ports", s.nodePorts)
	h("GET /v1/nodes/{node}/ports/detail", s.nodePortsDetail)

	h("POST /v1/ports", s.createPort)
	h("GET /v1/ports", s.listPorts)
	h("GET /v1/ports/detail", s.listPortsDetail)
	h("GET /v1/ports/{port}", s.getPort)
	h("PATCH /v1/ports/{port}", s.patchPort)
	h("DELETE /v1/ports/{port}", s.deletePort)

	h("GET /v1/drivers", s.listDrivers)
	h("GET /v1/drivers/{driver}", s.getDriver)
	h("GET /v1/drivers/{driver}/properties", s.driverProperties)
	h("GET /v1/conductors", s.listConductors)
	h("GET /v1/conductors/{host}", s.getConductor)
	h("GET /v1/chassis", s.emptyCollection("chassis", 1))
	h("GET /v1/portgroups", s.emptyCollection("portgroups", 23))
	h("GET /v1/allocations", s.emptyCollection("allocations", 52))
	h("GET /v1/deploy_templates", s.emptyCollection("deploy_templates", 55))
	h("GET /v1/shards", s.emptyCollection("shards", 82))
}

// ServeHTTP adds the request id every Ironic response carries and records
// latency by route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := "req-" + uuid.NewString()
	w.Header().Set("Openstack-Request-Id", rid)
	r = r.WithContext(context.WithValue(r.Context(), ridKey{}, rid))
	// Ironic treats /v1/nodes/ as /v1/nodes; some clients send the slash.
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		r.URL.Path = strings.TrimRight(p, "/")
		r.URL.RawPath = ""
	}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	if h, pattern := s.mux.Handler(r); pattern == "" {
		// No route: let the mux decide between 404 and 405 (with its
		// Allow header), but answer in Ironic's error format.
		rec := &statusWriter{ResponseWriter: discardBody{w}, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		msg := "The resource could not be found."
		if rec.code == http.StatusMethodNotAllowed {
			msg = "The method " + r.Method + " is not allowed for this resource."
		}
		s.writeError(sw, r, errf(rec.code, "%s", msg))
	} else {
		s.mux.ServeHTTP(sw, r)
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	d := time.Since(start)
	s.metrics.RequestDuration.WithLabelValues(route, r.Method, strconv.Itoa(sw.code)).Observe(d.Seconds())
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.logFor(r).Debug("request", "method", r.Method, "path", r.URL.Path, "route", route, "status", sw.code, "duration", d)
	}
}

type ridKey struct{}
type versionKey struct{}

// logFor returns a logger carrying the request id; lines about a node add
// its UUID.
func (s *Server) logFor(r *http.Request) *slog.Logger {
	l := s.log
	if rid, ok := r.Context().Value(ridKey{}).(string); ok {
		l = l.With("request_id", rid)
	}
	return l
}

// discardBody keeps headers (Allow) but drops the mux's plain-text body.
type discardBody struct{ http.ResponseWriter }

func (d discardBody) Write(b []byte) (int, error) { return len(b), nil }
func (d discardBody) WriteHeader(int)             {}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// wrap negotiates the API version, bounds the body and turns a handler's
// error into Ironic's error response.
func (s *Server) wrap(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set(api.MinVersionHeader, api.MinVersion.String())
		hdr.Set(api.MaxVersionHeader, api.MaxVersion.String())
		v, err := api.ParseVersion(r.Header.Get(api.VersionHeader))
		if err != nil {
			var unsupported *api.ErrUnsupportedVersion
			if errors.As(err, &unsupported) {
				// Ironic answers this one in the other error format.
				inner, _ := json.Marshal(map[string]any{"code": 406, "title": "Not Acceptable", "description": err.Error()})
				writeJSON(w, http.StatusNotAcceptable, map[string]string{"error_message": string(inner)})
				return
			}
			s.writeError(w, r, badRequest("%s", err.Error()))
			return
		}
		hdr.Set(api.VersionHeader, v.String())
		r = r.WithContext(context.WithValue(r.Context(), versionKey{}, v))
		limit := s.cfg.MaxBody
		if strings.HasSuffix(r.URL.Path, "/states/provision") {
			limit = s.cfg.MaxProvisionBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func version(r *http.Request) api.Version {
	v, _ := r.Context().Value(versionKey{}).(api.Version)
	return v
}

// baseURL is where links point.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// decodeBody reads a JSON body into v: malformed JSON is 400, too large is
// 413.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errf(http.StatusRequestEntityTooLarge, "Request body is larger than the limit of %d bytes.", tooBig.Limit)
		}
		return badRequest("Cannot read request body: %v", err)
	}
	if len(body) == 0 {
		return badRequest("Request body is empty; a JSON document was expected.")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return badRequest("Malformed JSON in request body: %v", err)
	}
	if dec.More() {
		return badRequest("Malformed JSON in request body: trailing data after the document")
	}
	return nil
}

// needVersion refuses a feature newer than the request's version, with the
// 406 Ironic uses for it.
func needVersion(r *http.Request, minor int, what string) error {
	if !version(r).AtLeast(minor) {
		return errf(http.StatusNotAcceptable, "%s requires API version 1.%d or later; version %s was requested.", what, minor, version(r))
	}
	return nil
}

// Handler returns the API with public version discovery and the given
// authentication middleware (nil: none).
func (s *Server) Handler(authn func(next http.Handler, public func(*http.Request) bool) http.Handler) http.Handler {
	if authn == nil {
		return s
	}
	return authn(s, func(r *http.Request) bool {
		p := strings.TrimRight(r.URL.Path, "/")
		return r.Method == http.MethodGet && (p == "" || p == "/v1")
	})
}
