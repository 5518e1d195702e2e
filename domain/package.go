package domain

import (
	"time"

	"github.com/google/uuid"
)

// Status is a package's place in its lifecycle (DESIGN.md §2).
type Status string

const (
	StatusAwaitingPayment Status = "awaiting_payment"
	StatusActive          Status = "active"
	StatusUsedUp          Status = "used_up"
	StatusExpired         Status = "expired"
	StatusRefunded        Status = "refunded"
)

// Unit is one entitled visit of a sold package; RedemptionID is set while
// it is redeemed.
type Unit struct {
	UnitSpec
	RedemptionID *uuid.UUID `json:"redemption_id"`
}

// Payment is one payment recorded against a package.
type Payment struct {
	ID         uuid.UUID     `json:"id"`
	Amount     Money         `json:"amount"`
	Method     PaymentMethod `json:"method"`
	Receipt    string        `json:"receipt"`
	Voided     bool          `json:"voided"`
	VoidReason string        `json:"void_reason,omitempty"`
	RecordedAt time.Time     `json:"recorded_at"`
	Cashier    string        `json:"cashier"`
	Store      string        `json:"store"`
}

// Redemption is one deducted visit.
type Redemption struct {
	ID            uuid.UUID `json:"id"`
	Unit          int       `json:"unit"`
	Service       string    `json:"service"`
	Value         Money     `json:"value"`
	RepairOrder   string    `json:"repair_order"`
	Mileage       int       `json:"mileage"`
	Reversed      bool      `json:"reversed"`
	ReverseReason string    `json:"reverse_reason,omitempty"`
	RedeemedAt    time.Time `json:"redeemed_at"`
	Advisor       string    `json:"advisor"`
}

// Refund is how a package was settled by a refund.
type Refund struct {
	Amount     Money         `json:"amount"`
	Fee        Money         `json:"fee"`
	Recognized Money         `json:"recognized"`
	Base       Money         `json:"base"`
	Policy     string        `json:"policy"`
	Method     PaymentMethod `json:"method"`
	Reason     string        `json:"reason"`
	RefundedAt time.Time     `json:"refunded_at"`
}

// Package is a sold package as its events leave it. The zero value is a
// package that does not exist yet.
type Package struct {
	ID          uuid.UUID    `json:"id"`
	Dealer      string       `json:"dealer"`
	Store       string       `json:"store"`
	Status      Status       `json:"status"`
	Plan        Plan         `json:"plan"`
	Customer    Customer     `json:"customer"`
	Vehicle     Vehicle      `json:"vehicle"`
	Advisor     string       `json:"advisor"`
	Price       Money        `json:"price"`
	Paid        Money        `json:"paid"`
	Voided      Money        `json:"voided"`
	Recognized  Money        `json:"recognized"`
	Refunded    Money        `json:"refunded"`
	Breakage    Money        `json:"breakage"`
	Liability   Money        `json:"liability"`
	Units       []Unit       `json:"units"`
	Payments    []Payment    `json:"payments"`
	Redemptions []Redemption `json:"redemptions"`
	Refund      *Refund      `json:"refund"`
	SoldAt      time.Time    `json:"sold_at"`
	ActivatedAt *time.Time   `json:"activated_at"`
	ExpiresAt   *time.Time   `json:"expires_at"`
	ExpiredAt   *time.Time   `json:"expired_at"`
	Seq         uint64       `json:"seq"`
}

// Exists reports whether the package has been sold.
func (p *Package) Exists() bool { return p.Status != "" }

// Remaining counts the unused units per service, for every service of the
// plan (zero included, so a screen can show "oil_change: 0").
func (p *Package) Remaining() map[string]int {
	m := make(map[string]int, len(p.Plan.Entitlements))
	for _, e := range p.Plan.Entitlements {
		m[e.Service] = 0
	}
	for _, u := range p.Units {
		if u.RedemptionID == nil {
			m[u.Service]++
		}
	}
	return m
}

// unusedValue sums the values of the unused units.
func (p *Package) unusedValue() Money {
	var v Money
	for _, u := range p.Units {
		if u.RedemptionID == nil {
			v = v.Add(u.Value)
		}
	}
	return v
}

// NetPaid is what the customer has paid and not had voided.
func (p *Package) NetPaid() Money { return p.Paid.Sub(p.Voided) }

// Due is what is still to pay before the package is paid in full.
func (p *Package) Due() Money { return p.Price.Sub(p.NetPaid()) }

// PaymentByID finds a payment.
func (p *Package) PaymentByID(id uuid.UUID) (Payment, bool) {
	for _, x := range p.Payments {
		if x.ID == id {
			return x, true
		}
	}
	return Payment{}, false
}

// PaymentByReceipt finds the payment recorded with a receipt number.
func (p *Package) PaymentByReceipt(receipt string) (Payment, bool) {
	for _, x := range p.Payments {
		if x.Receipt == receipt {
			return x, true
		}
	}
	return Payment{}, false
}

// RedemptionByID finds a redemption.
func (p *Package) RedemptionByID(id uuid.UUID) (Redemption, bool) {
	for _, x := range p.Redemptions {
		if x.ID == id {
			return x, true
		}
	}
	return Redemption{}, false
}

// RedemptionFor finds the redemption of a service on a repair order, the
// pair that may deduct at most once.
func (p *Package) RedemptionFor(repairOrder, service string) (Redemption, bool) {
	for _, x := range p.Redemptions {
		if x.RepairOrder == repairOrder && x.Service == service {
			return x, true
		}
	}
	return Redemption{}, false
}

