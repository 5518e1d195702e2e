package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// Table tests, one per rule of DESIGN.md §4 and of Decide. The helpers
// history, soldAndPaid and oilPlan are in figures_test.go.

// try decides cmd like do, but a refusal is an answer, not a failure: it
// must come with no events, and nothing is applied.
func (h *history) try(cmd domain.Command) ([]domain.Event, error) {
	h.t.Helper()
	evs, err := domain.Decide(h.pkg, cmd, h.now)
	if err != nil {
		require.Empty(h.t, evs, "a refused command returns no events")
		return nil, err
	}
	for _, e := range evs {
		h.seq++
		h.pkg = domain.Apply(h.pkg, domain.Envelope{Event: e, Seq: h.seq, BusinessTime: h.now, Actor: domain.Actor{ID: "u1"}})
		require.NoError(h.t, domain.CheckInvariant(h.pkg))
	}
	return evs, nil
}

// refused decides cmd and requires the refusal code.
func (h *history) refused(cmd domain.Command, code string) {
	h.t.Helper()
	before := h.pkg
	evs, err := h.try(cmd)
	require.Error(h.t, err, "want %s, got events %v", code, evs)
	require.Equal(h.t, code, domain.ErrorCode(err), "%v", err)
	require.Equal(h.t, before, h.pkg, "a refusal changes nothing")
}

func (h *history) pay(amount string) []domain.Event {
	h.t.Helper()
	return h.do(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney(amount), Method: "cash", Receipt: "R-" + uuid.NewString()[:8]})
}

func (h *history) redeem(service, ro string) domain.VisitRedeemed {
	h.t.Helper()
	evs := h.do(domain.Redeem{RedemptionID: uuid.New(), Service: service, RepairOrder: ro, Mileage: 1000})
	require.Len(h.t, evs, 1)
	return evs[0].(domain.VisitRedeemed)
}

func (h *history) reverse(id uuid.UUID) {
	h.t.Helper()
	h.do(domain.ReverseRedemption{RedemptionID: id, Reason: "wrong package"})
}

func sold(t *testing.T, plan domain.Plan, now time.Time) *history {
	t.Helper()
	h := &history{t: t, now: now}
	h.do(domain.Sell{PackageID: uuid.New(), Plan: domain.PlanState{Plan: plan, Status: domain.PlanStatusActive},
		Customer: domain.Customer{ID: "C1", Name: "Li Wei", Phone: "13800000000"},
		Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A12345", Model: "Lavida"}, Advisor: "adv1"})
	return h
}

// paid sells plan and pays its whole price at now.
func paid(t *testing.T, plan domain.Plan, now time.Time) *history {
	t.Helper()
	h := sold(t, plan, now)
	require.Len(t, h.pay(plan.Price.String()), 2, "the payment of the price activates")
	return h
}

func moneyPtr(s string) *domain.Money { m := domain.MustMoney(s); return &m }
func ratePtr(s string) *domain.Rate   { r := domain.MustRate(s); return &r }

// spec is a valid plan of 3 oil changes and 1 inspection; tests change
// what they test.
func spec(change func(*domain.PlanSpec)) domain.PlanSpec {
	s := domain.PlanSpec{
		Code: "MIX4", Name: "3 oil changes and an inspection",
		Entitlements: []domain.Entitlement{
			{Service: "oil_change", Count: 3, ListPrice: domain.MustMoney("480.00")},
			{Service: "inspection", Count: 1, ListPrice: domain.MustMoney("200.00")},
		},
		Price:               moneyPtr("1400.00"),
		ValidityMonths:      12,
		RefundPolicy:        domain.RefundProRata,
		CancellationFeeRate: ratePtr("0.10"),
	}
	if change != nil {
		change(&s)
	}
	return s
}

func plan(t *testing.T, change func(*domain.PlanSpec)) domain.Plan {
	t.Helper()
	p, err := domain.NewPlan(spec(change))
	require.NoError(t, err)
	return p
}

// eqMoney compares amounts by value: two equal decimals need not be equal
// structs.
func eqMoney(t *testing.T, want, got domain.Money, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, want.String(), got.String(), msgAndArgs...)
}

func quoteString(q domain.RefundQuote) string {
	return fmt.Sprintf("base %s fee %s amount %s recognized %s policy %s", q.Base, q.Fee, q.Amount, q.Recognized, q.Policy)
}

func refundString(r domain.PackageRefunded) string {
	return quoteString(domain.RefundQuote{Base: r.Base, Fee: r.Fee, Amount: r.Amount, Recognized: r.Recognized, Policy: r.Policy})
}

// requireTypeError requires the error that Money and Rate give for bad
// JSON: a *json.UnmarshalTypeError naming the type, so a decoder can say
// which field is at fault.
func requireTypeError(t *testing.T, err error, typ reflect.Type, input string) {
	t.Helper()
	require.Error(t, err, "%q", input)
	var te *json.UnmarshalTypeError
	require.True(t, errors.As(err, &te), "%q: %T %v", input, err, err)
	require.Equal(t, typ, te.Type, "%q", input)
}

func requireCode(t *testing.T, err error, code, field string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, domain.ErrorCode(err), "%v", err)
	if field != "" {
		var de *domain.Error
		require.True(t, errors.As(err, &de))
		require.Equal(t, field, de.Field)
	}
}

func TestMoney_Parse(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for _, s := range []string{"0.00", "0.01", "0.10", "1.00", "480.00", "2448.00", "333.33", "999999999999.99"} {
			m, err := domain.ParseMoney(s)
			require.NoError(t, err, s)
			require.Equal(t, s, m.String())
			require.False(t, m.IsNegative())
		}
	})
	t.Run("ErrInvalidAmount", func(t *testing.T) {
		for _, s := range []string{
			"", "1", "1.", "1.0", "1.000", ".50", "-1.00", "-0.00", "+1.00", "1e3", "1E3", "1.00e0",
			"01.00", "00.00", " 1.00", "1.00 ", "1.00\n", "1,00", "1,000.00", "１.００", "0x1.00",
			"NaN", "Inf", "1 000.00", "1000000000000.00", "99999999999999999999.00",
		} {
			_, err := domain.ParseMoney(s)
			requireCode(t, err, domain.CodeInvalidAmount, "")
		}
	})
}

