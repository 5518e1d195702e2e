package projections_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// seedFor returns the seed of a randomized test: PACKLEDGER_SEED when set,
// else a fresh one; it is printed when the test fails.
func seedFor(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PACKLEDGER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "PACKLEDGER_SEED")
		seed = v
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("randomized with seed %d: rerun with PACKLEDGER_SEED=%d go test ./projections -run '%s' -count=1", seed, seed, t.Name())
		}
	})
	return seed
}

// rolled is one applied event, what it did to its package's balances, and
// thus the movements the roll-forward must show for it. It is computed from
// the domain's balance columns, independently of projections.MovementsOf.
type rolled struct {
	env            domain.Envelope
	before         domain.Package
	mv             projections.Movements
	liabilityDelta domain.Money
}

func deltaOf(t testing.TB, env domain.Envelope, before, after domain.Package) rolled {
	b, a := before.Balances(), after.Balances()
	rec := a.Recognized.Sub(b.Recognized)
	mv := projections.Movements{
		Payments: a.Paid.Sub(b.Paid),
		Voids:    a.Voided.Sub(b.Voided),
		Refunds:  a.Refunded.Sub(b.Refunded),
		Breakage: a.Breakage.Sub(b.Breakage),
	}
	if _, ok := env.Event.(domain.RedemptionReversed); ok {
		mv.Reversals = domain.Money{}.Sub(rec)
	} else {
		mv.Recognized = rec
	}
	d := a.Liability.Sub(b.Liability)
	require.Equal(t, d.String(), mv.Net().String(), "seq %d %s: the movements are the change in liability", env.Seq, env.Type)
	return rolled{env: env, before: before, mv: mv, liabilityDelta: d}
}

// expected sums the roll-forward of [from, to) directly from the events.
func expected(rs []rolled, from, to time.Time) (opening domain.Money, mv projections.Movements, closing domain.Money) {
	add := func(a, b projections.Movements) projections.Movements {
		return projections.Movements{
			Payments: a.Payments.Add(b.Payments), Voids: a.Voids.Add(b.Voids),
			Recognized: a.Recognized.Add(b.Recognized), Reversals: a.Reversals.Add(b.Reversals),
			Refunds: a.Refunds.Add(b.Refunds), Breakage: a.Breakage.Add(b.Breakage),
		}
	}
	for _, r := range rs {
		t := r.env.BusinessTime
		if t.Before(from) {
			opening = opening.Add(r.liabilityDelta)
		}
		if t.Before(to) {
			closing = closing.Add(r.liabilityDelta)
		}
		if !t.Before(from) && t.Before(to) {
			mv = add(mv, r.mv)
		}
	}
	return opening, mv, closing
}

func movementStrings(m projections.Movements) map[string]string {
	return map[string]string{
		"payments": m.Payments.String(), "voids": m.Voids.String(), "recognized": m.Recognized.String(),
		"reversals": m.Reversals.String(), "refunds": m.Refunds.String(), "breakage": m.Breakage.String(),
	}
}

func periodStrings(p projections.Period) map[string]string {
	s := movementStrings(p.Movements)
	s["opening"], s["closing"] = p.Opening.String(), p.Closing.String()
	s["from"], s["to"] = p.From.Format(time.RFC3339Nano), p.To.Format(time.RFC3339Nano)
	return s
}

// requireIdentity checks the roll-forward of DESIGN.md §4 written out term
// by term, not through Movements.Net.
func requireIdentity(t testing.TB, p projections.Period, msgAndArgs ...any) {
	t.Helper()
	c := p.Opening.Add(p.Payments).Sub(p.Voids).Sub(p.Recognized).Add(p.Reversals).Sub(p.Refunds).Sub(p.Breakage)
	require.Equal(t, c.String(), p.Closing.String(),
		append([]any{"opening + payments − voids − recognized + reversals − refunds − breakage = closing: %v"}, append([]any{periodStrings(p)}, msgAndArgs...)...)...)
}

