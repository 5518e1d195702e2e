package projections_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore/eventstoretest"
	"github.com/packledger/packledger/projections"
)

// reference is the read models as the domain's own fold gives them: each
// package domain.Fold of its history, the roll-forward and the daily
// close fed each event with the package before it. The Model keeps a
// compact form of its own; it must answer exactly as this does.
type reference struct {
	hist      map[uuid.UUID][]domain.Envelope
	order     []uuid.UUID
	liability *projections.Liability
	close     *projections.DailyClose
	first     time.Time
	last      time.Time
}

func newReference() *reference {
	return &reference{hist: map[uuid.UUID][]domain.Envelope{},
		liability: projections.NewLiability(shanghai), close: projections.NewDailyClose(shanghai)}
}

func (r *reference) apply(env domain.Envelope) {
	id, err := uuid.Parse(env.Aggregate)
	if err != nil || env.Type == "PlanDefined" || env.Type == "PlanRetired" || env.Type == "ReceiptClaimed" {
		return
	}
	if r.first.IsZero() || env.BusinessTime.Before(r.first) {
		r.first = env.BusinessTime
	}
	if env.BusinessTime.After(r.last) {
		r.last = env.BusinessTime
	}
	if _, ok := r.hist[id]; !ok {
		r.order = append(r.order, id)
	}
	before := domain.Fold(r.hist[id])
	r.liability.Apply(env, before)
	r.close.Apply(env, before)
	r.hist[id] = append(r.hist[id], env)
}

func viewJSON(t testing.TB, p domain.Package) string {
	b, err := json.Marshal(projections.ViewPackage(p))
	require.NoError(t, err)
	return string(b)
}

// requireSameAsReference compares everything the Model answers with the
// reference: every package, the look-ups, the totals, the expiry
// candidates, the roll-forward of every day and the close of every day
// and store.
func requireSameAsReference(t *testing.T, ref *reference, m *projections.Model) {
	t.Helper()
	var want domain.Balances
	for _, id := range ref.order {
		p := domain.Fold(ref.hist[id])
		want = want.Add(p.Balances())
		got, ok := m.Package(id)
		require.True(t, ok, "package %s", id)
		require.Equal(t, viewJSON(t, p), viewJSON(t, got), "package %s after %d events", id, len(ref.hist[id]))
		if p.Vehicle.VIN != "" {
			require.Contains(t, ids(m.Find(projections.Query{VIN: p.Vehicle.VIN})), id)
		}
		if p.Customer.ID != "" {
			require.Contains(t, ids(m.Find(projections.Query{Customer: p.Customer.ID, Plate: p.Vehicle.Plate})), id)
		}
	}
	_, _, n := m.Stats()
	require.Equal(t, len(ref.order), n)
	require.True(t, want.Equal(m.Totals()), "totals %+v, want %+v", m.Totals(), want)
	for _, now := range []time.Time{ref.first, ref.last, ref.last.AddDate(2, 0, 0), ref.last.AddDate(4, 0, 0)} {
		var wantExp, wantBrk []uuid.UUID
		for _, id := range ref.order {
			p := domain.Fold(ref.hist[id])
			switch {
			case p.Status == domain.StatusActive && p.ExpiresAt != nil && !now.Before(*p.ExpiresAt):
				wantExp = append(wantExp, id)
			case p.Status == domain.StatusExpired && p.ExpiredAt != nil && p.Liability.IsPositive() &&
				!now.Before(domain.AddMonths(p.ExpiredAt.In(shanghai), 3)):
				wantBrk = append(wantBrk, id)
			}
		}
		exp, brk := m.ExpiryCandidates(now, 3)
		require.ElementsMatch(t, wantExp, exp, "expiry candidates at %s", now)
		require.ElementsMatch(t, wantBrk, brk, "breakage candidates at %s", now)
	}
	if ref.first.IsZero() {
		return
	}
	from := time.Date(ref.first.In(shanghai).Year(), ref.first.In(shanghai).Month(), ref.first.In(shanghai).Day(), 0, 0, 0, 0, shanghai)
	to := ref.last.Add(24 * time.Hour)
	wr, gr := ref.liability.Report(from, to, true), m.Liability().Report(from, to, true)
	require.Equal(t, periodStrings(wr.Period), periodStrings(gr.Period))
	require.Len(t, gr.Days, len(wr.Days))
	for i := range wr.Days {
		require.Equal(t, periodStrings(wr.Days[i]), periodStrings(gr.Days[i]), "day %s", wr.Days[i].From)
		day := wr.Days[i].From.Format("2006-01-02")
		for _, store := range []string{"", "S1", "S2", "S3"} {
			w, g := ref.close.Report(day, store), m.DailyClose().Report(day, store)
			wb, _ := json.Marshal(w)
			gb, _ := json.Marshal(g)
			require.Equal(t, string(wb), string(gb), "daily close %s store %q", day, store)
		}
	}
}