func TestMoney_JSON(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		var m domain.Money
		require.NoError(t, json.Unmarshal([]byte(`"2448.00"`), &m))
		require.Equal(t, "2448.00", m.String())
		b, err := json.Marshal(m)
		require.NoError(t, err)
		require.Equal(t, `"2448.00"`, string(b))
		var p domain.PaymentRecorded
		require.NoError(t, json.Unmarshal([]byte(`{"amount":"0.01"}`), &p))
		require.Equal(t, "0.01", p.Amount.String())
	})
	t.Run("ErrInvalidAmount", func(t *testing.T) {
		for _, in := range []string{
			`2448.00`, `2448`, `1e3`, `-1.00`, `null`, `true`, `{}`, `[]`, `""`, `"2448"`, `"2448.0"`,
			`"2448.000"`, `"-1.00"`, `"1e3"`, `" 1.00"`, `"1,00"`, `"2448.00`, ``,
		} {
			var m domain.Money
			requireTypeError(t, m.UnmarshalJSON([]byte(in)), domain.MoneyType, in)
		}
	})
	t.Run("ErrJSONNumberInAnEvent", func(t *testing.T) {
		for _, in := range []string{`{"amount":2448.00}`, `{"amount":2448}`, `{"amount":null}`, `{"amount":"2448"}`} {
			var p domain.PaymentRecorded
			err := json.Unmarshal([]byte(in), &p)
			requireTypeError(t, err, domain.MoneyType, in)
			var te *json.UnmarshalTypeError
			require.True(t, errors.As(err, &te))
			require.Equal(t, "amount", te.Field, "the decoder names the field at fault")
		}
	})
}

func TestRate_Parse(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for in, want := range map[string]string{
			"0.85": "0.85", "0.8": "0.80", "0.1": "0.10", "0.10": "0.10", "0.8555": "0.8555", "0.855": "0.855",
			"0": "0.00", "1": "1.00", "1.0": "1.00", "1.0000": "1.00", "0.1000": "0.10", "0.8550": "0.855", "0.0001": "0.0001",
		} {
			r, err := domain.ParseRate(in)
			require.NoError(t, err, in)
			require.Equal(t, want, r.String(), in)
			// The written form parses back to the same rate and form.
			back, err := domain.ParseRate(r.String())
			require.NoError(t, err, in)
			require.Equal(t, 0, back.Cmp(r))
			require.Equal(t, want, back.String())
		}
	})
	t.Run("ErrInvalidField", func(t *testing.T) {
		for _, in := range []string{
			"", "1.5", "1.0001", "2", ".85", "0.", "0.85000", "-0.10", "-0", "+0.85", "0.85 ", "1e-1", "85%", "01", "00.85", "0,85",
		} {
			_, err := domain.ParseRate(in)
			requireCode(t, err, domain.CodeInvalidField, "")
		}
	})
	t.Run("ErrJSON", func(t *testing.T) {
		var r domain.Rate
		for _, in := range []string{`0.85`, `1`, `null`, `"1.5"`, `".85"`, `""`} {
			requireTypeError(t, r.UnmarshalJSON([]byte(in)), domain.RateType, in)
		}
		require.NoError(t, r.UnmarshalJSON([]byte(`"0.85"`)))
		require.Equal(t, "0.85", r.String())
	})
}

func TestPlan_PriceFromRate(t *testing.T) {
	tests := []struct {
		name      string
		ents      []domain.Entitlement
		rate      string
		listTotal string
		price     string
	}{
		// 0.10 × 0.85 = 0.085: half-up gives 0.09 where half-even would give 0.08.
		{"HalfUpAtHalfCent", ents("oil_change", 1, "0.10"), "0.85", "0.10", "0.09"},
		{"HalfUpAtHalfCentAgain", ents("oil_change", 1, "0.50"), "0.85", "0.50", "0.43"},
		{"Odd", ents("oil_change", 1, "33.33"), "0.85", "33.33", "28.33"},
		{"OddTimesThree", ents("oil_change", 3, "33.33"), "0.85", "99.99", "84.99"},
		{"FourDecimals", ents("oil_change", 3, "333.33"), "0.8555", "999.99", "855.49"},
		{"Worked", ents("oil_change", 6, "480.00"), "0.85", "2880.00", "2448.00"},
		{"Mixed", append(ents("oil_change", 6, "480.00"), ents("inspection", 2, "200.00")...), "0.85", "3280.00", "2788.00"},
		{"RateOne", ents("oil_change", 4, "333.33"), "1", "1333.32", "1333.32"},
		{"Cent", ents("oil_change", 1, "0.01"), "0.5", "0.01", "0.01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan(t, func(s *domain.PlanSpec) { s.Entitlements, s.Price, s.Rate = tt.ents, nil, ratePtr(tt.rate) })
			require.Equal(t, tt.listTotal, p.ListTotal.String())
			require.Equal(t, tt.price, p.Price.String())
			var sum domain.Money
			for _, u := range p.Units {
				sum = sum.Add(u.Value)
			}
			require.Equal(t, tt.price, sum.String(), "unit values sum to the price")
		})
	}
}

func ents(service string, count int, listPrice string) []domain.Entitlement {
	return []domain.Entitlement{{Service: service, Count: count, ListPrice: domain.MustMoney(listPrice)}}
}

