package api

import (
	"encoding/json"
	"math"
	"testing"
)

// The hand-written encoder must agree with encoding/json on everything a
// stored document can hold.
func TestAppendValueMatchesEncodingJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, "plain", "quote\" back\\ nl\n tab\t <b>&amp; \u2028 \x01 é 日本", "bad\xffutf8",
		0.0, 4.0, -17.5, 8192.0, 1e20, 1e21, 1e-7, 123456789012345.0, math.MaxInt32 + 0.0,
		json.Number("12345678901234567890"),
		map[string]any{"b": 1.0, "a": []any{"x", 2.0, nil, map[string]any{}}, "c": map[string]any{"z": false}},
		[]any{}, map[string]any{}, []string{"x", "y"},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendValue(nil, v); string(got) != string(want) {
			t.Errorf("appendValue(%#v) = %s, encoding/json %s", v, got, want)
		}
	}
}
