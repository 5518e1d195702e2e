package domain

import (
	"time"
)

// RefundPolicy names how a refund's base is computed (DESIGN.md §4). There
// is deliberately no "no refund" policy: PRC rules void such a clause.
type RefundPolicy string

const (
	// RefundProRata refunds the liability: the value of the unused visits.
	RefundProRata RefundPolicy = "pro_rata"
	// RefundListPrice charges the used visits at their undiscounted list
	// price and refunds what is left of the amount paid.
	RefundListPrice RefundPolicy = "list_price"
)

// Entitlement is one service type of a plan: how many visits, and the list
// price of one.
type Entitlement struct {
	Service   string `json:"service"`
	Count     int    `json:"count"`
	ListPrice Money  `json:"list_price"`
}

// ServiceInterval is how often the vehicle should come in, for reminders.
type ServiceInterval struct {
	Months int `json:"months"`
	KM     int `json:"km"`
}

// UnitSpec is one entitled visit and its share of the price.
type UnitSpec struct {
	Index     int    `json:"index"`
	Service   string `json:"service"`
	ListPrice Money  `json:"list_price"`
	Value     Money  `json:"value"`
}

// PlanSpec is what a manager asks for: either Price or Rate.
type PlanSpec struct {
	Code                string
	Name                string
	Models              []string
	Entitlements        []Entitlement
	Price               *Money
	Rate                *Rate
	ValidityMonths      int
	RefundPolicy        RefundPolicy
	CancellationFeeRate *Rate
	FreeLookDays        int
	ServiceInterval     *ServiceInterval
	Gifts               []string
}

// Plan is a resolved, validated package template. A sold package keeps a
// full copy, so nothing here may depend on anything outside it.
type Plan struct {
	Code                string           `json:"code"`
	Name                string           `json:"name"`
	Models              []string         `json:"models"`
	Entitlements        []Entitlement    `json:"entitlements"`
	Rate                *Rate            `json:"rate,omitempty"`
	ListTotal           Money            `json:"list_total"`
	Price               Money            `json:"price"`
	Units               []UnitSpec       `json:"units"`
	ValidityMonths      int              `json:"validity_months"`
	RefundPolicy        RefundPolicy     `json:"refund_policy"`
	CancellationFeeRate Rate             `json:"cancellation_fee_rate"`
	FreeLookDays        int              `json:"free_look_days"`
	ServiceInterval     *ServiceInterval `json:"service_interval,omitempty"`
	Gifts               []string         `json:"gifts"`
}

// Limits on a plan; generous for any real offer, tight enough that a typo
// cannot create a package of a million visits.
const (
	maxEntitlements   = 20
	maxVisitsPerEntry = 100
	maxValidityMonths = 120
	maxFreeLookDays   = 365
	maxModels         = 50
	maxGifts          = 20
)

