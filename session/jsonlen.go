package session

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The cookie budget measures a session on every write. These functions
// give the length of the JSON encoding/json writes for the cookie's
// payload without writing it, and Store.Size folds ops into that measure
// without copying the session's values. A test and a fuzz target hold
// them to json.Marshal.

// quotedLen returns len(json.Marshal(s)).
func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			case c < ' ' || c == '<' || c == '>' || c == '&':
				n += 6 // \u00XX
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == '\u2028', r == '\u2029':
			n += 6 // \ufffd, \u2028, \u2029
		default:
			n += size
		}
		i += size
	}
	return n
}

// ValueLen returns the bytes a value takes in a cookie's JSON payload
// (compacted and escaped as encoding/json writes it): what a set of the
// value adds to or takes from a session's cookie, before its encoding.
func ValueLen(raw json.RawMessage) int { return rawLen(raw) }

// rawLen returns len(json.Marshal(raw)) for a valid JSON value: compacted,
// with <, >, &, U+2028 and U+2029 escaped in its strings; nil is null.
func rawLen(raw json.RawMessage) int {
	if len(raw) == 0 {
		return len("null")
	}
	n := len(raw)
	inString := false
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			inString = !inString
		case '\\':
			i++ // only inside a string in valid JSON: the escaped byte stays
		case ' ', '\t', '\n', '\r':
			if !inString {
				n-- // dropped by compacting
			}
		case '<', '>', '&':
			n += len(`\u003c`) - 1
		case 0xE2:
			if i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9) {
				n += len(`\u2028`) - 3
				i += 2
			}
		}
	}
	return n
}

// intLen returns the length of v in decimal.
func intLen(v int64) int {
	var buf [20]byte
	return len(strconv.AppendInt(buf[:0], v, 10))
}

// uintLen returns len(strconv.FormatUint(v, 10)) without the string.
func uintLen(v uint64) int {
	var buf [20]byte
	return len(strconv.AppendUint(buf[:0], v, 10))
}

// payloadLen returns len(json.Marshal(&p)) for p with values whose
// encoded map is valuesLen bytes long (0: no values).
func payloadLen(p *payload, valuesLen int) int {
	const field = len(`,"x":`)
	n := len(`{"i":`) + quotedLen(p.ID) + field + intLen(p.Issued) + len(`}`)
	if p.Seq != 0 {
		n += field + uintLen(p.Seq)
	}
	if valuesLen > 0 {
		n += field + valuesLen
	}
	if p.Permanent {
		n += field + len("true")
	}
	if p.Created != 0 {
		n += field + intLen(p.Created)
	}
	if p.Pinned {
		n += field + len("true")
	}
	return n
}

// valuesLen returns the length of values encoded as a JSON object, 0
// when there are none (the payload omits them).
func valuesLen(values map[string]json.RawMessage) int {
	if len(values) == 0 {
		return 0
	}
	n := 1 + len(values) // the braces and the commas between entries
	for k, v := range values {
		n += quotedLen(k) + 1 + rawLen(v)
	}
	return n
}
