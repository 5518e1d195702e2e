package projections

import (
	"sort"
	"time"

	"github.com/packledger/packledger/domain"
)

// CloseLine is one cashier's takings by one method on one business day.
type CloseLine struct {
	Cashier      string               `json:"cashier"`
	Method       domain.PaymentMethod `json:"method"`
	Payments     domain.Money         `json:"payments"`
	PaymentCount int                  `json:"payment_count"`
	Voids        domain.Money         `json:"voids"`
	VoidCount    int                  `json:"void_count"`
	Net          domain.Money         `json:"net"`
}

// RefundLine is the money paid back by one method.
type RefundLine struct {
	Method domain.PaymentMethod `json:"method"`
	Amount domain.Money         `json:"amount"`
	Count  int                  `json:"count"`
}

// CloseTotals sums a day's close.
type CloseTotals struct {
	Payments domain.Money `json:"payments"`
	Voids    domain.Money `json:"voids"`
	Refunds  domain.Money `json:"refunds"`
	// Net is what the drawers and accounts should hold for the day:
	// payments less voids less refunds paid out.
	Net domain.Money `json:"net"`
}

// CloseReport is the day's close of one store, or of all ("").
type CloseReport struct {
	Date    string       `json:"date"`
	Store   string       `json:"store"`
	Lines   []CloseLine  `json:"lines"`
	Refunds []RefundLine `json:"refunds"`
	Totals  CloseTotals  `json:"totals"`
}

type closeKey struct {
	day, store, cashier string
	method              domain.PaymentMethod
}

type refundKey struct {
	day, store string
	method     domain.PaymentMethod
}

// DailyClose accumulates payments, voids and refunds per business day,
// store, cashier and method.
//
// A void is counted on the day it was recorded, against the drawer that
// took the payment (its store, cashier and method), because that is whose
// count it corrects; a refund against the store that paid it out.
type DailyClose struct {
	tz      *time.Location
	lines   map[closeKey]*CloseLine
	refunds map[refundKey]*RefundLine
}

// NewDailyClose returns an empty daily close with business days in tz.
func NewDailyClose(tz *time.Location) *DailyClose {
	return &DailyClose{tz: tz, lines: map[closeKey]*CloseLine{}, refunds: map[refundKey]*RefundLine{}}
}

// Day is the business day of an instant.
func (d *DailyClose) Day(t time.Time) string { return t.In(d.tz).Format("2006-01-02") }

func (d *DailyClose) line(k closeKey) *CloseLine {
	l := d.lines[k]
	if l == nil {
		l = &CloseLine{Cashier: k.cashier, Method: k.method}
		d.lines[k] = l
	}
	return l
}

// Apply records one event, given the package before it.
func (d *DailyClose) Apply(env domain.Envelope, before domain.Package) {
	day := d.Day(env.BusinessTime)
	switch e := env.Event.(type) {
	case domain.PaymentRecorded:
		l := d.line(closeKey{day, env.Store, env.Actor.ID, e.Method})
		l.Payments = l.Payments.Add(e.Amount)
		l.PaymentCount++
		l.Net = l.Payments.Sub(l.Voids)
	case domain.PaymentVoided:
		p, ok := before.PaymentByID(e.PaymentID)
		if !ok || p.Voided {
			return
		}
		l := d.line(closeKey{day, p.Store, p.Cashier, p.Method})
		l.Voids = l.Voids.Add(p.Amount)
		l.VoidCount++
		l.Net = l.Payments.Sub(l.Voids)
	case domain.PackageRefunded:
		k := refundKey{day, env.Store, e.Method}
		r := d.refunds[k]
		if r == nil {
			r = &RefundLine{Method: e.Method}
			d.refunds[k] = r
		}
		r.Amount = r.Amount.Add(e.Amount)
		r.Count++
	}
}

// Report returns the close of a business day (YYYY-MM-DD) for a store, or
// for every store when store is empty.
func (d *DailyClose) Report(day, store string) CloseReport {
	r := CloseReport{Date: day, Store: store, Lines: []CloseLine{}, Refunds: []RefundLine{}}
	lines := map[closeKey]*CloseLine{}
	for k, l := range d.lines {
		if k.day != day || (store != "" && k.store != store) {
			continue
		}
		k.day, k.store = "", ""
		agg := lines[k]
		if agg == nil {
			agg = &CloseLine{Cashier: l.Cashier, Method: l.Method}
			lines[k] = agg
		}
		agg.Payments = agg.Payments.Add(l.Payments)
		agg.PaymentCount += l.PaymentCount
		agg.Voids = agg.Voids.Add(l.Voids)
		agg.VoidCount += l.VoidCount
		agg.Net = agg.Payments.Sub(agg.Voids)
	}
	for _, l := range lines {
		r.Lines = append(r.Lines, *l)
		r.Totals.Payments = r.Totals.Payments.Add(l.Payments)
		r.Totals.Voids = r.Totals.Voids.Add(l.Voids)
	}
	refunds := map[domain.PaymentMethod]*RefundLine{}
	for k, x := range d.refunds {
		if k.day != day || (store != "" && k.store != store) {
			continue
		}
		agg := refunds[k.method]
		if agg == nil {
			agg = &RefundLine{Method: k.method}
			refunds[k.method] = agg
		}
		agg.Amount = agg.Amount.Add(x.Amount)
		agg.Count += x.Count
	}
	for _, x := range refunds {
		r.Refunds = append(r.Refunds, *x)
		r.Totals.Refunds = r.Totals.Refunds.Add(x.Amount)
	}
	r.Totals.Net = r.Totals.Payments.Sub(r.Totals.Voids).Sub(r.Totals.Refunds)
	sort.Slice(r.Lines, func(i, j int) bool {
		if r.Lines[i].Cashier != r.Lines[j].Cashier {
			return r.Lines[i].Cashier < r.Lines[j].Cashier
		}
		return r.Lines[i].Method < r.Lines[j].Method
	})
	sort.Slice(r.Refunds, func(i, j int) bool { return r.Refunds[i].Method < r.Refunds[j].Method })
	return r
}
