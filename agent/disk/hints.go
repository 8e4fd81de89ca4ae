// Package disk chooses the disk an image goes to and erases disks, as
// Ironic's agent does: root device hints with Ironic's operators, metadata
// erase for automated cleaning and full erase for the manual clean step.
package disk

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ingot/ingot/proto/agentpb"
)

// MinRootSize is the smallest disk picked when no hints are given: Ironic's
// agent skips anything smaller (USB sticks, SD cards, virtual media) by
// default.
const MinRootSize = 4 << 30

// ErrNoMatch is wrapped by Match's error when no disk qualifies.
var ErrNoMatch = errors.New("no matching disk")

type hintKind int

const (
	kindString hintKind = iota
	kindSize
	kindBool
)

// hintKinds are Ironic's valid root device hints (ironic-lib
// VALID_ROOT_DEVICE_HINTS) that the inventory can answer.
var hintKinds = map[string]hintKind{
	"name":                 kindString,
	"size":                 kindSize,
	"model":                kindString,
	"vendor":               kindString,
	"serial":               kindString,
	"wwn":                  kindString,
	"wwn_with_extension":   kindString,
	"wwn_vendor_extension": kindString,
	"rotational":           kindBool,
	"hctl":                 kindString,
	"by_path":              kindString,
}

// Match returns the disk the hints pick, with Ironic's semantics:
//
//   - every hint must match; of the disks that match, the first in kernel
//     name order (sda … sdz, sdaa; nvme0n1, nvme0n2, nvme1n1) wins;
//   - string hints compare lower-cased and trimmed, and a disk whose value
//     is empty never matches (not even "s!="); name may omit "/dev/" and
//     by_path "/dev/disk/by-path/";
//   - size is in GiB, compared with the disk's exact size in GiB (a
//     fraction: "size: 20" matches only a disk of exactly 20 GiB, so real
//     disks want ">=" or "<=");
//   - rotational takes 1/t/true/on/y/yes or 0/f/false/off/n/no;
//   - without hints, the smallest disk of at least MinRootSize.
//
// Operators (oslo.utils specs_matcher, as Ironic documents them): for size
// "==" (the default), "!=", ">=", "<=", ">", "<", "=" (which means ">=" in
// oslo), "<or> 20 <or> 40" and "<range-in> [ 10 100 )" ("[" and "]"
// include the bound, "(" and ")" exclude it); for strings "s==" (the
// default), "s!=", "s>=", "s<=", "s>", "s<", "<in> x" (x is a substring),
// "<all-in> x y" (every word is a substring) and "<or> a <or> b".
//
// Two deliberate departures where Ironic's own code is broken: "<or>" on
// size compares numbers (Ironic compares a float with a string and never
// matches), and "<all-in>" checks words (oslo checks single characters).
// Unknown keys, malformed values and operators that make no sense for the
// hint (a string operator on size) are errors, as Ironic rejects them when
// the hints are set.
func Match(disks []*agentpb.Disk, hints map[string]string) (*agentpb.Disk, error) {
	ordered := slices.Clone(disks)
	Sort(ordered)
	if len(hints) == 0 {
		return smallest(ordered)
	}
	parsed, err := parseHints(hints)
	if err != nil {
		return nil, err
	}
	for _, d := range ordered {
		if matchesAll(d, parsed) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%w: no disk matches root device hints %s; disks seen: %s",
		ErrNoMatch, formatHints(hints), describe(ordered))
}

func smallest(disks []*agentpb.Disk) (*agentpb.Disk, error) {
	var best *agentpb.Disk
	for _, d := range disks {
		// Strictly smaller: of equal sizes the first in name order stays.
		if d.GetSizeBytes() >= MinRootSize && (best == nil || d.GetSizeBytes() < best.GetSizeBytes()) {
			best = d
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: no disk of at least %d GiB; disks seen: %s",
			ErrNoMatch, MinRootSize>>30, describe(disks))
	}
	return best, nil
}

type hint struct {
	key    string
	kind   hintKind
	op     string
	values []string // lower-cased strings, or decimal integers for size
	b      bool     // rotational
}