func TestPlan_Validate(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		p := plan(t, nil)
		require.Equal(t, "1640.00", p.ListTotal.String())
		require.Equal(t, "1400.00", p.Price.String())
		require.Len(t, p.Units, 4)
		require.Equal(t, []string{"oil_change", "oil_change", "oil_change", "inspection"},
			[]string{p.Units[0].Service, p.Units[1].Service, p.Units[2].Service, p.Units[3].Service}, "units in entitlement order")
		require.Equal(t, domain.RefundProRata, plan(t, func(s *domain.PlanSpec) { s.RefundPolicy = "" }).RefundPolicy, "pro_rata by default")
		plan(t, func(s *domain.PlanSpec) { s.Price = moneyPtr("1640.00") }) // at list
		plan(t, func(s *domain.PlanSpec) { s.CancellationFeeRate = ratePtr("0.9999") })
		plan(t, func(s *domain.PlanSpec) { s.RefundPolicy = domain.RefundListPrice })
		plan(t, func(s *domain.PlanSpec) { s.ValidityMonths = 120; s.FreeLookDays = 365 })
		top := plan(t, func(s *domain.PlanSpec) {
			s.Entitlements = []domain.Entitlement{{Service: "oil_change", Count: 1, ListPrice: domain.MustMoney("999999999999.99")}}
			s.Price = moneyPtr("999999999999.99")
		})
		b, err := domain.EncodeEvent(domain.PlanDefined{Plan: top})
		require.NoError(t, err)
		_, err = domain.DecodeEvent("PlanDefined", domain.SchemaVersion, b)
		require.NoError(t, err, "a plan at the largest list total is stored and read back")
	})
	tests := []struct {
		name   string
		change func(*domain.PlanSpec)
		code   string
		field  string
	}{
		{"ErrNoEntitlements", func(s *domain.PlanSpec) { s.Entitlements = nil }, domain.CodeInvalidField, "entitlements"},
		{"ErrDuplicateService", func(s *domain.PlanSpec) { s.Entitlements[1].Service = "oil_change" }, domain.CodeInvalidField, "entitlements[1].service"},
		{"ErrBadService", func(s *domain.PlanSpec) { s.Entitlements[0].Service = "Oil Change" }, domain.CodeInvalidField, "entitlements[0].service"},
		{"ErrCountZero", func(s *domain.PlanSpec) { s.Entitlements[0].Count = 0 }, domain.CodeInvalidField, "entitlements[0].count"},
		{"ErrListPriceZero", func(s *domain.PlanSpec) { s.Entitlements[1].ListPrice = domain.MustMoney("0.00") }, domain.CodeInvalidAmount, "entitlements[1].list_price"},
		{"ErrPriceAndRate", func(s *domain.PlanSpec) { s.Rate = ratePtr("0.85") }, domain.CodeInvalidField, "price"},
		{"ErrNeitherPriceNorRate", func(s *domain.PlanSpec) { s.Price = nil }, domain.CodeInvalidField, "price"},
		{"ErrPriceZero", func(s *domain.PlanSpec) { s.Price = moneyPtr("0.00") }, domain.CodeInvalidAmount, "price"},
		{"ErrRateZero", func(s *domain.PlanSpec) { s.Price, s.Rate = nil, ratePtr("0") }, domain.CodeInvalidField, "rate"},
		{"ErrPriceAboveListTotal", func(s *domain.PlanSpec) { s.Price = moneyPtr("1640.01") }, domain.CodeInvalidAmount, "price"},
		{"ErrValidityZero", func(s *domain.PlanSpec) { s.ValidityMonths = 0 }, domain.CodeInvalidField, "validity_months"},
		{"ErrValidityTooLong", func(s *domain.PlanSpec) { s.ValidityMonths = 121 }, domain.CodeInvalidField, "validity_months"},
		{"ErrValidityNegative", func(s *domain.PlanSpec) { s.ValidityMonths = -12 }, domain.CodeInvalidField, "validity_months"},
		{"ErrRefundPolicyNone", func(s *domain.PlanSpec) { s.RefundPolicy = "none" }, domain.CodeInvalidField, "refund_policy"},
		{"ErrRefundPolicyCase", func(s *domain.PlanSpec) { s.RefundPolicy = "Pro_Rata" }, domain.CodeInvalidField, "refund_policy"},
		{"ErrFeeRateOne", func(s *domain.PlanSpec) { s.CancellationFeeRate = ratePtr("1") }, domain.CodeInvalidField, "cancellation_fee_rate"},
		{"ErrFeeRateOneWritten4", func(s *domain.PlanSpec) { s.CancellationFeeRate = ratePtr("1.0000") }, domain.CodeInvalidField, "cancellation_fee_rate"},
		{"ErrFreeLookNegative", func(s *domain.PlanSpec) { s.FreeLookDays = -1 }, domain.CodeInvalidField, "free_look_days"},
		{"ErrCode", func(s *domain.PlanSpec) { s.Code = "a b" }, domain.CodeInvalidField, "code"},
		{"ErrName", func(s *domain.PlanSpec) { s.Name = "  " }, domain.CodeInvalidField, "name"},
		{"ErrModel", func(s *domain.PlanSpec) { s.Models = []string{"Lavida", "La\tvida"} }, domain.CodeInvalidField, "models[1]"},
		{"ErrGift", func(s *domain.PlanSpec) { s.Gifts = []string{strings.Repeat("g", 101)} }, domain.CodeInvalidField, "gifts[0]"},
		// A list total beyond the largest amount would be stored in an
		// event that no reader could decode.
		{"ErrListTotalTooLarge", func(s *domain.PlanSpec) {
			s.Entitlements[0] = domain.Entitlement{Service: "oil_change", Count: 2, ListPrice: domain.MustMoney("500000000000.00")}
		}, domain.CodeInvalidAmount, "entitlements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := domain.NewPlan(spec(tt.change))
			requireCode(t, err, tt.code, tt.field)
		})
	}
}

func TestPackage_Sell(t *testing.T) {
	p := plan(t, nil)
	cmd := func(change func(*domain.Sell)) domain.Sell {
		c := domain.Sell{PackageID: uuid.New(), Plan: domain.PlanState{Plan: p, Status: domain.PlanStatusActive},
			Customer: domain.Customer{ID: "C1", Name: "Li Wei", Phone: "13800000000"},
			Vehicle:  domain.Vehicle{VIN: "lsvau2180n2183294", Plate: "沪A12345", Model: "Lavida"}, Advisor: "adv1"}
		if change != nil {
			change(&c)
		}
		return c
	}
	t.Run("OK", func(t *testing.T) {
		h := &history{t: t, now: t0}
		evs := h.do(cmd(nil))
		require.Len(t, evs, 1)
		require.Equal(t, domain.StatusAwaitingPayment, h.pkg.Status)
		require.Equal(t, "LSVAU2180N2183294", h.pkg.Vehicle.VIN, "VIN normalized")
		eqMoney(t, p.Price, h.pkg.Price)
		require.Equal(t, map[string]int{"oil_change": 3, "inspection": 1}, h.pkg.Remaining())
		require.True(t, h.pkg.Liability.IsZero())
	})
	tests := []struct {
		name   string
		change func(*domain.Sell)
		code   string
	}{
		{"ErrPlanNotFound", func(c *domain.Sell) { c.Plan = domain.PlanState{} }, domain.CodePlanNotFound},
		{"ErrPlanRetired", func(c *domain.Sell) { c.Plan.Status = domain.PlanStatusRetired }, domain.CodePlanRetired},
		{"ErrModelNotCovered", func(c *domain.Sell) { c.Plan.Plan.Models = []string{"Passat"} }, domain.CodeModelNotCovered},
		{"ErrVIN", func(c *domain.Sell) { c.Vehicle.VIN = "LSVAU2180N218329O" }, domain.CodeInvalidField},
		{"ErrPhone", func(c *domain.Sell) { c.Customer.Phone = "call me" }, domain.CodeInvalidField},
		{"ErrAdvisor", func(c *domain.Sell) { c.Advisor = "" }, domain.CodeInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &history{t: t, now: t0}
			h.refused(cmd(tt.change), tt.code)
		})
	}
	t.Run("ErrConcurrentUpdate", func(t *testing.T) {
		h := sold(t, p, t0)
		h.refused(cmd(nil), domain.CodeConcurrentUpdate)
	})
}

