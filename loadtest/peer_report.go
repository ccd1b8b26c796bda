package loadtest

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
)

// peerRow is one figure of the side-by-side table.
type peerRow struct {
	shape, figure string
	hub, peer     float64
	format        string
}

// rows returns the side-by-side table: each figure on both servers.
func (pre *PeerReport) rows() []peerRow {
	var out []peerRow
	for _, s := range pre.Shapes {
		add := func(figure string, hub, peer float64, format string) {
			out = append(out, peerRow{s.Name, figure, hub, peer, format})
		}
		add("writes answered/s", s.Hub.AckedPerSec, s.PeerRes.AckedPerSec, "%.0f")
		add("answer p50 (ms)", s.Hub.Ack.P50, s.PeerRes.Ack.P50, "%.3f")
		add("answer p99 (ms)", s.Hub.Ack.P99, s.PeerRes.Ack.P99, "%.3f")
		add("delivery p50 (ms)", s.Hub.Delivery.P50, s.PeerRes.Delivery.P50, "%.3f")
		add("delivery p99 (ms)", s.Hub.Delivery.P99, s.PeerRes.Delivery.P99, "%.3f")
		// With the nats-server embedded the hub's process is all of the
		// server: its profile tells the hub alone apart (CPUSplit).
		embedded := pre.embedded()
		hubProc, aloneRow := ", hub alone", "  of which hub alone"
		if embedded {
			hubProc, aloneRow = "", "  of which hub alone, by its profile"
		}
		hubAlone := s.Hub.alone("hub0", embedded)
		add("server CPU per write (µs)", s.Hub.ServerCPUPerOpUS, s.PeerRes.ServerCPUPerOpUS, "%.1f")
		if hubAlone > 0 {
			add(aloneRow, hubAlone, s.PeerRes.ServerCPUPerOpUS, "%.1f")
		}
		add("load generator CPU per write (µs)", cpuPerOp(s.Hub.CPU, "loadtest"), cpuPerOp(s.PeerRes.CPU, "loadtest"), "%.1f")
		add("frames read per write", s.Hub.framesPerWrite(), s.PeerRes.framesPerWrite(), "%.2f")
		hub, peer := procOf(s.Hub.CPU, "hub0"), procOf(s.PeerRes.CPU, pre.Peer)
		add("read/write system calls per write"+hubProc, hub.SyscallsPerOp, peer.SyscallsPerOp, "%.2f")
		add("context switches per write"+hubProc, hub.SwitchesPerOp, peer.SwitchesPerOp, "%.2f")
		if sub := s.PeerSubscribed; sub != nil {
			// The same deliveries per write on both sides: the peer's
			// writer gets its own publications, as the hub's its changes.
			add("peer's writer subscribed: writes answered/s", s.Hub.AckedPerSec, sub.AckedPerSec, "%.0f")
			add("  server CPU per write (µs)", s.Hub.ServerCPUPerOpUS, sub.ServerCPUPerOpUS, "%.1f")
			if hubAlone > 0 {
				add(aloneRow, hubAlone, sub.ServerCPUPerOpUS, "%.1f")
			}
			add("  frames read per write", s.Hub.framesPerWrite(), sub.framesPerWrite(), "%.2f")
		}
	}
	if pre.HubIdle != nil && pre.PeerIdle != nil {
		out = append(out,
			peerRow{"idle", "RSS per connection (KiB)", pre.HubIdle.RSSPerSocket / 1024, pre.PeerIdle.RSSPerSocket / 1024, "%.1f"},
			peerRow{"idle", "Go heap per connection (KiB)", pre.HubIdle.HeapPerSocket / 1024, pre.PeerIdle.HeapPerSocket / 1024, "%.1f"},
		)
	}
	return out
}

// floorRow is one figure of the floor table: the bare relay (relay.go)
// next to the hub and to the peer with its writers subscribed (the same
// deliveries per write as the relay's and the hub's).
type floorRow struct {
	shape, figure    string
	relay, hub, peer float64
	format           string
}

// peerAlike is the peer's run with the hub's deliveries per write: its
// writers subscribed where the shape ran so, else as it ran (the open
// loop and sequential, whose writers get nothing back but answers).
func (r *PeerRound) peerAlike() *ShapeResult {
	if r.PeerSubscribed != nil {
		return r.PeerSubscribed
	}
	return &r.PeerRes
}

