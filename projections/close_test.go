package projections_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// closeLines writes a close's lines compactly:
// "cashier/method payments×count voids×count net".
func closeLines(r projections.CloseReport) []string {
	out := []string{}
	for _, l := range r.Lines {
		out = append(out, fmt.Sprintf("%s/%s %s×%d %s×%d %s", l.Cashier, l.Method, l.Payments, l.PaymentCount, l.Voids, l.VoidCount, l.Net))
	}
	return out
}

func refundLines(r projections.CloseReport) []string {
	out := []string{}
	for _, x := range r.Refunds {
		out = append(out, fmt.Sprintf("%s %s×%d", x.Method, x.Amount, x.Count))
	}
	return out
}

func closeTotals(r projections.CloseReport) [4]string {
	return [4]string{r.Totals.Payments.String(), r.Totals.Voids.String(), r.Totals.Refunds.String(), r.Totals.Net.String()}
}

func TestDailyClose(t *testing.T) {
	m := projections.NewModel(shanghai)
	l := newLedger(t, m)
	setupOil(t, l, local(2026, 10, 1, 9, 0))

	c1 := domain.Actor{ID: "c1", Role: domain.RoleCashier}
	c2 := domain.Actor{ID: "c2", Role: domain.RoleCashier}
	c3 := domain.Actor{ID: "c3", Role: domain.RoleCashier}
	by := func(a domain.Actor, store string, at time.Time) who { return who{at: at, store: store, actor: a} }
	mgr := func(store string, at time.Time) who { return who{at: at, store: store, actor: manager} }
	nov := func(d, h, mi int) time.Time { return local(2026, 11, d, h, mi) }
	// 1 November: sales, and a part payment the day before the close.
	p1 := l.sell("OIL6", sale{customer: "C1", vin: "AAAAA000000000001", plate: "沪A00001"}, who{at: nov(1, 9, 0), store: "S1"})
	p2 := l.sell("OIL6", sale{customer: "C2", vin: "AAAAA000000000002", plate: "沪A00002"}, who{at: nov(1, 9, 0), store: "S2"})
	p3 := l.sell("OIL6", sale{customer: "C3", vin: "AAAAA000000000003", plate: "沪A00003"}, who{at: nov(1, 9, 0), store: "S1"})
	p4 := l.sell("OIL6", sale{customer: "C4", vin: "AAAAA000000000004", plate: "沪A00004"}, who{at: nov(1, 9, 0), store: "S1"})
	p5 := l.sell("OIL6", sale{customer: "C5", vin: "AAAAA000000000005", plate: "沪A00005"}, who{at: nov(1, 9, 0), store: "S2"})
	p6 := l.sell("OIL6", sale{customer: "C6", vin: "AAAAA000000000006", plate: "沪A00006"}, who{at: nov(1, 9, 0), store: "S1"})
	p7 := l.sell("OIL6", sale{customer: "C7", vin: "AAAAA000000000007", plate: "沪A00007"}, who{at: nov(1, 9, 0), store: "S1"})
	l.pay(p7, "200.00", "cash", "R-70", by(c2, "S1", nov(1, 10, 0)))

	// The business-day boundary: 15:59:59Z is 23:59:59 on the 1st in
	// Shanghai, 16:30Z is 00:30 on the 2nd.
	l.pay(p6, "50.00", "cash", "R-60", by(c2, "S1", time.Date(2026, 11, 1, 15, 59, 59, 0, time.UTC)))
	l.pay(p6, "100.00", "cash", "R-61", by(c2, "S1", time.Date(2026, 11, 1, 16, 30, 0, 0, time.UTC)))

	// 2 November.
	l.pay(p1, "1000.00", "cash", "R-10", by(c1, "S1", nov(2, 10, 0)))
	l.pay(p1, "500.00", "card", "R-11", by(c1, "S1", nov(2, 10, 30)))
	wechat := l.pay(p1, "948.00", "wechat", "R-12", by(c2, "S1", nov(2, 11, 0))) // activates p1
	l.pay(p2, "2000.00", "cash", "R-20", by(c3, "S2", nov(2, 12, 0)))
	l.pay(p2, "448.00", "cash", "R-21", by(c1, "S2", nov(2, 13, 0))) // c1 helping out at S2
	wrong := l.pay(p3, "300.00", "cash", "R-30", by(c1, "S1", nov(2, 15, 0)))
	l.pay(p4, "2448.00", "alipay", "R-40", by(c2, "S1", nov(2, 16, 0)))

	// 3 November: voids, recorded by a manager at S2, of S1's payments.
	l.do(p3, domain.VoidPayment{PaymentID: wrong, Reason: "wrong package"}, mgr("S2", nov(3, 9, 0)))
	l.do(p1, domain.VoidPayment{PaymentID: wechat, Reason: "paid twice"}, mgr("S2", nov(3, 9, 30)))
	l.pay(p5, "1000.00", "card", "R-50", by(c3, "S2", nov(3, 10, 0)))

	// 4 November: refunds.
	ref4 := l.do(p4, domain.RefundPackage{Method: "bank_transfer", Reason: "moved away"}, mgr("S1", nov(4, 10, 0)))
	requireMoney(t, "2203.20", ref4[0].Event.(domain.PackageRefunded).Amount, "2448.00 less the 10%% fee")
	l.do(p5, domain.RefundPackage{Method: "cash", Reason: "changed mind"}, mgr("S2", nov(4, 11, 0)))
	l.do(p7, domain.RefundPackage{Method: "cash", Reason: "changed mind"}, mgr("S1", nov(4, 12, 0)))

	dc := m.DailyClose()

	t.Run("PerCashierAndMethod", func(t *testing.T) {
		r := dc.Report("2026-11-02", "S1")
		require.Equal(t, "2026-11-02", r.Date)
		require.Equal(t, "S1", r.Store)
		require.Equal(t, []string{
			"c1/card 500.00×1 0.00×0 500.00",
			"c1/cash 1300.00×2 0.00×0 1300.00",
			"c2/alipay 2448.00×1 0.00×0 2448.00",
			"c2/cash 100.00×1 0.00×0 100.00",
			"c2/wechat 948.00×1 0.00×0 948.00",
		}, closeLines(r))
		require.Empty(t, r.Refunds)
		require.Equal(t, [4]string{"5296.00", "0.00", "0.00", "5296.00"}, closeTotals(r))

		r = dc.Report("2026-11-02", "S2")
		require.Equal(t, []string{
			"c1/cash 448.00×1 0.00×0 448.00",
			"c3/cash 2000.00×1 0.00×0 2000.00",
		}, closeLines(r))
		require.Equal(t, [4]string{"2448.00", "0.00", "0.00", "2448.00"}, closeTotals(r))
	})

	t.Run("AllStores", func(t *testing.T) {
		r := dc.Report("2026-11-02", "")
		require.Equal(t, "", r.Store)
		require.Equal(t, []string{
			"c1/card 500.00×1 0.00×0 500.00",
			"c1/cash 1748.00×3 0.00×0 1748.00", // S1's 1300.00 and S2's 448.00 in one line
			"c2/alipay 2448.00×1 0.00×0 2448.00",
			"c2/cash 100.00×1 0.00×0 100.00",
			"c2/wechat 948.00×1 0.00×0 948.00",
			"c3/cash 2000.00×1 0.00×0 2000.00",
		}, closeLines(r))
		require.Equal(t, [4]string{"7744.00", "0.00", "0.00", "7744.00"}, closeTotals(r))
		// The whole equals the sum of the stores.
		s1, s2 := dc.Report("2026-11-02", "S1"), dc.Report("2026-11-02", "S2")
		requireSameMoney(t, r.Totals.Net, s1.Totals.Net.Add(s2.Totals.Net))
	})

	t.Run("VoidOnItsDayAgainstThePayment", func(t *testing.T) {
		r := dc.Report("2026-11-03", "S1")
		require.Equal(t, []string{
			"c1/cash 0.00×0 300.00×1 -300.00",
			"c2/wechat 0.00×0 948.00×1 -948.00",
		}, closeLines(r), "counted at the payment's store, cashier and method, not the manager's")
		require.Equal(t, [4]string{"0.00", "1248.00", "0.00", "-1248.00"}, closeTotals(r))

		r = dc.Report("2026-11-03", "S2")
		require.Equal(t, []string{"c3/card 1000.00×1 0.00×0 1000.00"}, closeLines(r),
			"no void line at the store where the manager recorded the void")
		require.Equal(t, [4]string{"1000.00", "0.00", "0.00", "1000.00"}, closeTotals(r))

		r = dc.Report("2026-11-03", "")
		require.Equal(t, []string{
			"c1/cash 0.00×0 300.00×1 -300.00",
			"c2/wechat 0.00×0 948.00×1 -948.00",
			"c3/card 1000.00×1 0.00×0 1000.00",
		}, closeLines(r))
		for _, l := range r.Lines {
			require.NotEqual(t, manager.ID, l.Cashier)
		}

		// The payment's own day is unchanged by the later void.
		r = dc.Report("2026-11-02", "S1")
		require.Equal(t, [4]string{"5296.00", "0.00", "0.00", "5296.00"}, closeTotals(r))
	})

	t.Run("RefundsPerMethodAndStore", func(t *testing.T) {
		r := dc.Report("2026-11-04", "S1")
		require.Empty(t, r.Lines)
		require.Equal(t, []string{"bank_transfer 2203.20×1", "cash 200.00×1"}, refundLines(r))
		require.Equal(t, [4]string{"0.00", "0.00", "2403.20", "-2403.20"}, closeTotals(r))

		r = dc.Report("2026-11-04", "S2")
		require.Equal(t, []string{"cash 1000.00×1"}, refundLines(r), "the whole 1000.00 of a package never activated")
		require.Equal(t, [4]string{"0.00", "0.00", "1000.00", "-1000.00"}, closeTotals(r))

		r = dc.Report("2026-11-04", "")
		require.Equal(t, []string{"bank_transfer 2203.20×1", "cash 1200.00×2"}, refundLines(r))
		require.Equal(t, [4]string{"0.00", "0.00", "3403.20", "-3403.20"}, closeTotals(r))
	})

	t.Run("BusinessDayBoundary", func(t *testing.T) {
		require.Equal(t, "2026-11-02", dc.Day(time.Date(2026, 11, 1, 16, 30, 0, 0, time.UTC)))
		require.Equal(t, "2026-11-02", dc.Day(time.Date(2026, 11, 1, 16, 0, 0, 0, time.UTC)))
		require.Equal(t, "2026-11-01", dc.Day(time.Date(2026, 11, 1, 15, 59, 59, 999999999, time.UTC)))

		r := dc.Report("2026-11-01", "S1")
		require.Equal(t, []string{"c2/cash 250.00×2 0.00×0 250.00"}, closeLines(r),
			"23:59:59 local on the 1st and the 10:00 part payment; not the 00:30 one")
		r = dc.Report("2026-11-02", "S1")
		require.Contains(t, closeLines(r), "c2/cash 100.00×1 0.00×0 100.00", "16:30Z on the 1st is the 2nd in Shanghai")
	})

	t.Run("EmptyDay", func(t *testing.T) {
		for _, store := range []string{"", "S1", "S9"} {
			r := dc.Report("2026-11-05", store)
			require.Equal(t, "2026-11-05", r.Date)
			require.Equal(t, store, r.Store)
			require.Equal(t, [4]string{"0.00", "0.00", "0.00", "0.00"}, closeTotals(r))
			b, err := json.Marshal(r)
			require.NoError(t, err)
			require.Contains(t, string(b), `"lines":[]`)
			require.Contains(t, string(b), `"refunds":[]`)
		}
	})

	t.Run("DaysSumToTheLedger", func(t *testing.T) {
		// Over every day, payments − voids − refunds in the close equal
		// paid − voided − refunded over all packages.
		var net domain.Money
		for d := 1; d <= 5; d++ {
			net = net.Add(dc.Report(fmt.Sprintf("2026-11-%02d", d), "").Totals.Net)
		}
		tot := m.Totals()
		requireSameMoney(t, tot.Paid.Sub(tot.Voided).Sub(tot.Refunded), net)
	})
}

