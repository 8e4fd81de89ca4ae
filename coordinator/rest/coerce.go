package rest

import "strings"

// Boolean fields of nodes and ports. Ironic accepts them as JSON booleans
// or as strings ("true", "off", ...), and the baremetal CLI sends strings
// (`port create --pxe-enabled true`), so both must work here too.
var boolFields = map[string]bool{
	"pxe_enabled": true, "is_smartnic": true,
	"automated_clean": true, "protected": true, "retired": true,
	"maintenance": true, "console_enabled": true, "disable_power_off": true,
}

// coerceBools turns the string forms of boolean fields in doc into
// booleans, as oslo's strutils.bool_from_string(strict=True) reads them;
// any other value is left for the type check to refuse.
func coerceBools(doc map[string]any) {
	for k, v := range doc {
		s, ok := v.(string)
		if !ok || !boolFields[k] {
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
