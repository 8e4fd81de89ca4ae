package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// decodeDoc decodes a JSON object the way callers do, keeping numbers as
// json.Number.
func decodeDoc(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode document %s: %v", s, err)
	}
	return doc
}

// canonical re-encodes v so that documents can be compared as text; Marshal
// sorts object keys and writes json.Number literally.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		patch   string
		want    string // expected document, when the patch succeeds
		wantErr string // substring of the error, when it fails
		errIdx  int    // expected Error.Index, when it fails
	}{
		// RFC 6902 appendix A, every example whose document is an object.
		{
			name:  "A.1 add object member",
			doc:   `{"foo":"bar"}`,
			patch: `[{"op":"add","path":"/baz","value":"qux"}]`,
			want:  `{"baz":"qux","foo":"bar"}`,
		},
		{
			name:  "A.2 add array element",
			doc:   `{"foo":["bar","baz"]}`,
			patch: `[{"op":"add","path":"/foo/1","value":"qux"}]`,
			want:  `{"foo":["bar","qux","baz"]}`,
		},
		{
			name:  "A.3 remove object member",
			doc:   `{"baz":"qux","foo":"bar"}`,
			patch: `[{"op":"remove","path":"/baz"}]`,
			want:  `{"foo":"bar"}`,
		},
		{
			name:  "A.4 remove array element",
			doc:   `{"foo":["bar","qux","baz"]}`,
			patch: `[{"op":"remove","path":"/foo/1"}]`,
			want:  `{"foo":["bar","baz"]}`,
		},
		{
			name:  "A.5 replace value",
			doc:   `{"baz":"qux","foo":"bar"}`,
			patch: `[{"op":"replace","path":"/baz","value":"boo"}]`,
			want:  `{"baz":"boo","foo":"bar"}`,
		},
		{
			name:  "A.6 move value",
			doc:   `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`,
			patch: `[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`,
			want:  `{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`,
		},
		{
			name:  "A.7 move array element",
			doc:   `{"foo":["all","grass","cows","eat"]}`,
			patch: `[{"op":"move","from":"/foo/1","path":"/foo/3"}]`,
			want:  `{"foo":["all","cows","eat","grass"]}`,
		},
		{
			name: "A.8 test success",
			doc:  `{"baz":"qux","foo":["a",2,"c"]}`,
			patch: `[{"op":"test","path":"/baz","value":"qux"},
			         {"op":"test","path":"/foo/1","value":2}]`,
			want: `{"baz":"qux","foo":["a",2,"c"]}`,
		},
		{
			name:    "A.9 test error",
			doc:     `{"baz":"qux"}`,
			patch:   `[{"op":"test","path":"/baz","value":"bar"}]`,
			wantErr: "patch operation 0 (test /baz): test failed",
		},
		{
			name:  "A.10 add nested member object",
			doc:   `{"foo":"bar"}`,
			patch: `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`,
			want:  `{"child":{"grandchild":{}},"foo":"bar"}`,
		},
		{
			name:  "A.11 ignore unrecognized elements",
			doc:   `{"foo":"bar"}`,
			patch: `[{"op":"add","path":"/baz","value":"qux","xyz":123}]`,
			want:  `{"baz":"qux","foo":"bar"}`,
		},
		{
			name:    "A.12 add to nonexistent target",
			doc:     `{"foo":"bar"}`,
			patch:   `[{"op":"add","path":"/baz/bat","value":"qux"}]`,
			wantErr: "parent of path does not exist",
		},
		// A.13 (repeated "op") is a Decode error; see TestDecode.
		{
			name:  "A.14 escape ordering",
			doc:   `{"/":9,"~1":10}`,
			patch: `[{"op":"test","path":"/~01","value":10}]`,
			want:  `{"/":9,"~1":10}`,
		},
		{
			name:    "A.15 comparing strings and numbers",
			doc:     `{"/":9,"~1":10}`,
			patch:   `[{"op":"test","path":"/~01","value":"10"}]`,
			wantErr: "test failed",
		},
		{
			name:  "A.16 add array value",
			doc:   `{"foo":["bar"]}`,
			patch: `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`,
			want:  `{"foo":["bar",["abc","def"]]}`,
		},

		// add
		{
			name:  "add replaces existing member",
			doc:   `{"a":{"b":1}}`,
			patch: `[{"op":"add","path":"/a","value":2}]`,
			want:  `{"a":2}`,
		},
		{
			name:  "add null value",
			doc:   `{"a":1}`,
			patch: `[{"op":"add","path":"/b","value":null}]`,
			want:  `{"a":1,"b":null}`,
		},
		{
			name:  "add at end index appends",
			doc:   `{"a":[1,2]}`,
			patch: `[{"op":"add","path":"/a/2","value":3}]`,
			want:  `{"a":[1,2,3]}`,
		},
		{
			name:  "add at front",
			doc:   `{"a":[1,2]}`,
			patch: `[{"op":"add","path":"/a/0","value":0}]`,
			want:  `{"a":[0,1,2]}`,
		},
		{
			name:  "add into empty array",
			doc:   `{"a":[]}`,
			patch: `[{"op":"add","path":"/a/-","value":"x"}]`,
			want:  `{"a":["x"]}`,
		},
		{
			name:  "add into nested array inside array",
			doc:   `{"a":[[1],[2]]}`,
			patch: `[{"op":"add","path":"/a/1/-","value":3}]`,
			want:  `{"a":[[1],[2,3]]}`,
		},
		{
			name:  "add with escaped member name",
			doc:   `{"a/b":1,"c~d":2}`,
			patch: `[{"op":"add","path":"/a~1b","value":10},{"op":"add","path":"/c~0d","value":20}]`,
			want:  `{"a/b":10,"c~d":20}`,
		},
		{
			name:  "add empty member name",
			doc:   `{}`,
			patch: `[{"op":"add","path":"/","value":1}]`,
			want:  `{"":1}`,
		},
		{
			name:  "add keeps large integers exact",
			doc:   `{"n":1}`,
			patch: `[{"op":"add","path":"/big","value":123456789012345678901234567890}]`,
			want:  `{"big":123456789012345678901234567890,"n":1}`,
		},
		{
			name:    "add missing parent in nested path",
			doc:     `{"a":{}}`,
			patch:   `[{"op":"add","path":"/a/b/c","value":1}]`,
			wantErr: "patch operation 0 (add /a/b/c): parent of path does not exist",
		},
		{
			name:    "add under scalar",
			doc:     `{"a":1}`,
			patch:   `[{"op":"add","path":"/a/b","value":1}]`,
			wantErr: "parent of path is not an object or array",
		},
		{
			name:    "add index past end",
			doc:     `{"a":[1,2]}`,
			patch:   `[{"op":"add","path":"/a/3","value":1}]`,
			wantErr: "array index 3 is out of range (array length 2)",
		},
		{
			name:    "add index with leading zero",
			doc:     `{"a":[1,2]}`,
			patch:   `[{"op":"add","path":"/a/01","value":1}]`,
			wantErr: `invalid array index "01"`,
		},
		{
			name:    "add negative index",
			doc:     `{"a":[1,2]}`,
			patch:   `[{"op":"add","path":"/a/-1","value":1}]`,
			wantErr: `invalid array index "-1"`,
		},
		{
			name:    "add non-numeric index",
			doc:     `{"a":[1,2]}`,
			patch:   `[{"op":"add","path":"/a/x","value":1}]`,
			wantErr: `invalid array index "x"`,
		},
		{
			name:    "add huge index",
			doc:     `{"a":[1,2]}`,
			patch:   `[{"op":"add","path":"/a/99999999999999999999999","value":1}]`,
			wantErr: "out of range",
		},

		// remove
		{
			name:  "remove last array element",
			doc:   `{"a":[1,2,3]}`,
			patch: `[{"op":"remove","path":"/a/2"}]`,
			want:  `{"a":[1,2]}`,
		},
		{
			name:  "remove nested member",
			doc:   `{"a":{"b":{"c":1,"d":2}}}`,
			patch: `[{"op":"remove","path":"/a/b/c"}]`,
			want:  `{"a":{"b":{"d":2}}}`,
		},
		{
			name:    "remove missing member",
			doc:     `{"a":1}`,
			patch:   `[{"op":"remove","path":"/b"}]`,
			wantErr: "patch operation 0 (remove /b): path does not exist",
		},
		{
			name:    "remove index out of range",
			doc:     `{"a":[1]}`,
			patch:   `[{"op":"remove","path":"/a/1"}]`,
			wantErr: "array index 1 is out of range (array length 1)",
		},
		{
			name:    "remove dash index",
			doc:     `{"a":[1]}`,
			patch:   `[{"op":"remove","path":"/a/-"}]`,
			wantErr: `array index "-" refers to a nonexistent element`,
		},
		{
			name:    "remove below scalar",
			doc:     `{"a":"s"}`,
			patch:   `[{"op":"remove","path":"/a/b"}]`,
			wantErr: "path does not exist",
		},

		// replace
		{
			name:  "replace array element",
			doc:   `{"a":[1,2,3]}`,
			patch: `[{"op":"replace","path":"/a/1","value":{"x":true}}]`,
			want:  `{"a":[1,{"x":true},3]}`,
		},
		{
			name:  "replace with null",
			doc:   `{"a":1}`,
			patch: `[{"op":"replace","path":"/a","value":null}]`,
			want:  `{"a":null}`,
		},
		{
			name:    "replace missing member",
			doc:     `{"properties":{"memory":1}}`,
			patch:   `[{"op":"test","path":"/properties/memory","value":1},{"op":"add","path":"/x","value":1},{"op":"replace","path":"/properties/cpus","value":2}]`,
			wantErr: "patch operation 2 (replace /properties/cpus): path does not exist",
			errIdx:  2,
		},
		{
			name:    "replace index out of range",
			doc:     `{"a":[]}`,
			patch:   `[{"op":"replace","path":"/a/0","value":1}]`,
			wantErr: "out of range",
		},

		// move
		{
			name:  "move to same location",
			doc:   `{"a":{"b":1}}`,
			patch: `[{"op":"move","from":"/a","path":"/a"}]`,
			want:  `{"a":{"b":1}}`,
		},
		{
			name:  "move replaces existing member",
			doc:   `{"a":1,"b":2}`,
			patch: `[{"op":"move","from":"/a","path":"/b"}]`,
			want:  `{"b":1}`,
		},
		{
			name:  "move to sibling with name prefix",
			doc:   `{"a":1}`,
			patch: `[{"op":"move","from":"/a","path":"/ab"}]`,
			want:  `{"ab":1}`,
		},
		{
			name:  "move array element to end",
			doc:   `{"a":[1,2,3],"b":[]}`,
			patch: `[{"op":"move","from":"/a/0","path":"/b/-"}]`,
			want:  `{"a":[2,3],"b":[1]}`,
		},
		{
			name:    "move into own child",
			doc:     `{"a":{"b":{}}}`,
			patch:   `[{"op":"move","from":"/a","path":"/a/b/c"}]`,
			wantErr: "cannot move a location into one of its own children",
		},
		{
			name:    "move missing from",
			doc:     `{"a":1}`,
			patch:   `[{"op":"move","from":"/x","path":"/b"}]`,
			wantErr: "from location does not exist",
		},
		{
			name:    "move bad from index",
			doc:     `{"a":[1]}`,
			patch:   `[{"op":"move","from":"/a/5","path":"/b"}]`,
			wantErr: "from location: array index 5 is out of range",
		},
		{
			name:    "move to missing parent",
			doc:     `{"a":1}`,
			patch:   `[{"op":"move","from":"/a","path":"/x/y"}]`,
			wantErr: "parent of path does not exist",
		},

		// copy
		{
			name:  "copy member",
			doc:   `{"a":{"b":[1,2]}}`,
			patch: `[{"op":"copy","from":"/a","path":"/c"}]`,
			want:  `{"a":{"b":[1,2]},"c":{"b":[1,2]}}`,
		},
		{
			name: "copy is independent of its source",
			doc:  `{"a":{"b":[1,2]}}`,
			patch: `[{"op":"copy","from":"/a","path":"/c"},
			         {"op":"add","path":"/c/b/0","value":0},
			         {"op":"add","path":"/c/x","value":true}]`,
			want: `{"a":{"b":[1,2]},"c":{"b":[0,1,2],"x":true}}`,
		},
		{
			name:  "copy into own child",
			doc:   `{"a":{"b":1}}`,
			patch: `[{"op":"copy","from":"/a","path":"/a/c"}]`,
			want:  `{"a":{"b":1,"c":{"b":1}}}`,
		},
		{
			name:    "copy missing from",
			doc:     `{"a":1}`,
			patch:   `[{"op":"copy","from":"/b","path":"/c"}]`,
			wantErr: "from location does not exist",
		},

		// test
		{
			name:  "test object ignores member order",
			doc:   `{"a":{"x":1,"y":[true,null,"s"]}}`,
			patch: `[{"op":"test","path":"/a","value":{"y":[true,null,"s"],"x":1}}]`,
			want:  `{"a":{"x":1,"y":[true,null,"s"]}}`,
		},
		{
			name:  "test null",
			doc:   `{"a":null}`,
			patch: `[{"op":"test","path":"/a","value":null}]`,
			want:  `{"a":null}`,
		},
		{
			name:  "test numbers by value",
			doc:   `{"a":8,"b":0.5,"c":-0,"d":1e3}`,
			patch: `[{"op":"test","path":"/a","value":8.0},{"op":"test","path":"/b","value":5e-1},{"op":"test","path":"/c","value":0},{"op":"test","path":"/d","value":1000}]`,
			want:  `{"a":8,"b":0.5,"c":-0,"d":1e3}`,
		},
		{
			name:    "test through bad array index",
			doc:     `{"a":[{"b":1}]}`,
			patch:   `[{"op":"test","path":"/a/1/b","value":1}]`,
			wantErr: "array index 1 is out of range (array length 1)",
		},
		{
			name:    "test below scalar",
			doc:     `{"a":"s"}`,
			patch:   `[{"op":"test","path":"/a/0","value":"s"}]`,
			wantErr: "path does not exist",
		},
		{
			name:    "replace below bad array index",
			doc:     `{"a":[{"b":1}]}`,
			patch:   `[{"op":"replace","path":"/a/01/b","value":2}]`,
			wantErr: `invalid array index "01"`,
		},
		{
			name:    "test large integers exactly",
			doc:     `{"a":12345678901234567890}`,
			patch:   `[{"op":"test","path":"/a","value":12345678901234567891}]`,
			wantErr: "test failed",
		},
		{
			name:    "test null is not absent",
			doc:     `{}`,
			patch:   `[{"op":"test","path":"/a","value":null}]`,
			wantErr: "path does not exist",
		},
		{
			name:    "test array length differs",
			doc:     `{"a":[1,2]}`,
			patch:   `[{"op":"test","path":"/a","value":[1,2,3]}]`,
			wantErr: "test failed",
		},
		{
			name:    "test object vs array",
			doc:     `{"a":{}}`,
			patch:   `[{"op":"test","path":"/a","value":[]}]`,
			wantErr: "test failed",
		},
		{
			name:    "test failure stops later operations",
			doc:     `{"a":1}`,
			patch:   `[{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":2},{"op":"add","path":"/c","value":3}]`,
			wantErr: "patch operation 1 (test /a): test failed",
			errIdx:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patch, err := Decode([]byte(tt.patch))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			doc := decodeDoc(t, tt.doc)
			got, err := patch.Apply(doc)
			if tt.wantErr != "" {
				var perr *Error
				if !errors.As(err, &perr) {
					t.Fatalf("Apply error = %v (%T), want *Error containing %q", err, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Apply error = %q, want it to contain %q", err, tt.wantErr)
				}
				if perr.Index != tt.errIdx {
					t.Errorf("Error.Index = %d, want %d", perr.Index, tt.errIdx)
				}
				if got != nil {
					t.Errorf("Apply returned a document with an error: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if g, w := canonical(t, got), canonical(t, decodeDoc(t, tt.want)); g != w {
				t.Errorf("Apply = %s, want %s", g, w)
			}
		})
	}
}

// TestApplyFloat64Document covers documents decoded without UseNumber, where
// numbers are float64 and operation values are json.Number.
func TestApplyFloat64Document(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(`{"cpus":8,"ratio":0.1,"list":[1.5]}`), &doc); err != nil {
		t.Fatal(err)
	}
	patch, err := Decode([]byte(`[
		{"op":"test","path":"/cpus","value":8},
		{"op":"test","path":"/cpus","value":8.0},
		{"op":"test","path":"/ratio","value":0.1},
		{"op":"test","path":"/list","value":[15e-1]},
		{"op":"replace","path":"/cpus","value":16}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := patch.Apply(doc)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if g, w := canonical(t, got), `{"cpus":16,"list":[1.5],"ratio":0.1}`; g != w {
		t.Errorf("Apply = %s, want %s", g, w)
	}

	_, err = Patch{{Op: OpTest, Path: "/cpus", Value: json.RawMessage(`8.5`)}}.Apply(doc)
	if err == nil || !strings.Contains(err.Error(), "test failed") {
		t.Errorf("test 8.5 against float64(8): err = %v, want test failed", err)
	}
}

func TestApplyDoesNotModifyInput(t *testing.T) {
	const src = `{"a":{"b":[1,{"c":2}]},"d":[[1,2],[3]],"e":"s","n":null}`
	patches := []struct {
		name  string
		patch string
		fails bool
	}{
		{
			name: "success",
			patch: `[{"op":"add","path":"/a/b/1/c","value":3},
			         {"op":"remove","path":"/d/0/0"},
			         {"op":"add","path":"/d/1/-","value":4},
			         {"op":"replace","path":"/e","value":"t"},
			         {"op":"move","from":"/a/b/0","path":"/x"},
			         {"op":"copy","from":"/d","path":"/y"},
			         {"op":"add","path":"/a/new","value":{}}]`,
		},
		{
			name: "fails after changes",
			patch: `[{"op":"add","path":"/a/b/1/c","value":3},
			         {"op":"remove","path":"/d/0/0"},
			         {"op":"add","path":"/d/1/0","value":4},
			         {"op":"remove","path":"/e"},
			         {"op":"remove","path":"/missing"}]`,
			fails: true,
		},
	}
	for _, tt := range patches {
		t.Run(tt.name, func(t *testing.T) {
			doc := decodeDoc(t, src)
			before := canonical(t, doc)
			patch, err := Decode([]byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			got, err := patch.Apply(doc)
			if (err != nil) != tt.fails {
				t.Fatalf("Apply error = %v, want failure %v", err, tt.fails)
			}
			if after := canonical(t, doc); after != before {
				t.Fatalf("input modified by Apply:\nbefore %s\nafter  %s", before, after)
			}
			if got == nil {
				return
			}
			// The result must not share containers with the input either.
			got["a"].(map[string]any)["b"].([]any)[0].(map[string]any)["c"] = "changed"
			got["d"].([]any)[1].([]any)[0] = "changed"
			if after := canonical(t, doc); after != before {
				t.Fatalf("input shares state with the result:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestApplyNilDocument(t *testing.T) {
	got, err := Patch{{Op: OpAdd, Path: "/a", Value: json.RawMessage(`1`)}}.Apply(nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := canonical(t, got); g != `{"a":1}` {
		t.Errorf("Apply(nil) = %s", g)
	}
	got, err = Patch{}.Apply(nil)
	if err != nil || got == nil {
		t.Errorf("empty patch on nil doc = %v, %v; want empty map", got, err)
	}
}

// TestApplyNilNestedMap covers Go-built documents holding a nil map, which
// encoding/json never produces but callers constructing documents may.
func TestApplyNilNestedMap(t *testing.T) {
	var inner map[string]any
	doc := map[string]any{"labels": inner}
	got, err := Patch{{Op: OpAdd, Path: "/labels/k", Value: json.RawMessage(`"v"`)}}.Apply(doc)
	if err != nil {
		t.Fatal(err)
	}
	if g := canonical(t, got); g != `{"labels":{"k":"v"}}` {
		t.Errorf("Apply = %s", g)
	}
	if doc["labels"].(map[string]any) != nil {
		t.Error("input modified")
	}
}

// TestApplyValidates covers patches built in Go rather than by Decode.
func TestApplyValidates(t *testing.T) {
	tests := []struct {
		name    string
		op      Operation
		wantErr string
	}{
		{"unknown op", Operation{Op: "merge", Path: "/a"}, `unknown op "merge"`},
		{"missing op", Operation{Path: "/a"}, `missing "op"`},
		{"missing value", Operation{Op: OpAdd, Path: "/a"}, `missing "value"`},
		{"bad path", Operation{Op: OpRemove, Path: "a"}, `must start with "/"`},
		{"root path", Operation{Op: OpRemove, Path: ""}, `must start with "/"`},
		{"bad escape", Operation{Op: OpRemove, Path: "/a~2"}, "invalid escape"},
		{"missing from", Operation{Op: OpCopy, Path: "/a"}, `missing "from"`},
		{"invalid value", Operation{Op: OpAdd, Path: "/a", Value: json.RawMessage(`{`)}, "invalid value"},
		{"two values", Operation{Op: OpAdd, Path: "/a", Value: json.RawMessage(`1 2`)}, "more than one JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := map[string]any{"a": json.Number("1")}
			_, err := Patch{tt.op}.Apply(doc)
			var perr *Error
			if !errors.As(err, &perr) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Apply error = %v, want *Error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Patch
		wantErr string
		opErr   bool // whether the error should be an *Error
	}{
		{name: "empty patch", in: `[]`, want: Patch{}},
		{
			name: "all ops",
			in: `[{"op":"add","path":"/a","value":1},
			      {"op":"remove","path":"/a"},
			      {"op":"replace","path":"/a","value":"x"},
			      {"op":"move","from":"/a","path":"/b"},
			      {"op":"copy","from":"/b","path":"/c"},
			      {"op":"test","path":"/c","value":{"k":[1]}}]`,
			want: Patch{
				{Op: OpAdd, Path: "/a", Value: json.RawMessage(`1`)},
				{Op: OpRemove, Path: "/a"},
				{Op: OpReplace, Path: "/a", Value: json.RawMessage(`"x"`)},
				{Op: OpMove, Path: "/b", From: "/a"},
				{Op: OpCopy, Path: "/c", From: "/b"},
				{Op: OpTest, Path: "/c", Value: json.RawMessage(`{"k":[1]}`)},
			},
		},
		{
			name: "null value is a value",
			in:   `[{"op":"add","path":"/a","value":null},{"op":"test","path":"/a","value":null}]`,
			want: Patch{
				{Op: OpAdd, Path: "/a", Value: json.RawMessage(`null`)},
				{Op: OpTest, Path: "/a", Value: json.RawMessage(`null`)},
			},
		},
		{
			name: "unused members are dropped",
			in:   `[{"op":"remove","path":"/a","value":1,"from":"/b","xyz":[]},{"op":"move","path":"/a","from":"/b","value":2},{"op":"add","path":"/a","from":"/b","value":3}]`,
			want: Patch{
				{Op: OpRemove, Path: "/a"},
				{Op: OpMove, Path: "/a", From: "/b"},
				{Op: OpAdd, Path: "/a", Value: json.RawMessage(`3`)},
			},
		},
		{
			name: "escaped path",
			in:   `[{"op":"remove","path":"/a~1b/c~0d"}]`,
			want: Patch{{Op: OpRemove, Path: "/a~1b/c~0d"}},
		},
		{
			name: "whitespace everywhere",
			in:   " [ { \"op\" : \"add\" ,\n\t\"path\" :\t\"/a\" , \"value\" : null } ] ",
			want: Patch{{Op: OpAdd, Path: "/a", Value: json.RawMessage(`null`)}},
		},
		{name: "object", in: `{"op":"add","path":"/a","value":1}`, wantErr: "must be a JSON array"},
		{name: "null", in: `null`, wantErr: "not null"},
		{name: "number", in: `3`, wantErr: "must be a JSON array"},
		{name: "invalid JSON", in: `[{"op":"add"`, wantErr: "must be a JSON array"},
		{name: "trailing data", in: `[] []`, wantErr: "must be a JSON array"},
		{name: "element not object", in: `[1]`, wantErr: "patch operation 0: operation must be a JSON object", opErr: true},
		{name: "null element", in: `[{"op":"remove","path":"/a"},null]`, wantErr: "patch operation 1: operation must be a JSON object", opErr: true},
		{name: "unknown op", in: `[{"op":"merge","path":"/a"}]`, wantErr: `patch operation 0 (merge /a): unknown op "merge"`, opErr: true},
		{name: "missing op", in: `[{"path":"/a"}]`, wantErr: `missing "op"`, opErr: true},
		{name: "op not a string", in: `[{"op":1,"path":"/a"}]`, wantErr: `member "op" must be a string`, opErr: true},
		{name: "op null", in: `[{"op":null,"path":"/a"}]`, wantErr: `member "op" must be a string`, opErr: true},
		{name: "missing path", in: `[{"op":"remove"}]`, wantErr: `path "" must start with "/"`, opErr: true},
		{name: "relative path", in: `[{"op":"remove","path":"a/b"}]`, wantErr: `must start with "/"`, opErr: true},
		{name: "bad escape", in: `[{"op":"remove","path":"/a~"}]`, wantErr: "invalid escape", opErr: true},
		{name: "path not a string", in: `[{"op":"remove","path":["a"]}]`, wantErr: `member "path" must be a string`, opErr: true},
		{name: "add missing value", in: `[{"op":"add","path":"/a"}]`, wantErr: `patch operation 0 (add /a): missing "value"`, opErr: true},
		{name: "replace missing value", in: `[{"op":"replace","path":"/a"}]`, wantErr: `missing "value"`, opErr: true},
		{name: "test missing value", in: `[{"op":"test","path":"/a"}]`, wantErr: `missing "value"`, opErr: true},
		{name: "move missing from", in: `[{"op":"move","path":"/a"}]`, wantErr: `missing "from"`, opErr: true},
		{name: "copy missing from", in: `[{"op":"copy","path":"/a"}]`, wantErr: `missing "from"`, opErr: true},
		{name: "relative from", in: `[{"op":"copy","from":"b","path":"/a"}]`, wantErr: `from "b" must start with "/"`, opErr: true},
		{name: "from not a string", in: `[{"op":"copy","from":null,"path":"/a"}]`, wantErr: `member "from" must be a string`, opErr: true},
		{
			name:    "A.13 repeated op",
			in:      `[{"op":"add","path":"/baz","value":"qux","op":"remove"}]`,
			wantErr: `member "op" appears more than once`,
			opErr:   true,
		},
		{name: "error index", in: `[{"op":"remove","path":"/a"},{"op":"remove","path":"/a"},{"op":"bad","path":"/a"}]`, wantErr: "patch operation 2 (bad /a)", opErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Decode error = %v, want one containing %q", err, tt.wantErr)
				}
				var perr *Error
				if errors.As(err, &perr) != tt.opErr {
					t.Errorf("Decode error %v: *Error = %v, want %v", err, !tt.opErr, tt.opErr)
				}
				if got != nil {
					t.Errorf("Decode returned a patch with an error: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !slices.EqualFunc(got, tt.want, func(a, b Operation) bool {
				return a.Op == b.Op && a.Path == b.Path && a.From == b.From && bytes.Equal(a.Value, b.Value)
			}) {
				t.Errorf("Decode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDecodeRoundTrip checks that a decoded patch re-encodes to an equivalent
// patch, keeping null values (which omitempty must not drop).
func TestDecodeRoundTrip(t *testing.T) {
	in := `[{"op":"add","path":"/a","value":null},{"op":"move","path":"/b","from":"/a"},{"op":"remove","path":"/b"}]`
	p, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"op":"add","path":"/a","value":null},{"op":"move","path":"/b","from":"/a"},{"op":"remove","path":"/b"}]`
	if string(out) != want {
		t.Errorf("Marshal(Decode(p)) = %s, want %s", out, want)
	}
}

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "/", want: []string{""}},
		{in: "/properties/cpus", want: []string{"properties", "cpus"}},
		{in: "/a~1b", want: []string{"a/b"}},
		{in: "/m~0n", want: []string{"m~n"}},
		{in: "/~01", want: []string{"~1"}},
		{in: "/~10", want: []string{"/0"}},
		{in: "/a//b/", want: []string{"a", "", "b", ""}},
		{in: "/ /-/0", want: []string{" ", "-", "0"}},
		{in: "a", wantErr: true},
		{in: "/a~", wantErr: true},
		{in: "/a~2", wantErr: true},
		{in: "/~/b", wantErr: true},
	}
	for _, tt := range tests {
		got, err := SplitPath(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("SplitPath(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("SplitPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{
			err:  &Error{Index: 2, Op: Operation{Op: "replace", Path: "/properties/cpus"}, Reason: "path does not exist"},
			want: "patch operation 2 (replace /properties/cpus): path does not exist",
		},
		{
			err:  &Error{Index: 0, Reason: "operation must be a JSON object"},
			want: "patch operation 0: operation must be a JSON object",
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestEqualNumbers(t *testing.T) {
	tests := []struct {
		a, b any
		want bool
	}{
		{json.Number("8"), float64(8), true},
		{json.Number("8"), json.Number("8.000"), true},
		{json.Number("8"), json.Number("0.8e1"), true},
		{json.Number("800"), json.Number("8E+2"), true},
		{json.Number("0.001"), json.Number("1e-3"), true},
		{json.Number("-0"), json.Number("0.0e5"), true},
		{json.Number("0.1"), float64(0.1), true},
		{json.Number("1e21"), float64(1e21), true},
		{json.Number("-2.5"), float64(-2.5), true},
		{json.Number("8"), 8, true},
		{json.Number("8"), int64(8), true},
		{json.Number("8"), json.Number("-8"), false},
		{json.Number("8"), json.Number("80"), false},
		{json.Number("12345678901234567890"), json.Number("12345678901234567891"), false},
		{json.Number("1e999999999999999999999"), json.Number("1e999999999999999999999"), true},
		{json.Number("1e999999999999999999999"), json.Number("1e999999999999999999998"), false},
		{json.Number("8"), "8", false},
		{json.Number("0"), false, false},
		{json.Number("0"), nil, false},
	}
	for _, tt := range tests {
		if got := equal(tt.a, tt.b); got != tt.want {
			t.Errorf("equal(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := equal(tt.b, tt.a); got != tt.want {
			t.Errorf("equal(%#v, %#v) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}
