package hub_test

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/internal/server"
	"github.com/sessionhub/sessionhub/session"
)

// limitRow is one row of docs/PROTOCOL.md's table of limits: its first
// cell, and the quantities its default cell states, in order.
type limitRow struct {
	limit  string
	stated []string
	cell   string
}

// protocolLimits returns the rows of docs/PROTOCOL.md's table of limits
// (section "Keepalive and limits"), keyed by the first `name` of a row's
// first cell (a flag or an Options field), or by the whole cell when it
// names none; and the section's prose around the table.
func protocolLimits(t *testing.T) (map[string]limitRow, string) {
	t.Helper()
	s := docFrom(t, "../docs/PROTOCOL.md", "### Keepalive and limits")
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	name := regexp.MustCompile("`([^`]+)`")
	rows := map[string]limitRow{}
	var prose []string
	for line := range strings.SplitSeq(s, "\n") {
		if !strings.HasPrefix(line, "|") {
			prose = append(prose, line)
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 {
			t.Fatalf("docs/PROTOCOL.md's limits table has a row of %d cells: %q", len(cells), line)
		}
		limit, def := strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1])
		if limit == "limit" || strings.HasPrefix(limit, "---") {
			continue // the header
		}
		key := limit
		if m := name.FindStringSubmatch(limit); m != nil {
			key = m[1]
		}
		if _, dup := rows[key]; dup {
			t.Fatalf("docs/PROTOCOL.md's limits table has two rows for %s", key)
		}
		rows[key] = limitRow{limit: limit, stated: quantities(def), cell: def}
	}
	if len(rows) == 0 {
		t.Fatal("docs/PROTOCOL.md's limits section has no table")
	}
	return rows, strings.Join(prose, " ")
}

var quantity = regexp.MustCompile(`(\d[\d,]*(?:\.\d+)?)(?:\s*(KiB|MiB|bytes|/s|days|min|h|s)\b)?`)

// quantities returns every number that s states, in order, each in the
// form the code's value is compared in: a count or a size in bytes as a
// plain number ("32 KiB" is 32768, "10,000" is 10000, "50/s" is 50), a
// duration as time.Duration prints it ("10 s" is 10s, "31 days" is
// 744h0m0s). A cell that starts with "none" states 0 first.
func quantities(s string) []string {
	var out []string
	if strings.HasPrefix(s, "none") {
		out = append(out, "0")
	}
	for _, m := range quantity.FindAllStringSubmatch(s, -1) {
		v, err := strconv.ParseFloat(strings.ReplaceAll(m[1], ",", ""), 64)
		if err != nil {
			panic(err) // the pattern matched a number
		}
		switch m[2] {
		case "KiB":
			v *= 1 << 10
		case "MiB":
			v *= 1 << 20
		case "days":
			out = append(out, dur(time.Duration(v*float64(24*time.Hour))))
			continue
		case "h":
			out = append(out, dur(time.Duration(v*float64(time.Hour))))
			continue
		case "min":
			out = append(out, dur(time.Duration(v*float64(time.Minute))))
			continue
		case "s":
			out = append(out, dur(time.Duration(v*float64(time.Second))))
			continue
		}
		out = append(out, qty(v))
	}
	return out
}

func qty[T int | int64 | float64](v T) string { return strconv.FormatFloat(float64(v), 'f', -1, 64) }
func dur(d time.Duration) string              { return d.String() }