func parseHints(hints map[string]string) ([]hint, error) {
	keys := make([]string, 0, len(hints))
	for k := range hints {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parsed []hint
	var unknown []string
	for _, k := range keys {
		kind, ok := hintKinds[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		h, err := parseHint(k, kind, hints[k])
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, h)
	}
	if len(unknown) > 0 {
		valid := make([]string, 0, len(hintKinds))
		for k := range hintKinds {
			valid = append(valid, k)
		}
		slices.Sort(valid)
		return nil, fmt.Errorf("root device hints %q are invalid; valid hints are %s",
			unknown, strings.Join(valid, ", "))
	}
	return parsed, nil
}

// Longest first, so "s<=" is not read as "s<" and "==" not as "=".
var operators = []string{
	"<range-in>", "<all-in>", "<in>", "<or>",
	"s==", "s!=", "s<=", "s>=", "s<", "s>",
	"==", "!=", ">=", "<=", "=", ">", "<",
}

var (
	numericOps = []string{"==", "!=", ">=", "<=", "=", ">", "<", "<or>", "<range-in>"}
	stringOps  = []string{"s==", "s!=", "s<=", "s>=", "s<", "s>", "<in>", "<all-in>", "<or>"}
)

func parseHint(key string, kind hintKind, expr string) (hint, error) {
	h := hint{key: key, kind: kind}
	expr = strings.ToLower(strings.TrimSpace(expr))
	if expr == "" {
		return h, fmt.Errorf("root device hint %s is empty", key)
	}
	if kind == kindBool {
		b, err := parseBool(expr)
		if err != nil {
			return h, fmt.Errorf("root device hint %s: %q is not a Boolean", key, expr)
		}
		h.b = b
		return h, nil
	}

	h.op, h.values = splitOperator(expr)
	if len(h.values) == 0 {
		return h, fmt.Errorf("root device hint %s: operator %s has no value", key, h.op)
	}
	switch kind {
	case kindSize:
		if h.op == "" {
			h.op = "=="
		}
		if !slices.Contains(numericOps, h.op) {
			return h, fmt.Errorf("root device hint size: operator %s does not apply to numbers (use one of %s)",
				h.op, strings.Join(numericOps, " "))
		}
		if h.op == "<range-in>" {
			return h, checkRange(h.values)
		}
		for _, v := range h.values {
			if n, err := strconv.Atoi(v); err != nil || n <= 0 {
				return h, fmt.Errorf("root device hint size: %q is not a positive integer (GiB)", v)
			}
		}
	case kindString:
		if h.op == "" {
			h.op = "s=="
		}
		if !slices.Contains(stringOps, h.op) {
			return h, fmt.Errorf("root device hint %s: operator %s compares numbers (use one of %s)",
				key, h.op, strings.Join(stringOps, " "))
		}
		if h.op == "s==" || h.op == "s!=" || h.op == "<or>" {
			for i, v := range h.values {
				h.values[i] = completePath(key, v)
			}
		}
	}
	return h, nil
}

// splitOperator splits "op value" into the operator (empty if none) and its
// values: "<or>" separates alternatives, "<all-in>" takes words, and every
// other operator takes the rest of the expression, spaces included
// ("<in> samsung ssd").
func splitOperator(expr string) (string, []string) {
	op := ""
	for _, o := range operators {
		if strings.HasPrefix(expr, o) {
			op = o
			break
		}
	}
	rest := strings.TrimSpace(strings.TrimPrefix(expr, op))
	var values []string
	switch op {
	case "<or>":
		for v := range strings.SplitSeq(rest, "<or>") {
			if v = strings.TrimSpace(v); v != "" {
				values = append(values, v)
			}
		}
	case "<all-in>":
		values = strings.Fields(rest)
	case "<range-in>":
		// "[10 100)" and "[ 10 100 )" alike: brackets become words.
		values = strings.Fields(strings.NewReplacer("[", " [ ", "]", " ] ", "(", " ( ", ")", " ) ").Replace(rest))
	default:
		if rest != "" {
			values = []string{rest}
		}
	}
	return op, values
}

// checkRange validates "<range-in>"'s "[", low, high, "]" (or parentheses).
func checkRange(v []string) error {
	if len(v) != 4 || (v[0] != "[" && v[0] != "(") || (v[3] != "]" && v[3] != ")") {
		return fmt.Errorf("root device hint size: <range-in> takes a range such as \"[ 10 100 ]\" or \"( 10 100 )\", not %q", strings.Join(v, " "))
	}
	lo, err1 := strconv.Atoi(v[1])
	hi, err2 := strconv.Atoi(v[2])
	if err1 != nil || err2 != nil || lo < 0 || lo > hi {
		return fmt.Errorf("root device hint size: <range-in> bounds %q and %q are not integers low <= high (GiB)", v[1], v[2])
	}
	return nil
}

// completePath lets name be given as "sda" and by_path as
// "pci-0000:00:04.0", as the inventory reports them with their directory.
func completePath(key, v string) string {
	switch {
	case key == "name" && !strings.HasPrefix(v, "/"):
		return "/dev/" + v
	case key == "by_path" && !strings.HasPrefix(v, "/"):
		return "/dev/disk/by-path/" + v
	}
	return v
}

// parseBool is oslo's strutils.bool_from_string(strict=True).
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "on", "y", "yes":
		return true, nil
	case "0", "f", "false", "off", "n", "no":
		return false, nil
	}
	return false, fmt.Errorf("not a Boolean: %q", s)
}

