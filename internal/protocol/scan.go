package protocol

// A small JSON scanner for the two decoders on the hot path: log entries
// (DecodeOps) and client frames (DecodeClientMessage). Each has a fast
// path for the shapes sessionhub and its clients write, checked byte by
// byte with no reflection, and falls back to encoding/json for anything
// else, so both accept and return exactly what encoding/json does (a fuzz
// target holds them to it).

import (
	"bytes"
	"encoding/json"

	"github.com/sessionhub/sessionhub/session"
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// isSpace reports JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-whitespace byte at or
// after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanValue returns the end of the JSON value starting at b[i] (no
// leading whitespace), validated as encoding/json validates it, or -1;
// depth is how many arrays and objects enclose it (encoding/json's
// nesting limit counts them).
func scanValue(b []byte, i, depth int) int {
	// stack of open containers: true for an object
	var stackBuf [16]bool
	stack := stackBuf[:0]
	for {
		// A value.
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				return -1
			}
			i = skipSpace(b, i+1)
			if i < len(b) && ((c == '{' && b[i] == '}') || (c == '[' && b[i] == ']')) { // empty
				depth--
				i++
				break
			}
			stack = append(stack, c == '{')
			if c == '{' {
				if i = scanKey(b, i); i < 0 {
					return -1
				}
			}
			continue
		case c == '"':
			if i = scanString(b, i); i < 0 {
				return -1
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if i = scanNumber(b, i); i < 0 {
				return -1
			}
		case c == 't':
			if i = scanLiteral(b, i, "true"); i < 0 {
				return -1
			}
		case c == 'f':
			if i = scanLiteral(b, i, "false"); i < 0 {
				return -1
			}
		case c == 'n':
			if i = scanLiteral(b, i, "null"); i < 0 {
				return -1
			}
		default:
			return -1
		}
		// After a value: close containers, or go on to the next element.
		for {
			if len(stack) == 0 {
				return i
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			obj := stack[len(stack)-1]
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if obj {
					if i = scanKey(b, i); i < 0 {
						return -1
					}
				}
				break
			}
			if (obj && b[i] == '}') || (!obj && b[i] == ']') {
				stack = stack[:len(stack)-1]
				depth--
				i++
				continue
			}
			return -1
		}
	}
}

