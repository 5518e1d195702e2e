package domain

import (
	"time"

	"github.com/google/uuid"
)

// Command is a request to change a package. Commands are plain data; every
// id they need is chosen by the caller, so Decide stays pure.
type Command interface{ isCommand() }

// Sell sells a plan to a customer for a vehicle. Plan is the plan as its
// own events leave it, so a retired plan can be refused.
type Sell struct {
	PackageID uuid.UUID
	Plan      PlanState
	Customer  Customer
	Vehicle   Vehicle
	Advisor   string
}

// RecordPayment records money received for a package.
type RecordPayment struct {
	PaymentID uuid.UUID
	Amount    Money
	Method    PaymentMethod
	Receipt   string
}

// VoidPayment cancels a payment recorded by mistake.
type VoidPayment struct {
	PaymentID uuid.UUID
	Reason    string
}

// Redeem deducts one visit of a service for a repair order.
type Redeem struct {
	RedemptionID uuid.UUID
	Service      string
	RepairOrder  string
	Mileage      int
}

// ReverseRedemption gives back a visit deducted by mistake.
type ReverseRedemption struct {
	RedemptionID uuid.UUID
	Reason       string
}

// RefundPackage settles a package by paying back what its policy allows.
type RefundPackage struct {
	Method PaymentMethod
	Reason string
}

// Expire ends the validity of a package whose expires_at has passed.
type Expire struct{}

// RecognizeBreakage recognizes an expired package's liability as revenue.
type RecognizeBreakage struct {
	Reason string
}

func (Sell) isCommand()              {}
func (RecordPayment) isCommand()     {}
func (VoidPayment) isCommand()       {}
func (Redeem) isCommand()            {}
func (ReverseRedemption) isCommand() {}
func (RefundPackage) isCommand()     {}
func (Expire) isCommand()            {}
func (RecognizeBreakage) isCommand() {}

// MaxPlate bounds a number plate, and MaxReason the reason for a
// correction, in characters.
const (
	MaxPlate  = 12
	MaxReason = 500
)

// maxMileage bounds an odometer reading in km.
const maxMileage = 3_000_000

// Decide decides a command against a package's state at the instant now.
// It returns the events to append, or a domain error and no events. The
// command's own fields are checked first: a field that breaks its rule is
// refused (400) whatever the package's state. No
// events and no error means the command was already carried out (a repair
// order's deduction or a receipt's payment seen again): the answer is in
// the state.
func Decide(p Package, cmd Command, now time.Time) ([]Event, error) {
	switch c := cmd.(type) {
	case Sell:
		return decideSell(p, c, now)
	case RecordPayment:
		return decidePayment(p, c, now)
	case VoidPayment:
		return decideVoid(p, c)
	case Redeem:
		return decideRedeem(p, c, now)
	case ReverseRedemption:
		return decideReverse(p, c)
	case RefundPackage:
		return decideRefund(p, c, now)
	case Expire:
		if p.Status == StatusActive && p.ExpiresAt != nil && !now.Before(*p.ExpiresAt) {
			return []Event{PackageExpired{ExpiredAt: *p.ExpiresAt}}, nil
		}
		return nil, nil
	case RecognizeBreakage:
		return decideBreakage(p, c)
	}
	return nil, Errorf(CodeInternal, "unknown command %T", cmd)
}

func decideSell(p Package, c Sell, now time.Time) ([]Event, error) {
	cust, veh, err := checkParties(c.Customer, c.Vehicle, now)
	if err != nil {
		return nil, err
	}
	if err := CheckID("advisor", c.Advisor); err != nil {
		return nil, err
	}
	if p.Exists() {
		return nil, Errorf(CodeConcurrentUpdate, "package %s already exists", c.PackageID)
	}
	if !c.Plan.Exists() {
		return nil, Errorf(CodePlanNotFound, "no such plan")
	}
	plan := c.Plan.Plan
	if c.Plan.Status == PlanStatusRetired {
		return nil, FieldErrorf(CodePlanRetired, "plan", "plan %q is retired and no longer sold", plan.Code)
	}
	if !plan.CoversModel(veh.Model) {
		return nil, FieldErrorf(CodeModelNotCovered, "vehicle.model", "plan %q is for %v, not %q", plan.Code, plan.Models, veh.Model)
	}
	return []Event{PackageSold{
		PackageID: c.PackageID, Plan: plan, Customer: cust, Vehicle: veh,
		Price: plan.Price, Units: plan.Units, Advisor: c.Advisor,
	}}, nil
}

