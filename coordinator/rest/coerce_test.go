package rest

import (
	"reflect"
	"testing"
)

func TestCoerceBools(t *testing.T) {
	doc := map[string]any{"maintenance": "True", "protected": "off", "retired": "maybe", "name": "true", "automated_clean": false}
	coerceBools(doc, isNodeBool)
	want := map[string]any{"maintenance": true, "protected": false, "retired": "maybe", "name": "true", "automated_clean": false}
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("coerced %v, want %v", doc, want)
	}
}

func TestPortBoolsCoerced(t *testing.T) {
	doc := map[string]any{"pxe_enabled": "false", "address": "true"}
	coerceBools(doc, isPortBool)
	if doc["pxe_enabled"] != false || doc["address"] != "true" {
		t.Errorf("coerced %v, want pxe_enabled false and address untouched", doc)
	}
}
