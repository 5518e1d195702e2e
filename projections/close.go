package projections

import (
	"maps"
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
	lines   map[closeKey]closeAcc
	refunds map[refundKey]refundAcc
	// The business day of the last event, and the instants it spans:
	// events come in time order, and a day's name is costly to make.
	day            string
	dayFrom, dayTo int64
	// shared: a snapshot holds the maps, so the next write copies them.
	shared bool
}

// closeAcc is one line's sums in cents; odd holds amounts that are not
// whole cents within int64 (none that the domain writes).
type closeAcc struct {
	payments, voids     sum128
	payCount, voidCount int
	oddPay, oddVoid     domain.Money
}

type refundAcc struct {
	amount sum128
	count  int
	odd    domain.Money
}

// NewDailyClose returns an empty daily close with business days in tz.
func NewDailyClose(tz *time.Location) *DailyClose {
	return &DailyClose{tz: tz, lines: map[closeKey]closeAcc{}, refunds: map[refundKey]refundAcc{}}
}

// Day is the business day of an instant.
func (d *DailyClose) Day(t time.Time) string { return t.In(d.tz).Format("2006-01-02") }

// dayOf is Day, remembering the last day asked for.
func (d *DailyClose) dayOf(t time.Time) string {
	if ns := unixNanos(t); d.day != "" && ns >= d.dayFrom && ns < d.dayTo {
		return d.day
	}
	local := t.In(d.tz)
	y, m, dd := local.Date()
	d.day = local.Format("2006-01-02")
	d.dayFrom = unixNanos(time.Date(y, m, dd, 0, 0, 0, 0, d.tz))
	d.dayTo = unixNanos(time.Date(y, m, dd+1, 0, 0, 0, 0, d.tz))
	return d.day
}

func (d *DailyClose) write() {
	if d.shared {
		d.lines, d.refunds, d.shared = maps.Clone(d.lines), maps.Clone(d.refunds), false
	}
}

// Apply records one event, given the package before it.
func (d *DailyClose) Apply(env domain.Envelope, before domain.Package) {
	switch e := env.Event.(type) {
	case domain.PaymentRecorded:
		d.payment(d.dayOf(env.BusinessTime), env.Store, env.Actor.ID, e.Method, e.Amount)
	case domain.PaymentVoided:
		p, ok := before.PaymentByID(e.PaymentID)
		if !ok || p.Voided {
			return
		}
		d.void(d.dayOf(env.BusinessTime), p.Store, p.Cashier, p.Method, p.Amount)
	case domain.PackageRefunded:
		d.refund(d.dayOf(env.BusinessTime), env.Store, e.Method, e.Amount)
	}
}

func (d *DailyClose) payment(day, store, cashier string, method domain.PaymentMethod, amount domain.Money) {
	d.write()
	k := closeKey{day, store, cashier, method}
	a := d.lines[k]
	if c, ok := centsOf(amount); ok {
		a.payments = a.payments.addCents(c)
	} else {
		a.oddPay = a.oddPay.Add(amount)
	}
	a.payCount++
	d.lines[k] = a
}

func (d *DailyClose) void(day, store, cashier string, method domain.PaymentMethod, amount domain.Money) {
	d.write()
	k := closeKey{day, store, cashier, method}
	a := d.lines[k]
	if c, ok := centsOf(amount); ok {
		a.voids = a.voids.addCents(c)
	} else {
		a.oddVoid = a.oddVoid.Add(amount)
	}
	a.voidCount++
	d.lines[k] = a
}

func (d *DailyClose) refund(day, store string, method domain.PaymentMethod, amount domain.Money) {
	d.write()
	k := refundKey{day, store, method}
	r := d.refunds[k]
	if c, ok := centsOf(amount); ok {
		r.amount = r.amount.addCents(c)
	} else {
		r.odd = r.odd.Add(amount)
	}
	r.count++
	d.refunds[k] = r
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
			agg = &CloseLine{Cashier: k.cashier, Method: k.method}
			lines[k] = agg
		}
		agg.Payments = agg.Payments.Add(l.payments.money()).Add(l.oddPay)
		agg.PaymentCount += l.payCount
		agg.Voids = agg.Voids.Add(l.voids.money()).Add(l.oddVoid)
		agg.VoidCount += l.voidCount
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
		agg.Amount = agg.Amount.Add(x.amount.money()).Add(x.odd)
		agg.Count += x.count
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