// randomHistory is several hundred packages and a few thousand events over
// sixty days in Asia/Shanghai, decided by the domain: payments in parts,
// voids, redemptions, reversals, refunds by both policies and the free
// look, expiry, breakage and refunds after breakage.
type randomHistory struct {
	start, end time.Time
	envs       []domain.Envelope // stream order, business times already jittered
	counts     map[string]int
	outOfOrder int
}

func genHistory(t *testing.T, rng *rand.Rand) randomHistory {
	t.Helper()
	l := newLedger(t, nil)
	start := local(2026, 9, 1, 0, 0)
	days := 60
	end := start.AddDate(0, 0, days)

	mgr := who{at: start, store: "S1", actor: manager}
	l.definePlan(oilPlan(t, "OIL6", domain.RefundProRata, 1), mgr)
	mix, err := domain.NewPlan(domain.PlanSpec{
		Code: "MIX", Name: "oil and inspection",
		Entitlements: []domain.Entitlement{
			{Service: "oil_change", Count: 4, ListPrice: money("480.00")},
			{Service: "inspection", Count: 2, ListPrice: money("200.00")},
		},
		Price: func() *domain.Money { m := money("1999.99"); return &m }(), ValidityMonths: 1,
		RefundPolicy: domain.RefundListPrice, CancellationFeeRate: rate("0.05"), FreeLookDays: 7,
	})
	require.NoError(t, err)
	l.definePlan(mix, mgr)
	ten, err := domain.NewPlan(domain.PlanSpec{
		Code: "TEN", Name: "ten rotations",
		Entitlements: []domain.Entitlement{{Service: "tire_rotation", Count: 10, ListPrice: money("133.33")}},
		Rate:         rate("0.8"), ValidityMonths: 12, RefundPolicy: domain.RefundProRata,
	})
	require.NoError(t, err)
	l.definePlan(ten, mgr)
	plans := []string{"OIL6", "MIX", "TEN"}

	stores := []string{"S1", "S2", "S3"}
	cashiers := []domain.Actor{{ID: "cash1", Role: domain.RoleCashier}, {ID: "cash2", Role: domain.RoleCashier}, {ID: "cash3", Role: domain.RoleCashier}}
	const vinAlphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
	randomVIN := func() string {
		b := make([]byte, 17)
		for i := range b {
			b[i] = vinAlphabet[rng.IntN(len(vinAlphabet))]
		}
		return string(b)
	}
	pick := func(n int) int { return rng.IntN(n) }

	// Step instants: sorted, spread over the whole sixty days.
	const steps = 5200
	at := make([]time.Time, steps)
	for i := range at {
		at[i] = start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })

	var pkgs []uuid.UUID
	refs := 0
	ref := func(prefix string) string { refs++; return fmt.Sprintf("%s-%d", prefix, refs) }
	counts := map[string]int{}
	lastSweep := start
	for _, now := range at {
		store := stores[pick(len(stores))]
		// The expiry sweep, as the server runs it: every few hours.
		if now.Sub(lastSweep) > 6*time.Hour {
			lastSweep = now
			for _, id := range pkgs {
				if p := l.state[id]; p.Status == domain.StatusActive && p.ExpiresAt != nil && !now.Before(*p.ExpiresAt) {
					l.do(id, domain.Expire{}, who{at: now, store: "S1", actor: system})
				}
			}
		}
		if len(pkgs) < 30 || (len(pkgs) < 420 && rng.Float64() < 0.11) {
			id := l.sell(plans[pick(len(plans))], sale{
				customer: fmt.Sprintf("C%d", pick(300)), vin: randomVIN(), plate: fmt.Sprintf("沪A%05d", pick(100000)),
			}, who{at: now, store: store, actor: advisor})
			pkgs = append(pkgs, id)
			continue
		}
		id := pkgs[pick(len(pkgs))]
		p := l.state[id]
		cash := who{at: now, store: store, actor: cashiers[pick(len(cashiers))]}
		mgrAt := who{at: now, store: store, actor: manager}
		advAt := who{at: now, store: store, actor: advisor}
		cmd, w := randomCommand(rng, p, commandOdds{pay: 0.70, voidAwaiting: 0.85, refundAwaiting: 0.90, redeem: 0.62, reverse: 0.74, voidActive: 0.82, refundActive: 0.88, reverseUsedUp: 0.5, breakage: 0.45, refundExpired: 0.75, reverseExpired: 0.90}, ref, cash, mgrAt, advAt)
		if cmd == nil {
			continue
		}
		if _, err := l.try(id, cmd, w); err != nil {
			counts["refused"]++
		}
	}
	for _, id := range pkgs {
		require.Equal(t, l.folded(id), l.state[id], "Fold of the history is the state decided on")
	}

	// Servers sharing a stream disagree by a little: some events carry a
	// business time a little before the previous event's.
	envs := l.envs
	h := randomHistory{start: start, end: end, counts: counts}
	for i := 1; i < len(envs); i++ {
		if rng.Float64() < 0.04 {
			envs[i].BusinessTime = envs[i-1].BusinessTime.Add(-time.Duration(1 + rng.Int64N(int64(3*time.Second))))
		}
		if envs[i].BusinessTime.Before(envs[i-1].BusinessTime) {
			h.outOfOrder++
		}
	}
	for _, env := range envs {
		counts[env.Type]++
	}
	h.envs = envs
	return h
}