// floorRows returns the floor table; nil without relay runs.
func (pre *PeerReport) floorRows() []floorRow {
	var out []floorRow
	for _, s := range pre.Shapes {
		rel, peer := s.Relay, s.peerAlike()
		if rel == nil {
			continue
		}
		add := func(figure string, relay, hub, peer float64, format string) {
			out = append(out, floorRow{s.Name, figure, relay, hub, peer, format})
		}
		add("writes answered/s", rel.AckedPerSec, s.Hub.AckedPerSec, peer.AckedPerSec, "%.0f")
		add("answer p50 (ms)", rel.Ack.P50, s.Hub.Ack.P50, peer.Ack.P50, "%.3f")
		add("delivery p50 (ms)", rel.Delivery.P50, s.Hub.Delivery.P50, peer.Delivery.P50, "%.3f")
		add("server CPU per write (µs), with nats-server", rel.ServerCPUPerOpUS, s.Hub.ServerCPUPerOpUS, peer.ServerCPUPerOpUS, "%.1f")
		switch relayAlone, hubAlone := rel.alone("relay", pre.embedded()), s.Hub.alone("hub0", pre.embedded()); {
		case !pre.embedded():
			add("  relay alone, hub alone", relayAlone, hubAlone, peer.ServerCPUPerOpUS, "%.1f")
		case relayAlone > 0 && hubAlone > 0: // told apart by their profiles
			add("  relay alone, hub alone, by their profiles", relayAlone, hubAlone, peer.ServerCPUPerOpUS, "%.1f")
		}
		relay, hub, p := procOf(rel.CPU, "relay"), procOf(s.Hub.CPU, "hub0"), procOf(peer.CPU, pre.Peer)
		add("  read/write system calls per write", relay.SyscallsPerOp, hub.SyscallsPerOp, p.SyscallsPerOp, "%.2f")
		add("  context switches per write", relay.SwitchesPerOp, hub.SwitchesPerOp, p.SwitchesPerOp, "%.2f")
		add("frames read per write", rel.framesPerWrite(), s.Hub.framesPerWrite(), peer.framesPerWrite(), "%.2f")
	}
	return out
}

func (r floorRow) cells() (relay, hub, peer, hubRatio, relayRatio string) {
	cell := func(v float64) string {
		if v < 0 {
			return "-"
		}
		return fmt.Sprintf(r.format, v)
	}
	ratio := func(a, b float64) string {
		if a > 0 && b > 0 {
			return fmt.Sprintf("%.2fx", a/b)
		}
		return "-"
	}
	return cell(r.relay), cell(r.hub), cell(r.peer), ratio(r.hub, r.relay), ratio(r.relay, r.peer)
}

// spreadRow is one ratio over the rounds of a shape (PeerConfig.Rounds):
// its median, lowest and highest.
type spreadRow struct {
	shape, figure string
	ratios        []float64 // per round, sorted; rounds without the figure left out
}

func (r spreadRow) median() float64 {
	n := len(r.ratios)
	if n%2 == 1 {
		return r.ratios[n/2]
	}
	return (r.ratios[n/2-1] + r.ratios[n/2]) / 2
}

// spreadOf is ratio over rounds, sorted, the rounds without the figure
// (no positive finite ratio) left out.
func spreadOf(rounds []PeerRound, ratio func(r PeerRound) float64) spreadRow {
	var row spreadRow
	for _, r := range rounds {
		if v := ratio(r); v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			row.ratios = append(row.ratios, v)
		}
	}
	sort.Float64s(row.ratios)
	return row
}

