package rest

import (
	"reflect"
	"testing"
)

func TestCoerceBools(t *testing.T) {
	doc := map[string]any{"pxe_enabled": "True", "protected": "off", "retired": "maybe", "name": "true", "automated_clean": false}
	coerceBools(doc)
	want := map[string]any{"pxe_enabled": true, "protected": false, "retired": "maybe", "name": "true", "automated_clean": false}
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("coerced %v, want %v", doc, want)
	}
}
