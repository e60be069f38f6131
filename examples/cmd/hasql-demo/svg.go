package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Chart geometry (pixels).
const (
	chartW = 900
	chartH = 418

	plotL = 78  // left edge of the plot area (y labels to the left)
	plotR = 880 // right edge
	tpTop = 86  // throughput panel
	tpBot = 296

	errLabelY = 312 // caption of the error strip
	laneH     = 24  // one error lane
	rawLaneY  = 318
	hasqlLane = 348
	stripBot  = hasqlLane + laneH

	xLabelY = 390
	xTitleY = 408
)

const (
	colorRaw   = "#e8710a"
	colorHasql = "#1a73e8"
	colorGrid  = "#e6e6e6"
	colorAxis  = "#888888"
	colorText  = "#222222"
	colorMuted = "#666666"
)

// renderSVG draws the run as a hand-written SVG: throughput per bucket for
// both sides, the errors each returned to the application per bucket, and the
// restarts.
func renderSVG(r *failoverResult) []byte {
	var b strings.Builder
	n := len(r.Raw.OKPerBucket)
	span := time.Duration(n) * r.Bucket // the x domain: whole buckets
	if span <= 0 {
		span = r.Duration
	}
	xOf := func(t time.Duration) float64 {
		t = min(max(t, 0), span)
		return plotL + float64(plotR-plotL)*t.Seconds()/span.Seconds()
	}
	perSec := 1 / r.Bucket.Seconds()
	maxRate := 0.0
	maxErr := 0
	for _, s := range []*sideStats{&r.Raw, &r.Hasql} {
		for i := range s.OKPerBucket {
			maxRate = max(maxRate, float64(s.OKPerBucket[i])*perSec)
			maxErr = max(maxErr, s.ErrPerBucket[i])
		}
	}
	yMax, yStep := niceScale(maxRate * 1.08)
	yOf := func(v float64) float64 { return tpBot - float64(tpBot-tpTop)*v/yMax }

	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, 'DejaVu Sans', sans-serif" font-size="11" fill="%s">
`, chartW, chartH, chartW, chartH, colorText)
	title := "hasql vs raw pgx while PostgreSQL restarts"
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(title))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartW, chartH)

	// Title, totals and legend.
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="17" font-weight="bold">%s</text>`+"\n", plotL-60, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="44" font-size="13"><tspan font-weight="bold">errors returned to the application:</tspan> <tspan fill="%s" font-weight="bold">raw pgx %s</tspan> · <tspan fill="%s" font-weight="bold">hasql %s</tspan></text>`+"\n",
		plotL-60, colorRaw, comma(r.Raw.Errors), colorHasql, comma(r.Hasql.Errors))
	fmt.Fprintf(&b, `<text x="%d" y="61" font-size="11.5" fill="%s">%s</text>`+"\n", plotL-60, colorMuted, esc(fmt.Sprintf(
		"%d workers per side for %.0f s · ops: raw %s (%.2f%% errors), hasql %s (%.2f%%) · longest stall: raw %.2f s, hasql %.2f s",
		r.Workers, r.Duration.Seconds(), comma(r.Raw.Ops), 100*r.Raw.ErrorRate(), comma(r.Hasql.Ops), 100*r.Hasql.ErrorRate(),
		r.Raw.MaxGap.Seconds(), r.Hasql.MaxGap.Seconds())))
	legend := func(y int, color, label string) {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`, plotR-215, y-4, plotR-193, y-4, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12">%s</text>`+"\n", plotR-187, y, esc(label))
	}
	legend(22, colorRaw, `raw pgx: sql.Open("pgx", dsn)`)
	legend(40, colorHasql, "hasql: retry=idempotent")

	// Grid and axes of the throughput panel.
	for v := 0.0; v <= yMax+yStep/2; v += yStep {
		y := yOf(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`, plotL, y, plotR, y, colorGrid)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", plotL-6, y+4, colorMuted, comma(int64(math.Round(v))))
	}
	xStep := niceSeconds(span)
	for t := time.Duration(0); t <= span; t += xStep {
		x := xOf(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`, x, tpTop, x, tpBot, colorGrid)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`, x, stripBot, x, stripBot+4, colorAxis)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n", x, xLabelY, colorMuted, strconv.FormatFloat(t.Seconds(), 'f', -1, 64))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">seconds since the load started</text>`+"\n", (plotL+plotR)/2, xTitleY, colorMuted)
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle" fill="%s">successful ops/s (per %s bucket)</text>`+"\n", (tpTop+tpBot)/2, colorMuted, ms(r.Bucket))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`+"\n", plotL, tpBot, plotR, tpBot, colorAxis)

	// Restarts: a band for the time pg_ctl took, a dashed line where it began.
	for _, m := range r.Restarts {
		x0, x1 := xOf(m.At), xOf(m.At+m.Took)
		// Across the throughput panel and the error lanes, not the caption between them.
		for _, seg := range [][2]int{{tpTop, tpBot}, {rawLaneY, stripBot}} {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#000000" fill-opacity="0.07"/>`, x0, seg[0], max(x1-x0, 1), seg[1]-seg[0])
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555555" stroke-dasharray="4 3"/>`, x0, tpTop-4, x0, tpBot)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555555" stroke-dasharray="4 3"/>`, x0, rawLaneY, x0, stripBot)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#444444">%s</text>`+"\n", x0, tpTop-8,
			esc(fmt.Sprintf("restart -m %s (%.1f s)", m.Mode, m.Took.Seconds())))
	}

	// Throughput as steps, one per bucket.
	for _, s := range []struct {
		st    *sideStats
		color string
	}{{&r.Raw, colorRaw}, {&r.Hasql, colorHasql}} {
		var d strings.Builder
		for i, c := range s.st.OKPerBucket {
			y := yOf(float64(c) * perSec)
			x0 := xOf(time.Duration(i) * r.Bucket)
			if i == 0 {
				fmt.Fprintf(&d, "M%.1f %.1f", x0, y)
			} else {
				fmt.Fprintf(&d, "V%.1f", y)
			}
			fmt.Fprintf(&d, "H%.1f", xOf(time.Duration(i+1)*r.Bucket))
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" stroke-opacity="0.9"/>`+"\n", d.String(), s.color)
	}

	// Error strip: one lane per side, bar height = errors in the bucket.
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">errors returned to the application per %s bucket (tallest bar: %d)</text>`+"\n",
		plotL, errLabelY-4, colorMuted, ms(r.Bucket), maxErr)
	for _, s := range []struct {
		st    *sideStats
		y     int
		color string
		label string
	}{{&r.Raw, rawLaneY, colorRaw, "raw pgx"}, {&r.Hasql, hasqlLane, colorHasql, "hasql"}} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#fafafa" stroke="%s"/>`, plotL, s.y, plotR-plotL, laneH, colorGrid)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="%s" font-weight="bold">%s</text>`+"\n", plotL-6, s.y+laneH/2+4, s.color, s.label)
		for i, e := range s.st.ErrPerBucket {
			if e == 0 {
				continue
			}
			h := max(2, float64(laneH-2)*float64(e)/float64(maxErr))
			x0, x1 := xOf(time.Duration(i)*r.Bucket), xOf(time.Duration(i+1)*r.Bucket)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
				x0+0.5, float64(s.y+laneH-1)-h, max(x1-x0-1, 1), h, s.color, esc(fmt.Sprintf("%d errors at %.2f–%.2f s", e, (time.Duration(i)*r.Bucket).Seconds(), (time.Duration(i+1)*r.Bucket).Seconds())))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="%s">%s</text>`+"\n", plotR-6, s.y+laneH/2+4, colorMuted,
			esc(fmt.Sprintf("%s errors in total", comma(s.st.Errors))))
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// niceScale returns an axis maximum at or above v and a tick step, both
// 1, 2 or 5 times a power of ten, for about five ticks.
func niceScale(v float64) (top, step float64) {
	if v <= 0 {
		return 1, 0.2
	}
	raw := v / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if step = m * p; step >= raw {
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

// niceSeconds is an x tick step giving at most about ten ticks.
func niceSeconds(span time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Second / 2, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute} {
		if span/s <= 10 {
			return s
		}
	}
	return span / 10
}

// ms formats a bucket width as "250 ms".
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64) + " ms"
}

// comma formats n with thousands separators.
func comma(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func esc(s string) string { return escaper.Replace(s) }
