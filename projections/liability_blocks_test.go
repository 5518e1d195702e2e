package projections_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// TestLiability_ManyOutOfOrder: thousands of movements, a third of them
// arriving out of time order across many running totals, give every
// period the sums a plain loop over the movements gives.
func TestLiability_ManyOutOfOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedFor(t), 7))
	l := projections.NewLiability(shanghai)
	start := local(2026, 1, 1, 0, 0)
	type mv struct {
		at time.Time
		m  projections.Movements
	}
	var all []mv
	clock := start
	for range 3000 {
		clock = clock.Add(time.Duration(rng.IntN(600)) * time.Second)
		at := clock
		if rng.IntN(3) == 0 {
			at = clock.Add(-time.Duration(rng.IntN(7200)) * time.Second)
		}
		amount := domain.Cents(1 + rng.Int64N(100000))
		var ev domain.Event
		var m projections.Movements
		switch rng.IntN(3) {
		case 0:
			ev, m.Payments = domain.PaymentRecorded{Amount: amount}, amount
		case 1:
			kept := domain.Cents(rng.Int64N(5000))
			ev, m.Refunds, m.Recognized = domain.PackageRefunded{Amount: amount, Recognized: kept}, amount, kept
		default:
			ev, m.Breakage = domain.BreakageReversed{Amount: amount}, domain.Money{}.Sub(amount)
		}
		l.Apply(domain.Envelope{BusinessTime: at, Event: ev}, domain.Package{})
		all = append(all, mv{at, m})
	}
	sum := func(from, to time.Time) projections.Movements {
		var s projections.Movements
		for _, x := range all {
			if !x.at.Before(from) && x.at.Before(to) {
				s = addMovements(s, x.m)
			}
		}
		return s
	}
	end := clock.Add(time.Hour)
	for range 300 {
		a := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
		b := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
		if rng.IntN(10) == 0 {
			a = all[rng.IntN(len(all))].at // exactly at an entry
		}
		if b.Before(a) {
			a, b = b, a
		}
		rep := l.Report(a, b, false)
		require.Equal(t, movementStrings(sum(a, b)), movementStrings(rep.Movements), "[%s, %s)", a, b)
		require.Equal(t, sum(start.Add(-24*time.Hour), a).Net().String(), rep.Opening.String(), "opening at %s", a)
	}
}
