package rest

import (
	"strings"

	"github.com/ingot/ingot/pkg/api"
)

func isNodeBool(name string) bool { f, ok := api.NodeField(name); return ok && f.Bool }
func isPortBool(name string) bool { f, ok := api.PortField(name); return ok && f.Bool }

// coerceBools turns the string forms of doc's boolean fields (as field
// tells them) into booleans, as oslo's strutils.bool_from_string(strict=True)
// reads them: Ironic accepts both, and the baremetal CLI sends strings
// (`port create --pxe-enabled true`). Any other value is left for the
// type check to refuse.
func coerceBools(doc map[string]any, field func(name string) bool) {
	for k, v := range doc {
		s, ok := v.(string)
		if !ok || !field(k) {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "1", "t", "true", "on", "y", "yes":
			doc[k] = true
		case "0", "f", "false", "off", "n", "no":
			doc[k] = false
		}
	}
}
