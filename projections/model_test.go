package projections_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

func ids(ps []domain.Package) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

const (
	vinA = "LSVAU2180N2183294"
	vinB = "LFV2A21K8G3012345"
	vinC = "WVWZZZ1KZ8W123456"
)

// findFixture: C1 owns two vehicles (A, B); vehicle A was later sold a
// second package for customer C2; C3 has vehicle C.
type findFixture struct {
	m              *projections.Model
	l              *ledger
	p1, p2, p3, p4 uuid.UUID
}

func newFindFixture(t *testing.T) findFixture {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	setupOil(t, l, local(2026, 1, 1, 9, 0))
	f := findFixture{m: m, l: l}
	f.p1 = l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A 1B345"}, who{at: local(2026, 1, 2, 10, 0), store: "S1"})
	// A VIN typed in lower case at sale is stored normalized.
	f.p2 = l.sell("OIL6", sale{customer: "C1", vin: "lfv2a21k8g3012345", plate: "沪B99999"}, who{at: local(2026, 1, 3, 10, 0), store: "S1"})
	f.p3 = l.sell("OIL6", sale{customer: "C2", vin: vinA, plate: "沪a1b345"}, who{at: local(2026, 1, 4, 10, 0), store: "S2"})
	f.p4 = l.sell("OIL6", sale{customer: "C3", vin: vinC, plate: "京N 88 888"}, who{at: local(2026, 1, 5, 10, 0), store: "S2"})
	return f
}

func TestModel_Find(t *testing.T) {
	f := newFindFixture(t)
	m := f.m

	t.Run("VINCaseInsensitive", func(t *testing.T) {
		for _, q := range []string{vinA, "lsvau2180n2183294", "LsVaU2180n2183294", "  " + vinA + " "} {
			require.Equal(t, []uuid.UUID{f.p3, f.p1}, ids(m.Find(projections.Query{VIN: q})), "VIN %q, newest sale first", q)
		}
		require.Equal(t, []uuid.UUID{f.p2}, ids(m.Find(projections.Query{VIN: vinB})), "VIN sold in lower case")
		require.Equal(t, []uuid.UUID{f.p2}, ids(m.Find(projections.Query{VIN: "lfv2a21k8g3012345"})))
		p, ok := m.Package(f.p2)
		require.True(t, ok)
		require.Equal(t, vinB, p.Vehicle.VIN)
	})

	t.Run("PlateIgnoresSpacesAndCase", func(t *testing.T) {
		for _, q := range []string{"沪A1B345", "沪a1b345", "沪A 1B345", " 沪 a 1 b 3 4 5 ", "沪A\t1B345"} {
			require.Equal(t, []uuid.UUID{f.p3, f.p1}, ids(m.Find(projections.Query{Plate: q})), "plate %q", q)
		}
		require.Equal(t, []uuid.UUID{f.p4}, ids(m.Find(projections.Query{Plate: "京n88888"})))
		require.Equal(t, []uuid.UUID{f.p2}, ids(m.Find(projections.Query{Plate: "沪b 99999"})))
	})

	t.Run("Customer", func(t *testing.T) {
		require.Equal(t, []uuid.UUID{f.p2, f.p1}, ids(m.Find(projections.Query{Customer: "C1"})))
		require.Equal(t, []uuid.UUID{f.p3}, ids(m.Find(projections.Query{Customer: "C2"})))
		require.Empty(t, m.Find(projections.Query{Customer: "C9"}))
	})

	t.Run("Combinations", func(t *testing.T) {
		tests := []struct {
			name string
			q    projections.Query
			want []uuid.UUID
		}{
			{"VINAndCustomer", projections.Query{VIN: "lsvau2180n2183294", Customer: "C1"}, []uuid.UUID{f.p1}},
			{"VINAndOtherCustomer", projections.Query{VIN: vinA, Customer: "C2"}, []uuid.UUID{f.p3}},
			{"VINAndPlate", projections.Query{VIN: vinA, Plate: "沪a 1b345"}, []uuid.UUID{f.p3, f.p1}},
			{"PlateAndCustomer", projections.Query{Plate: "沪A1B345", Customer: "C2"}, []uuid.UUID{f.p3}},
			{"AllThree", projections.Query{VIN: vinA, Plate: "沪A1B345", Customer: "C1"}, []uuid.UUID{f.p1}},
			{"VINOfOtherPlate", projections.Query{VIN: vinA, Plate: "沪B99999"}, nil},
			{"CustomerWithoutThatVIN", projections.Query{VIN: vinC, Customer: "C1"}, nil},
			{"UnknownVIN", projections.Query{VIN: "LSVAU2180N2183295"}, nil},
			{"Nothing", projections.Query{}, []uuid.UUID{f.p4, f.p3, f.p2, f.p1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := m.Find(tt.q)
				require.NotNil(t, got, "an empty result is [], not null")
				if tt.want == nil {
					require.Empty(t, got)
					return
				}
				require.Equal(t, tt.want, ids(got))
			})
		}
	})

	t.Run("FindDoesNotDisturbTheIndex", func(t *testing.T) {
		// Intersections must work on copies: a second query gives the same.
		for range 3 {
			require.Equal(t, []uuid.UUID{f.p1}, ids(m.Find(projections.Query{VIN: vinA, Customer: "C1"})))
			require.Equal(t, []uuid.UUID{f.p3, f.p1}, ids(m.Find(projections.Query{VIN: vinA})))
		}
	})

	t.Run("SameInstantByID", func(t *testing.T) {
		m := projections.NewModel(shanghai)
		l := newLedger(t, m)
		setupOil(t, l, local(2026, 1, 1, 9, 0))
		at := who{at: local(2026, 2, 1, 10, 0), store: "S1"}
		var sold []uuid.UUID
		for range 5 {
			sold = append(sold, l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, at))
		}
		slices.SortFunc(sold, func(a, b uuid.UUID) int {
			switch {
			case a.String() < b.String():
				return -1
			case a.String() > b.String():
				return 1
			}
			return 0
		})
		require.Equal(t, sold, ids(m.Find(projections.Query{Customer: "C1"})))
	})

	t.Run("ReflectsLaterEvents", func(t *testing.T) {
		f.l.pay(f.p1, "1000.00", "cash", "R-F1", who{at: local(2026, 1, 6, 10, 0), store: "S1"})
		got := m.Find(projections.Query{VIN: vinA, Customer: "C1"})
		require.Len(t, got, 1)
		requireMoney(t, "1000.00", got[0].Paid)
		require.Equal(t, f.l.folded(f.p1), got[0])
	})
}