// TestModel_CompactMatchesDomain_Decided: a randomized history of over
// 10,000 events that the domain decided.
func TestModel_CompactMatchesDomain_Decided(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedFor(t), 11))
	l, _, _, _ := genHistory10k(t, rng)
	m, ref := projections.NewModel(shanghai), newReference()
	for _, env := range l.envs {
		m.Apply(env)
		ref.apply(env)
	}
	requireSameAsReference(t, ref, m)
}

// TestModel_CompactMatchesDomain_AnyHistory: histories no command would
// write (a package sold twice, a unit redeemed twice, an event before the
// sale, amounts of every sign and size, units out of range, times in
// several zones) still fold exactly as domain.Apply folds them: the
// packages they touch are kept in the domain's own form.
func TestModel_CompactMatchesDomain_AnyHistory(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedFor(t), 12))
	plan := oilPlan(t, "OIL6", domain.RefundProRata, 1)
	zones := []*time.Location{time.UTC, shanghai, time.FixedZone("", -5*3600)}
	pkgs := make([]uuid.UUID, 25)
	for i := range pkgs {
		pkgs[i] = uuid.New()
	}
	rare := func(n int) bool { return rng.IntN(n) == 0 }
	reused := func(fresh uuid.UUID, ids []uuid.UUID) uuid.UUID {
		if len(ids) > 0 && rare(12) {
			return ids[rng.IntN(len(ids))]
		}
		return fresh
	}
	amount := func(valid domain.Money) domain.Money {
		if !rare(15) {
			return valid
		}
		switch rng.IntN(4) {
		case 0:
			return domain.Cents(-rng.Int64N(100000))
		case 1:
			return domain.Cents(1 << 62)
		case 2:
			return domain.Money{}
		}
		return domain.Cents(rng.Int64N(300000))
	}
	for range 60 {
		m, ref := projections.NewModel(shanghai), newReference()
		clock := local(2026, 3, 1, 9, 0)
		for seq := uint64(1); seq <= 200; seq++ {
			clock = clock.Add(time.Duration(rng.IntN(3*3600)) * time.Second)
			at := clock
			if rare(10) {
				at = at.In(zones[rng.IntN(len(zones))])
			}
			if rare(15) {
				at = at.Add(-time.Duration(rng.IntN(20*3600)) * time.Second)
			}
			id := pkgs[rng.IntN(len(pkgs))]
			p := domain.Fold(ref.hist[id])
			var payIDs, redIDs []uuid.UUID
			for _, x := range p.Payments {
				payIDs = append(payIDs, x.ID)
			}
			for _, x := range p.Redemptions {
				redIDs = append(redIDs, x.ID)
			}
			var ev domain.Event
			kind := rng.IntN(12)
			if !p.Exists() && !rare(30) || p.Exists() && rare(60) {
				kind = 0
			} else if kind == 0 {
				kind = 1 + rng.IntN(11)
			}
			switch kind {
			case 0:
				units := plan.Units
				if rare(8) {
					units = append([]domain.UnitSpec(nil), units[:rng.IntN(len(units))]...)
				}
				ev = domain.PackageSold{PackageID: id, Plan: plan, Units: units, Price: amount(plan.Price), Advisor: "adv1",
					Customer: domain.Customer{ID: "C" + string(rune('a'+rng.IntN(5))), Name: "Li", Phone: "138"},
					Vehicle:  domain.Vehicle{VIN: "VIN" + string(rune('A'+rng.IntN(6))), Plate: "沪A 0" + string(rune('0'+rng.IntN(9))), Model: "Lavida"}}
			case 1, 2:
				ev = domain.PaymentRecorded{PaymentID: reused(uuid.New(), payIDs), Amount: amount(domain.Cents(1 + rng.Int64N(150000))),
					Method: domain.PaymentMethods[rng.IntN(5)], Receipt: "R" + string(rune('0'+rng.IntN(9)))}
			case 3:
				pid := uuid.New()
				if len(payIDs) > 0 && !rare(5) {
					pid = payIDs[rng.IntN(len(payIDs))]
				}
				ev = domain.PaymentVoided{PaymentID: pid, Reason: "keyed wrong"}
			case 4:
				x := at.AddDate(0, rng.IntN(3), 0)
				if rare(6) {
					x = x.In(zones[rng.IntN(len(zones))])
				}
				ev = domain.PackageActivated{ActivatedAt: at, ExpiresAt: x}
			case 5, 6, 7:
				u := rng.IntN(len(plan.Units))
				if rare(10) {
					u = rng.IntN(len(plan.Units)+2) - 1
				} else {
					for _, x := range p.Units {
						if x.RedemptionID == nil {
							u = x.Index
							break
						}
					}
				}
				svc, val := "oil_change", domain.MustMoney("408.00")
				if rare(10) {
					svc, val = "wash", amount(val)
				}
				ev = domain.VisitRedeemed{RedemptionID: reused(uuid.New(), redIDs), Unit: u, Service: svc, Value: val,
					RepairOrder: "RO" + string(rune('0'+rng.IntN(9))), Mileage: rng.IntN(1 << 20)}
			case 8:
				rid := uuid.New()
				if len(redIDs) > 0 && !rare(5) {
					rid = redIDs[rng.IntN(len(redIDs))]
				}
				ev = domain.RedemptionReversed{RedemptionID: rid, Reason: "wrong car"}
			case 9:
				ev = domain.PackageRefunded{Amount: amount(p.Liability), Recognized: amount(domain.Cents(rng.Int64N(1000))),
					Fee: domain.Cents(rng.Int64N(1000)), Base: p.Liability, Policy: "pro_rata", Method: "cash", Reason: "moved"}
			case 10:
				ev = domain.PackageExpired{ExpiredAt: at}
			default:
				if rng.IntN(2) == 0 {
					ev = domain.BreakageRecognized{Amount: amount(p.Liability), Reason: "policy"}
				} else {
					ev = domain.BreakageReversed{Amount: amount(p.Breakage)}
				}
			}
			env := domain.Envelope{
				ID: uuid.New(), Type: ev.EventType(), Schema: domain.SchemaVersion, Dealer: dealer,
				Store: []string{"S1", "S2", "S3"}[rng.IntN(3)], Aggregate: id.String(), BusinessTime: at, RecordedAt: at,
				Actor: cashier, Event: ev, Seq: seq, Subject: "ledger.demo.packages." + id.String(),
			}
			m.Apply(env)
			ref.apply(env)
		}
		t.Run("", func(t *testing.T) {
			requireSameAsReference(t, ref, m)
		})
	}
}

