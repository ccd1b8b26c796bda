package protocol

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The server messages of the hot path (ack, error, change) and log
// entries are encoded by
// appenders instead of encoding/json's reflection: byte for byte what
// Marshal gives for the same message (append_test.go checks it, and
// benchmarks both).

// AppendAck appends {"type":"ack","id":id,"seq":seq[,"data":data]}.
func AppendAck(b []byte, id, seq uint64, data json.RawMessage) []byte {
	if b == nil {
		b = make([]byte, 0, 56+len(data))
	}
	b = append(b, `{"type":"ack","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = appendCompact(b, data)
	}
	return append(b, '}')
}

// AppendError appends {"type":"error","id":id,"code":code,"message":msg}.
func AppendError(b []byte, id uint64, code Code, msg string) []byte {
	if b == nil {
		b = make([]byte, 0, 72+len(code)+len(msg))
	}
	b = append(b, `{"type":"error","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"code":`...)
	b = AppendString(b, string(code))
	b = append(b, `,"message":`...)
	b = AppendString(b, msg)
	return append(b, '}')
}

// AppendChange appends a change message: one log entry as the browser
// sees it.
func AppendChange(b []byte, seq uint64, ops []WireOp, source string) []byte {
	if b == nil {
		// {"type":"change","seq":,"ops":,"source":} and the widest seq.
		b = make([]byte, 0, 43+20+len(source)+opsLen(ops))
	}
	b = append(b, `{"type":"change","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"ops":`...)
	b = AppendOps(b, ops)
	b = append(b, `,"source":`...)
	b = AppendString(b, source)
	return append(b, '}')
}

// AppendOps appends ops as a JSON array (null for nil): a change
// message's ops, and a log entry's payload.
func AppendOps(b []byte, ops []WireOp) []byte {
	if ops == nil {
		return append(b, "null"...)
	}
	if b == nil {
		b = make([]byte, 0, opsLen(ops))
	}
	b = append(b, '[')
	for i, op := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":`...)
		b = AppendString(b, string(op.Type))
		if op.Key != "" {
			b = append(b, `,"key":`...)
			b = AppendString(b, op.Key)
		}
		if len(op.Value) > 0 {
			b = append(b, `,"value":`...)
			b = appendCompact(b, op.Value)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// opsLen is what AppendOps takes for ops, unless a value or a string
// needs escaping.
func opsLen(ops []WireOp) int {
	n := 2
	for _, op := range ops {
		n += 36 + len(op.Type) + len(op.Key) + len(op.Value)
	}
	return n
}

// appendCompact appends raw JSON as encoding/json embeds a RawMessage:
// compacted, with <, >, &, U+2028 and U+2029 escaped. Values reach the
// hub validated and compacted, so the fast path is a copy when there is
// nothing to escape.
func appendCompact(b []byte, raw json.RawMessage) []byte {
	if space, escape := rawShape(raw); !space && !escape {
		return append(b, raw...)
	}
	out, err := json.Marshal(raw) // the rare value with HTML characters, or not compacted
	if err != nil {
		panic("protocol: encoding a server message: " + err.Error())
	}
	return append(b, out...)
}

// rawShape reports, for a valid JSON value, whether it holds whitespace
// outside its strings (compacting drops it) and whether it holds a byte
// encoding/json escapes when it embeds the value (<, >, &, U+2028,
// U+2029). Spaces and other UTF-8 inside strings are kept as they are.
func rawShape(raw []byte) (space, escape bool) {
	inString := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '"':
			inString = !inString
		case '\\':
			i++ // inside a string: the escaped byte stays
		case ' ', '\t', '\n', '\r':
			space = space || !inString
		case '<', '>', '&':
			escape = true
		case 0xE2:
			if i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9) {
				escape = true
			}
		}
	}
	return space, escape
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string the way encoding/json writes
// it: HTML characters, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