func TestModel_Account(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	setupOil(t, l, local(2026, 1, 1, 9, 0))
	s1 := who{at: local(2026, 1, 2, 10, 0), store: "S1"}

	// C1: one package paid and used once (2040.00 owed), one part-paid (1000.00).
	a := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, s1)
	l.pay(a, "2448.00", "card", "R-1", s1)
	l.redeem(a, "oil_change", "RO-1", s1)
	b := l.sell("OIL6", sale{customer: "C1", vin: vinB, plate: "沪B12345"}, who{at: local(2026, 1, 3, 10, 0), store: "S2"})
	l.pay(b, "1000.00", "cash", "R-2", s1)
	// C2: refunded, owes nothing but still has an account.
	c := l.sell("OIL6", sale{customer: "C2", vin: vinC, plate: "沪C12345"}, s1)
	l.pay(c, "2448.00", "wechat", "R-3", s1)
	l.do(c, domain.RefundPackage{Method: "wechat", Reason: "changed mind"}, who{at: local(2026, 1, 4, 10, 0), store: "S1", actor: manager})

	t.Run("SumsTheCustomersPackages", func(t *testing.T) {
		acc, ok := m.Account("C1")
		require.True(t, ok)
		require.Equal(t, "C1", acc.CustomerID)
		requireMoney(t, "3040.00", acc.Liability)
		require.Equal(t, []uuid.UUID{b, a}, ids(acc.Packages))
		var sum domain.Money
		for _, id := range []uuid.UUID{a, b} {
			p, ok := m.Package(id)
			require.True(t, ok)
			sum = sum.Add(p.Liability)
		}
		requireSameMoney(t, sum, acc.Liability)
	})

	t.Run("RefundedOwesNothing", func(t *testing.T) {
		acc, ok := m.Account("C2")
		require.True(t, ok)
		requireMoney(t, "0.00", acc.Liability)
		require.Equal(t, []uuid.UUID{c}, ids(acc.Packages))
		require.Equal(t, domain.StatusRefunded, acc.Packages[0].Status)
	})

	t.Run("UnknownCustomer", func(t *testing.T) {
		acc, ok := m.Account("C9")
		require.False(t, ok)
		require.Equal(t, "C9", acc.CustomerID)
		requireMoney(t, "0.00", acc.Liability)
		require.Empty(t, acc.Packages)
	})

	t.Run("AccountsSumToTotals", func(t *testing.T) {
		var sum domain.Money
		for _, cust := range []string{"C1", "C2"} {
			acc, _ := m.Account(cust)
			sum = sum.Add(acc.Liability)
		}
		requireSameMoney(t, m.Totals().Liability, sum)
		require.NoError(t, m.Totals().Check())
	})
}