// NewPlan validates spec and resolves its list total, price and unit values.
func NewPlan(spec PlanSpec) (Plan, error) {
	if err := CheckPlanCode(spec.Code); err != nil {
		return Plan{}, err
	}
	name, err := CheckText("name", spec.Name, 1, 100)
	if err != nil {
		return Plan{}, err
	}
	if len(spec.Models) > maxModels {
		return Plan{}, FieldErrorf(CodeInvalidField, "models", "at most %d models", maxModels)
	}
	models := make([]string, 0, len(spec.Models))
	for i, m := range spec.Models {
		t, err := CheckText("models["+itoa(i)+"]", m, 1, 60)
		if err != nil {
			return Plan{}, err
		}
		models = append(models, t)
	}
	if len(spec.Entitlements) == 0 {
		return Plan{}, FieldErrorf(CodeInvalidField, "entitlements", "at least one entitlement is required")
	}
	if len(spec.Entitlements) > maxEntitlements {
		return Plan{}, FieldErrorf(CodeInvalidField, "entitlements", "at most %d entitlements", maxEntitlements)
	}
	seen := map[string]bool{}
	var listTotal Money
	ents := make([]Entitlement, len(spec.Entitlements))
	for i, e := range spec.Entitlements {
		if err := CheckService("service", e.Service); err != nil {
			return Plan{}, withIndex(err, "entitlements", i)
		}
		if seen[e.Service] {
			return Plan{}, withIndex(FieldErrorf(CodeInvalidField, "service", "%q is listed twice", e.Service), "entitlements", i)
		}
		seen[e.Service] = true
		if e.Count < 1 || e.Count > maxVisitsPerEntry {
			return Plan{}, withIndex(FieldErrorf(CodeInvalidField, "count", "must be between 1 and %d", maxVisitsPerEntry), "entitlements", i)
		}
		if !e.ListPrice.IsPositive() {
			return Plan{}, withIndex(FieldErrorf(CodeInvalidAmount, "list_price", "must be more than 0.00"), "entitlements", i)
		}
		ents[i] = e
		for k := 0; k < e.Count; k++ {
			listTotal = listTotal.Add(e.ListPrice)
		}
	}
	// Every amount of a package (price, unit values, payments, refunds)
	// is at most its list total, so this bound keeps all of them amounts
	// that a stored event can hold and be read back with.
	if listTotal.Cmp(largestAmount) > 0 {
		return Plan{}, FieldErrorf(CodeInvalidAmount, "entitlements", "the list total %s is above the largest amount, %s", listTotal, largestAmount)
	}
	var price Money
	switch {
	case spec.Price != nil && spec.Rate != nil:
		return Plan{}, FieldErrorf(CodeInvalidField, "price", "give either price or rate, not both")
	case spec.Price != nil:
		price = *spec.Price
		if !price.IsPositive() {
			return Plan{}, FieldErrorf(CodeInvalidAmount, "price", "must be more than 0.00")
		}
	case spec.Rate != nil:
		if spec.Rate.IsZero() {
			return Plan{}, FieldErrorf(CodeInvalidField, "rate", "must be more than 0")
		}
		price = listTotal.MulRateHalfUp(*spec.Rate)
	default:
		return Plan{}, FieldErrorf(CodeInvalidField, "price", "give either price or rate")
	}
	// A prepaid package is sold at or below list: a price above it would
	// make a unit worth more than its list price, and the list_price refund
	// policy would then refund more than the liability.
	if price.Cmp(listTotal) > 0 {
		return Plan{}, FieldErrorf(CodeInvalidAmount, "price", "%s is above the list total %s", price, listTotal)
	}
	if spec.ValidityMonths < 1 || spec.ValidityMonths > maxValidityMonths {
		return Plan{}, FieldErrorf(CodeInvalidField, "validity_months", "must be between 1 and %d", maxValidityMonths)
	}
	policy := spec.RefundPolicy
	if policy == "" {
		policy = RefundProRata
	}
	if policy != RefundProRata && policy != RefundListPrice {
		return Plan{}, FieldErrorf(CodeInvalidField, "refund_policy", "must be \"pro_rata\" or \"list_price\" (a plan cannot refuse refunds)")
	}
	var feeRate Rate
	if spec.CancellationFeeRate != nil {
		feeRate = *spec.CancellationFeeRate
		if feeRate.Cmp(MustRate("1")) >= 0 {
			return Plan{}, FieldErrorf(CodeInvalidField, "cancellation_fee_rate", "must be below 1")
		}
	}
	if spec.FreeLookDays < 0 || spec.FreeLookDays > maxFreeLookDays {
		return Plan{}, FieldErrorf(CodeInvalidField, "free_look_days", "must be between 0 and %d", maxFreeLookDays)
	}
	if si := spec.ServiceInterval; si != nil {
		if si.Months < 0 || si.Months > 60 || si.KM < 0 || si.KM > 100000 || (si.Months == 0 && si.KM == 0) {
			return Plan{}, FieldErrorf(CodeInvalidField, "service_interval", "months 0–60 and km 0–100000, not both 0")
		}
	}
	if len(spec.Gifts) > maxGifts {
		return Plan{}, FieldErrorf(CodeInvalidField, "gifts", "at most %d gifts", maxGifts)
	}
	gifts := make([]string, 0, len(spec.Gifts))
	for i, g := range spec.Gifts {
		t, err := CheckText("gifts["+itoa(i)+"]", g, 1, 100)
		if err != nil {
			return Plan{}, err
		}
		gifts = append(gifts, t)
	}
	p := Plan{
		Code: spec.Code, Name: name, Models: models, Entitlements: ents,
		Rate: spec.Rate, ListTotal: listTotal, Price: price,
		ValidityMonths: spec.ValidityMonths, RefundPolicy: policy,
		CancellationFeeRate: feeRate, FreeLookDays: spec.FreeLookDays,
		ServiceInterval: spec.ServiceInterval, Gifts: gifts,
	}
	p.Units = planUnits(ents, price)
	return p, nil
}