func TestLiability_RollForward(t *testing.T) {
	seed := seedFor(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := genHistory(t, rng)
	t.Logf("seed %d: %d events, %d out of time order, %v", seed, len(h.envs), h.outOfOrder, h.counts)

	// The history must exercise every kind of movement.
	require.GreaterOrEqual(t, h.counts["PackageSold"], 300, "several hundred packages")
	require.GreaterOrEqual(t, len(h.envs), 2500, "a few thousand events")
	for _, typ := range []string{"PaymentRecorded", "PaymentVoided", "PackageActivated", "VisitRedeemed", "RedemptionReversed",
		"PackageRefunded", "PackageExpired", "BreakageRecognized", "BreakageReversed"} {
		require.Positive(t, h.counts[typ], "the history has a %s", typ)
	}
	require.Positive(t, h.outOfOrder, "some events are out of time order")

	// Feed the model in stream order, and compute what each event did.
	m := projections.NewModel(shanghai)
	states := map[string]domain.Package{}
	var rs []rolled
	for _, env := range h.envs {
		m.Apply(env)
		if _, err := uuid.Parse(env.Aggregate); err != nil {
			continue // plan events
		}
		before := states[env.Aggregate]
		after := domain.Apply(before, env)
		states[env.Aggregate] = after
		rs = append(rs, deltaOf(t, env, before, after))
	}
	require.Empty(t, m.Findings())
	liab := m.Liability()

	randomInstant := func() time.Time {
		lo, hi := h.start.AddDate(0, 0, -2), h.end.AddDate(0, 0, 2)
		t := lo.Add(time.Duration(rng.Int64N(int64(hi.Sub(lo)))))
		switch rng.IntN(4) {
		case 0: // a business day's start
			y, mo, d := t.In(shanghai).Date()
			return time.Date(y, mo, d, 0, 0, 0, 0, shanghai)
		case 1: // exactly at an event
			return rs[rng.IntN(len(rs))].env.BusinessTime
		}
		return t
	}
	randomPeriod := func() (time.Time, time.Time) {
		a, b := randomInstant(), randomInstant()
		for !a.Before(b) {
			a, b = randomInstant(), randomInstant()
		}
		return a, b
	}

	t.Run("Identity", func(t *testing.T) {
		for i := range 400 {
			from, to := randomPeriod()
			rep := liab.Report(from, to, false)
			requireIdentity(t, rep.Period, "period %d", i)
			open, mv, closing := expected(rs, from, to)
			require.Equal(t, open.String(), rep.Opening.String(), "opening of [%s, %s)", from, to)
			require.Equal(t, closing.String(), rep.Closing.String(), "closing of [%s, %s)", from, to)
			require.Equal(t, movementStrings(mv), movementStrings(rep.Movements), "movements of [%s, %s)", from, to)
			require.True(t, rep.From.Equal(from) && rep.To.Equal(to))
			require.Equal(t, shanghai, rep.From.Location(), "bounds are shown in the business time zone")
			require.Empty(t, rep.Days, "no days unless asked")
		}
	})

	t.Run("ByDay", func(t *testing.T) {
		check := func(t *testing.T, from, to time.Time) {
			rep := liab.Report(from, to, true)
			requireIdentity(t, rep.Period)
			require.NotEmpty(t, rep.Days)
			require.True(t, rep.Days[0].From.Equal(from), "the first day starts at from")
			require.True(t, rep.Days[len(rep.Days)-1].To.Equal(to), "the last day ends at to")
			requireSameMoney(t, rep.Opening, rep.Days[0].Opening, "first day's opening is the period's")
			requireSameMoney(t, rep.Closing, rep.Days[len(rep.Days)-1].Closing, "last day's closing is the period's")
			var sum projections.Movements
			for k, d := range rep.Days {
				requireIdentity(t, d, "day %d", k)
				require.True(t, d.From.Before(d.To), "day %d is not empty", k)
				fy, fm, fd := d.From.In(shanghai).Date()
				next := time.Date(fy, fm, fd+1, 0, 0, 0, 0, shanghai)
				require.False(t, d.To.After(next), "day %d [%s, %s) stays within one business day", k, d.From, d.To)
				if k > 0 {
					h, mi, s := d.From.In(shanghai).Clock()
					require.Equal(t, [3]int{0, 0, 0}, [3]int{h, mi, s}, "day %d starts at midnight in Asia/Shanghai", k)
					require.True(t, rep.Days[k-1].To.Equal(d.From), "days are contiguous")
					requireSameMoney(t, rep.Days[k-1].Closing, d.Opening, "day %d's opening is day %d's closing", k, k-1)
				}
				if k < len(rep.Days)-1 {
					require.True(t, d.To.Equal(next), "day %d ends at the next midnight", k)
				}
				// Each day on its own agrees with a report of just that day.
				one := liab.Report(d.From, d.To, false)
				require.Equal(t, periodStrings(one.Period), periodStrings(d))
				sum = projections.Movements{
					Payments: sum.Payments.Add(d.Payments), Voids: sum.Voids.Add(d.Voids),
					Recognized: sum.Recognized.Add(d.Recognized), Reversals: sum.Reversals.Add(d.Reversals),
					Refunds: sum.Refunds.Add(d.Refunds), Breakage: sum.Breakage.Add(d.Breakage),
				}
			}
			require.Equal(t, movementStrings(rep.Movements), movementStrings(sum), "the days' movements sum to the period's")
		}
		t.Run("WholeHistory", func(t *testing.T) {
			check(t, h.start, h.end)
			rep := liab.Report(h.start, h.end, true)
			require.Len(t, rep.Days, 60)
		})
		t.Run("Random", func(t *testing.T) {
			for range 60 {
				from, to := randomPeriod()
				check(t, from, to)
			}
		})
		t.Run("WithinOneDay", func(t *testing.T) {
			from := local(2026, 9, 20, 9, 30)
			check(t, from, from.Add(5*time.Hour))
			require.Len(t, liab.Report(from, from.Add(5*time.Hour), true).Days, 1)
		})
		t.Run("BoundsInUTC", func(t *testing.T) {
			// 2026-09-10T16:00Z is midnight of the 11th in Shanghai.
			from := time.Date(2026, 9, 10, 16, 0, 0, 0, time.UTC)
			to := time.Date(2026, 9, 13, 16, 0, 0, 0, time.UTC)
			check(t, from, to)
			rep := liab.Report(from, to, true)
			require.Len(t, rep.Days, 3)
			require.Equal(t, "2026-09-11T00:00:00+08:00", rep.Days[0].From.Format(time.RFC3339))
		})
	})

	t.Run("ClosingIsTotalLiability", func(t *testing.T) {
		rep := liab.Report(h.start.AddDate(0, 0, -1), h.end.AddDate(0, 0, 1), false)
		tot := m.Totals()
		require.NoError(t, tot.Check())
		requireMoney(t, "0.00", rep.Opening)
		requireSameMoney(t, tot.Liability, rep.Closing, "closing at the end = Σ packages' liability")
		requireSameMoney(t, tot.Paid, rep.Payments)
		requireSameMoney(t, tot.Voided, rep.Voids)
		requireSameMoney(t, tot.Refunded, rep.Refunds)
		requireSameMoney(t, tot.Breakage, rep.Breakage)
		requireSameMoney(t, tot.Recognized, rep.Recognized.Sub(rep.Reversals))
		// And at any instant, the closing is the liability of the packages
		// folded from the events before it.
		for range 20 {
			cut := randomInstant()
			var owed domain.Money
			for _, r := range rs {
				if r.env.BusinessTime.Before(cut) {
					owed = owed.Add(r.liabilityDelta)
				}
			}
			requireSameMoney(t, owed, liab.Report(h.start.AddDate(0, 0, -3), cut, false).Closing, "closing at %s", cut)
		}
	})

	t.Run("OutOfOrderSameAsSorted", func(t *testing.T) {
		sorted := make([]rolled, len(rs))
		copy(sorted, rs)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].env.BusinessTime.Before(sorted[j].env.BusinessTime) })
		inOrder := projections.NewLiability(shanghai)
		for _, r := range sorted {
			inOrder.Apply(r.env, r.before)
		}
		for i := range 200 {
			from, to := randomPeriod()
			byDay := i%10 == 0
			got, want := liab.Report(from, to, byDay), inOrder.Report(from, to, byDay)
			require.Equal(t, periodStrings(want.Period), periodStrings(got.Period), "[%s, %s)", from, to)
			require.Len(t, got.Days, len(want.Days))
			for k := range want.Days {
				require.Equal(t, periodStrings(want.Days[k]), periodStrings(got.Days[k]))
			}
		}
	})
}