// spreadRows returns the ratios of every shape over its rounds; nil for
// a run of one round. jsP50 is the run's JetStream publish p50 (ms), a
// part of the sequential delivery's bar.
func (pre *PeerReport) spreadRows(jsP50 float64) []spreadRow {
	var out []spreadRow
	for _, s := range pre.Shapes {
		if len(s.Rounds) < 2 {
			continue
		}
		add := func(figure string, ratio func(r PeerRound) float64) {
			if row := spreadOf(s.Rounds, ratio); len(row.ratios) > 0 {
				row.shape, row.figure = s.Name, figure
				out = append(out, row)
			}
		}
		relayAlone := func(r PeerRound) float64 {
			if r.Relay == nil {
				return 0
			}
			return cpuPerOp(r.Relay.CPU, "relay")
		}
		add("writes answered/s, sessionhub / "+pre.Peer, func(r PeerRound) float64 { return r.Hub.AckedPerSec / r.PeerRes.AckedPerSec })
		add("server CPU per write, sessionhub (with nats-server) / "+pre.Peer, func(r PeerRound) float64 { return r.Hub.ServerCPUPerOpUS / r.PeerRes.ServerCPUPerOpUS })
		// With the nats-servers embedded, each process is its server:
		// "alone" is the same figure with nats-server, and the profiles'
		// shares tell the hub and the relay alone apart (CPUSplit).
		hub, rel := "hub alone", "relay alone"
		if emb := pre.embedded(); emb {
			hub, rel = "sessionhub", "relay"
			add("CPU per write, hub alone by its profile / "+pre.Peer, func(r PeerRound) float64 { return r.Hub.alone("hub0", emb) / r.PeerRes.ServerCPUPerOpUS })
			add("CPU per write, relay alone by its profile / "+pre.Peer+peerAs(s), func(r PeerRound) float64 {
				if r.Relay == nil {
					return 0
				}
				return r.Relay.alone("relay", emb) / r.peerAlike().ServerCPUPerOpUS
			})
		} else {
			add("CPU per write, hub alone / "+pre.Peer, func(r PeerRound) float64 { return cpuPerOp(r.Hub.CPU, "hub0") / r.PeerRes.ServerCPUPerOpUS })
		}
		if s.PeerSubscribed != nil {
			add("CPU per write, "+hub+" / "+pre.Peer+" with its writers subscribed", func(r PeerRound) float64 { return cpuPerOp(r.Hub.CPU, "hub0") / r.peerAlike().ServerCPUPerOpUS })
		}
		add("CPU per write, "+hub+" / "+rel, func(r PeerRound) float64 { return cpuPerOp(r.Hub.CPU, "hub0") / relayAlone(r) })
		add("CPU per write, "+rel+" / "+pre.Peer+peerAs(s), func(r PeerRound) float64 { return relayAlone(r) / r.peerAlike().ServerCPUPerOpUS })
		if s.Name == "sequential" && jsP50 > 0 {
			bar := func(r PeerRound) float64 { return r.PeerRes.Delivery.P50 + jsP50 }
			add("delivery p50, sessionhub / its bar", func(r PeerRound) float64 { return r.Hub.Delivery.P50 / bar(r) })
			add("delivery p50, relay / the bar", func(r PeerRound) float64 {
				if r.Relay == nil {
					return 0
				}
				return r.Relay.Delivery.P50 / bar(r)
			})
		}
		if s.Rate > 0 {
			add("answer p50, sessionhub / "+pre.Peer+"'s delivery p50", func(r PeerRound) float64 { return r.Hub.Ack.P50 / r.PeerRes.Delivery.P50 })
		}
	}
	return out
}

// hubServers says what served the hub's side.
func (pre *PeerReport) hubServers() string {
	if pre.embedded() {
		return "1 hub instance with its nats-server embedded, one process"
	}
	return "1 hub instance + a nats-server process"
}

// firstOf says, in a run of several rounds, that the tables show the
// first.
func (pre *PeerReport) firstOf() string {
	if len(pre.Shapes) == 0 || len(pre.Shapes[0].Rounds) < 2 {
		return ""
	}
	return fmt.Sprintf(" (the first of %d rounds; every round's ratios after the tables)", len(pre.Shapes[0].Rounds))
}

// jsPublishP50 is the run's JetStream publish p50 (ms), 0 without
// baselines.
func (r *Report) jsPublishP50() float64 {
	if r.Baselines == nil {
		return 0
	}
	return r.Baselines.JSPublish.P50
}

// peerAs names the peer's run the relay is held to: with its writers
// subscribed where the shape ran so.
func peerAs(s PeerShape) string {
	if s.PeerSubscribed != nil {
		return " with its writers subscribed"
	}
	return ""
}

// floorTitle heads the floor table.
const floorTitle = "floor: the bare relay (coder/websocket + nats.go, each write staged in a nats-server run as the hub's, no sessions, cookies, limits or slow-client guard) vs sessionhub and %s with its writers subscribed"

// framesPerWrite is how many frames the load generator read per write
// answered, on the writer's and the reader's connection together.
func (s *ShapeResult) framesPerWrite() float64 {
	if s.Acked == 0 {
		return 0
	}
	return float64(s.Frames) / float64(s.Acked)
}

