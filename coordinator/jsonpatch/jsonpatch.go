// Package jsonpatch implements RFC 6902 JSON Patch over documents decoded by
// encoding/json: objects are map[string]any, arrays are []any, and numbers
// are json.Number (when decoded with UseNumber) or float64.
//
// Only documents whose root is an object are supported, so every path must
// name a location below the root (it starts with "/").
package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Operation names defined by RFC 6902.
const (
	OpAdd     = "add"
	OpRemove  = "remove"
	OpReplace = "replace"
	OpMove    = "move"
	OpCopy    = "copy"
	OpTest    = "test"
)

// Operation is one RFC 6902 operation.
type Operation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	From  string          `json:"from,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Patch is a JSON Patch document.
type Patch []Operation

// Error says which operation failed and why, in plain words suitable for an
// API error message. Index is the zero-based position of the operation in
// the patch.
type Error struct {
	Index  int
	Op     Operation
	Reason string
}

func (e *Error) Error() string {
	what := strings.TrimSpace(e.Op.Op + " " + e.Op.Path)
	if what == "" {
		return fmt.Sprintf("patch operation %d: %s", e.Index, e.Reason)
	}
	return fmt.Sprintf("patch operation %d (%s): %s", e.Index, what, e.Reason)
}

// reason is an error whose text is the whole message. Being a string type it
// lets the sentinel errors below be constants.
type reason string

func (r reason) Error() string { return string(r) }

const (
	errNoPath      reason = "path does not exist"
	errNoParent    reason = "parent of path does not exist"
	errNotParent   reason = "parent of path is not an object or array"
	errNoFrom      reason = "from location does not exist"
	errEndOfArray  reason = `array index "-" refers to a nonexistent element`
	errTestFailed  reason = "test failed: value at path does not equal the given value"
	errIntoChild   reason = "cannot move a location into one of its own children"
	errNotAnObject reason = "operation must be a JSON object"
)

// Decode parses a patch document. It rejects anything that is not a JSON
// array of operation objects, each with a known op, a path below the root, a
// value for add, replace and test (JSON null counts as a value), and a from
// location for move and copy. Members an operation does not use are ignored,
// as RFC 6902 requires. Errors about a particular operation are *Error.
func Decode(data []byte) (Patch, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("patch must be a JSON array of operations: %w", err)
	}
	if raws == nil { // the literal null, which Unmarshal accepts silently
		return nil, errors.New("patch must be a JSON array of operations, not null")
	}
	patch := make(Patch, 0, len(raws))
	for i, raw := range raws {
		op, err := decodeOperation(raw)
		if err == nil {
			err = op.validate()
		}
		if err != nil {
			return nil, &Error{Index: i, Op: op, Reason: err.Error()}
		}
		patch = append(patch, op)
	}
	return patch, nil
}

// decodeOperation reads one operation object. It walks the object's tokens
// rather than unmarshalling into a struct so that it can tell an absent value
// from a null one and reject repeated members (RFC 6902 appendix A.13).
func decodeOperation(raw json.RawMessage) (Operation, error) {
	var op Operation
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return op, errNotAnObject
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return op, err
		}
		key, _ := tok.(string) // object keys are always strings
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return op, err
		}
		switch key {
		case "op", "path", "from", "value":
		default:
			continue
		}
		if seen[key] {
			return op, fmt.Errorf("member %q appears more than once", key)
		}
		seen[key] = true
		if key == "value" {
			op.Value = val
			continue
		}
		var s string
		// Unmarshal leaves s alone for null, so check the first byte too.
		if val[0] != '"' || json.Unmarshal(val, &s) != nil {
			return op, fmt.Errorf("member %q must be a string", key)
		}
		switch key {
		case "op":
			op.Op = s
		case "path":
			op.Path = s
		case "from":
			op.From = s
		}
	}
	// Drop members the op ignores so a decoded patch re-encodes canonically.
	switch op.Op {
	case OpMove, OpCopy:
		op.Value = nil
	case OpRemove:
		op.Value, op.From = nil, ""
	default:
		op.From = ""
	}
	return op, nil
}

// validate checks the shape of an operation, independent of any document.
// Apply calls it too, since a Patch need not have come from Decode.
func (op Operation) validate() error {
	if !knownOp(op.Op) {
		if op.Op == "" {
			return errors.New(`missing "op"`)
		}
		return fmt.Errorf("unknown op %q", op.Op)
	}
	if err := checkPointer("path", op.Path); err != nil {
		return err
	}
	switch op.Op {
	case OpAdd, OpReplace, OpTest:
		if len(op.Value) == 0 {
			return fmt.Errorf(`missing "value" (required for %s)`, op.Op)
		}
	case OpMove, OpCopy:
		if op.From == "" {
			return fmt.Errorf(`missing "from" (required for %s)`, op.Op)
		}
		if err := checkPointer("from", op.From); err != nil {
			return err
		}
	}
	return nil
}

func knownOp(name string) bool {
	switch name {
	case OpAdd, OpRemove, OpReplace, OpMove, OpCopy, OpTest:
		return true
	}
	return false
}

// checkPointer rejects pointers that are malformed or address the root, which
// this package cannot replace because documents are always objects.
func checkPointer(member, ptr string) error {
	if !strings.HasPrefix(ptr, "/") {
		return fmt.Errorf("%s %q must start with \"/\"", member, ptr)
	}
	if _, err := SplitPath(ptr); err != nil {
		return fmt.Errorf("%s: %w", member, err)
	}
	return nil
}

// SplitPath decodes an RFC 6901 JSON pointer into its reference tokens,
// unescaping "~1" to "/" and "~0" to "~". The empty pointer (the whole
// document) yields no tokens; a path accepted by Decode always yields at
// least one.
func SplitPath(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' {
		return nil, fmt.Errorf("JSON pointer %q must start with \"/\"", path)
	}
	tokens := strings.Split(path[1:], "/")
	for i, tok := range tokens {
		if !strings.Contains(tok, "~") {
			continue
		}
		for j := 0; j < len(tok); j++ {
			if tok[j] == '~' && (j+1 == len(tok) || (tok[j+1] != '0' && tok[j+1] != '1')) {
				return nil, fmt.Errorf("JSON pointer %q has an invalid escape (\"~\" must be followed by 0 or 1)", path)
			}
		}
		// "~1" first: the other order would turn "~01" into "/" instead of "~1".
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

// Apply applies the patch to doc and returns the result. doc is never
// modified: the patch works on a deep copy, so a failing patch leaves the
// caller's document as it was. A nil doc is treated as an empty object.
// Errors are of type *Error.
func (p Patch) Apply(doc map[string]any) (map[string]any, error) {
	root := make(map[string]any, len(doc))
	for k, v := range doc {
		root[k] = deepCopy(v)
	}
	for i, op := range p {
		if err := applyOp(root, op); err != nil {
			return nil, &Error{Index: i, Op: op, Reason: err.Error()}
		}
	}
	return root, nil
}

func applyOp(root map[string]any, op Operation) error {
	if err := op.validate(); err != nil {
		return err
	}
	path, _ := SplitPath(op.Path) // validate checked it
	switch op.Op {
	case OpAdd:
		v, err := decodeValue(op.Value)
		if err != nil {
			return err
		}
		return add(root, path, v)
	case OpRemove:
		_, err := remove(root, path)
		return err
	case OpReplace:
		v, err := decodeValue(op.Value)
		if err != nil {
			return err
		}
		return replace(root, path, v)
	case OpMove:
		from, _ := SplitPath(op.From)
		if len(from) < len(path) && slices.Equal(from, path[:len(from)]) {
			return errIntoChild
		}
		v, err := remove(root, from)
		if err != nil {
			return fromErr(err)
		}
		return add(root, path, v)
	case OpCopy:
		from, _ := SplitPath(op.From)
		v, err := get(root, from)
		if err != nil {
			return fromErr(err)
		}
		// Copy so the two locations do not share maps or slices, which
		// later operations would otherwise modify through both.
		return add(root, path, deepCopy(v))
	case OpTest:
		want, err := decodeValue(op.Value)
		if err != nil {
			return err
		}
		got, err := get(root, path)
		if err != nil {
			return err
		}
		if !equal(got, want) {
			return errTestFailed
		}
		return nil
	}
	return fmt.Errorf("unknown op %q", op.Op) // unreachable after validate
}

// fromErr rewords an error about the from location so that it is not
// mistaken for one about path.
func fromErr(err error) error {
	if errors.Is(err, errNoPath) {
		return errNoFrom
	}
	return fmt.Errorf("from location: %w", err)
}

// decodeValue decodes an operation's value with UseNumber so that large
// integers are not rounded through float64.
func decodeValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid value: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid value: more than one JSON value")
	}
	return v, nil
}

// get returns the value at the location named by tokens.
func get(node any, tokens []string) (any, error) {
	for _, tok := range tokens {
		switch n := node.(type) {
		case map[string]any:
			child, ok := n[tok]
			if !ok {
				return nil, errNoPath
			}
			node = child
		case []any:
			i, err := arrayIndex(tok, len(n), false)
			if err != nil {
				return nil, err
			}
			node = n[i]
		default:
			return nil, errNoPath
		}
	}
	return node, nil
}

// mutate finds the container that holds the last token and replaces it with
// what fn returns. Containers are rewritten on the way back up because
// inserting into or deleting from a slice can produce a new slice header.
// The root is a map, which is changed in place, so its result is dropped.
func mutate(root map[string]any, tokens []string, fn func(parent any, key string) (any, error)) error {
	_, err := mutateAt(root, tokens, fn)
	return err
}

func mutateAt(node any, tokens []string, fn func(parent any, key string) (any, error)) (any, error) {
	if len(tokens) == 1 {
		return fn(node, tokens[0])
	}
	switch n := node.(type) {
	case map[string]any:
		child, ok := n[tokens[0]]
		if !ok {
			return nil, errNoPath
		}
		child, err := mutateAt(child, tokens[1:], fn)
		if err != nil {
			return nil, err
		}
		n[tokens[0]] = child
		return n, nil
	case []any:
		i, err := arrayIndex(tokens[0], len(n), false)
		if err != nil {
			return nil, err
		}
		child, err := mutateAt(n[i], tokens[1:], fn)
		if err != nil {
			return nil, err
		}
		n[i] = child
		return n, nil
	default:
		return nil, errNoPath
	}
}

// add implements RFC 6902 section 4.1: set an object member (creating or
// replacing it), or insert into an array, where "-" appends.
func add(root map[string]any, path []string, v any) error {
	err := mutate(root, path, func(parent any, key string) (any, error) {
		switch p := parent.(type) {
		case map[string]any:
			if p == nil { // a Go-built document may hold a nil map; treat it as {}
				p = make(map[string]any)
			}
			p[key] = v
			return p, nil
		case []any:
			i, err := arrayIndex(key, len(p), true)
			if err != nil {
				return nil, err
			}
			return slices.Insert(p, i, v), nil
		default:
			return nil, errNotParent
		}
	})
	// For add only the parent has to exist, so say so.
	if errors.Is(err, errNoPath) {
		return errNoParent
	}
	return err
}

// remove implements RFC 6902 section 4.2 and returns the removed value.
func remove(root map[string]any, path []string) (any, error) {
	var removed any
	err := mutate(root, path, func(parent any, key string) (any, error) {
		switch p := parent.(type) {
		case map[string]any:
			v, ok := p[key]
			if !ok {
				return nil, errNoPath
			}
			delete(p, key)
			removed = v
			return p, nil
		case []any:
			i, err := arrayIndex(key, len(p), false)
			if err != nil {
				return nil, err
			}
			removed = p[i]
			return slices.Delete(p, i, i+1), nil
		default:
			return nil, errNoPath
		}
	})
	return removed, err
}

// replace implements RFC 6902 section 4.3: the target must already exist.
func replace(root map[string]any, path []string, v any) error {
	return mutate(root, path, func(parent any, key string) (any, error) {
		switch p := parent.(type) {
		case map[string]any:
			if _, ok := p[key]; !ok {
				return nil, errNoPath
			}
			p[key] = v
			return p, nil
		case []any:
			i, err := arrayIndex(key, len(p), false)
			if err != nil {
				return nil, err
			}
			p[i] = v
			return p, nil
		default:
			return nil, errNoPath
		}
	})
}

// arrayIndex parses an array reference token for an array of length n. With
// insert set (add, and the target of move and copy), n itself and "-" (meaning
// n) are allowed, since they name the position after the last element.
func arrayIndex(tok string, n int, insert bool) (int, error) {
	if tok == "-" {
		if insert {
			return n, nil
		}
		return 0, errEndOfArray
	}
	// RFC 6901: "0" or a non-zero digit followed by digits. Atoi alone would
	// also accept signs and leading zeros.
	valid := tok != "" && (tok == "0" || tok[0] != '0')
	for i := 0; valid && i < len(tok); i++ {
		valid = tok[i] >= '0' && tok[i] <= '9'
	}
	if !valid {
		return 0, fmt.Errorf("invalid array index %q", tok)
	}
	i, err := strconv.Atoi(tok)
	limit := n - 1
	if insert {
		limit = n
	}
	if err != nil || i > limit {
		return 0, fmt.Errorf("array index %s is out of range (array length %d)", tok, n)
	}
	return i, nil
}

// deepCopy copies the maps and slices of a decoded JSON value. Scalars are
// immutable and shared. Nil maps and slices stay nil so the copy encodes
// the same as the original.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		if v == nil {
			return v
		}
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	default:
		return v
	}
}

// equal reports whether two decoded JSON values are equal in the sense of
// RFC 6902 section 4.6: objects and arrays compare member by member and
// numbers compare by value, whatever their Go representation.
func equal(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || !equal(av, bv) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equal(a[i], b[i]) {
				return false
			}
		}
		return true
	case string:
		b, ok := b.(string)
		return ok && a == b
	case bool:
		b, ok := b.(bool)
		return ok && a == b
	case nil:
		return b == nil
	}
	if as, ok := numberText(a); ok {
		bs, ok := numberText(b)
		if !ok {
			return false
		}
		ad, aok := parseDecimal(as)
		bd, bok := parseDecimal(bs)
		return aok && bok && ad.equal(bd)
	}
	return reflect.DeepEqual(a, b) // types encoding/json never produces
}

// numberText returns the decimal text of a numeric value. For float64 it is
// the shortest text that round-trips, so float64(0.1) equals json.Number("0.1")
// just as it would had both been decoded the same way.
func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return string(n), true
	case float64:
		return strconv.FormatFloat(n, 'g', -1, 64), true
	case int:
		return strconv.Itoa(n), true
	case int64:
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// decimal is a number in a normal form where equal values have equal fields:
// value = ±0.digits × 10^exp, with digits free of leading and trailing zeros
// (empty for zero). Comparing this form is exact, unlike converting to
// float64 (which merges distinct large integers), and cheap, unlike big.Rat
// (which would expand an exponent such as 1e999999999).
type decimal struct {
	neg    bool
	digits string
	exp    *big.Int
}

// parseDecimal parses a JSON number, or the output of strconv.FormatFloat
// (which may write the exponent sign as "+"). NaN and infinities fail.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	d.neg = strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	d.exp = new(big.Int)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		if _, ok := d.exp.SetString(s[i+1:], 10); !ok {
			return d, false
		}
		s = s[:i]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	digits := intPart + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return d, false
	}
	trimmed := strings.TrimLeft(digits, "0")
	d.exp.Add(d.exp, big.NewInt(int64(len(intPart)-(len(digits)-len(trimmed)))))
	d.digits = strings.TrimRight(trimmed, "0")
	if d.digits == "" { // zero, however written: drop sign and exponent
		return decimal{exp: new(big.Int)}, true
	}
	return d, true
}

func (d decimal) equal(o decimal) bool {
	return d.neg == o.neg && d.digits == o.digits && d.exp.Cmp(o.exp) == 0
}
