package projections

import (
	"maps"
	"math"
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

// A line is keyed by business day (days since 1970-01-01) and the
// interned store, cashier and method: 16 bytes where four strings took 64.
type lineKey struct {
	day                    int32
	store, cashier, method uint32
}

type refundKey struct {
	day           int32
	store, method uint32
}

// lineSums are a line's sums in cents.
type lineSums struct {
	payments, voids     int64
	payCount, voidCount int32
}

type refundSums struct {
	amount int64
	count  int32
}

// oddSums hold what does not add up in int64 cents (no amount the domain
// writes, and no day's takings a dealer has).
type oddSums struct{ pay, void domain.Money }

// DailyClose accumulates payments, voids and refunds per business day,
// store, cashier and method.
//
// A void is counted on the day it was recorded, against the drawer that
// took the payment (its store, cashier and method), because that is whose
// count it corrects; a refund against the store that paid it out.
type DailyClose struct {
	tz         *time.Location
	names      *interner // the Model's, when part of one
	lines      map[lineKey]lineSums
	refunds    map[refundKey]refundSums
	odd        map[lineKey]oddSums
	oddRefunds map[refundKey]domain.Money
	// The business day of the last event, and the instants it spans:
	// events come in time order, and a day's number is costly to work out.
	day            int32
	dayFrom, dayTo int64
	// shared: a snapshot holds the maps, so the next write copies them.
	shared bool
}

// NewDailyClose returns an empty daily close with business days in tz.
func NewDailyClose(tz *time.Location) *DailyClose {
	in := newInterner()
	return newDailyClose(tz, &in)
}

func newDailyClose(tz *time.Location, names *interner) *DailyClose {
	return &DailyClose{tz: tz, names: names, lines: map[lineKey]lineSums{}, refunds: map[refundKey]refundSums{},
		odd: map[lineKey]oddSums{}, oddRefunds: map[refundKey]domain.Money{}, dayTo: math.MinInt64}
}

// Day is the business day of an instant.
func (d *DailyClose) Day(t time.Time) string { return t.In(d.tz).Format("2006-01-02") }

// dayOf is the number of the business day of t.
func (d *DailyClose) dayOf(t time.Time) int32 {
	if ns := unixNanos(t); ns >= d.dayFrom && ns < d.dayTo {
		return d.day
	}
	y, m, dd := t.In(d.tz).Date()
	d.day = dayNumber(y, m, dd)
	d.dayFrom = unixNanos(time.Date(y, m, dd, 0, 0, 0, 0, d.tz))
	d.dayTo = unixNanos(time.Date(y, m, dd+1, 0, 0, 0, 0, d.tz))
	return d.day
}

func dayNumber(y int, m time.Month, d int) int32 {
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400) // a midnight: exact
}

func (d *DailyClose) write() {
	if d.shared {
		d.lines, d.refunds, d.shared = maps.Clone(d.lines), maps.Clone(d.refunds), false
		d.odd, d.oddRefunds = maps.Clone(d.odd), maps.Clone(d.oddRefunds)
	}
}

// Apply records one event, given the package before it.
func (d *DailyClose) Apply(env domain.Envelope, before domain.Package) {
	switch e := env.Event.(type) {
	case domain.PaymentRecorded:
		d.payment(d.dayOf(env.BusinessTime), d.names.id(env.Store), d.names.id(env.Actor.ID), d.names.id(string(e.Method)), e.Amount)
	case domain.PaymentVoided:
		p, ok := before.PaymentByID(e.PaymentID)
		if !ok || p.Voided {
			return
		}
		d.void(d.dayOf(env.BusinessTime), d.names.id(p.Store), d.names.id(p.Cashier), d.names.id(string(p.Method)), p.Amount)
	case domain.PackageRefunded:
		d.refund(d.dayOf(env.BusinessTime), d.names.id(env.Store), d.names.id(string(e.Method)), e.Amount)
	}
}

// addTo adds an amount to a sum in cents, if it is whole cents and the
// sum fits.
func addTo(sum *int64, amount domain.Money) bool {
	c, ok := centsOf(amount)
	if !ok {
		return false
	}
	s, ok := addCents(*sum, c)
	if ok {
		*sum = s
	}
	return ok
}

func (d *DailyClose) payment(day int32, store, cashier, method uint32, amount domain.Money) {
	d.take(lineKey{day, store, cashier, method}, amount, false)
}

func (d *DailyClose) void(day int32, store, cashier, method uint32, amount domain.Money) {
	d.take(lineKey{day, store, cashier, method}, amount, true)
}

// take counts a payment, or a void, on a line.
func (d *DailyClose) take(k lineKey, amount domain.Money, void bool) {
	d.write()
	l := d.lines[k]
	sum, count := &l.payments, &l.payCount
	if void {
		sum, count = &l.voids, &l.voidCount
	}
	*count++
	if !addTo(sum, amount) {
		o := d.odd[k]
		if void {
			o.void = o.void.Add(amount)
		} else {
			o.pay = o.pay.Add(amount)
		}
		d.odd[k] = o
	}
	d.lines[k] = l
}

func (d *DailyClose) refund(day int32, store, method uint32, amount domain.Money) {
	d.write()
	k := refundKey{day, store, method}
	r := d.refunds[k]
	r.count++
	if !addTo(&r.amount, amount) {
		d.oddRefunds[k] = d.oddRefunds[k].Add(amount)
	}
	d.refunds[k] = r
}

// Report returns the close of a business day (YYYY-MM-DD) for a store, or
// for every store when store is empty.
func (d *DailyClose) Report(day, store string) CloseReport {
	r := CloseReport{Date: day, Store: store, Lines: []CloseLine{}, Refunds: []RefundLine{}}
	t, err := time.Parse("2006-01-02", day)
	if err != nil {
		return r
	}
	num := dayNumber(t.Date())
	storeID, known := d.names.ids[store]
	if store != "" && !known {
		return r
	}
	match := func(kday int32, kstore uint32) bool { return kday == num && (store == "" || kstore == storeID) }
	type cm struct{ cashier, method uint32 }
	lines := map[cm]*CloseLine{}
	for k, l := range d.lines {
		if !match(k.day, k.store) {
			continue
		}
		agg := lines[cm{k.cashier, k.method}]
		if agg == nil {
			agg = &CloseLine{Cashier: d.names.strs[k.cashier], Method: domain.PaymentMethod(d.names.strs[k.method])}
			lines[cm{k.cashier, k.method}] = agg
		}
		o := d.odd[k]
		agg.Payments = agg.Payments.Add(money(l.payments)).Add(o.pay)
		agg.PaymentCount += int(l.payCount)
		agg.Voids = agg.Voids.Add(money(l.voids)).Add(o.void)
		agg.VoidCount += int(l.voidCount)
		agg.Net = agg.Payments.Sub(agg.Voids)
	}
	for _, l := range lines {
		r.Lines = append(r.Lines, *l)
		r.Totals.Payments = r.Totals.Payments.Add(l.Payments)
		r.Totals.Voids = r.Totals.Voids.Add(l.Voids)
	}
	refunds := map[uint32]*RefundLine{}
	for k, x := range d.refunds {
		if !match(k.day, k.store) {
			continue
		}
		agg := refunds[k.method]
		if agg == nil {
			agg = &RefundLine{Method: domain.PaymentMethod(d.names.strs[k.method])}
			refunds[k.method] = agg
		}
		agg.Amount = agg.Amount.Add(money(x.amount)).Add(d.oddRefunds[k])
		agg.Count += int(x.count)
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