// scanKey scans an object key and its colon at b[i] and returns the index
// of its value (whitespace skipped), or -1.
func scanKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = scanString(b, i); i < 0 {
		return -1
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// scanString returns the end of the string starting at b[i] == '"', or -1.
// Like encoding/json's validation it accepts any byte from 0x20 up
// (invalid UTF-8 included) and the JSON escapes.
func scanString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < ' ':
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scanNumber returns the end of the number starting at b[i], or -1.
func scanNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanLiteral returns the end of lit at b[i], or -1.
func scanLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// plainString returns the contents and end of the string at b[i] when it
// holds printable ASCII only and no escape (what encoding/json would
// return unchanged); ok is false otherwise, and the caller falls back.
func plainString(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < ' ' || c == '\\' || c >= 0x80:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// PlainString returns the bytes of the string a JSON value holds when
// the value is exactly a string of printable ASCII without escapes (then
// they are the string, as encoding/json would decode it): a slice of v,
// not a copy. ok is false otherwise, and the caller decodes it with
// encoding/json.
func PlainString(v []byte) (s []byte, ok bool) {
	b, end, ok := plainString(v, 0)
	if !ok || end != len(v) {
		return nil, false
	}
	return b, true
}

// plainUint returns the value and end of the unsigned integer at b[i]
// when encoding/json would decode it into a uint64 as written (digits, no
// leading zero, no overflow); ok is false otherwise.
func plainUint(b []byte, i int) (n uint64, end int, ok bool) {
	j := i
	for j < len(b) && isDigit(b[j]) {
		d := uint64(b[j] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, 0, false
		}
		n = n*10 + d
		j++
	}
	if j == i || (b[i] == '0' && j > i+1) {
		return 0, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, 0, false
	}
	return n, j, true
}

// DecodeOps parses a log entry's payload (AppendOps' output) as
// json.Unmarshal into a []WireOp does; the values alias b.
func DecodeOps(b []byte) ([]WireOp, error) {
	if ops, ok := fastOps(b); ok {
		return ops, nil
	}
	var ops []WireOp
	if err := json.Unmarshal(b, &ops); err != nil {
		return nil, err
	}
	return ops, nil
}

// fastOps parses exactly what AppendOps writes for ops with plain types
// and keys: [{"type":"t","key":"k","value":v},...], key and value each
// optional; ok is false for anything else.
func fastOps(b []byte) (ops []WireOp, ok bool) {
	if len(b) < 2 || b[0] != '[' {
		return nil, false
	}
	n := 0 // a first guess at the count, for one allocation
	for _, c := range b {
		if c == '{' {
			n++
		}
	}
	ops = make([]WireOp, 0, n)
	i := 1
	if b[i] == ']' {
		return ops, i+1 == len(b)
	}
	for {
		const typ, key, value = `{"type":`, `,"key":`, `,"value":`
		if !hasAt(b, i, typ) {
			return nil, false
		}
		t, end, ok := plainString(b, i+len(typ))
		if !ok {
			return nil, false
		}
		op := WireOp{Type: session.OpType(t)}
		i = end
		if hasAt(b, i, key) {
			k, end, ok := plainString(b, i+len(key))
			if !ok {
				return nil, false
			}
			op.Key, i = string(k), end
		}
		if hasAt(b, i, value) {
			start := i + len(value)
			end := scanValue(b, start, 2) // inside [{
			if end < 0 {
				return nil, false
			}
			op.Value, i = b[start:end:end], end
		}
		if i >= len(b) || b[i] != '}' {
			return nil, false
		}
		ops = append(ops, op)
		i++
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		return ops, i+1 == len(b) && b[i] == ']'
	}
}

// hasAt reports whether b holds s at i.
func hasAt(b []byte, i int, s string) bool {
	return len(b)-i >= len(s) && string(b[i:i+len(s)]) == s
}

// fastClientMessage parses a client frame as json.Unmarshal into a
// ClientMessage does, for frames whose fields are spelled in lower case
// once each, whose strings are printable ASCII without escapes, whose
// numbers are plain unsigned integers and which hold no null; ok is false
// for anything else (the caller falls back to encoding/json). Unknown
// fields are skipped, as encoding/json skips them. Value and Data alias
// b.
func fastClientMessage(b []byte) (m ClientMessage, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return m, false
	}
	i = skipSpace(b, i+1)
	var seen uint8
	if i < len(b) && b[i] == '}' {
		return m, skipSpace(b, i+1) == len(b)
	}
	for {
		name, end, ok := plainString(b, i)
		if !ok {
			return m, false
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return m, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) || b[i] == 'n' { // null: encoding/json's rules per type
			return m, false
		}
		var bit uint8
		str := func(dst *string) {
			var s []byte
			s, i, ok = plainString(b, i)
			*dst = string(s)
		}
		switch string(name) {
		case "id":
			bit = 1
			m.ID, i, ok = plainUint(b, i)
		case "type":
			bit = 2
			var t []byte
			t, i, ok = plainString(b, i)
			m.Type = clientType(t)
		case "key":
			bit = 4
			str(&m.Key)
		case "name":
			bit = 8
			str(&m.Name)
		case "after":
			bit = 16
			var n uint64
			n, i, ok = plainUint(b, i)
			m.After = &n
		case "value", "data":
			bit = 32
			if name[0] == 'd' {
				bit = 64
			}
			start := i
			if i = scanValue(b, i, 1); i < 0 {
				return m, false
			}
			if bit == 32 {
				m.Value = b[start:i:i]
			} else {
				m.Data = b[start:i:i]
			}
		default:
			if foldsToField(name) {
				return m, false // encoding/json matches field names without case
			}
			if i = scanValue(b, i, 1); i < 0 {
				return m, false
			}
		}
		if !ok || i < 0 || seen&bit != 0 {
			return m, false
		}
		seen |= bit
		i = skipSpace(b, i)
		if i >= len(b) {
			return m, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return m, skipSpace(b, i+1) == len(b)
		default:
			return m, false
		}
	}
}

// foldsToField reports whether an unknown field name matches one of
// ClientMessage's without regard to case.
func foldsToField(name []byte) bool {
	for _, f := range [...]string{"id", "type", "key", "value", "name", "data", "after"} {
		if bytes.EqualFold(name, []byte(f)) {
			return true
		}
	}
	return false
}

// clientType is string(t) without an allocation for the client message
// types (a frame's type is one of them but for a bad frame).
func clientType(t []byte) string {
	switch string(t) {
	case TypeSet:
		return TypeSet
	case TypeDelete:
		return TypeDelete
	case TypeEvent:
		return TypeEvent
	case TypeResume:
		return TypeResume
	}
	return string(t)
}