// TestModel_PlanCopiesFromStoredSales: sales decoded from stored events
// share their plan copy only when the plan, units and price they stored
// are the same; each package shows the plan its own sale stored.
func TestModel_PlanCopiesFromStoredSales(t *testing.T) {
	c := eventstoretest.NewCorpus(t, eventstoretest.CorpusConfig{Packages: 200, Seed: seedFor(t)})
	m := projections.NewModel(shanghai)
	sold := map[uuid.UUID]domain.Plan{}
	for i, r := range c.Records {
		env, err := r.Decode(uint64(i + 1))
		require.NoError(t, err)
		if s, ok := env.Event.(domain.PackageSold); ok && i%3 == 0 {
			// Another copy of the plan under the same code, stored as
			// the store would store it.
			s.Plan.Name += fmt.Sprintf(" (%d)", i%2)
			if i%2 == 0 {
				s.Plan.Gifts = append(s.Plan.Gifts, "mats")
			}
			env.Event = s
			env.Data, err = domain.EncodeEvent(s)
			require.NoError(t, err)
		}
		if s, ok := env.Event.(domain.PackageSold); ok {
			sold[s.PackageID] = s.Plan
		}
		m.Apply(env)
	}
	require.Len(t, sold, 200)
	for id, plan := range sold {
		p, ok := m.Package(id)
		require.True(t, ok)
		want, _ := json.Marshal(plan)
		got, _ := json.Marshal(p.Plan)
		require.Equal(t, string(want), string(got), "package %s", id)
	}
}
