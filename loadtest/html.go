package loadtest

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// WriteHTML writes a self-contained HTML page: the latency percentile
// distributions and the per-second ack latency, as inline SVG, and the
// text report.
func (r *Report) WriteHTML(w io.Writer) error {
	var sb strings.Builder
	sb.WriteString(`<!doctype html><html><head><meta charset="utf-8"><title>sessionhub loadtest</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1000px}svg{background:#fff;border:1px solid #ddd}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}.legend span{margin-right:1.5em}</style></head><body>
<h1>sessionhub loadtest</h1>`)
	fmt.Fprintf(&sb, "<p>%s &middot; %d CPUs &middot; %s durability &middot; lost: <b>%d</b></p>\n",
		html.EscapeString(r.Started.Format("2006-01-02 15:04:05 MST")), r.Machine.CPUs, html.EscapeString(r.Setup.Durability), r.Verdict.LostCount)

	type series struct {
		name, color string
		lat         Latency
	}
	var all []series
	if b := r.Baselines; b != nil {
		all = append(all,
			series{"baseline: WS echo", "#999999", b.WSEcho},
			series{"baseline: JetStream publish", "#666666", b.JSPublish},
		)
	}
	all = append(all,
		series{"ack", "#1f77b4", r.Load.Ack},
		series{"delivery, same instance", "#2ca02c", r.Load.DeliverySame},
		series{"delivery, across instances", "#d62728", r.Load.DeliveryCross},
		series{"flush, during load", "#9467bd", r.Load.Flush},
	)
	var curves []plotSeries
	for _, s := range all {
		if s.lat.Count == 0 {
			continue
		}
		ps := plotSeries{name: s.name, color: s.color}
		for _, c := range s.lat.Curve {
			ps.pts = append(ps.pts, [2]float64{percentileX(c.Percentile), c.Ms})
		}
		curves = append(curves, ps)
	}
	sb.WriteString(r.peerHTML())
	sb.WriteString("<h2>Latency by percentile</h2>\n")
	sb.WriteString(svgPlot(curves, plotOpts{xLabel: "percentile", xTicks: percentileTicks(), logY: true, yLabel: "ms"}))

	if len(r.Timeline) > 0 {
		var p50, p99 plotSeries
		p50 = plotSeries{name: "ack p50", color: "#1f77b4"}
		p99 = plotSeries{name: "ack p99", color: "#ff7f0e"}
		for _, s := range r.Timeline {
			if s.Acked == 0 {
				continue
			}
			p50.pts = append(p50.pts, [2]float64{float64(s.T) + 0.5, s.P50})
			p99.pts = append(p99.pts, [2]float64{float64(s.T) + 0.5, s.P99})
		}
		var marks []mark
		for _, e := range r.Events {
			marks = append(marks, mark{x: e.At, label: e.What})
		}
		var ticks []tick
		step := niceStep(float64(len(r.Timeline)) / 10)
		for t := 0.0; t <= float64(len(r.Timeline)); t += step {
			ticks = append(ticks, tick{t, fmt.Sprintf("%gs", t)})
		}
		sb.WriteString("<h2>Ack latency per second of the load</h2>\n")
		sb.WriteString(svgPlot([]plotSeries{p50, p99}, plotOpts{xLabel: "seconds", xTicks: ticks, logY: true, yLabel: "ms", marks: marks}))
	}

	sb.WriteString("<h2>Report</h2>\n<pre>")
	var text strings.Builder
	_ = r.WriteText(&text)
	sb.WriteString(html.EscapeString(text.String()))
	sb.WriteString("</pre></body></html>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

type plotSeries struct {
	name, color string
	pts         [][2]float64 // x, y
}

type tick struct {
	x     float64
	label string
}

type mark struct {
	x     float64
	label string
}

type plotOpts struct {
	xLabel, yLabel string
	xTicks         []tick
	logY           bool
	marks          []mark
}

// percentileX maps a percentile to the x of an HDR plot: log10 of
// 1/(1-p), so that 90, 99, 99.9 are evenly spaced.
func percentileX(p float64) float64 {
	if p >= 100 {
		p = 99.9999
	}
	return math.Log10(100 / (100 - p))
}

func percentileTicks() []tick {
	var out []tick
	for _, p := range []float64{0, 90, 99, 99.9, 99.99, 99.999, 99.9999} {
		out = append(out, tick{percentileX(p), fmt.Sprintf("%g", p)})
	}
	return out
}

func niceStep(raw float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600} {
		if s >= raw {
			return s
		}
	}
	return 1200
}

// svgPlot draws lines on a linear x and a (log) y axis.
func svgPlot(series []plotSeries, o plotOpts) string {
	const W, H, left, right, top, bottom = 900, 380, 60, 40, 20, 50
	if len(series) == 0 {
		return "<p>no data</p>\n"
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, p := range s.pts {
			xmin, xmax = min(xmin, p[0]), max(xmax, p[0])
			if p[1] > 0 {
				ymin, ymax = min(ymin, p[1]), max(ymax, p[1])
			}
		}
	}
	for _, t := range o.xTicks {
		xmin = min(xmin, t.x)
	}
	if math.IsInf(xmin, 0) || math.IsInf(ymin, 0) {
		return "<p>no data</p>\n"
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	fy := func(v float64) float64 { return v }
	if o.logY {
		ymin = math.Pow(10, math.Floor(math.Log10(ymin)))
		ymax = math.Pow(10, math.Ceil(math.Log10(ymax)))
		fy = func(v float64) float64 { return math.Log10(max(v, ymin)) }
	} else {
		ymin = 0
	}
	if fy(ymax) <= fy(ymin) {
		ymax = ymin * 10
	}
	px := func(x float64) float64 { return left + (x-xmin)/(xmax-xmin)*(W-left-right) }
	py := func(y float64) float64 { return H - bottom - (fy(y)-fy(ymin))/(fy(ymax)-fy(ymin))*(H-top-bottom) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-size="11">`+"\n", W, H, W, H)
	// y grid: decades
	if o.logY {
		for y := ymin; y <= ymax*1.0001; y *= 10 {
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n",
				left, W-right, py(y), py(y), left-5, py(y)+4, y)
		}
	}
	for _, t := range o.xTicks {
		if t.x < xmin || t.x > xmax+1e-9 {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#eee"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
			px(t.x), px(t.x), top, H-bottom, px(t.x), H-bottom+15, html.EscapeString(t.label))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (W+left)/2, H-15, html.EscapeString(o.xLabel))
	fmt.Fprintf(&b, `<text x="15" y="%d" transform="rotate(-90 15 %d)" text-anchor="middle">%s</text>`+"\n", H/2, H/2, html.EscapeString(o.yLabel))
	for _, m := range o.marks {
		if m.x < xmin || m.x > xmax {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#000" stroke-dasharray="4 3"><title>%s</title></line>`+"\n",
			px(m.x), px(m.x), top, H-bottom, html.EscapeString(m.label))
	}
	for i, s := range series {
		if len(s.pts) == 0 {
			continue
		}
		var path strings.Builder
		for j, p := range s.pts {
			cmd := "L"
			if j == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, px(p[0]), py(p[1]))
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"><title>%s</title></path>`+"\n", strings.TrimSpace(path.String()), s.color, html.EscapeString(s.name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			left+10, top+8+i*15, s.color, left+27, top+13+i*15, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