// TestModel_FindByPhone: a customer is found by phone however it was
// written, at the sale or at the search: spaces, dashes, +86.
func TestModel_FindByPhone(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	setupOil(t, l, local(2026, 1, 1, 9, 0))
	at := who{at: local(2026, 1, 2, 10, 0), store: "S1"}
	a := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345", phone: "138 0013 8000"}, at)
	b := l.sell("OIL6", sale{customer: "C2", vin: vinB, plate: "沪B12345", phone: "+86-139-0000-0000"}, who{at: local(2026, 1, 3, 10, 0), store: "S1"})
	c := l.sell("OIL6", sale{customer: "C1", vin: vinC, plate: "沪C12345", phone: "13800138000"}, who{at: local(2026, 1, 4, 10, 0), store: "S1"})
	for q, want := range map[string][]uuid.UUID{
		"13800138000": {c, a}, "138-0013-8000": {c, a}, "+86 138 0013 8000": {c, a},
		"13900000000": {b}, "8613900000000": {b}, "13700000000": nil, "---": nil,
	} {
		require.Equal(t, want, nilIfEmpty(ids(m.Find(projections.Query{Phone: q}))), "phone %q", q)
	}
}

func nilIfEmpty(ids []uuid.UUID) []uuid.UUID {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

// TestModel_Awaiting: the cashier's queue is the packages awaiting
// payment, part-paid ones too, the longest waiting first, of one store or
// of all; paid, refunded and voided-back-to-unpaid packages as they are.
func TestModel_Awaiting(t *testing.T) {
	f := newFindFixture(t) // p1, p2 at S1; p3, p4 at S2, sold in that order
	s1 := who{at: local(2026, 1, 6, 10, 0), store: "S1"}
	f.l.pay(f.p1, "2448.00", "card", "R-1", s1) // paid: active
	f.l.pay(f.p3, "1000.00", "cash", "R-3", s1) // part-paid: still waiting

	all, n := f.m.Awaiting("", 10)
	require.Equal(t, []uuid.UUID{f.p2, f.p3, f.p4}, ids(all))
	require.Equal(t, 3, n)
	s2, n := f.m.Awaiting("S2", 10)
	require.Equal(t, []uuid.UUID{f.p3, f.p4}, ids(s2))
	require.Equal(t, 2, n)
	requireMoney(t, "1000.00", s2[0].Paid)
	first, n := f.m.Awaiting("", 1)
	require.Equal(t, []uuid.UUID{f.p2}, ids(first), "at most limit")
	require.Equal(t, 3, n, "but all counted")
	none, n := f.m.Awaiting("S9", 10)
	require.Empty(t, none)
	require.Zero(t, n)
}

func TestModel_Plans(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	mgr := who{at: local(2026, 1, 1, 9, 0), store: "S1", actor: manager}
	for _, code := range []string{"B", "D", "A", "C", "a-lower"} {
		l.definePlan(oilPlan(t, code, domain.RefundProRata, 12), mgr)
	}
	retired := who{at: local(2026, 1, 5, 9, 0), store: "S1", actor: manager}
	l.retirePlan("A", "replaced", retired)
	l.retirePlan("D", "replaced", retired)

	t.Run("ActiveFirstThenByCode", func(t *testing.T) {
		var got []string
		for _, p := range m.Plans() {
			got = append(got, p.Plan.Code+":"+string(p.Status))
		}
		require.Equal(t, []string{"B:active", "C:active", "a-lower:active", "A:retired", "D:retired"}, got)
	})

	t.Run("Plan", func(t *testing.T) {
		p, ok := m.Plan("A")
		require.True(t, ok)
		require.Equal(t, domain.PlanStatusRetired, p.Status)
		require.Equal(t, "replaced", p.Reason)
		require.NotNil(t, p.RetiredAt)
		require.True(t, p.RetiredAt.Equal(retired.at))
		require.True(t, p.DefinedAt.Equal(mgr.at))
		requireMoney(t, "2448.00", p.Plan.Price)

		p, ok = m.Plan("B")
		require.True(t, ok)
		require.Equal(t, domain.PlanStatusActive, p.Status)
		require.Nil(t, p.RetiredAt)

		_, ok = m.Plan("Z")
		require.False(t, ok)
	})

	t.Run("EmptyIsEmptyList", func(t *testing.T) {
		ps := projections.NewModel(shanghai).Plans()
		require.NotNil(t, ps)
		require.Empty(t, ps)
	})

	t.Run("PlansAreNotPackages", func(t *testing.T) {
		_, _, pkgs := m.Stats()
		require.Zero(t, pkgs)
		require.Empty(t, m.Findings(), "a plan's aggregate is its code, not a package id")
	})
}

func TestModel_SaleByKey(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	setupOil(t, l, local(2026, 1, 1, 9, 0))

	id := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"},
		who{at: local(2026, 1, 2, 10, 0), store: "S1", actor: advisor, key: "idem-1"})
	other := domain.Actor{ID: "adv2", Role: domain.RoleAdvisor}
	id2 := l.sell("OIL6", sale{customer: "C2", vin: vinB, plate: "沪B12345"},
		who{at: local(2026, 1, 2, 11, 0), store: "S1", actor: other, key: "idem-1"})
	l.sell("OIL6", sale{customer: "C3", vin: vinC, plate: "沪C12345"}, who{at: local(2026, 1, 2, 12, 0), store: "S1"})
	l.do(id, domain.RecordPayment{PaymentID: uuid.New(), Amount: money("10.00"), Method: "cash", Receipt: "R-1"},
		who{at: local(2026, 1, 2, 13, 0), store: "S1", actor: cashier, key: "pay-key"})

	got, ok := m.SaleByKey("adv1", "idem-1")
	require.True(t, ok)
	require.Equal(t, id, got)

	got, ok = m.SaleByKey("adv2", "idem-1")
	require.True(t, ok, "keys are per actor")
	require.Equal(t, id2, got)

	for _, q := range [][2]string{{"adv1", "idem-2"}, {"adv3", "idem-1"}, {"cash1", "pay-key"}, {"adv1", ""}} {
		_, ok := m.SaleByKey(q[0], q[1])
		require.False(t, ok, "actor %q key %q", q[0], q[1])
	}
}