// activeRedemptions counts redemptions not reversed.
func (p *Package) activeRedemptions() int {
	n := 0
	for _, r := range p.Redemptions {
		if !r.Reversed {
			n++
		}
	}
	return n
}

// Apply folds one event into a package. It never validates: history is
// history, and Decide has already refused what it had to. It copies the
// slices it changes, so a state once returned is never mutated.
func Apply(p Package, env Envelope) Package {
	switch e := env.Event.(type) {
	case PackageSold:
		p.ID = e.PackageID
		p.Dealer = env.Dealer
		p.Store = env.Store
		p.Status = StatusAwaitingPayment
		p.Plan = e.Plan
		p.Customer = e.Customer
		p.Vehicle = e.Vehicle
		p.Advisor = e.Advisor
		p.Price = e.Price
		p.Units = make([]Unit, len(e.Units))
		for i, u := range e.Units {
			p.Units[i] = Unit{UnitSpec: u}
		}
		p.SoldAt = env.BusinessTime
	case PaymentRecorded:
		p.Payments = append(clone(p.Payments), Payment{
			ID: e.PaymentID, Amount: e.Amount, Method: e.Method, Receipt: e.Receipt,
			RecordedAt: env.BusinessTime, Cashier: env.Actor.ID, Store: env.Store,
		})
		p.Paid = p.Paid.Add(e.Amount)
		p.Liability = p.Liability.Add(e.Amount)
	case PaymentVoided:
		p.Payments = clone(p.Payments)
		for i := range p.Payments {
			if p.Payments[i].ID == e.PaymentID && !p.Payments[i].Voided {
				p.Payments[i].Voided = true
				p.Payments[i].VoidReason = e.Reason
				p.Voided = p.Voided.Add(p.Payments[i].Amount)
				p.Liability = p.Liability.Sub(p.Payments[i].Amount)
			}
		}
		if p.Status == StatusActive {
			// Not fully paid any more: validity starts again at the next activation.
			p.Status = StatusAwaitingPayment
			p.ActivatedAt, p.ExpiresAt = nil, nil
		}
	case PackageActivated:
		p.Status = StatusActive
		a, x := e.ActivatedAt, e.ExpiresAt
		p.ActivatedAt, p.ExpiresAt = &a, &x
	case VisitRedeemed:
		p.Units = clone(p.Units)
		if e.Unit >= 0 && e.Unit < len(p.Units) {
			id := e.RedemptionID
			p.Units[e.Unit].RedemptionID = &id
		}
		p.Redemptions = append(clone(p.Redemptions), Redemption{
			ID: e.RedemptionID, Unit: e.Unit, Service: e.Service, Value: e.Value,
			RepairOrder: e.RepairOrder, Mileage: e.Mileage,
			RedeemedAt: env.BusinessTime, Advisor: env.Actor.ID,
		})
		p.Recognized = p.Recognized.Add(e.Value)
		p.Liability = p.Liability.Sub(e.Value)
		if p.Status == StatusActive && allRedeemed(p.Units) {
			p.Status = StatusUsedUp
		}
	case RedemptionReversed:
		p.Redemptions = clone(p.Redemptions)
		p.Units = clone(p.Units)
		for i := range p.Redemptions {
			r := &p.Redemptions[i]
			if r.ID != e.RedemptionID || r.Reversed {
				continue
			}
			r.Reversed = true
			r.ReverseReason = e.Reason
			if r.Unit >= 0 && r.Unit < len(p.Units) {
				p.Units[r.Unit].RedemptionID = nil
			}
			p.Recognized = p.Recognized.Sub(r.Value)
			p.Liability = p.Liability.Add(r.Value)
		}
		if p.Status == StatusUsedUp {
			p.Status = StatusActive
		}
	case PackageRefunded:
		p.Refunded = p.Refunded.Add(e.Amount)
		p.Recognized = p.Recognized.Add(e.Recognized)
		p.Liability = p.Liability.Sub(e.Amount).Sub(e.Recognized)
		p.Status = StatusRefunded
		p.Refund = &Refund{
			Amount: e.Amount, Fee: e.Fee, Recognized: e.Recognized, Base: e.Base,
			Policy: e.Policy, Method: e.Method, Reason: e.Reason, RefundedAt: env.BusinessTime,
		}
	case PackageExpired:
		p.Status = StatusExpired
		t := e.ExpiredAt
		p.ExpiredAt = &t
	case BreakageRecognized:
		p.Breakage = p.Breakage.Add(e.Amount)
		p.Liability = p.Liability.Sub(e.Amount)
	case BreakageReversed:
		p.Breakage = p.Breakage.Sub(e.Amount)
		p.Liability = p.Liability.Add(e.Amount)
	}
	p.Seq = env.Seq
	return p
}

func allRedeemed(units []Unit) bool {
	for _, u := range units {
		if u.RedemptionID == nil {
			return false
		}
	}
	return true
}

func clone[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)+1), s...)
}

// Fold applies events in order to an empty package.
func Fold(envs []Envelope) Package {
	var p Package
	for _, e := range envs {
		p = Apply(p, e)
	}
	return p
}

// AddMonths adds calendar months, clamping to the month's last day so that
// a package activated on 31 January with one month of validity expires on
// the last day of February, not in March.
func AddMonths(t time.Time, months int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(months), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
}