// docs/PROTOCOL.md's table of limits states each limit's default: the one
// the hub fills into an Options left zero (what an embedder gets) and, for
// a limit the server has a flag for, that flag's default too. A default
// changed in the code and not in the table fails here, and so does a row
// added to the table without a check, or a check whose row is gone.
func TestProtocolDocStatesTheLimitsDefaults(t *testing.T) {
	t.Parallel()
	store, err := session.NewStore(&session.Options{Keys: []session.KeyPair{testKey}})
	if err != nil {
		t.Fatal(err)
	}
	// New fills the defaults in before it connects: any connection will do.
	o, err := hub.ResolvedOptions(&hub.Options{Store: store, Conn: new(nats.Conn)})
	if err != nil {
		t.Fatal(err)
	}
	// The revocation's "+ clock skew + 1 min": the minute is what is left
	// of the TTL of a store with a skew once the lifetime and skew are off.
	const skew = 7 * time.Second
	skewed, err := session.NewStore(&session.Options{Keys: []session.KeyPair{testKey}, ClockSkew: skew})
	if err != nil {
		t.Fatal(err)
	}
	extra := hub.RevocationTTL(&hub.Options{Store: skewed}) - skewed.Options().Lifetime - skew

	cfg := server.DefaultConfig()
	flag := map[string]string{}
	for _, f := range server.Flags() {
		flag[f.Name] = f.Default
	}
	def := func(name string) string {
		t.Helper()
		v, ok := flag[name]
		if !ok {
			t.Fatalf("the server has no flag -%s", name)
		}
		return v
	}
	// What the hub makes of the server's defaults for the log's length.
	srv, err := hub.ResolvedOptions(&hub.Options{Store: store, Conn: new(nats.Conn), MaxOpsPerSession: cfg.MaxOpsPerSession, SnapshotEvery: cfg.SnapshotEvery})
	if err != nil {
		t.Fatal(err)
	}

	// For each row: the quantities the hub's defaults give, and the
	// server's (nil: the limit has no flag).
	checks := map[string]struct{ hub, server []string }{
		"-read-limit":                   {[]string{qty(o.ReadLimit)}, []string{def("read-limit")}},
		"-rate-limit":                   {[]string{qty(o.RateLimit), qty(o.RateBurst)}, []string{def("rate-limit"), def("rate-burst")}},
		"-session-write-rate":           {[]string{qty(o.SessionWriteRate), qty(o.SessionWriteBurst)}, []string{def("session-write-rate"), def("session-write-burst")}},
		"-max-ops-per-session":          {[]string{qty(o.MaxOpsPerSession), qty(o.SnapshotEvery)}, []string{def("max-ops-per-session"), qty(srv.SnapshotEvery)}},
		"MaxEntrySize":                  {[]string{qty(o.MaxEntrySize)}, nil},
		"cookie size of browser writes": {[]string{qty(session.MaxCookieSize)}, nil},
		"-send-buffer":                  {[]string{qty(o.SendBuffer)}, []string{def("send-buffer")}},
		"-send-buffer-bytes":            {[]string{qty(o.SendBufferBytes)}, []string{def("send-buffer-bytes")}},
		"WriteWait":                     {[]string{dur(o.WriteWait), qty(o.SocketKernelBuffer)}, nil},
		"-max-sockets-per-session":      {[]string{qty(o.MaxSocketsPerSession)}, []string{def("max-sockets-per-session")}},
		"-max-sockets-per-addr":         {[]string{qty(o.MaxSocketsPerAddr)}, []string{def("max-sockets-per-addr")}},
		// The server's own: the hub does not read HTTP requests.
		"-read-timeout":    {nil, []string{def("read-timeout"), dur(server.MaxReadHeaderTimeout)}},
		"SnapshotEvery":    {[]string{qty(o.SnapshotEvery)}, []string{qty(srv.SnapshotEvery)}},
		"-retention":       {[]string{dur(o.Retention)}, []string{def("retention")}},
		"RevocationBucket": {[]string{dur(store.Options().Lifetime), dur(extra)}, []string{def("lifetime"), dur(extra)}},
		// Behaviour, not a quantity (lazy_test.go proves it).
		"state of a socket whose session was never written": {nil, nil},
	}
	rows, prose := protocolLimits(t)
	for key, c := range checks {
		row, ok := rows[key]
		if !ok {
			t.Errorf("docs/PROTOCOL.md's limits table has no row for %s", key)
			continue
		}
		delete(rows, key)
		if c.hub != nil && !slices.Equal(row.stated, c.hub) {
			t.Errorf("docs/PROTOCOL.md: %s defaults to %q (%v); the hub's defaults are %v", row.limit, row.cell, row.stated, c.hub)
		}
		if c.server != nil && !slices.Equal(row.stated, c.server) {
			t.Errorf("docs/PROTOCOL.md: %s defaults to %q (%v); the server's defaults are %v", row.limit, row.cell, row.stated, c.server)
		}
	}
	for _, row := range rows {
		t.Errorf("docs/PROTOCOL.md's limits table has a row this test does not check: %s", row.limit)
	}

	// The prose around the table states the keepalive and the slow client's
	// bounds again.
	for _, p := range []struct {
		what    string
		pattern string
		want    []string
	}{
		{"the keepalive", `pings every ([^.]+?) and closes with 4201 when no pong arrives in\s+([^.]+?)\.`, []string{dur(o.PingInterval), dur(o.PingTimeout)}},
		{"a slow client", `sent nothing more once\s+(\S+)\s+messages or (\S+ \S+) wait for it, and closed with 4200 within (\S+ s) `, []string{qty(o.SendBuffer), qty(o.SendBufferBytes), dur(o.WriteWait)}},
	} {
		m := regexp.MustCompile(p.pattern).FindStringSubmatch(prose)
		if m == nil {
			t.Errorf("docs/PROTOCOL.md's limits section no longer states %s as %s", p.what, p.pattern)
			continue
		}
		var stated []string
		for _, g := range m[1:] {
			stated = append(stated, quantities(g)...)
		}
		if !slices.Equal(stated, p.want) {
			t.Errorf("docs/PROTOCOL.md states %s as %v; the hub's defaults are %v", p.what, stated, p.want)
		}
	}
}
