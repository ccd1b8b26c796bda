package loadtest

import (
	"strconv"
)

// appendValue appends the unique value of op n of socket w of session s:
// "x-s<s>-w<w>-n<n>", a private-use BCP 47 language tag, so that the demo
// server's client-writable "language" key accepts it.
func appendValue(b []byte, s, w, n int) []byte {
	b = append(b, "x-s"...)
	b = strconv.AppendInt(b, int64(s), 10)
	b = append(b, "-w"...)
	b = strconv.AppendInt(b, int64(w), 10)
	b = append(b, "-n"...)
	return strconv.AppendInt(b, int64(n), 10)
}

// opValue returns the value appendValue writes.
func opValue(s, w, n int) string { return string(appendValue(nil, s, w, n)) }

// parseValue reads a value appendValue wrote, quoted as JSON.
func parseValue(raw []byte) (s, w, n int, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return 0, 0, 0, false
	}
	b := raw[1 : len(raw)-1]
	num := func(prefix string) (int, bool) {
		if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
			return 0, false
		}
		b = b[len(prefix):]
		i, v := 0, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			v = v*10 + int(b[i]-'0')
			i++
		}
		if i == 0 {
			return 0, false
		}
		b = b[i:]
		return v, true
	}
	var ok1, ok2, ok3 bool
	s, ok1 = num("x-s")
	w, ok2 = num("-w")
	n, ok3 = num("-n")
	return s, w, n, ok1 && ok2 && ok3 && len(b) == 0
}