func TestModel_Reject(t *testing.T) {
	t.Run("RecordsFinding", func(t *testing.T) {
		m := projections.NewModel(shanghai)
		m.Reject(7, "ledger.demo.packages.x", "decode PaymentRecorded: bad amount")
		m.Reject(9, "ledger.demo.packages.y", "unknown event type \"Nope\"")
		require.Equal(t, []projections.Finding{
			{Package: "x", Seq: 7, Subject: "ledger.demo.packages.x", Problem: "decode PaymentRecorded: bad amount"},
			{Package: "y", Seq: 9, Subject: "ledger.demo.packages.y", Problem: "unknown event type \"Nope\""},
		}, m.Findings())
		events, last, pkgs := m.Stats()
		require.Zero(t, events, "a rejected event is not applied")
		require.Equal(t, uint64(9), last)
		require.Zero(t, pkgs)
	})

	t.Run("FindingsAreACopy", func(t *testing.T) {
		m := projections.NewModel(shanghai)
		m.Reject(1, "s", "p")
		f := m.Findings()
		f[0].Problem = "changed"
		_ = append(f, projections.Finding{Seq: 2})
		require.Equal(t, []projections.Finding{{Seq: 1, Subject: "s", Problem: "p"}}, m.Findings())
	})

	t.Run("PackageEventOnANonPackageSubject", func(t *testing.T) {
		m := projections.NewModel(shanghai)
		l := newLedger(t, m)
		setupOil(t, l, local(2026, 1, 1, 9, 0))
		id := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, who{at: local(2026, 1, 2, 10, 0), store: "S1"})
		m.Apply(domain.Envelope{
			Type: "PaymentRecorded", Schema: 1, Dealer: dealer, Store: "S1", Aggregate: "not-a-uuid",
			BusinessTime: local(2026, 1, 2, 11, 0), Actor: cashier, Seq: 42, Subject: "ledger.demo.packages.not-a-uuid",
			Event: domain.PaymentRecorded{PaymentID: uuid.New(), Amount: money("100.00"), Method: "cash", Receipt: "R-9"},
		})
		fs := m.Findings()
		require.Len(t, fs, 1)
		require.Equal(t, uint64(42), fs[0].Seq)
		require.Equal(t, "ledger.demo.packages.not-a-uuid", fs[0].Subject)
		require.NotEmpty(t, fs[0].Problem)
		_, last, pkgs := m.Stats()
		require.Equal(t, uint64(42), last)
		require.Equal(t, 1, pkgs, "no package is made up from the bad subject")
		requireMoney(t, "0.00", m.Totals().Paid)
		rep := m.Liability().Report(local(2026, 1, 1, 0, 0), local(2026, 2, 1, 0, 0), false)
		requireMoney(t, "0.00", rep.Payments, "a rejected payment is not in the roll-forward")
		require.Empty(t, m.DailyClose().Report("2026-01-02", "").Lines, "nor in the close")
		p, _ := m.Package(id)
		requireMoney(t, "0.00", p.Paid)
	})
}