// checkParties validates and normalizes the customer and vehicle of a sale
// made at now (in the dealer's time zone).
func checkParties(c Customer, v Vehicle, now time.Time) (Customer, Vehicle, error) {
	var err error
	if err = CheckID("customer.id", c.ID); err != nil {
		return c, v, err
	}
	if c.Name, err = CheckText("customer.name", c.Name, 1, 100); err != nil {
		return c, v, err
	}
	if err = CheckPhone("customer.phone", c.Phone); err != nil {
		return c, v, err
	}
	if v.VIN, err = NormalizeVIN(v.VIN); err != nil {
		return c, v, withField(err, "vehicle")
	}
	if v.Plate, err = CheckText("vehicle.plate", v.Plate, 2, MaxPlate); err != nil {
		return c, v, err
	}
	if v.Model, err = CheckText("vehicle.model", v.Model, 1, 60); err != nil {
		return c, v, err
	}
	if v.Registered != "" {
		if err = CheckDate("vehicle.registered", v.Registered); err != nil {
			return c, v, err
		}
		// Both written YYYY-MM-DD: the strings compare as the dates do.
		if today := now.Format("2006-01-02"); v.Registered > today {
			return c, v, FieldErrorf(CodeInvalidField, "vehicle.registered", "%s is after the day of the sale, %s", v.Registered, today)
		}
	}
	return c, v, nil
}

func decidePayment(p Package, c RecordPayment, now time.Time) ([]Event, error) {
	receipt, err := CheckReference("receipt", c.Receipt)
	if err != nil {
		return nil, err
	}
	if err := CheckMethod("method", c.Method); err != nil {
		return nil, err
	}
	if !c.Amount.IsPositive() {
		return nil, FieldErrorf(CodeInvalidAmount, "amount", "must be more than 0.00")
	}
	if !p.Exists() {
		return nil, Errorf(CodePackageNotFound, "no such package")
	}
	if prev, ok := p.PaymentByReceipt(receipt); ok {
		if prev.Voided {
			return nil, FieldErrorf(CodeDuplicateReceipt, "receipt", "receipt %s belongs to a payment that was voided; a new payment needs a new receipt", receipt)
		}
		if prev.Amount.Equal(c.Amount) {
			return nil, nil // the same payment seen again
		}
		return nil, FieldErrorf(CodeDuplicateReceipt, "receipt", "receipt %s was already used for a payment of %s", receipt, prev.Amount)
	}
	switch p.Status {
	case StatusAwaitingPayment:
	case StatusActive, StatusUsedUp:
		return nil, FieldErrorf(CodeOverpayment, "amount", "the package is fully paid (%s)", p.Price)
	default:
		return nil, Errorf(CodePackageNotActive, "the package is %s and takes no payment", p.Status)
	}
	due := p.Due()
	if c.Amount.Cmp(due) > 0 {
		return nil, FieldErrorf(CodeOverpayment, "amount", "%s is more than the %s still due", c.Amount, due)
	}
	evs := []Event{PaymentRecorded{PaymentID: c.PaymentID, Amount: c.Amount, Method: c.Method, Receipt: receipt}}
	if c.Amount.Equal(due) {
		evs = append(evs, PackageActivated{ActivatedAt: now, ExpiresAt: AddMonths(now, p.Plan.ValidityMonths)})
	}
	return evs, nil
}

func decideVoid(p Package, c VoidPayment) ([]Event, error) {
	reason, err := CheckText("reason", c.Reason, 1, MaxReason)
	if err != nil {
		return nil, err
	}
	if !p.Exists() {
		return nil, Errorf(CodePackageNotFound, "no such package")
	}
	pay, ok := p.PaymentByID(c.PaymentID)
	if !ok {
		return nil, Errorf(CodePaymentNotFound, "no payment %s on this package", c.PaymentID)
	}
	if pay.Voided {
		return nil, Errorf(CodePaymentVoided, "payment %s is already voided", c.PaymentID)
	}
	switch p.Status {
	case StatusAwaitingPayment, StatusActive, StatusUsedUp: // used up: refused just below, for its visits
	default:
		return nil, Errorf(CodePackageNotActive, "the package is %s; its payments can no longer be voided", p.Status)
	}
	if p.activeRedemptions() > 0 {
		return nil, Errorf(CodeVisitsRedeemed, "visits have been redeemed; reverse them before voiding a payment")
	}
	return []Event{PaymentVoided{PaymentID: c.PaymentID, Reason: reason}}, nil
}