func TestPackage_RecordPayment(t *testing.T) {
	p := plan(t, nil) // price 1400.00
	t.Run("OK", func(t *testing.T) {
		h := sold(t, p, t0)
		require.Len(t, h.pay("400.00"), 1)
		require.Equal(t, domain.StatusAwaitingPayment, h.pkg.Status)
		require.Len(t, h.pay("999.99"), 1, "one cent short does not activate")
		require.Equal(t, domain.StatusAwaitingPayment, h.pkg.Status)
		require.Nil(t, h.pkg.ActivatedAt)
		h.now = t0.Add(time.Hour)
		evs := h.pay("0.01")
		require.Len(t, evs, 2)
		a := evs[1].(domain.PackageActivated)
		require.Equal(t, h.now, a.ActivatedAt, "activated when the payments reach the price")
		require.Equal(t, h.now.AddDate(1, 0, 0), a.ExpiresAt)
		require.Equal(t, domain.StatusActive, h.pkg.Status)
		require.Equal(t, "1400.00", h.pkg.Liability.String())
	})
	t.Run("ErrOverpayment", func(t *testing.T) {
		h := sold(t, p, t0)
		h.pay("1000.00")
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("400.01"), Method: "cash", Receipt: "R-9"}, domain.CodeOverpayment)
	})
	t.Run("ErrOverpaymentOfPaidPackage", func(t *testing.T) {
		h := paid(t, p, t0)
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("0.01"), Method: "cash", Receipt: "R-9"}, domain.CodeOverpayment)
	})
	t.Run("ErrPackageNotActive", func(t *testing.T) {
		h := sold(t, p, t0)
		h.pay("100.00")
		h.do(domain.RefundPackage{Method: "cash", Reason: "changed mind"})
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("100.00"), Method: "cash", Receipt: "R-9"}, domain.CodePackageNotActive)
	})
	t.Run("ErrPackageNotActiveExpired", func(t *testing.T) {
		h := paid(t, p, t0)
		h.now = *h.pkg.ExpiresAt
		h.do(domain.Expire{})
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: "R-9"}, domain.CodePackageNotActive)
	})
	t.Run("RepeatedReceipt", func(t *testing.T) {
		h := sold(t, p, t0)
		cmd := domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("100.00"), Method: "cash", Receipt: "R-1"}
		h.do(cmd)
		again := cmd
		again.PaymentID = uuid.New()
		evs, err := h.try(again)
		require.NoError(t, err)
		require.Empty(t, evs, "the same receipt and amount again is the first payment")
		require.Equal(t, "100.00", h.pkg.Paid.String())
	})
	t.Run("ErrDuplicateReceipt", func(t *testing.T) {
		h := sold(t, p, t0)
		h.do(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("100.00"), Method: "cash", Receipt: "R-1"})
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("200.00"), Method: "cash", Receipt: "R-1"}, domain.CodeDuplicateReceipt)
	})
	t.Run("ErrInvalidAmount", func(t *testing.T) {
		h := sold(t, p, t0)
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("0.00"), Method: "cash", Receipt: "R-1"}, domain.CodeInvalidAmount)
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.Cents(-100), Method: "cash", Receipt: "R-1"}, domain.CodeInvalidAmount)
	})
	t.Run("ErrInvalidField", func(t *testing.T) {
		h := sold(t, p, t0)
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cheque", Receipt: "R-1"}, domain.CodeInvalidField)
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: ""}, domain.CodeInvalidField)
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: "R 1"}, domain.CodeInvalidField)
	})
	t.Run("ErrPackageNotFound", func(t *testing.T) {
		h := &history{t: t, now: t0}
		h.refused(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: "R-1"}, domain.CodePackageNotFound)
	})
}

func TestPackage_ExpiresAt(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	tests := []struct {
		name      string
		activated time.Time
		months    int
		want      time.Time
	}{
		{"Plain", time.Date(2026, 3, 15, 10, 30, 0, 0, cst), 12, time.Date(2027, 3, 15, 10, 30, 0, 0, cst)},
		{"Jan31PlusOne", time.Date(2026, 1, 31, 10, 30, 0, 0, cst), 1, time.Date(2026, 2, 28, 10, 30, 0, 0, cst)},
		{"Jan31PlusOneLeap", time.Date(2028, 1, 31, 10, 30, 0, 0, cst), 1, time.Date(2028, 2, 29, 10, 30, 0, 0, cst)},
		{"Mar31PlusOne", time.Date(2026, 3, 31, 23, 59, 59, 0, cst), 1, time.Date(2026, 4, 30, 23, 59, 59, 0, cst)},
		{"Aug31PlusSix", time.Date(2026, 8, 31, 9, 0, 0, 0, cst), 6, time.Date(2027, 2, 28, 9, 0, 0, 0, cst)},
		{"Dec31PlusTwo", time.Date(2026, 12, 31, 9, 0, 0, 0, cst), 2, time.Date(2027, 2, 28, 9, 0, 0, 0, cst)},
		{"Jan31PlusThirteen", time.Date(2026, 1, 31, 9, 0, 0, 0, cst), 13, time.Date(2027, 2, 28, 9, 0, 0, 0, cst)},
		{"Feb29PlusTwelve", time.Date(2028, 2, 29, 9, 0, 0, 0, cst), 12, time.Date(2029, 2, 28, 9, 0, 0, 0, cst)},
		{"Oct31PlusHundredTwenty", time.Date(2026, 10, 31, 9, 0, 0, 0, cst), 120, time.Date(2036, 10, 31, 9, 0, 0, 0, cst)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan(t, func(s *domain.PlanSpec) { s.ValidityMonths = tt.months })
			h := sold(t, p, tt.activated.Add(-48*time.Hour))
			h.pay("1000.00")
			h.now = tt.activated
			evs := h.pay("400.00")
			require.Len(t, evs, 2)
			a := evs[1].(domain.PackageActivated)
			require.True(t, a.ActivatedAt.Equal(tt.activated))
			require.Equal(t, tt.want.String(), a.ExpiresAt.String())
			require.Equal(t, tt.want.String(), h.pkg.ExpiresAt.String())
		})
	}
}

