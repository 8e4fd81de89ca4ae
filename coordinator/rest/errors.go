package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ingot/ingot/coordinator/conductor"
	"github.com/ingot/ingot/coordinator/driver"
	"github.com/ingot/ingot/coordinator/store"
	"github.com/ingot/ingot/pkg/api"
	sm "github.com/ingot/ingot/pkg/statemachine"
)

// httpError is an error with the status code the API answers it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return errf(http.StatusBadRequest, format, args...)
}

// writeError answers err in Ironic's format: error_message is a string
// holding JSON (faultcode, faultstring, debuginfo), exactly as Ironic's
// WSME layer emits it, because clients parse that inner string.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := classify(err)
	var locked *store.ErrLocked
	if errors.As(err, &locked) {
		s.metrics.LockContention.WithLabelValues("api").Inc()
	}
	fault := "Client"
	if code >= 500 {
		fault = "Server"
		s.logFor(r).Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	faultstring, _ := json.Marshal(msg)
	inner := fmt.Sprintf(`{"faultcode": %q, "faultstring": %s, "debuginfo": null}`, fault, faultstring)
	writeJSON(w, code, map[string]string{"error_message": inner})
}

// classify maps errors from the layers below to status codes.
func classify(err error) (int, string) {
	var he *httpError
	var locked *store.ErrLocked
	var dup *store.ErrDuplicate
	var noNode *store.ErrNoNode
	var badMAC *api.ErrBadMAC
	var invalid *conductor.ErrInvalid
	var fields *api.ErrInvalidFields
	switch {
	case errors.As(err, &he):
		return he.code, he.msg
	case errors.As(err, &locked):
		return http.StatusConflict, locked.Error()
	case errors.As(err, &dup):
		return http.StatusConflict, dup.Error()
	case errors.As(err, &noNode):
		return http.StatusBadRequest, noNode.Error()
	case errors.As(err, &badMAC):
		return http.StatusBadRequest, badMAC.Error()
	case errors.As(err, &invalid):
		return http.StatusBadRequest, invalid.Error()
	case errors.As(err, &fields):
		return http.StatusBadRequest, fields.Error()
	case errors.Is(err, driver.ErrUnsupported):
		return http.StatusBadRequest, err.Error()
	}
	var na *sm.ErrNotAllowed
	if errors.As(err, &na) {
		return http.StatusBadRequest, na.Error()
	}
	return http.StatusInternalServerError, "Internal error: " + err.Error()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error_message": "encoding failed"}`)
	}
	writeRaw(w, code, b)
}

func writeRaw(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}