// TestDailyClose_Direct feeds DailyClose on its own, as Apply documents:
// an event with the package before it.
func TestDailyClose_Direct(t *testing.T) {
	l := newLedger(t, nil)
	setupOil(t, l, local(2026, 11, 1, 8, 0))
	id := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, who{at: local(2026, 11, 1, 9, 0), store: "S1"})
	pid := l.pay(id, "100.00", "card", "R-1", who{at: local(2026, 11, 1, 10, 0), store: "S1"})
	l.do(id, domain.VoidPayment{PaymentID: pid, Reason: "typo"}, who{at: local(2026, 11, 1, 11, 0), store: "S1", actor: manager})

	dc := projections.NewDailyClose(shanghai)
	var before domain.Package
	for _, env := range l.envs {
		if env.Aggregate == id.String() {
			dc.Apply(env, before)
			before = domain.Apply(before, env)
		}
	}
	// A void seen again (its payment already voided in the state before
	// it) is not counted twice.
	voidEnv := l.envs[len(l.envs)-1]
	dc.Apply(voidEnv, before)
	r := dc.Report("2026-11-01", "S1")
	require.Equal(t, []string{"cash1/card 100.00×1 100.00×1 0.00"}, closeLines(r))
	require.Equal(t, [4]string{"100.00", "100.00", "0.00", "0.00"}, closeTotals(r))
}
