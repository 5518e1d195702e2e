package projections

import (
	"sort"
	"time"

	"github.com/packledger/packledger/domain"
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

// Liability is the roll-forward: every movement with its business time,
// and running sums so that any period's report is two binary searches.
type Liability struct {
	tz  *time.Location
	at  []time.Time
	cum []Movements // cum[i] = sum of movements 0..i
}

// NewLiability returns an empty roll-forward with business days in tz.
func NewLiability(tz *time.Location) *Liability { return &Liability{tz: tz} }

// Apply records the movement of one event, if it has one.
func (l *Liability) Apply(env domain.Envelope, before domain.Package) {
	m, ok := MovementsOf(env, before)
	if !ok {
		return
	}
	t := env.BusinessTime
	// Servers sharing a stream may disagree by a few milliseconds, so an
	// event can arrive a little out of time order: insert in place.
	i := sort.Search(len(l.at), func(i int) bool { return l.at[i].After(t) })
	l.at = append(l.at, time.Time{})
	copy(l.at[i+1:], l.at[i:])
	l.at[i] = t
	l.cum = append(l.cum, Movements{})
	copy(l.cum[i+1:], l.cum[i:])
	prev := Movements{}
	if i > 0 {
		prev = l.cum[i-1]
	}
	l.cum[i] = prev.add(m)
	for k := i + 1; k < len(l.cum); k++ {
		l.cum[k] = l.cum[k].add(m)
	}
}

// upTo sums every movement strictly before t.
func (l *Liability) upTo(t time.Time) Movements {
	i := sort.Search(len(l.at), func(i int) bool { return !l.at[i].Before(t) })
	if i == 0 {
		return Movements{}
	}
	return l.cum[i-1]
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
