package domain

import "time"

// RefundQuote is what a refund would pay out, by the package's policy.
type RefundQuote struct {
	Base       Money  `json:"base"`
	Fee        Money  `json:"fee"`
	Amount     Money  `json:"amount"`
	Recognized Money  `json:"recognized"`
	Policy     string `json:"policy"`
}

// Policy names beyond the plan's own, for the two cases that charge
// nothing.
const (
	policyFreeLook   = "free_look"
	policyNotStarted = "not_started"
)

// QuoteRefund computes the refund of a package at the instant now, without
// deciding it, so that a manager can preview it (DESIGN.md §4).
//
// A package never activated was never usable: everything paid goes back
// with no fee. Within the free-look days after activation, with no visit
// used, likewise. Otherwise the plan's policy sets the base, the fee is the
// base × the fee rate rounded half-up, and the rest of the liability is
// recognized as revenue at refund.
func QuoteRefund(p Package, now time.Time) RefundQuote {
	liability := p.Liability.Add(p.Breakage) // breakage is reversed by a refund
	q := RefundQuote{Policy: string(p.Plan.RefundPolicy)}
	switch {
	case p.Status == StatusAwaitingPayment:
		q.Policy = policyNotStarted
		q.Base = liability
	case p.inFreeLook(now):
		q.Policy = policyFreeLook
		q.Base = liability
	default:
		switch p.Plan.RefundPolicy {
		case RefundListPrice:
			var used Money
			for _, u := range p.Units {
				if u.RedemptionID != nil {
					used = used.Add(u.ListPrice)
				}
			}
			// Never more than is owed: a unit's value never exceeds its list
			// price, so this bound only guards history written otherwise.
			q.Base = MinMoney(liability, MaxMoney(Money{}, p.NetPaid().Sub(used)))
		default:
			q.Base = liability
		}
		q.Fee = q.Base.MulRateHalfUp(p.Plan.CancellationFeeRate)
	}
	q.Amount = q.Base.Sub(q.Fee)
	q.Recognized = liability.Sub(q.Amount)
	return q
}

func (p *Package) inFreeLook(now time.Time) bool {
	if p.Plan.FreeLookDays <= 0 || p.ActivatedAt == nil || p.activeRedemptions() > 0 {
		return false
	}
	return now.Before(p.ActivatedAt.AddDate(0, 0, p.Plan.FreeLookDays))
}

func decideRefund(p Package, c RefundPackage, now time.Time) ([]Event, error) {
	if err := CheckMethod("method", c.Method); err != nil {
		return nil, err
	}
	reason, err := CheckText("reason", c.Reason, 1, MaxReason)
	if err != nil {
		return nil, err
	}
	if !p.Exists() {
		return nil, Errorf(CodePackageNotFound, "no such package")
	}
	switch p.Status {
	case StatusAwaitingPayment, StatusActive, StatusExpired:
	case StatusUsedUp:
		return nil, Errorf(CodePackageUsedUp, "every visit has been used; there is nothing left to refund")
	default:
		return nil, Errorf(CodePackageNotActive, "the package is already %s", p.Status)
	}
	q := QuoteRefund(p, now)
	var evs []Event
	if p.Breakage.IsPositive() {
		evs = append(evs, BreakageReversed{Amount: p.Breakage})
	}
	return append(evs, PackageRefunded{
		Amount: q.Amount, Fee: q.Fee, Recognized: q.Recognized, Base: q.Base,
		Policy: q.Policy, Method: c.Method, Reason: reason,
	}), nil
}