func TestPackage_Redeem(t *testing.T) {
	p := plan(t, nil) // 3 oil changes, 1 inspection
	t.Run("OK", func(t *testing.T) {
		h := paid(t, p, t0)
		v := h.redeem("inspection", "RO-1")
		require.Equal(t, 3, v.Unit)
		eqMoney(t, h.pkg.Units[3].Value, v.Value)
		eqMoney(t, h.pkg.Price.Sub(v.Value), h.pkg.Liability)
		eqMoney(t, v.Value, h.pkg.Recognized)
		v = h.redeem("oil_change", "RO-1") // the same repair order, another service
		require.Equal(t, 0, v.Unit, "the lowest-index unused unit of the service")
		require.Equal(t, map[string]int{"oil_change": 2, "inspection": 0}, h.pkg.Remaining())
		require.Equal(t, domain.StatusActive, h.pkg.Status)
	})
	t.Run("ErrPackageNotActive", func(t *testing.T) {
		h := sold(t, p, t0)
		h.pay("1399.99")
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1"}, domain.CodePackageNotActive)
	})
	t.Run("ErrPackageNotActivePastExpiresAt", func(t *testing.T) {
		h := paid(t, p, t0)
		h.now = *h.pkg.ExpiresAt // not swept yet, but over
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1"}, domain.CodePackageNotActive)
		h.now = h.pkg.ExpiresAt.Add(-time.Nanosecond)
		h.redeem("oil_change", "RO-1")
	})
	t.Run("ErrPackageNotActiveExpired", func(t *testing.T) {
		h := paid(t, p, t0)
		h.now = h.pkg.ExpiresAt.Add(time.Hour)
		h.do(domain.Expire{})
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1"}, domain.CodePackageNotActive)
	})
	t.Run("ErrUnknownService", func(t *testing.T) {
		h := paid(t, p, t0)
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "tire_rotation", RepairOrder: "RO-1"}, domain.CodeUnknownService)
	})
	t.Run("ErrInvalidField", func(t *testing.T) {
		h := paid(t, p, t0)
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "Oil", RepairOrder: "RO-1"}, domain.CodeInvalidField)
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: ""}, domain.CodeInvalidField)
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1", Mileage: -1}, domain.CodeInvalidField)
	})
	t.Run("ErrNoVisitsLeft", func(t *testing.T) {
		h := paid(t, p, t0)
		h.redeem("inspection", "RO-1")
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "inspection", RepairOrder: "RO-2"}, domain.CodeNoVisitsLeft)
		require.Equal(t, domain.StatusActive, h.pkg.Status, "oil changes are left")
		for i, ro := range []string{"RO-3", "RO-4", "RO-5"} {
			require.Equal(t, i, h.redeem("oil_change", ro).Unit)
		}
		require.Equal(t, domain.StatusUsedUp, h.pkg.Status)
		require.True(t, h.pkg.Liability.IsZero())
		require.Equal(t, h.pkg.Price, h.pkg.Recognized)
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-6"}, domain.CodeNoVisitsLeft)
	})
	t.Run("RepeatedRepairOrder", func(t *testing.T) {
		h := paid(t, p, t0)
		first := h.redeem("oil_change", "RO-1")
		before := h.pkg
		evs, err := h.try(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1", Mileage: 99})
		require.NoError(t, err)
		require.Empty(t, evs, "a repair order deducts a service at most once")
		require.Equal(t, before, h.pkg)
		r, ok := h.pkg.RedemptionFor("RO-1", "oil_change")
		require.True(t, ok)
		require.Equal(t, first.RedemptionID, r.ID, "the answer is the first redemption")
		require.Equal(t, 2, h.pkg.Remaining()["oil_change"])
	})
	t.Run("ErrRedemptionAlreadyReversed", func(t *testing.T) {
		h := paid(t, p, t0)
		v := h.redeem("oil_change", "RO-1")
		h.reverse(v.RedemptionID)
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1"}, domain.CodeRedemptionReversed)
		require.Equal(t, 0, h.redeem("oil_change", "RO-2").Unit, "a new repair order deducts")
	})
	t.Run("ErrPackageNotFound", func(t *testing.T) {
		h := &history{t: t, now: t0}
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1"}, domain.CodePackageNotFound)
	})
}

func TestPackage_ReverseRedemption(t *testing.T) {
	p := plan(t, func(s *domain.PlanSpec) {
		s.Entitlements = ents("oil_change", 3, "100.00")
		s.Price = moneyPtr("200.00") // units worth 66.67, 66.67, 66.66
	})
	t.Run("OK", func(t *testing.T) {
		h := paid(t, p, t0)
		var ids []uuid.UUID
		for _, ro := range []string{"RO-1", "RO-2", "RO-3"} {
			ids = append(ids, h.redeem("oil_change", ro).RedemptionID)
		}
		require.Equal(t, domain.StatusUsedUp, h.pkg.Status)
		h.reverse(ids[1])
		require.Equal(t, domain.StatusActive, h.pkg.Status, "a reversal makes a used-up package active again")
		require.Equal(t, "66.67", h.pkg.Liability.String())
		require.Nil(t, h.pkg.Units[1].RedemptionID)
		h.reverse(ids[2])
		h.reverse(ids[0])
		require.Equal(t, "200.00", h.pkg.Liability.String())
		require.True(t, h.pkg.Recognized.IsZero())
		require.Equal(t, 0, h.redeem("oil_change", "RO-4").Unit, "the lowest-index unused unit is redeemed next")
		require.Equal(t, 1, h.redeem("oil_change", "RO-5").Unit)
		require.Equal(t, 2, h.redeem("oil_change", "RO-6").Unit)
		require.Equal(t, domain.StatusUsedUp, h.pkg.Status)
	})
	t.Run("SameUnitAgain", func(t *testing.T) {
		h := paid(t, p, t0)
		h.redeem("oil_change", "RO-1")
		v := h.redeem("oil_change", "RO-2")
		h.redeem("oil_change", "RO-3")
		h.reverse(v.RedemptionID)
		w := h.redeem("oil_change", "RO-4")
		require.Equal(t, v.Unit, w.Unit)
		eqMoney(t, v.Value, w.Value)
	})
	t.Run("Expired", func(t *testing.T) {
		h := paid(t, p, t0)
		v := h.redeem("oil_change", "RO-1")
		h.now = *h.pkg.ExpiresAt
		h.do(domain.Expire{})
		h.reverse(v.RedemptionID)
		require.Equal(t, domain.StatusExpired, h.pkg.Status, "a reversal does not revive an expired package")
		require.Equal(t, "200.00", h.pkg.Liability.String())
	})
	t.Run("ErrRedemptionAlreadyReversed", func(t *testing.T) {
		h := paid(t, p, t0)
		v := h.redeem("oil_change", "RO-1")
		h.reverse(v.RedemptionID)
		h.refused(domain.ReverseRedemption{RedemptionID: v.RedemptionID, Reason: "again"}, domain.CodeRedemptionReversed)
	})
	t.Run("ErrRedemptionNotFound", func(t *testing.T) {
		h := paid(t, p, t0)
		h.refused(domain.ReverseRedemption{RedemptionID: uuid.New(), Reason: "?"}, domain.CodeRedemptionNotFound)
	})
	t.Run("ErrPackageNotActive", func(t *testing.T) {
		h := paid(t, p, t0)
		v := h.redeem("oil_change", "RO-1")
		h.do(domain.RefundPackage{Method: "cash", Reason: "moving"})
		h.refused(domain.ReverseRedemption{RedemptionID: v.RedemptionID, Reason: "late"}, domain.CodePackageNotActive)
	})
	t.Run("ErrInvalidField", func(t *testing.T) {
		h := paid(t, p, t0)
		v := h.redeem("oil_change", "RO-1")
		h.refused(domain.ReverseRedemption{RedemptionID: v.RedemptionID, Reason: " "}, domain.CodeInvalidField)
	})
}

