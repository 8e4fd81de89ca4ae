package api

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The append functions write JSON straight into a buffer: rendering a
// detailed list of a thousand nodes is the API's hottest path, and
// reflection-based encoding was most of its cost. They produce what
// encoding/json would (map keys sorted, the same escaping).

func appendNull(buf []byte) []byte { return append(buf, "null"...) }

// appendNullString writes s, or null when s is empty.
func appendNullString(buf []byte, s string) []byte {
	if s == "" {
		return appendNull(buf)
	}
	return appendString(buf, s)
}

func appendTime(buf []byte, t *time.Time) []byte {
	if t == nil {
		return appendNull(buf)
	}
	buf = append(buf, '"')
	buf = t.UTC().AppendFormat(buf, TimeFormat)
	return append(buf, '"')
}

func appendBool(buf []byte, b bool) []byte { return strconv.AppendBool(buf, b) }

func appendBoolPtr(buf []byte, b *bool) []byte {
	if b == nil {
		return appendNull(buf)
	}
	return strconv.AppendBool(buf, *b)
}

// appendObject writes m; nil is {}.
func appendObject(buf []byte, m map[string]any) []byte { return appendMap(buf, m, false) }

// appendMasked writes m with secret values replaced by Masked.
func appendMasked(buf []byte, m map[string]any) []byte { return appendMap(buf, m, true) }

func appendMap(buf []byte, m map[string]any, mask bool) []byte {
	buf = append(buf, '{')
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, k)
		buf = append(buf, ':')
		if mask && IsSecretKey(k) {
			buf = appendString(buf, Masked)
			continue
		}
		buf = appendValue(buf, m[k])
	}
	return append(buf, '}')
}

// appendValue writes any value decoded from JSON.
func appendValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return appendNull(buf)
	case string:
		return appendString(buf, x)
	case bool:
		return strconv.AppendBool(buf, x)
	case float64:
		// encoding/json switches to exponents outside this range.
		if a := math.Abs(x); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.AppendFloat(buf, x, 'f', -1, 64)
		}
	case int:
		return strconv.AppendInt(buf, int64(x), 10)
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case json.Number:
		return append(buf, x...)
	case map[string]any:
		return appendObject(buf, x)
	case []any:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendValue(buf, e)
		}
		return append(buf, ']')
	case []string:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, e)
		}
		return append(buf, ']')
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only values decoded from JSON are stored, so they encode.
		return appendNull(buf)
	}
	return append(buf, b...)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string, escaped as encoding/json does
// (including <, >, & and U+2028/2029, which it escapes for HTML safety).
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	buf = appendEscaped(buf, s)
	return append(buf, '"')
}

// appendEscaped writes the inside of a JSON string.
func appendEscaped(buf []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(buf, s[start:]...)
}

// appendLinks writes Ironic's self and bookmark links for base/v1/path
// and base/path.
func appendLinks(buf []byte, base string, path ...string) []byte {
	buf = append(buf, `[{"href":"`...)
	buf = appendEscaped(buf, base)
	buf = append(buf, "/v1"...)
	for _, p := range path {
		buf = append(buf, '/')
		buf = appendEscaped(buf, p)
	}
	buf = append(buf, `","rel":"self"},{"href":"`...)
	buf = appendEscaped(buf, base)
	for _, p := range path {
		buf = append(buf, '/')
		buf = appendEscaped(buf, p)
	}
	return append(buf, `","rel":"bookmark"}]`...)
}
