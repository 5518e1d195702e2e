package projections

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/internal/cow"
)

// Movements are the flows that change the prepaid liability (DESIGN.md §4):
// closing = opening + payments − voids − recognized + reversals − refunds − breakage.
type Movements struct {
	Payments   domain.Money `json:"payments"`
	Voids      domain.Money `json:"voids"`
	Recognized domain.Money `json:"recognized"`
	Reversals  domain.Money `json:"reversals"`
	Refunds    domain.Money `json:"refunds"`
	Breakage   domain.Money `json:"breakage"`
}

func (a Movements) add(b Movements) Movements {
	return Movements{
		a.Payments.Add(b.Payments), a.Voids.Add(b.Voids), a.Recognized.Add(b.Recognized),
		a.Reversals.Add(b.Reversals), a.Refunds.Add(b.Refunds), a.Breakage.Add(b.Breakage),
	}
}

func (a Movements) sub(b Movements) Movements {
	return Movements{
		a.Payments.Sub(b.Payments), a.Voids.Sub(b.Voids), a.Recognized.Sub(b.Recognized),
		a.Reversals.Sub(b.Reversals), a.Refunds.Sub(b.Refunds), a.Breakage.Sub(b.Breakage),
	}
}

// Net is what the movements do to the liability.
func (a Movements) Net() domain.Money {
	return a.Payments.Sub(a.Voids).Sub(a.Recognized).Add(a.Reversals).Sub(a.Refunds).Sub(a.Breakage)
}

// MovementsOf returns what one event does to the liability, given the
// package before it.
func MovementsOf(env domain.Envelope, before domain.Package) (Movements, bool) {
	var m Movements
	switch e := env.Event.(type) {
	case domain.PaymentRecorded:
		m.Payments = e.Amount
	case domain.PaymentVoided:
		p, ok := before.PaymentByID(e.PaymentID)
		if !ok || p.Voided {
			return m, false
		}
		m.Voids = p.Amount
	case domain.VisitRedeemed:
		m.Recognized = e.Value
	case domain.RedemptionReversed:
		r, ok := before.RedemptionByID(e.RedemptionID)
		if !ok || r.Reversed {
			return m, false
		}
		m.Reversals = r.Value
	case domain.PackageRefunded:
		m.Refunds = e.Amount
		m.Recognized = e.Recognized
	case domain.BreakageRecognized:
		m.Breakage = e.Amount
	case domain.BreakageReversed:
		m.Breakage = domain.Money{}.Sub(e.Amount)
	default:
		return m, false
	}
	return m, true
}

// The movements a liability entry can be, in the order of Movements.
const (
	mvPayments uint8 = iota
	mvVoids
	mvRecognized
	mvReversals
	mvRefunds
	mvBreakage
	mvKinds
)

// sums are the running totals of each kind of movement.
type sums [mvKinds]sum128

func (s sums) movements() Movements {
	return Movements{
		Payments: s[mvPayments].money(), Voids: s[mvVoids].money(), Recognized: s[mvRecognized].money(),
		Reversals: s[mvReversals].money(), Refunds: s[mvRefunds].money(), Breakage: s[mvBreakage].money(),
	}
}

// blockSize is how many entries one running total covers: a report sums
// at most this many entries past the nearest total.
const blockSize = 64

// Liability is the roll-forward: every movement with its business time,
// sorted by time, and running totals every blockSize entries, so that any
// period's report is two binary searches and a few additions.
//
// An entry is one amount of one kind (a refund is two: the refund and
// what is kept), 17 bytes where a running total of six decimals an event
// took hundreds. Entries are kept in chunked vectors: they grow without
// copying and a snapshot of them costs nothing.
type Liability struct {
	tz     *time.Location
	at     cow.Vec[int64] // business time, unix nanoseconds
	amt    cow.Vec[int64] // cents
	kind   cow.Vec[uint8]
	blocks cow.Vec[sums] // blocks[b] sums the entries before b*blockSize
	total  sums
	// odd holds movements whose amounts are not whole cents within int64:
	// none that the domain writes, but history is history.
	odd []oddMovement
}

type oddMovement struct {
	at time.Time
	mv Movements
}

// NewLiability returns an empty roll-forward with business days in tz.
func NewLiability(tz *time.Location) *Liability { return &Liability{tz: tz} }

// Apply records the movement of one event, if it has one.
func (l *Liability) Apply(env domain.Envelope, before domain.Package) {
	m, ok := MovementsOf(env, before)
	if !ok {
		return
	}
	l.addMovements(env.BusinessTime, m)
}