func TestModel_ReceiptClaim(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	pkg, pay := uuid.New(), uuid.New()
	l.emit("R-77", "ledger.demo.receipts.R-77",
		domain.ReceiptClaimed{Receipt: "R-77", PackageID: pkg, PaymentID: pay, Amount: money("12.34")},
		who{at: local(2026, 1, 2, 10, 0), store: "S1", actor: cashier})
	require.Empty(t, m.Findings(), "a receipt's aggregate is its number, not a package id")
	events, _, packages := m.Stats()
	require.Equal(t, 1, events)
	require.Zero(t, packages, "a claim makes no package")
}

func TestModel_ExpiryCandidates(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	l.definePlan(oilPlan(t, "OIL1", domain.RefundProRata, 1), who{at: local(2026, 1, 1, 9, 0), store: "S1", actor: manager})

	activated := local(2026, 1, 10, 10, 0)
	expires := local(2026, 2, 10, 10, 0)
	w := who{at: activated, store: "S1"}
	paidPkg := func(vin string) uuid.UUID {
		id := l.sell("OIL1", sale{customer: "C-" + vin[:4], vin: vin, plate: "沪A12345"}, w)
		l.pay(id, "2448.00", "cash", "R-"+vin[:6], w)
		p, _ := m.Package(id)
		require.Equal(t, domain.StatusActive, p.Status)
		require.True(t, p.ExpiresAt.Equal(expires), "validity runs one month from activation: %s", p.ExpiresAt)
		return id
	}

	active := paidPkg("AAAAA000000000001")
	awaiting := l.sell("OIL1", sale{customer: "C-aw", vin: "AAAAA000000000002", plate: "沪A12345"}, w)
	l.pay(awaiting, "100.00", "cash", "R-aw", w)
	usedUp := paidPkg("AAAAA000000000003")
	for i := range 6 {
		l.redeem(usedUp, "oil_change", "RO-U"+string(rune('0'+i)), w)
	}
	require.Equal(t, domain.StatusUsedUp, l.state[usedUp].Status)

	// Expired at expires_at, then the variants of what is still owed.
	expOwes := paidPkg("AAAAA000000000004")
	expPart := paidPkg("AAAAA000000000005")
	l.redeem(expPart, "oil_change", "RO-P1", w)
	expBroken := paidPkg("AAAAA000000000006")
	expRefunded := paidPkg("AAAAA000000000007")
	sweep := who{at: expires, store: "S1", actor: system}
	for _, id := range []uuid.UUID{expOwes, expPart, expBroken, expRefunded} {
		require.Len(t, l.do(id, domain.Expire{}, sweep), 1)
	}
	later := who{at: expires.AddDate(0, 0, 1), store: "S1", actor: manager}
	l.do(expBroken, domain.RecognizeBreakage{Reason: "policy"}, later)
	l.do(expRefunded, domain.RefundPackage{Method: "cash", Reason: "claimed"}, later)
	requireMoney(t, "0.00", l.state[expBroken].Liability)
	requireMoney(t, "0.00", l.state[expRefunded].Liability)

	sorted := func(s []uuid.UUID) []uuid.UUID {
		s = slices.Clone(s)
		slices.SortFunc(s, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		return s
	}

	t.Run("ActivePastExpiresAt", func(t *testing.T) {
		expire, breakage := m.ExpiryCandidates(expires.Add(-time.Nanosecond), 0)
		require.Empty(t, expire, "not before expires_at")
		require.Empty(t, breakage)
		expire, _ = m.ExpiryCandidates(expires, 0)
		require.Equal(t, []uuid.UUID{active}, expire, "at expires_at; not awaiting, not used up, not already expired")
		expire, _ = m.ExpiryCandidates(expires.AddDate(1, 0, 0), 0)
		require.Equal(t, []uuid.UUID{active}, expire)
		// The same instant written in UTC.
		expire, _ = m.ExpiryCandidates(expires.UTC(), 0)
		require.Equal(t, []uuid.UUID{active}, expire)
	})

	t.Run("BreakageNeedsAPolicy", func(t *testing.T) {
		_, breakage := m.ExpiryCandidates(expires.AddDate(10, 0, 0), 0)
		require.Empty(t, breakage, "0 months: no breakage policy")
	})

	t.Run("BreakageAfterMonths", func(t *testing.T) {
		due := expires.AddDate(0, 2, 0) // 2026-04-10 10:00
		_, breakage := m.ExpiryCandidates(due.Add(-time.Second), 2)
		require.Empty(t, breakage, "not before two months after expiry")
		_, breakage = m.ExpiryCandidates(due, 2)
		require.Equal(t, sorted([]uuid.UUID{expOwes, expPart}), sorted(breakage),
			"expired and still owing; not once breakage is recognized, not once refunded")
		_, breakage = m.ExpiryCandidates(due, 3)
		require.Empty(t, breakage)
	})

	t.Run("MovesOnAfterTheSweep", func(t *testing.T) {
		now := expires.AddDate(0, 3, 0)
		expire, _ := m.ExpiryCandidates(now, 0)
		for _, id := range expire {
			l.do(id, domain.Expire{}, who{at: now, store: "S1", actor: system})
		}
		expire, breakage := m.ExpiryCandidates(now, 2)
		require.Empty(t, expire)
		require.Equal(t, sorted([]uuid.UUID{active, expOwes, expPart}), sorted(breakage))
		p, _ := m.Package(active)
		require.True(t, p.ExpiredAt.Equal(expires), "expired at expires_at, not at the sweep")
		for _, id := range breakage {
			l.do(id, domain.RecognizeBreakage{Reason: "policy"}, who{at: now, store: "S1", actor: system})
		}
		expire, breakage = m.ExpiryCandidates(now, 2)
		require.Empty(t, expire)
		require.Empty(t, breakage, "nothing is recognized twice")
	})
}

// TestModel_ExpiryCandidates_MonthEnd: breakage months after expiry should
// be counted as validity months are (domain: a month from the 31st ends on
// the month's last day, not in the month after).
func TestModel_ExpiryCandidates_MonthEnd(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	l.definePlan(oilPlan(t, "OIL1", domain.RefundProRata, 1), who{at: local(2025, 12, 1, 9, 0), store: "S1", actor: manager})
	// Activated 31 Dec 2025: one month of validity ends 31 Jan 2026.
	w := who{at: local(2025, 12, 31, 10, 0), store: "S1"}
	id := l.sell("OIL1", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, w)
	l.pay(id, "2448.00", "cash", "R-1", w)
	expires := local(2026, 1, 31, 10, 0)
	require.True(t, l.state[id].ExpiresAt.Equal(expires))
	l.do(id, domain.Expire{}, who{at: expires, store: "S1", actor: system})

	_, breakage := m.ExpiryCandidates(local(2026, 3, 3, 10, 0), 1)
	require.Equal(t, []uuid.UUID{id}, breakage, "due at the latest on 3 March")

	// Domain month arithmetic: 31 January + 1 month = 28 February.
	due := local(2026, 2, 28, 10, 0)
	_, breakage = m.ExpiryCandidates(due, 1)
	require.Equal(t, []uuid.UUID{id}, breakage)
	_, breakage = m.ExpiryCandidates(due.Add(-time.Second), 1)
	require.Empty(t, breakage)
}
