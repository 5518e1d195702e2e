package audit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
	"github.com/packledger/packledger/projections/audit"
)

// story decides a sale, a full payment and one redemption, and returns the
// envelopes as they would be stored.
func story(t *testing.T) (uuid.UUID, []domain.Envelope) {
	t.Helper()
	rate := domain.MustRate("0.85")
	plan, err := domain.NewPlan(domain.PlanSpec{Code: "OIL6", Name: "6 oil changes",
		Entitlements: []domain.Entitlement{{Service: "oil_change", Count: 6, ListPrice: domain.MustMoney("480.00")}},
		Rate:         &rate, ValidityMonths: 24})
	require.NoError(t, err)
	id := uuid.New()
	at := time.Date(2026, 11, 2, 2, 0, 0, 0, time.UTC)
	var p domain.Package
	var envs []domain.Envelope
	for _, cmd := range []domain.Command{
		domain.Sell{PackageID: id, Plan: domain.PlanState{Plan: plan, Status: domain.PlanStatusActive},
			Customer: domain.Customer{ID: "C1", Name: "Li", Phone: "13800000000"},
			Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A1", Model: "Lavida"}, Advisor: "a1"},
		domain.RecordPayment{PaymentID: uuid.New(), Amount: plan.Price, Method: "cash", Receipt: "R1"},
		domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO1"},
	} {
		evs, err := domain.Decide(p, cmd, at)
		require.NoError(t, err)
		for _, e := range evs {
			env := domain.Envelope{Type: e.EventType(), Dealer: "demo", Store: "s1", Aggregate: id.String(),
				BusinessTime: at, RecordedAt: at, Event: e, Seq: uint64(len(envs) + 1),
				Subject: "ledger.demo.packages." + id.String()}
			p = domain.Apply(p, env)
			envs = append(envs, env)
			at = at.Add(time.Hour)
		}
	}
	return id, envs
}

func TestVerifier(t *testing.T) {
	tz, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)

	t.Run("OK", func(t *testing.T) {
		_, envs := story(t)
		v := audit.New("demo", tz)
		for _, e := range envs {
			v.Add(e.Seq, e.Subject, e, nil)
		}
		r := v.Finish()
		require.True(t, r.OK, "%v", r.Findings)
		require.Equal(t, 4, r.Events)
		require.Equal(t, "2040.00", r.Totals.Liability.String())
	})

	t.Run("ForeignNamed", func(t *testing.T) {
		id, envs := story(t)
		v := audit.New("demo", tz)
		for _, e := range envs {
			v.Add(e.Seq, e.Subject, e, nil)
		}
		v.Add(9, envs[0].Subject, domain.Envelope{}, errors.New("foreign event: bad signature"))
		r := v.Finish()
		require.False(t, r.OK)
		require.Equal(t, []audit.Finding{{Dealer: "demo", Package: id.String(), Subject: envs[0].Subject, Seq: 9,
			Problem: "foreign event: bad signature"}}, r.Findings)
		require.Equal(t, "2040.00", r.Totals.Liability.String(), "a foreign event changes nothing")
	})

	t.Run("RuleBreakingEventFound", func(t *testing.T) {
		// A well-formed event the rules would never have decided: a
		// redemption worth more than its unit. Apply takes history as it
		// is; the recomputation's invariant check is what catches it.
		_, envs := story(t)
		bad := envs[len(envs)-1]
		red := bad.Event.(domain.VisitRedeemed)
		red.Value = domain.MustMoney("999.00")
		bad.Event = red
		envs[len(envs)-1] = bad
		v := audit.New("demo", tz)
		for _, e := range envs {
			v.Add(e.Seq, e.Subject, e, nil)
		}
		r := v.Finish()
		require.False(t, r.OK)
		require.Equal(t, bad.Seq, r.Findings[0].Seq)
		require.Contains(t, r.Findings[0].Problem, "invariant broken after VisitRedeemed")
	})

	t.Run("AsOf", func(t *testing.T) {
		_, envs := story(t)
		v := audit.New("demo", tz).AsOf(envs[1].RecordedAt) // after the payment, before activation
		for _, e := range envs {
			v.Add(e.Seq, e.Subject, e, nil)
		}
		r := v.Finish()
		require.Equal(t, 2, r.Events)
		require.Equal(t, "2448.00", r.Totals.Paid.String())
		require.True(t, r.Totals.Recognized.IsZero())
	})

	t.Run("CompareWithLive", func(t *testing.T) {
		id, envs := story(t)
		v := audit.New("demo", tz)
		live := projections.NewModel(tz)
		for i, e := range envs {
			v.Add(e.Seq, e.Subject, e, nil)
			if i < len(envs)-1 { // the live model missed the redemption
				live.Apply(e)
			}
		}
		last := envs[len(envs)-1].Seq
		r := v.Compare(live, last, v.Finish())
		require.False(t, r.OK)
		var problems []string
		for _, f := range r.Findings {
			problems = append(problems, f.Problem)
		}
		require.Len(t, problems, 2, "the package and the totals: %v", problems)
		require.Contains(t, problems[1], "package "+id.String()+": live projection")
		require.Contains(t, problems[0], "live totals")

		matching := projections.NewModel(tz)
		for _, e := range envs {
			matching.Apply(e)
		}
		v2 := audit.New("demo", tz)
		for _, e := range envs {
			v2.Add(e.Seq, e.Subject, e, nil)
		}
		r = v2.Compare(matching, last, v2.Finish())
		require.True(t, r.OK, "%v", r.Findings)
	})
}