func TestPackage_VoidPayment(t *testing.T) {
	p := plan(t, nil)
	payment := func(h *history) domain.Payment { return h.pkg.Payments[len(h.pkg.Payments)-1] }
	t.Run("OK", func(t *testing.T) {
		h := sold(t, p, t0)
		h.pay("100.00")
		h.pay("200.00")
		h.do(domain.VoidPayment{PaymentID: payment(h).ID, Reason: "keyed twice"})
		require.Equal(t, "300.00", h.pkg.Paid.String())
		require.Equal(t, "200.00", h.pkg.Voided.String())
		require.Equal(t, "100.00", h.pkg.Liability.String())
		require.Equal(t, domain.StatusAwaitingPayment, h.pkg.Status)
		require.Len(t, h.pay("1300.00"), 2, "the voided amount is due again")
	})
	t.Run("ActiveReturnsToAwaitingPayment", func(t *testing.T) {
		h := paid(t, p, t0)
		h.now = t0.Add(24 * time.Hour)
		h.do(domain.VoidPayment{PaymentID: payment(h).ID, Reason: "card declined"})
		require.Equal(t, domain.StatusAwaitingPayment, h.pkg.Status)
		require.Nil(t, h.pkg.ActivatedAt)
		require.Nil(t, h.pkg.ExpiresAt)
		require.True(t, h.pkg.Liability.IsZero())
		h.refused(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1"}, domain.CodePackageNotActive)
		h.now = t0.Add(48 * time.Hour)
		evs := h.pay("1400.00")
		require.Len(t, evs, 2)
		require.Equal(t, h.now, *h.pkg.ActivatedAt, "validity runs from the new activation")
		require.Equal(t, h.now.AddDate(1, 0, 0), *h.pkg.ExpiresAt)
	})
	t.Run("ErrVisitsRedeemed", func(t *testing.T) {
		h := paid(t, p, t0)
		v := h.redeem("oil_change", "RO-1")
		h.refused(domain.VoidPayment{PaymentID: payment(h).ID, Reason: "wrong"}, domain.CodeVisitsRedeemed)
		h.reverse(v.RedemptionID)
		h.do(domain.VoidPayment{PaymentID: payment(h).ID, Reason: "wrong"})
		require.Equal(t, domain.StatusAwaitingPayment, h.pkg.Status, "allowed once the redemption is reversed")
	})
	t.Run("ErrPaymentAlreadyVoided", func(t *testing.T) {
		h := sold(t, p, t0)
		h.pay("100.00")
		h.do(domain.VoidPayment{PaymentID: payment(h).ID, Reason: "wrong"})
		h.refused(domain.VoidPayment{PaymentID: payment(h).ID, Reason: "wrong"}, domain.CodePaymentVoided)
	})
	t.Run("ErrPaymentNotFound", func(t *testing.T) {
		h := sold(t, p, t0)
		h.refused(domain.VoidPayment{PaymentID: uuid.New(), Reason: "wrong"}, domain.CodePaymentNotFound)
	})
	t.Run("ErrPackageNotActive", func(t *testing.T) {
		h := paid(t, p, t0)
		h.now = *h.pkg.ExpiresAt
		h.do(domain.Expire{})
		h.refused(domain.VoidPayment{PaymentID: payment(h).ID, Reason: "late"}, domain.CodePackageNotActive)
		h.do(domain.RefundPackage{Method: "cash", Reason: "claim"})
		h.refused(domain.VoidPayment{PaymentID: payment(h).ID, Reason: "late"}, domain.CodePackageNotActive)
	})
}

func TestPackage_Refund(t *testing.T) {
	t.Run("ErrPackageUsedUp", func(t *testing.T) {
		h := paid(t, plan(t, nil), t0)
		for _, s := range []string{"oil_change", "oil_change", "oil_change", "inspection"} {
			h.redeem(s, "RO-"+uuid.NewString()[:6])
		}
		require.Equal(t, domain.StatusUsedUp, h.pkg.Status)
		h.refused(domain.RefundPackage{Method: "cash", Reason: "why not"}, domain.CodePackageUsedUp)
	})
	t.Run("ErrPackageNotActive", func(t *testing.T) {
		h := paid(t, plan(t, nil), t0)
		h.do(domain.RefundPackage{Method: "cash", Reason: "once"})
		h.refused(domain.RefundPackage{Method: "cash", Reason: "twice"}, domain.CodePackageNotActive)
	})
	t.Run("ErrInvalidField", func(t *testing.T) {
		h := paid(t, plan(t, nil), t0)
		h.refused(domain.RefundPackage{Method: "gold", Reason: "x"}, domain.CodeInvalidField)
		h.refused(domain.RefundPackage{Method: "cash", Reason: ""}, domain.CodeInvalidField)
	})
	t.Run("AwaitingPayment", func(t *testing.T) {
		h := sold(t, plan(t, nil), t0)
		h.pay("300.00")
		h.pay("200.00")
		h.do(domain.VoidPayment{PaymentID: h.pkg.Payments[1].ID, Reason: "wrong"})
		h.pay("50.00")
		r := refund(h)
		require.Equal(t, "not_started", r.Policy)
		require.Equal(t, "350.00", r.Amount.String(), "everything paid and not voided goes back")
		require.True(t, r.Fee.IsZero())
		require.True(t, r.Recognized.IsZero())
	})
	t.Run("FreeLook", func(t *testing.T) {
		p := plan(t, func(s *domain.PlanSpec) { s.FreeLookDays = 7 })
		h := paid(t, p, t0)
		h.now = t0.AddDate(0, 0, 7).Add(-time.Second)
		r := refund(h)
		require.Equal(t, "free_look", r.Policy)
		require.Equal(t, "1400.00", r.Amount.String(), "the whole amount paid")
		require.True(t, r.Fee.IsZero(), "no fee")
		require.True(t, r.Recognized.IsZero())
	})
	t.Run("FreeLookOver", func(t *testing.T) {
		p := plan(t, func(s *domain.PlanSpec) { s.FreeLookDays = 7 })
		h := paid(t, p, t0)
		h.now = t0.AddDate(0, 0, 7)
		r := refund(h)
		require.Equal(t, "pro_rata", r.Policy)
		require.Equal(t, "140.00", r.Fee.String())
		require.Equal(t, "1260.00", r.Amount.String())
	})
	t.Run("FreeLookEndsWithAVisit", func(t *testing.T) {
		p := plan(t, func(s *domain.PlanSpec) { s.FreeLookDays = 7 })
		h := paid(t, p, t0)
		h.redeem("inspection", "RO-1") // worth 170.73
		r := refund(h)
		require.Equal(t, "pro_rata", r.Policy)
		require.Equal(t, "1229.27", r.Base.String())
	})
	t.Run("NoFreeLookByDefault", func(t *testing.T) {
		h := paid(t, plan(t, nil), t0)
		require.Equal(t, "pro_rata", refund(h).Policy)
	})
	t.Run("FeeRoundsHalfUp", func(t *testing.T) {
		for base, fee := range map[string]string{"0.05": "0.01", "1.25": "0.13", "0.04": "0.00", "1.15": "0.12"} {
			p := plan(t, func(s *domain.PlanSpec) { s.Entitlements, s.Price = ents("oil_change", 1, base), moneyPtr(base) })
			r := refund(paid(t, p, t0))
			require.Equal(t, fee, r.Fee.String(), "10%% of %s", base)
			require.Equal(t, base, r.Fee.Add(r.Amount).String())
		}
	})
	t.Run("ListPrice", func(t *testing.T) {
		p := plan(t, func(s *domain.PlanSpec) { s.RefundPolicy = domain.RefundListPrice })
		h := paid(t, p, t0)
		h.redeem("oil_change", "RO-1")
		h.redeem("oil_change", "RO-2")
		r := refund(h)
		require.Equal(t, "list_price", r.Policy)
		require.Equal(t, "440.00", r.Base.String(), "1400 paid − 2 × 480 at list")
		require.Equal(t, "44.00", r.Fee.String())
		require.Equal(t, "396.00", r.Amount.String())
	})
	t.Run("ListPriceNothingLeft", func(t *testing.T) {
		p := plan(t, func(s *domain.PlanSpec) { s.RefundPolicy = domain.RefundListPrice })
		h := paid(t, p, t0)
		h.redeem("oil_change", "RO-1")
		h.redeem("oil_change", "RO-2")
		h.redeem("oil_change", "RO-3")
		r := refund(h)
		require.True(t, r.Base.IsZero(), "max(0, 1400 − 1440)")
		require.True(t, r.Amount.IsZero())
		require.True(t, h.pkg.Liability.IsZero())
	})
	t.Run("Expired", func(t *testing.T) {
		h := paid(t, plan(t, nil), t0)
		h.redeem("inspection", "RO-1")
		h.now = *h.pkg.ExpiresAt
		h.do(domain.Expire{})
		r := refund(h)
		require.Equal(t, "1229.27", r.Base.String(), "the liability stayed owed after expiry")
		require.Equal(t, "122.93", r.Fee.String())
		require.Equal(t, "1106.34", r.Amount.String())
	})
}

// refund refunds the package and returns the one PackageRefunded decided.
func refund(h *history) domain.PackageRefunded {
	h.t.Helper()
	before := h.pkg
	quote := domain.QuoteRefund(before, h.now)
	evs := h.do(domain.RefundPackage{Method: "bank_transfer", Reason: "customer request"})
	r := evs[len(evs)-1].(domain.PackageRefunded)
	require.Equal(h.t, domain.StatusRefunded, h.pkg.Status)
	require.True(h.t, h.pkg.Liability.IsZero())
	eqMoney(h.t, before.Liability.Add(before.Breakage), r.Amount.Add(r.Recognized), "the whole liability is either paid back or recognized")
	eqMoney(h.t, r.Base, r.Amount.Add(r.Fee))
	require.Equal(h.t, quoteString(quote), refundString(r), "the quote is what the refund decides")
	return r
}

func TestPackage_Expire(t *testing.T) {
	p := plan(t, func(s *domain.PlanSpec) { s.ValidityMonths = 1 })
	t.Run("OK", func(t *testing.T) {
		h := paid(t, p, time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC))
		h.redeem("oil_change", "RO-1")
		liability := h.pkg.Liability
		h.now = time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC) // the sweep runs late
		evs := h.do(domain.Expire{})
		require.Equal(t, []domain.Event{domain.PackageExpired{ExpiredAt: time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC)}}, evs,
			"expired at expires_at, not when the sweep ran")
		require.Equal(t, domain.StatusExpired, h.pkg.Status)
		eqMoney(t, liability, h.pkg.Liability, "the money stays owed")
		require.True(t, h.pkg.Breakage.IsZero())
		require.Empty(t, h.do(domain.Expire{}), "once")
	})
	t.Run("NotYet", func(t *testing.T) {
		h := paid(t, p, t0)
		h.now = h.pkg.ExpiresAt.Add(-time.Nanosecond)
		require.Empty(t, h.do(domain.Expire{}))
		require.Equal(t, domain.StatusActive, h.pkg.Status)
		h.now = *h.pkg.ExpiresAt
		require.Len(t, h.do(domain.Expire{}), 1, "at expires_at exactly")
	})
	t.Run("OnlyActive", func(t *testing.T) {
		far := t0.AddDate(5, 0, 0)
		h := sold(t, p, t0)
		h.now = far
		require.Empty(t, h.do(domain.Expire{}), "awaiting payment")
		h = paid(t, plan(t, func(s *domain.PlanSpec) {
			s.ValidityMonths = 1
			s.Entitlements = s.Entitlements[1:]
			s.Price = moneyPtr("100.00")
		}), t0)
		h.redeem("inspection", "RO-1")
		require.Equal(t, domain.StatusUsedUp, h.pkg.Status)
		h.now = far
		require.Empty(t, h.do(domain.Expire{}), "used up")
		h = paid(t, p, t0)
		h.do(domain.RefundPackage{Method: "cash", Reason: "x"})
		h.now = far
		require.Empty(t, h.do(domain.Expire{}), "refunded")
	})
}