// planUnits lays out one unit per entitled visit, in entitlement order, and
// allocates the price over them.
func planUnits(ents []Entitlement, price Money) []UnitSpec {
	var units []UnitSpec
	var lps []Money
	for _, e := range ents {
		for k := 0; k < e.Count; k++ {
			units = append(units, UnitSpec{Index: len(units), Service: e.Service, ListPrice: e.ListPrice})
			lps = append(lps, e.ListPrice)
		}
	}
	for i, v := range Allocate(price, lps) {
		units[i].Value = v
	}
	return units
}

// CoversModel reports whether a vehicle model may buy the plan: a plan that
// lists no models is for any vehicle.
func (p Plan) CoversModel(model string) bool {
	if len(p.Models) == 0 {
		return true
	}
	for _, m := range p.Models {
		if m == model {
			return true
		}
	}
	return false
}

// HasService reports whether the plan entitles the service at all.
func (p Plan) HasService(s string) bool {
	for _, e := range p.Entitlements {
		if e.Service == s {
			return true
		}
	}
	return false
}

// PlanStatus is a plan's lifecycle state.
type PlanStatus string

const (
	PlanStatusActive  PlanStatus = "active"
	PlanStatusRetired PlanStatus = "retired"
)

// PlanState is a plan as its events leave it.
type PlanState struct {
	Plan      Plan       `json:"plan"`
	Status    PlanStatus `json:"status"`
	DefinedAt time.Time  `json:"defined_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	Reason    string     `json:"retire_reason,omitempty"`
	Seq       uint64     `json:"seq"`
}

// Exists reports whether the plan has been defined.
func (s PlanState) Exists() bool { return s.Status != "" }

// DefinePlan decides the definition of a new plan.
func DefinePlan(s PlanState, p Plan) ([]Event, error) {
	if s.Exists() {
		return nil, Errorf(CodePlanExists, "plan %q already exists; plans never change, define a new code", p.Code)
	}
	return []Event{PlanDefined{Plan: p}}, nil
}

// RetirePlan decides the retirement of a plan: no new sales.
func RetirePlan(s PlanState, code, reason string) ([]Event, error) {
	r, err := CheckText("reason", reason, 1, MaxReason)
	if err != nil {
		return nil, err
	}
	if !s.Exists() {
		return nil, Errorf(CodePlanNotFound, "no plan %q", code)
	}
	if s.Status == PlanStatusRetired {
		return nil, Errorf(CodePlanRetired, "plan %q is already retired", code)
	}
	return []Event{PlanRetired{Code: code, Reason: r}}, nil
}

// ApplyPlan folds one plan event into s.
func ApplyPlan(s PlanState, env Envelope) PlanState {
	switch e := env.Event.(type) {
	case PlanDefined:
		s.Plan = e.Plan
		s.Status = PlanStatusActive
		s.DefinedAt = env.BusinessTime
	case PlanRetired:
		s.Status = PlanStatusRetired
		t := env.BusinessTime
		s.RetiredAt = &t
		s.Reason = e.Reason
	}
	s.Seq = env.Seq
	return s
}

func withIndex(err error, field string, i int) error {
	return withField(err, field+"["+itoa(i)+"]")
}

func parseDate(s string) (time.Time, error) { return time.Parse("2006-01-02", s) }