func (r peerRow) cells() (hub, peer, ratio string) {
	hub, peer, ratio = fmt.Sprintf(r.format, r.hub), fmt.Sprintf(r.format, r.peer), "-"
	if r.hub < 0 {
		hub = "-" // unknown
	}
	if r.peer < 0 {
		peer = "-"
	}
	if r.peer > 0 && r.hub > 0 {
		ratio = fmt.Sprintf("%.2fx", r.hub/r.peer)
	}
	return hub, peer, ratio
}

// writeShapeTable writes a table of rows whose first cell is a shape,
// aligned, each shape named on its first row only.
func writeShapeTable(sb *strings.Builder, header []string, rows [][]string) {
	t := tabwriter.NewWriter(sb, 2, 8, 2, ' ', 0)
	fmt.Fprintf(t, "  %s\t\n", strings.Join(header, "\t"))
	last := ""
	for _, row := range rows {
		shape := row[0]
		if shape == last {
			row[0] = ""
		}
		last = shape
		fmt.Fprintf(t, "  %s\t\n", strings.Join(row, "\t"))
	}
	t.Flush()
}

// writePeerText writes the side-by-side table of a -peer run.
func (r *Report) writePeerText(sb *strings.Builder) {
	pre := r.Peer
	if pre == nil {
		return
	}
	fmt.Fprintf(sb, "\nside by side: sessionhub (%s, %s durability) vs %s %s (memory engine); ratio = sessionhub / %s%s\n",
		pre.hubServers(), r.Setup.Durability, pre.Peer, pre.Version, pre.Peer, pre.firstOf())
	var cells [][]string
	for _, row := range pre.rows() {
		h, p, ratio := row.cells()
		cells = append(cells, []string{row.shape, row.figure, h, p, ratio})
	}
	writeShapeTable(sb, []string{"shape", "figure", "sessionhub", pre.Peer, "ratio"}, cells)
	for _, s := range pre.Shapes {
		fmt.Fprintf(sb, "  %s (%d pairs): sessionhub %d sent, %d acknowledged, %d failed %s, %d skipped, %d delivered (%d of them folded into a snapshot change), %d undelivered, %d out of order; CPU %s\n",
			s.Name, s.Pairs, s.Hub.Sent, s.Hub.Acked, s.Hub.Failed, errorList(s.Hub.Errors), s.Hub.Skipped, s.Hub.Delivered+s.Hub.Folded, s.Hub.Folded, s.Hub.Undelivered, s.Hub.OutOfOrder, cpuText(s.Hub.CPU))
		fmt.Fprintf(sb, "  %s (%d pairs): %s %d sent, %d answered, %d failed %s, %d skipped, %d delivered, %d undelivered, %d out of order; CPU %s\n",
			s.Name, s.Pairs, pre.Peer, s.PeerRes.Sent, s.PeerRes.Acked, s.PeerRes.Failed, errorList(s.PeerRes.Errors), s.PeerRes.Skipped, s.PeerRes.Delivered, s.PeerRes.Undelivered, s.PeerRes.OutOfOrder, cpuText(s.PeerRes.CPU))
		if sub := s.PeerSubscribed; sub != nil {
			fmt.Fprintf(sb, "  %s (%d pairs): %s, writer subscribed, %d sent, %d answered, %d failed %s, %d skipped, %d delivered, %d undelivered, %d out of order; CPU %s\n",
				s.Name, s.Pairs, pre.Peer, sub.Sent, sub.Acked, sub.Failed, errorList(sub.Errors), sub.Skipped, sub.Delivered, sub.Undelivered, sub.OutOfOrder, cpuText(sub.CPU))
		}
	}
	if rows := pre.floorRows(); len(rows) > 0 {
		fmt.Fprintf(sb, "\n"+floorTitle+"\n", pre.Peer)
		var cells [][]string
		for _, row := range rows {
			rel, h, p, hr, rr := row.cells()
			cells = append(cells, []string{row.shape, row.figure, rel, h, p, hr, rr})
		}
		writeShapeTable(sb, []string{"shape", "figure", "relay", "sessionhub", pre.Peer, "sessionhub / relay", "relay / " + pre.Peer}, cells)
		for _, s := range pre.Shapes {
			if rel := s.Relay; rel != nil {
				fmt.Fprintf(sb, "  %s (%d pairs): relay %d sent, %d answered, %d failed %s, %d delivered, %d undelivered, %d out of order; CPU %s\n",
					s.Name, s.Pairs, rel.Sent, rel.Acked, rel.Failed, errorList(rel.Errors), rel.Delivered, rel.Undelivered, rel.OutOfOrder, cpuText(rel.CPU))
			}
		}
	}
	if rows := pre.spreadRows(r.jsPublishP50()); len(rows) > 0 {
		fmt.Fprintf(sb, "\nratios over the rounds (each shape run on every server in turn, %d times): median, lowest, highest\n", len(pre.Shapes[0].Rounds))
		var cells [][]string
		for _, row := range rows {
			cells = append(cells, []string{row.shape, row.figure,
				fmt.Sprintf("%.2fx", row.median()), fmt.Sprintf("%.2fx", row.ratios[0]), fmt.Sprintf("%.2fx", row.ratios[len(row.ratios)-1])})
		}
		writeShapeTable(sb, []string{"shape", "ratio", "median", "lowest", "highest"}, cells)
	}
	for _, m := range []*Memory{pre.HubIdle, pre.PeerIdle} {
		if m != nil {
			fmt.Fprintf(sb, "  idle on %s: %d held of %d (%d failed); RSS %s -> %s; per connection %.1f KiB RSS, %.1f KiB Go heap\n",
				m.Instance, m.Held, m.Asked, m.Failed, mib(m.RSSBefore), mib(m.RSSAfter), m.RSSPerSocket/1024, m.HeapPerSocket/1024)
		}
	}
}