// addMovements records every amount of m that is not zero.
func (l *Liability) addMovements(t time.Time, m Movements) {
	amounts := [mvKinds]domain.Money{m.Payments, m.Voids, m.Recognized, m.Reversals, m.Refunds, m.Breakage}
	var cents [mvKinds]int64
	for k, a := range amounts {
		c, ok := centsOf(a)
		if !ok {
			l.odd = append(slices.Clip(l.odd), oddMovement{at: t, mv: m})
			return
		}
		cents[k] = c
	}
	for k, c := range cents {
		if c != 0 {
			l.add(t, uint8(k), c)
		}
	}
}

// unixNanos is t in unix nanoseconds, clamped to the years 1678–2262 that
// an int64 holds: entries beyond keep their place relative to every
// instant within, if not among themselves.
func unixNanos(t time.Time) int64 {
	const lo, hi = -9223372036, 9223372035 // seconds whose nanoseconds fit
	switch s := t.Unix(); {
	case s < lo:
		return math.MinInt64
	case s > hi:
		return math.MaxInt64
	}
	return t.UnixNano()
}

// add records one amount of one kind at t.
func (l *Liability) add(t time.Time, kind uint8, c int64) {
	at := unixNanos(t)
	n := l.at.Len()
	if n%blockSize == 0 {
		l.blocks.Append(l.total)
	}
	l.total[kind] = l.total[kind].addCents(c)
	if n == 0 || *l.at.At(n - 1) <= at {
		l.at.Append(at)
		l.amt.Append(c)
		l.kind.Append(kind)
		return
	}
	// Servers sharing a stream may disagree by a few milliseconds, so an
	// event can arrive a little out of time order: insert in place, after
	// any entry at the same instant, and redo the totals from its block.
	i := sort.Search(n, func(i int) bool { return *l.at.At(i) > at })
	l.at.Append(0)
	l.amt.Append(0)
	l.kind.Append(0)
	for j := n; j > i; j-- {
		*l.at.Mut(j), *l.amt.Mut(j), *l.kind.Mut(j) = *l.at.At(j - 1), *l.amt.At(j - 1), *l.kind.At(j - 1)
	}
	*l.at.Mut(i), *l.amt.Mut(i), *l.kind.Mut(i) = at, c, kind
	for b := i/blockSize + 1; b < l.blocks.Len(); b++ {
		s := *l.blocks.At(b - 1)
		for j := (b - 1) * blockSize; j < b*blockSize; j++ {
			k := *l.kind.At(j)
			s[k] = s[k].addCents(*l.amt.At(j))
		}
		*l.blocks.Mut(b) = s
	}
}

// upTo sums every movement strictly before t.
func (l *Liability) upTo(t time.Time) Movements {
	at := unixNanos(t)
	i := sort.Search(l.at.Len(), func(i int) bool { return *l.at.At(i) >= at })
	var s sums
	if i > 0 {
		b := i / blockSize
		if b == l.blocks.Len() { // i is the end and a block's first entry
			b--
		}
		s = *l.blocks.At(b)
		for j := b * blockSize; j < i; j++ {
			k := *l.kind.At(j)
			s[k] = s[k].addCents(*l.amt.At(j))
		}
	}
	m := s.movements()
	for _, o := range l.odd {
		if o.at.Before(t) {
			m = m.add(o.mv)
		}
	}
	return m
}

// Period is the roll-forward over [From, To).
type Period struct {
	From    time.Time    `json:"from"`
	To      time.Time    `json:"to"`
	Opening domain.Money `json:"opening"`
	Movements
	Closing domain.Money `json:"closing"`
}

// Report is a roll-forward, with one Period a business day when asked.
type Report struct {
	Period
	Days []Period `json:"days,omitempty"`
}

// Report rolls the liability forward over [from, to), and by business day
// when byDay is set.
func (l *Liability) Report(from, to time.Time, byDay bool) Report {
	r := Report{Period: l.period(from, to)}
	if byDay {
		for d := from; d.Before(to); {
			y, m, dd := d.In(l.tz).Date()
			next := time.Date(y, m, dd+1, 0, 0, 0, 0, l.tz)
			if next.After(to) {
				next = to
			}
			r.Days = append(r.Days, l.period(d, next))
			d = next
		}
	}
	return r
}

func (l *Liability) period(from, to time.Time) Period {
	open := l.upTo(from)
	mv := l.upTo(to).sub(open)
	p := Period{From: from.In(l.tz), To: to.In(l.tz), Opening: open.Net(), Movements: mv}
	p.Closing = p.Opening.Add(mv.Net())
	return p
}