// TestLiability_OutOfOrderInsert checks the insertion in place on a few
// events whose figures are known.
func TestLiability_OutOfOrderInsert(t *testing.T) {
	l := newLedger(t, nil)
	setupOil(t, l, local(2026, 11, 1, 8, 0))
	id := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, who{at: local(2026, 11, 1, 9, 0), store: "S1"})
	l.pay(id, "1000.00", "cash", "R-1", who{at: local(2026, 11, 1, 10, 0), store: "S1"})
	l.pay(id, "1448.00", "card", "R-2", who{at: local(2026, 11, 1, 11, 0), store: "S1"})
	l.redeem(id, "oil_change", "RO-1", who{at: local(2026, 11, 2, 10, 0), store: "S1"})

	envs := l.envs
	// The second payment was stamped a second before the first by a server
	// whose clock ran behind; the redemption, at the same instant as the
	// first payment.
	envs[3].BusinessTime = envs[2].BusinessTime.Add(-time.Second) // payment 1448.00
	envs[4].BusinessTime = envs[3].BusinessTime                   // activation
	envs[5].BusinessTime = envs[2].BusinessTime                   // redemption 408.00
	m := projections.NewModel(shanghai)
	for _, e := range envs {
		m.Apply(e)
	}
	liab := m.Liability()
	p1 := envs[2].BusinessTime
	rep := liab.Report(p1.Add(-time.Second), p1, false)
	requireMoney(t, "0.00", rep.Opening)
	requireMoney(t, "1448.00", rep.Payments, "only the early-stamped payment")
	requireMoney(t, "1448.00", rep.Closing)
	rep = liab.Report(p1, p1.Add(time.Nanosecond), false)
	requireMoney(t, "1448.00", rep.Opening)
	requireMoney(t, "1000.00", rep.Payments)
	requireMoney(t, "408.00", rep.Recognized, "an event exactly at from is in the period")
	requireMoney(t, "2040.00", rep.Closing)
	rep = liab.Report(local(2026, 11, 1, 0, 0), local(2026, 11, 3, 0, 0), true)
	require.Len(t, rep.Days, 2)
	requireMoney(t, "2040.00", rep.Days[0].Closing)
	requireMoney(t, "2040.00", rep.Days[1].Opening)
	requireMoney(t, "0.00", rep.Days[1].Recognized)
}