func TestPackage_RecognizeBreakage(t *testing.T) {
	p := oilPlan(t, domain.RefundProRata) // 6 × 408.00, fee 10%
	expired := func(t *testing.T) *history {
		h := paid(t, p, t0)
		h.redeem("oil_change", "RO-1")
		h.redeem("oil_change", "RO-2")
		h.now = *h.pkg.ExpiresAt
		h.do(domain.Expire{})
		return h
	}
	t.Run("OK", func(t *testing.T) {
		h := expired(t)
		evs := h.do(domain.RecognizeBreakage{Reason: "24 months after expiry"})
		require.Len(t, evs, 1)
		b := evs[0].(domain.BreakageRecognized)
		require.Equal(t, "1632.00", b.Amount.String(), "the whole liability")
		require.Equal(t, "24 months after expiry", b.Reason)
		require.True(t, h.pkg.Liability.IsZero())
		require.Equal(t, "1632.00", h.pkg.Breakage.String())
	})
	t.Run("ErrPackageNotExpired", func(t *testing.T) {
		h := paid(t, p, t0)
		h.refused(domain.RecognizeBreakage{Reason: "x"}, domain.CodePackageNotExpired)
	})
	t.Run("ErrBreakageAlreadyRecognized", func(t *testing.T) {
		h := expired(t)
		h.do(domain.RecognizeBreakage{Reason: "policy"})
		h.refused(domain.RecognizeBreakage{Reason: "policy"}, domain.CodeBreakageRecognized)
	})
	t.Run("ErrNothingToRecognize", func(t *testing.T) {
		// A cent over three units: the two unredeemed ones are worth 0.00.
		tiny := plan(t, func(s *domain.PlanSpec) { s.Entitlements, s.Price = ents("oil_change", 3, "5.00"), moneyPtr("0.01") })
		h := paid(t, tiny, t0)
		require.Equal(t, 0, h.redeem("oil_change", "RO-1").Unit)
		require.True(t, h.pkg.Liability.IsZero())
		require.Equal(t, domain.StatusActive, h.pkg.Status)
		h.now = *h.pkg.ExpiresAt
		h.do(domain.Expire{})
		h.refused(domain.RecognizeBreakage{Reason: "x"}, domain.CodeNothingToRecover)
	})
	t.Run("ReversalAfterBreakage", func(t *testing.T) {
		h := expired(t)
		h.do(domain.RecognizeBreakage{Reason: "policy"})
		h.reverse(h.pkg.Redemptions[0].ID)
		require.Equal(t, "408.00", h.pkg.Liability.String())
		require.Equal(t, "1632.00", h.pkg.Breakage.String())
		h.do(domain.RecognizeBreakage{Reason: "policy"})
		require.Equal(t, "2040.00", h.pkg.Breakage.String())
	})
	t.Run("RefundAfterBreakage", func(t *testing.T) {
		h := expired(t)
		h.do(domain.RecognizeBreakage{Reason: "policy"})
		quote := domain.QuoteRefund(h.pkg, h.now)
		evs := h.do(domain.RefundPackage{Method: "cash", Reason: "customer came back"})
		require.Len(t, evs, 2)
		require.IsType(t, domain.BreakageReversed{}, evs[0], "breakage reversed first")
		require.Equal(t, "1632.00", evs[0].(domain.BreakageReversed).Amount.String())
		r := evs[1].(domain.PackageRefunded)
		require.Equal(t, "1632.00", r.Base.String(), "computed on the restored liability")
		require.Equal(t, "163.20", r.Fee.String())
		require.Equal(t, "1468.80", r.Amount.String())
		require.Equal(t, "163.20", r.Recognized.String())
		require.Equal(t, quoteString(quote), refundString(r))
		require.True(t, h.pkg.Breakage.IsZero())
		require.True(t, h.pkg.Liability.IsZero())
		require.Equal(t, "1468.80", h.pkg.Refunded.String())
		require.Equal(t, "979.20", h.pkg.Recognized.String(), "816.00 of visits and 163.20 kept at refund")
	})
}

