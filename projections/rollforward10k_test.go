package projections_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
	"github.com/packledger/packledger/projections/audit"
)

// rollForward10kDays is the span of the history, in business days.
const rollForward10kDays = 90

// genHistory10k is a randomized history of well over 10,000 events over
// ninety business days in Asia/Shanghai, decided by the domain on the
// in-memory ledger: sales of three plans, payments in parts, voids,
// redemptions, reversals, refunds by both policies and within the free
// look, expiry by a sweep every six hours, breakage by policy (a week
// after expiry) and by a manager, and refunds after breakage.
func genHistory10k(t *testing.T, rng *rand.Rand) (*ledger, []uuid.UUID, time.Time, map[string]int) {
	t.Helper()
	l := newLedger(t, nil)
	start := local(2026, 9, 1, 0, 0)
	mgr := who{at: start.Add(time.Hour), store: "S1", actor: manager}
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
		Rate:         rate("0.8"), ValidityMonths: 2, RefundPolicy: domain.RefundProRata, CancellationFeeRate: rate("0.10"),
	})
	require.NoError(t, err)
	l.definePlan(ten, mgr)
	plans := []string{"OIL6", "MIX", "TEN"}

	stores := []string{"S1", "S2", "S3"}
	cashiers := []domain.Actor{{ID: "cash1", Role: domain.RoleCashier}, {ID: "cash2", Role: domain.RoleCashier}}
	const vinAlphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
	randomVIN := func() string {
		b := make([]byte, 17)
		for i := range b {
			b[i] = vinAlphabet[rng.IntN(len(vinAlphabet))]
		}
		return string(b)
	}
	pick := rng.IntN

	// Step instants: each business day, a couple of hundred commands
	// between 08:00 and 21:00 local time.
	const perDay = 190
	var at []time.Time
	for d := range rollForward10kDays {
		open := start.AddDate(0, 0, d).Add(8 * time.Hour)
		for range perDay {
			at = append(at, open.Add(time.Duration(rng.Int64N(int64(13*time.Hour)))))
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })

	var pkgs []uuid.UUID
	refs := 0
	ref := func(prefix string) string { refs++; return fmt.Sprintf("%s-%d", prefix, refs) }
	counts := map[string]int{}
	lastSweep := start
	const breakageAfter = 7 * 24 * time.Hour
	for _, now := range at {
		// The sweep, as the server runs it: expiry when validity ends,
		// breakage by policy a week after expiry (for about half of the
		// packages; the others wait for a manager or a refund).
		if now.Sub(lastSweep) > 6*time.Hour {
			lastSweep = now
			sys := who{at: now, store: "S1", actor: system}
			for _, id := range pkgs {
				p := l.state[id]
				switch {
				case p.Status == domain.StatusActive && p.ExpiresAt != nil && !now.Before(*p.ExpiresAt):
					l.do(id, domain.Expire{}, sys)
				case p.Status == domain.StatusExpired && p.ExpiredAt != nil && p.Liability.IsPositive() &&
					now.Sub(*p.ExpiredAt) >= breakageAfter && id[15]%2 == 0:
					l.do(id, domain.RecognizeBreakage{Reason: "policy: a week after expiry"}, sys)
				}
			}
		}
		store := stores[pick(len(stores))]
		if len(pkgs) < 40 || (len(pkgs) < 1800 && rng.Float64() < 0.13) {
			id := l.sell(plans[pick(len(plans))], sale{
				customer: fmt.Sprintf("C%d", pick(900)), vin: randomVIN(), plate: fmt.Sprintf("沪A%05d", pick(100000)),
			}, who{at: now, store: store, actor: advisor})
			pkgs = append(pkgs, id)
			continue
		}
		id := pkgs[pick(len(pkgs))]
		p := l.state[id]
		cash := who{at: now, store: store, actor: cashiers[pick(len(cashiers))]}
		mgrAt := who{at: now, store: store, actor: manager}
		advAt := who{at: now, store: store, actor: advisor}
		cmd, w := randomCommand(rng, p, commandOdds{pay: 0.75, voidAwaiting: 0.88, refundAwaiting: 0.92, redeem: 0.70, reverse: 0.80, voidActive: 0.86, refundActive: 0.90, reverseUsedUp: 0.4, breakage: 0.35, refundExpired: 0.70, reverseExpired: 0.80}, ref, cash, mgrAt, advAt)
		if cmd == nil {
			continue
		}
		if _, err := l.try(id, cmd, w); err != nil {
			counts["refused"]++
		}
	}
	for _, env := range l.envs {
		counts[env.Type]++
	}
	return l, pkgs, start, counts
}