// TestLiability_WorkedExample is DESIGN.md §4's example followed through
// the roll-forward, with figures checked by hand.
func TestLiability_WorkedExample(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	setupOil(t, l, local(2026, 11, 1, 8, 0))
	id := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, who{at: local(2026, 11, 1, 9, 0), store: "S1"})
	l.pay(id, "1000.00", "cash", "R-1", who{at: local(2026, 11, 1, 10, 0), store: "S1"})
	l.pay(id, "1448.00", "wechat", "R-2", who{at: local(2026, 11, 1, 10, 5), store: "S1"})
	l.redeem(id, "oil_change", "RO-1", who{at: local(2026, 11, 5, 14, 0), store: "S1"})
	l.redeem(id, "oil_change", "RO-2", who{at: local(2026, 11, 10, 14, 0), store: "S1"})
	refund := l.do(id, domain.RefundPackage{Method: "bank_transfer", Reason: "moved away"}, who{at: local(2026, 11, 20, 11, 0), store: "S1", actor: manager})
	require.Len(t, refund, 1)
	r := refund[0].Event.(domain.PackageRefunded)
	requireMoney(t, "1468.80", r.Amount)
	requireMoney(t, "163.20", r.Recognized)
	liab := m.Liability()

	type fig struct{ opening, payments, voids, recognized, reversals, refunds, breakage, closing string }
	figs := func(p projections.Period) fig {
		return fig{p.Opening.String(), p.Payments.String(), p.Voids.String(), p.Recognized.String(),
			p.Reversals.String(), p.Refunds.String(), p.Breakage.String(), p.Closing.String()}
	}

	t.Run("WholeMonth", func(t *testing.T) {
		rep := liab.Report(local(2026, 11, 1, 0, 0), local(2026, 12, 1, 0, 0), false)
		// 2448.00 − (408.00 + 408.00 + 163.20) − 1468.80 = 0.00
		require.Equal(t, fig{"0.00", "2448.00", "0.00", "979.20", "0.00", "1468.80", "0.00", "0.00"}, figs(rep.Period))
		requireIdentity(t, rep.Period)
		requireMoney(t, "0.00", m.Totals().Liability)
	})

	t.Run("Slices", func(t *testing.T) {
		tests := []struct {
			name     string
			from, to time.Time
			want     fig
		}{
			{"SaleDay", local(2026, 11, 1, 0, 0), local(2026, 11, 2, 0, 0), fig{"0.00", "2448.00", "0.00", "0.00", "0.00", "0.00", "0.00", "2448.00"}},
			{"FirstVisit", local(2026, 11, 5, 0, 0), local(2026, 11, 6, 0, 0), fig{"2448.00", "0.00", "0.00", "408.00", "0.00", "0.00", "0.00", "2040.00"}},
			{"BetweenVisits", local(2026, 11, 6, 0, 0), local(2026, 11, 15, 0, 0), fig{"2040.00", "0.00", "0.00", "408.00", "0.00", "0.00", "0.00", "1632.00"}},
			{"RefundDay", local(2026, 11, 20, 0, 0), local(2026, 11, 21, 0, 0), fig{"1632.00", "0.00", "0.00", "163.20", "0.00", "1468.80", "0.00", "0.00"}},
			{"AfterRefund", local(2026, 11, 21, 0, 0), local(2027, 1, 1, 0, 0), fig{"0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00"}},
			{"BeforeSale", local(2026, 10, 1, 0, 0), local(2026, 11, 1, 0, 0), fig{"0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00"}},
			{"BetweenThePayments", local(2026, 11, 1, 10, 1), local(2026, 11, 1, 10, 5), fig{"1000.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "1000.00"}},
			{"ToIsExclusive", local(2026, 11, 1, 0, 0), local(2026, 11, 1, 10, 5), fig{"0.00", "1000.00", "0.00", "0.00", "0.00", "0.00", "0.00", "1000.00"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rep := liab.Report(tt.from, tt.to, false)
				require.Equal(t, tt.want, figs(rep.Period))
			})
		}
	})

	t.Run("ByDay", func(t *testing.T) {
		rep := liab.Report(local(2026, 11, 1, 0, 0), local(2026, 12, 1, 0, 0), true)
		require.Len(t, rep.Days, 30)
		closings := map[int]string{}
		for _, d := range rep.Days {
			closings[d.From.Day()] = d.Closing.String()
		}
		require.Equal(t, "2448.00", closings[1])
		require.Equal(t, "2448.00", closings[4])
		require.Equal(t, "2040.00", closings[5])
		require.Equal(t, "1632.00", closings[10])
		require.Equal(t, "1632.00", closings[19])
		require.Equal(t, "0.00", closings[20])
		require.Equal(t, "0.00", closings[30])
	})
}

// TestLiability_CorrectionsAndBreakage follows a package through a voided
// payment, a reversed visit, expiry, breakage and a refund after breakage.
func TestLiability_CorrectionsAndBreakage(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	l.definePlan(oilPlan(t, "OIL1", domain.RefundProRata, 1), who{at: local(2026, 11, 1, 8, 0), store: "S1", actor: manager})
	s1 := who{store: "S1"}
	at := func(d, h int) who { w := s1; w.at = local(2026, 11, d, h, 0); return w }
	mgr := func(d, h int) who { w := at(d, h); w.actor = manager; return w }

	id := l.sell("OIL1", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, at(1, 9))
	wrong := l.pay(id, "1000.00", "cash", "R-1", at(1, 10))
	l.do(id, domain.VoidPayment{PaymentID: wrong, Reason: "wrong package"}, mgr(1, 11))
	l.pay(id, "2448.00", "card", "R-2", at(2, 10)) // activates: expires 2 Dec 10:00
	r1 := l.redeem(id, "oil_change", "RO-1", at(3, 10))
	l.do(id, domain.ReverseRedemption{RedemptionID: r1, Reason: "wrong car"}, mgr(3, 12))
	l.redeem(id, "oil_change", "RO-2", at(4, 10))
	l.do(id, domain.Expire{}, who{at: local(2026, 12, 2, 10, 0), store: "S1", actor: system})
	l.do(id, domain.RecognizeBreakage{Reason: "estimate"}, who{at: local(2026, 12, 3, 10, 0), store: "S1", actor: manager})
	evs := l.do(id, domain.RefundPackage{Method: "cash", Reason: "claimed"}, who{at: local(2026, 12, 10, 10, 0), store: "S1", actor: manager})
	require.Len(t, evs, 2, "BreakageReversed then PackageRefunded")
	r := evs[1].Event.(domain.PackageRefunded)
	requireMoney(t, "204.00", r.Fee, "10%% of the 2040.00 owed")
	requireMoney(t, "1836.00", r.Amount)

	liab := m.Liability()
	type fig struct{ opening, payments, voids, recognized, reversals, refunds, breakage, closing string }
	figs := func(p projections.Period) fig {
		return fig{p.Opening.String(), p.Payments.String(), p.Voids.String(), p.Recognized.String(),
			p.Reversals.String(), p.Refunds.String(), p.Breakage.String(), p.Closing.String()}
	}
	tests := []struct {
		name     string
		from, to time.Time
		want     fig
	}{
		{"VoidDay", local(2026, 11, 1, 0, 0), local(2026, 11, 2, 0, 0), fig{"0.00", "1000.00", "1000.00", "0.00", "0.00", "0.00", "0.00", "0.00"}},
		{"ReversalDay", local(2026, 11, 3, 0, 0), local(2026, 11, 4, 0, 0), fig{"2448.00", "0.00", "0.00", "408.00", "408.00", "0.00", "0.00", "2448.00"}},
		{"ExpiryChangesNothing", local(2026, 12, 2, 0, 0), local(2026, 12, 3, 0, 0), fig{"2040.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "2040.00"}},
		{"BreakageDay", local(2026, 12, 3, 0, 0), local(2026, 12, 4, 0, 0), fig{"2040.00", "0.00", "0.00", "0.00", "0.00", "0.00", "2040.00", "0.00"}},
		{"RefundAfterBreakage", local(2026, 12, 10, 0, 0), local(2026, 12, 11, 0, 0), fig{"0.00", "0.00", "0.00", "204.00", "0.00", "1836.00", "-2040.00", "0.00"}},
		{"Everything", local(2026, 11, 1, 0, 0), local(2027, 1, 1, 0, 0), fig{"0.00", "3448.00", "1000.00", "1020.00", "408.00", "1836.00", "0.00", "0.00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := liab.Report(tt.from, tt.to, false)
			require.Equal(t, tt.want, figs(rep.Period))
			requireIdentity(t, rep.Period)
		})
	}
	tot := m.Totals()
	require.NoError(t, tot.Check())
	requireMoney(t, "0.00", tot.Liability)
	requireMoney(t, "0.00", tot.Breakage)
}

func TestLiability_Empty(t *testing.T) {
	l := projections.NewLiability(shanghai)
	rep := l.Report(local(2026, 1, 1, 0, 0), local(2026, 1, 3, 0, 0), true)
	requireMoney(t, "0.00", rep.Opening)
	requireMoney(t, "0.00", rep.Closing)
	require.Len(t, rep.Days, 2)
	// Events without a movement are not recorded.
	_, ok := projections.MovementsOf(domain.Envelope{Event: domain.PackageActivated{}}, domain.Package{})
	require.False(t, ok)
	_, ok = projections.MovementsOf(domain.Envelope{Event: domain.PackageExpired{}}, domain.Package{})
	require.False(t, ok)
	_, ok = projections.MovementsOf(domain.Envelope{Event: domain.PaymentVoided{PaymentID: uuid.New()}}, domain.Package{})
	require.False(t, ok, "a void of an unknown payment moves nothing")
}

// TestLiability_JSON checks the report's shape of DESIGN.md §5.
func TestLiability_JSON(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	setupOil(t, l, local(2026, 11, 1, 8, 0))
	id := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, who{at: local(2026, 11, 1, 9, 0), store: "S1"})
	l.pay(id, "2448.00", "cash", "R-1", who{at: local(2026, 11, 1, 10, 0), store: "S1"})
	rep := m.Liability().Report(local(2026, 11, 1, 0, 0), local(2026, 11, 3, 0, 0), true)
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	days := got["days"].([]any)
	require.Len(t, days, 2)
	delete(got, "days")
	want := map[string]any{
		"from": "2026-11-01T00:00:00+08:00", "to": "2026-11-03T00:00:00+08:00",
		"opening": "0.00", "payments": "2448.00", "voids": "0.00", "recognized": "0.00",
		"reversals": "0.00", "refunds": "0.00", "breakage": "0.00", "closing": "2448.00",
	}
	require.Equal(t, want, got)
	want["to"], want["closing"] = "2026-11-02T00:00:00+08:00", "2448.00"
	require.Equal(t, want, days[0])
	require.Equal(t, map[string]any{
		"from": "2026-11-02T00:00:00+08:00", "to": "2026-11-03T00:00:00+08:00",
		"opening": "2448.00", "payments": "0.00", "voids": "0.00", "recognized": "0.00",
		"reversals": "0.00", "refunds": "0.00", "breakage": "0.00", "closing": "2448.00",
	}, days[1])

	b, err = json.Marshal(m.Liability().Report(local(2026, 11, 1, 0, 0), local(2026, 11, 3, 0, 0), false))
	require.NoError(t, err)
	require.NotContains(t, string(b), `"days"`, "days only when asked")
}
