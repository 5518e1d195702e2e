package handlers

import (
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// The liability report's chart, drawn by the server as inline SVG: one
// bar a business day, its height the liability owed at the day's close.
// Heights are whole pixels computed from cents, so no amount goes through
// a float.

// chart is what the template draws.
type chart struct {
	W, H, Left, Bottom int // the drawing and its margins
	Bars               []chartBar
	Max                domain.Money // the top of the scale
	Ticks              []chartTick  // days named under the bars
	Label              string       // the chart's words for a screen reader
}

type chartBar struct {
	X, Y, W, H int
	Day        string
	Closing    domain.Money
}

type chartTick struct {
	X   int
	Day string
}

const (
	chartW, chartH          = 720, 240
	chartLeft, chartBottom  = 96, 28
	chartTop, chartMaxTicks = 12, 7
)

func liabilityChart(rep projections.Report, tz *time.Location) chart {
	c := chart{W: chartW, H: chartH, Left: chartLeft, Bottom: chartBottom}
	n := len(rep.Days)
	if n == 0 {
		return c
	}
	var most int64
	for _, d := range rep.Days {
		most = max(most, cents(d.Closing))
	}
	most = niceCeiling(most)
	c.Max = domain.Cents(most)
	plotW, plotH := chartW-chartLeft-8, chartH-chartBottom-chartTop
	step := plotW / n
	barW := max(step*3/4, 1)
	every := (n + chartMaxTicks - 1) / chartMaxTicks
	for i, d := range rep.Days {
		h := 0
		if most > 0 {
			h = int(cents(d.Closing) * int64(plotH) / most)
		}
		x := chartLeft + i*step + (step-barW)/2
		b := chartBar{X: x, Y: chartTop + plotH - h, W: barW, H: h, Day: day(d.From, tz), Closing: d.Closing}
		c.Bars = append(c.Bars, b)
		if i%every == 0 || i == n-1 {
			c.Ticks = append(c.Ticks, chartTick{X: x + barW/2, Day: b.Day[5:]})
		}
	}
	return c
}

// cents is an amount in cents, for drawing.
func cents(m domain.Money) int64 { return m.Decimal().Shift(2).IntPart() }

// niceCeiling is the scale's top: the amount rounded up to 1, 2 or 5
// times a power of ten, so that its label reads well.
func niceCeiling(c int64) int64 {
	if c <= 0 {
		return 0
	}
	p := int64(1)
	for p*10 <= c {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= c {
			return m * p
		}
	}
	return 10 * p
}