func matchesAll(d *agentpb.Disk, hints []hint) bool {
	for _, h := range hints {
		if !h.matches(d) {
			return false
		}
	}
	return true
}

func (h hint) matches(d *agentpb.Disk) bool {
	switch h.kind {
	case kindBool:
		return d.GetRotational() == h.b
	case kindSize:
		return matchSize(float64(d.GetSizeBytes())/(1<<30), h.op, h.values)
	}
	v := strings.ToLower(strings.TrimSpace(stringField(d, h.key)))
	if v == "" {
		return false
	}
	return matchString(v, h.op, h.values)
}

func matchSize(gib float64, op string, values []string) bool {
	if op == "<range-in>" {
		lo, _ := strconv.Atoi(values[1]) // validated by checkRange
		hi, _ := strconv.Atoi(values[2])
		above := gib > float64(lo) || (values[0] == "[" && gib == float64(lo))
		below := gib < float64(hi) || (values[3] == "]" && gib == float64(hi))
		return above && below
	}
	want := make([]float64, len(values))
	for i, v := range values {
		n, _ := strconv.Atoi(v) // validated by parseHint
		want[i] = float64(n)
	}
	switch op {
	case "==":
		return gib == want[0]
	case "!=":
		return gib != want[0]
	case ">=", "=":
		return gib >= want[0]
	case "<=":
		return gib <= want[0]
	case ">":
		return gib > want[0]
	case "<":
		return gib < want[0]
	case "<or>":
		return slices.Contains(want, gib)
	}
	return false
}

func matchString(v, op string, values []string) bool {
	switch op {
	case "s==":
		return v == values[0]
	case "s!=":
		return v != values[0]
	case "s<=":
		return v <= values[0]
	case "s>=":
		return v >= values[0]
	case "s<":
		return v < values[0]
	case "s>":
		return v > values[0]
	case "<in>":
		return strings.Contains(v, values[0])
	case "<all-in>":
		for _, w := range values {
			if !strings.Contains(v, w) {
				return false
			}
		}
		return true
	case "<or>":
		return slices.Contains(values, v)
	}
	return false
}

func stringField(d *agentpb.Disk, key string) string {
	switch key {
	case "name":
		return d.GetName()
	case "model":
		return d.GetModel()
	case "vendor":
		return d.GetVendor()
	case "serial":
		return d.GetSerial()
	case "wwn":
		return d.GetWwn()
	case "wwn_with_extension":
		return d.GetWwnWithExtension()
	case "wwn_vendor_extension":
		return d.GetWwnVendorExtension()
	case "hctl":
		return d.GetHctl()
	case "by_path":
		return d.GetByPath()
	}
	return ""
}

func formatHints(hints map[string]string) string {
	keys := make([]string, 0, len(hints))
	for k := range hints {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, hints[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// describe lists disks with what an operator needs to fix the hints.
func describe(disks []*agentpb.Disk) string {
	if len(disks) == 0 {
		return "none"
	}
	parts := make([]string, len(disks))
	for i, d := range disks {
		parts[i] = fmt.Sprintf("%s (%.2f GiB, model %q, serial %q)",
			d.GetName(), float64(d.GetSizeBytes())/(1<<30), d.GetModel(), d.GetSerial())
	}
	return strings.Join(parts, "; ")
}
