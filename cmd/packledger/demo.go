package main

import (
	"context"
	"fmt"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// demoPlans are the dealership's own offer: 4, 6 and 10 oil-change visits
// at 85% of list, with free inspection handling and road rescue as gifts.
func demoPlans() ([]domain.Plan, error) {
	rate := domain.MustRate("0.85")
	fee := domain.MustRate("0.10")
	gifts := []string{"Free annual inspection handling (免费代办年检)", "Road rescue (道路救援)"}
	var out []domain.Plan
	for _, d := range []struct {
		code   string
		visits int
		months int
	}{{"OIL4", 4, 24}, {"OIL6", 6, 36}, {"OIL10", 10, 60}} {
		p, err := domain.NewPlan(domain.PlanSpec{
			Code: d.code, Name: fmt.Sprintf("%d oil changes at 85%% (%d次保养套餐)", d.visits, d.visits),
			Entitlements:   []domain.Entitlement{{Service: "oil_change", Count: d.visits, ListPrice: domain.MustMoney("480.00")}},
			Rate:           &rate,
			ValidityMonths: d.months, RefundPolicy: domain.RefundListPrice, CancellationFeeRate: &fee,
			FreeLookDays: 7, ServiceInterval: &domain.ServiceInterval{Months: 6, KM: 5000}, Gifts: gifts,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// seedDemoPlans defines the demo plans, on an empty ledger only: a ledger
// with history is a dealer's, and demo data must never mix into it.
// It returns the last sequence it wrote (0 if none), for the caller to wait
// on before it serves.
func seedDemoPlans(ctx context.Context, store *eventstore.Store, storeID string, clock eventstore.Clock) (uint64, error) {
	head, err := store.Head(ctx)
	if err != nil {
		return 0, err
	}
	if head != 0 {
		return 0, nil
	}
	plans, err := demoPlans()
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, p := range plans {
		meta := eventstore.Meta{Store: storeID, Actor: domain.Actor{ID: "demo-manager", Role: domain.RoleManager}, Key: "demo-plan-" + p.Code}
		res, err := store.Update(ctx, store.Subjects().Plan(p.Code), meta, clock, func(hist []domain.Envelope) (eventstore.Change, error) {
			var st domain.PlanState
			for _, e := range hist {
				st = domain.ApplyPlan(st, e)
			}
			if st.Exists() {
				return eventstore.Change{}, nil
			}
			evs, err := domain.DefinePlan(st, p)
			return eventstore.Change{Events: evs}, err
		})
		if err != nil {
			return 0, fmt.Errorf("plan %s: %w", p.Code, err)
		}
		last = max(last, res.LastSeq)
	}
	return last, nil
}