func TestQuoteRefund_MatchesDecision(t *testing.T) {
	listPlan := plan(t, func(s *domain.PlanSpec) { s.RefundPolicy = domain.RefundListPrice; s.FreeLookDays = 3 })
	tests := []struct {
		name  string
		setup func(t *testing.T) *history
	}{
		{"AwaitingPayment", func(t *testing.T) *history { h := sold(t, listPlan, t0); h.pay("333.33"); return h }},
		{"NothingPaid", func(t *testing.T) *history { return sold(t, listPlan, t0) }},
		{"FreeLook", func(t *testing.T) *history { return paid(t, listPlan, t0) }},
		{"ProRata", func(t *testing.T) *history {
			h := paid(t, plan(t, nil), t0)
			h.redeem("oil_change", "RO-1")
			return h
		}},
		{"ListPrice", func(t *testing.T) *history {
			h := paid(t, listPlan, t0)
			h.redeem("inspection", "RO-1")
			return h
		}},
		{"ReversedVisit", func(t *testing.T) *history {
			h := paid(t, listPlan, t0)
			h.reverse(h.redeem("oil_change", "RO-1").RedemptionID)
			h.now = t0.AddDate(0, 1, 0)
			return h
		}},
		{"Expired", func(t *testing.T) *history {
			h := paid(t, listPlan, t0)
			h.redeem("oil_change", "RO-1")
			h.now = *h.pkg.ExpiresAt
			h.do(domain.Expire{})
			return h
		}},
		{"Breakage", func(t *testing.T) *history {
			h := paid(t, listPlan, t0)
			h.now = *h.pkg.ExpiresAt
			h.do(domain.Expire{})
			h.do(domain.RecognizeBreakage{Reason: "policy"})
			return h
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refund(tt.setup(t)) // checks the quote against the decision
		})
	}
}