func decideRedeem(p Package, c Redeem, now time.Time) ([]Event, error) {
	if err := CheckService("service", c.Service); err != nil {
		return nil, err
	}
	ro, err := CheckReference("repair_order", c.RepairOrder)
	if err != nil {
		return nil, err
	}
	if c.Mileage < 0 || c.Mileage > maxMileage {
		return nil, FieldErrorf(CodeInvalidField, "mileage", "must be between 0 and %d km", maxMileage)
	}
	if !p.Exists() {
		return nil, Errorf(CodePackageNotFound, "no such package")
	}
	if prev, ok := p.RedemptionFor(ro, c.Service); ok {
		if prev.Reversed {
			return nil, FieldErrorf(CodeRedemptionReversed, "repair_order",
				"the %s deduction for repair order %s was reversed; a new deduction needs a new repair order", c.Service, ro)
		}
		return nil, nil // the same deduction seen again
	}
	if !p.Plan.HasService(c.Service) {
		return nil, FieldErrorf(CodeUnknownService, "service", "the plan has no %q visits", c.Service)
	}
	switch p.Status {
	case StatusActive:
	case StatusUsedUp:
		return nil, Errorf(CodeNoVisitsLeft, "every visit of this package has been used")
	default:
		return nil, Errorf(CodePackageNotActive, "the package is %s; visits can be deducted only while it is active", p.Status)
	}
	if p.ExpiresAt != nil && !now.Before(*p.ExpiresAt) {
		return nil, Errorf(CodePackageNotActive, "the package expired at %s", p.ExpiresAt.Format(time.RFC3339))
	}
	for _, u := range p.Units {
		if u.Service == c.Service && u.RedemptionID == nil {
			return []Event{VisitRedeemed{
				RedemptionID: c.RedemptionID, Unit: u.Index, Service: u.Service, Value: u.Value,
				RepairOrder: ro, Mileage: c.Mileage,
			}}, nil
		}
	}
	return nil, Errorf(CodeNoVisitsLeft, "no %s visits left", c.Service)
}

func decideReverse(p Package, c ReverseRedemption) ([]Event, error) {
	reason, err := CheckText("reason", c.Reason, 1, MaxReason)
	if err != nil {
		return nil, err
	}
	if !p.Exists() {
		return nil, Errorf(CodePackageNotFound, "no such package")
	}
	r, ok := p.RedemptionByID(c.RedemptionID)
	if !ok {
		return nil, Errorf(CodeRedemptionNotFound, "no redemption %s on this package", c.RedemptionID)
	}
	if r.Reversed {
		return nil, Errorf(CodeRedemptionReversed, "redemption %s is already reversed", c.RedemptionID)
	}
	switch p.Status {
	case StatusActive, StatusUsedUp, StatusExpired:
	default:
		return nil, Errorf(CodePackageNotActive, "the package is %s; its deductions can no longer be reversed", p.Status)
	}
	return []Event{RedemptionReversed{RedemptionID: c.RedemptionID, Reason: reason}}, nil
}

func decideBreakage(p Package, c RecognizeBreakage) ([]Event, error) {
	reason, err := CheckText("reason", c.Reason, 1, MaxReason)
	if err != nil {
		return nil, err
	}
	if !p.Exists() {
		return nil, Errorf(CodePackageNotFound, "no such package")
	}
	if p.Status != StatusExpired {
		return nil, Errorf(CodePackageNotExpired, "the package is %s; breakage applies only to an expired package", p.Status)
	}
	if !p.Liability.IsPositive() {
		if p.Breakage.IsPositive() {
			return nil, Errorf(CodeBreakageRecognized, "breakage of %s is already recognized", p.Breakage)
		}
		return nil, Errorf(CodeNothingToRecover, "the package owes nothing")
	}
	return []Event{BreakageRecognized{Amount: p.Liability, Reason: reason}}, nil
}