// peerHTML is the side-by-side table as HTML; "" outside a -peer run.
func (r *Report) peerHTML() string {
	pre := r.Peer
	if pre == nil {
		return ""
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "<h2>Side by side with %s %s</h2>\n<p>sessionhub: %s</p>\n<table border=1 cellpadding=4 style=\"border-collapse:collapse\">\n",
		html.EscapeString(pre.Peer), html.EscapeString(pre.Version), html.EscapeString(pre.hubServers()))
	fmt.Fprintf(&sb, "<tr><th>shape</th><th>figure</th><th>sessionhub</th><th>%s</th><th>ratio</th></tr>\n", html.EscapeString(pre.Peer))
	for _, row := range pre.rows() {
		h, p, ratio := row.cells()
		fmt.Fprintf(&sb, "<tr><td>%s</td><td>%s</td><td align=right>%s</td><td align=right>%s</td><td align=right>%s</td></tr>\n",
			html.EscapeString(row.shape), html.EscapeString(row.figure), h, p, ratio)
	}
	sb.WriteString("</table>\n")
	if rows := pre.floorRows(); len(rows) > 0 {
		fmt.Fprintf(&sb, "<p>"+floorTitle+"</p>\n<table border=1 cellpadding=4 style=\"border-collapse:collapse\">\n", html.EscapeString(pre.Peer))
		fmt.Fprintf(&sb, "<tr><th>shape</th><th>figure</th><th>relay</th><th>sessionhub</th><th>%[1]s</th><th>sessionhub / relay</th><th>relay / %[1]s</th></tr>\n", html.EscapeString(pre.Peer))
		for _, row := range rows {
			rel, h, p, hr, rr := row.cells()
			fmt.Fprintf(&sb, "<tr><td>%s</td><td>%s</td><td align=right>%s</td><td align=right>%s</td><td align=right>%s</td><td align=right>%s</td><td align=right>%s</td></tr>\n",
				html.EscapeString(row.shape), html.EscapeString(row.figure), rel, h, p, hr, rr)
		}
		sb.WriteString("</table>\n")
	}
	if rows := pre.spreadRows(r.jsPublishP50()); len(rows) > 0 {
		fmt.Fprintf(&sb, "<p>ratios over the rounds (each shape run on every server in turn, %d times)</p>\n<table border=1 cellpadding=4 style=\"border-collapse:collapse\">\n", len(pre.Shapes[0].Rounds))
		sb.WriteString("<tr><th>shape</th><th>ratio</th><th>median</th><th>lowest</th><th>highest</th></tr>\n")
		for _, row := range rows {
			fmt.Fprintf(&sb, "<tr><td>%s</td><td>%s</td><td align=right>%.2fx</td><td align=right>%.2fx</td><td align=right>%.2fx</td></tr>\n",
				html.EscapeString(row.shape), html.EscapeString(row.figure), row.median(), row.ratios[0], row.ratios[len(row.ratios)-1])
		}
		sb.WriteString("</table>\n")
	}
	return sb.String()
}