// TestLiability_RollForward10k rolls the liability forward by business day
// over a randomized history of at least 10,000 events and ninety days:
// every day opening + payments − voids − recognized + reversals − refunds
// − breakage = closing, each closing is the next day's opening and the
// liability the events before that midnight left owing; the period's
// closing is the packages' total liability and its movements are the sums
// of the packages' columns. The auditor's Verifier, fed the same events,
// finds nothing.
func TestLiability_RollForward10k(t *testing.T) {
	seed := seedFor(t)
	rng := rand.New(rand.NewPCG(seed, seed^0xd1b54a32d192ed03))
	began := time.Now()
	l, pkgs, start, counts := genHistory10k(t, rng)
	envs := l.envs
	t.Logf("seed %d: %d events, %d packages over %d days, generated in %s; %v",
		seed, len(envs), len(pkgs), rollForward10kDays, time.Since(began).Round(time.Millisecond), counts)
	require.GreaterOrEqual(t, len(envs), 10_000, "at least 10,000 events")
	for _, typ := range []string{"PackageSold", "PaymentRecorded", "PaymentVoided", "PackageActivated", "VisitRedeemed",
		"RedemptionReversed", "PackageRefunded", "PackageExpired", "BreakageRecognized", "BreakageReversed"} {
		require.Positive(t, counts[typ], "the history has a %s", typ)
	}

	// The model, fed in stream order; and, independently, what each event
	// did to its package's liability, from the domain's balance columns.
	m := projections.NewModel(shanghai)
	states := map[string]domain.Package{}
	var rs []rolled
	for _, env := range envs {
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

	// The sum over the packages, from the ledger's own states, is the
	// model's totals.
	var own domain.Balances
	for _, id := range pkgs {
		p := l.state[id]
		require.NoError(t, domain.CheckInvariant(p), "package %s", id)
		own = own.Add(p.Balances())
	}
	totals := m.Totals()
	require.NoError(t, totals.Check())
	require.True(t, own.Equal(totals), "Σ packages %+v = model totals %+v", own, totals)

	from, to := start, start.AddDate(0, 0, rollForward10kDays)
	require.False(t, envs[len(envs)-1].BusinessTime.After(to), "the history ends within the period")
	rep := m.Liability().Report(from, to, true)
	require.Len(t, rep.Days, rollForward10kDays)
	requireIdentity(t, rep.Period, "the whole period")
	requireMoney(t, "0.00", rep.Opening, "nothing is owed before the first sale")
	requireMoney(t, "0.00", rep.Days[0].Opening)

	// Day by day, against the liability the events before each midnight
	// left owing.
	owed, k := domain.Money{}, 0
	var sum projections.Movements
	for i, d := range rep.Days {
		requireIdentity(t, d, "day %d (%s)", i, d.From.Format("2006-01-02"))
		require.True(t, d.From.Equal(from.AddDate(0, 0, i)), "day %d starts at local midnight: %s", i, d.From)
		require.True(t, d.To.Equal(from.AddDate(0, 0, i+1)), "day %d ends at the next local midnight: %s", i, d.To)
		if i > 0 {
			requireSameMoney(t, rep.Days[i-1].Closing, d.Opening, "day %d's opening is day %d's closing", i, i-1)
		}
		requireSameMoney(t, owed, d.Opening, "day %d's opening is what the events before it left owing", i)
		var mv projections.Movements
		for ; k < len(rs) && rs[k].env.BusinessTime.Before(d.To); k++ {
			owed = owed.Add(rs[k].liabilityDelta)
			mv = addMovements(mv, rs[k].mv)
		}
		requireSameMoney(t, owed, d.Closing, "day %d's closing is what the events up to its end left owing", i)
		require.Equal(t, movementStrings(mv), movementStrings(d.Movements), "day %d's movements are its events'", i)
		sum = addMovements(sum, d.Movements)
	}
	require.Equal(t, len(rs), k, "every package event falls within the period")
	require.Equal(t, movementStrings(rep.Movements), movementStrings(sum), "the days' movements sum to the period's")

	// The period closes at the packages' total liability, and its
	// movements are the sums of the packages' columns.
	last := rep.Days[len(rep.Days)-1]
	requireSameMoney(t, totals.Liability, last.Closing, "the final closing is the total liability")
	requireSameMoney(t, totals.Liability, rep.Closing)
	requireSameMoney(t, totals.Paid, rep.Payments, "payments")
	requireSameMoney(t, totals.Voided, rep.Voids, "voids")
	requireSameMoney(t, totals.Refunded, rep.Refunds, "refunds")
	requireSameMoney(t, totals.Breakage, rep.Breakage, "breakage, net of reversals")
	requireSameMoney(t, totals.Recognized, rep.Recognized.Sub(rep.Reversals), "recognized, net of reversals")

	// The auditor's recomputation agrees and finds nothing.
	began = time.Now()
	v := audit.New(dealer, shanghai)
	for _, env := range envs {
		v.Add(env.Seq, env.Subject, env, nil)
	}
	fin := v.Finish()
	t.Logf("audit.Verifier: %d events in %s", fin.Events, time.Since(began).Round(time.Millisecond))
	require.True(t, fin.OK, "verifier findings: %v", fin.Findings)
	require.Empty(t, fin.Findings)
	require.Equal(t, len(envs), fin.Events)
	require.Equal(t, len(pkgs), fin.Packages)
	require.True(t, fin.Totals.Equal(totals), "verifier totals %+v = model totals %+v", fin.Totals, totals)
}

func addMovements(a, b projections.Movements) projections.Movements {
	return projections.Movements{
		Payments: a.Payments.Add(b.Payments), Voids: a.Voids.Add(b.Voids),
		Recognized: a.Recognized.Add(b.Recognized), Reversals: a.Reversals.Add(b.Reversals),
		Refunds: a.Refunds.Add(b.Refunds), Breakage: a.Breakage.Add(b.Breakage),
	}
}
