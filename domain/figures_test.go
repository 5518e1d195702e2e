package domain_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// oilPlan is the worked example of DESIGN.md §4: 6 oil changes at 480.00
// sold at 85% of list.
func oilPlan(t *testing.T, policy domain.RefundPolicy) domain.Plan {
	t.Helper()
	rate := domain.MustRate("0.85")
	fee := domain.MustRate("0.10")
	p, err := domain.NewPlan(domain.PlanSpec{
		Code: "OIL6", Name: "6 oil changes",
		Entitlements:   []domain.Entitlement{{Service: "oil_change", Count: 6, ListPrice: domain.MustMoney("480.00")}},
		Rate:           &rate,
		ValidityMonths: 24, RefundPolicy: policy, CancellationFeeRate: &fee,
	})
	require.NoError(t, err)
	return p
}

// history runs commands in order against a package, applying what each
// decides, and fails the test on any refusal.
type history struct {
	t   *testing.T
	pkg domain.Package
	seq uint64
	now time.Time
}

func (h *history) do(cmd domain.Command) []domain.Event {
	h.t.Helper()
	evs, err := domain.Decide(h.pkg, cmd, h.now)
	require.NoError(h.t, err)
	for _, e := range evs {
		h.seq++
		h.pkg = domain.Apply(h.pkg, domain.Envelope{Event: e, Seq: h.seq, BusinessTime: h.now, Actor: domain.Actor{ID: "u1"}})
		require.NoError(h.t, domain.CheckInvariant(h.pkg))
	}
	return evs
}

func soldAndPaid(t *testing.T, plan domain.Plan) *history {
	h := &history{t: t, now: t0}
	h.do(domain.Sell{PackageID: uuid.New(), Plan: domain.PlanState{Plan: plan, Status: domain.PlanStatusActive},
		Customer: domain.Customer{ID: "C1", Name: "Li Wei", Phone: "13800000000"},
		Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A12345", Model: "Lavida"}, Advisor: "adv1"})
	h.do(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("1000.00"), Method: "cash", Receipt: "R-1"})
	evs := h.do(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("1448.00"), Method: "wechat", Receipt: "R-2"})
	require.Len(t, evs, 2, "the last payment also activates")
	require.Equal(t, domain.StatusActive, h.pkg.Status)
	return h
}

func TestPlan_WorkedFigures(t *testing.T) {
	p := oilPlan(t, domain.RefundProRata)
	require.Equal(t, "2880.00", p.ListTotal.String())
	require.Equal(t, "2448.00", p.Price.String())
	require.Len(t, p.Units, 6)
	for _, u := range p.Units {
		require.Equal(t, "408.00", u.Value.String())
	}
}

func TestAllocate_LeftoverCents(t *testing.T) {
	tests := []struct {
		name  string
		price string
		list  []string
		want  []string
	}{
		{"ThreeEqual", "200.00", []string{"1.00", "1.00", "1.00"}, []string{"66.67", "66.67", "66.66"}},
		{"LargestRemainderFirst", "100.00", []string{"1.00", "2.00", "4.00"}, []string{"14.29", "28.57", "57.14"}},
		{"Exact", "2448.00", []string{"480.00", "480.00"}, []string{"1224.00", "1224.00"}},
		{"Cent", "0.01", []string{"5.00", "5.00", "5.00"}, []string{"0.01", "0.00", "0.00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lps []domain.Money
			for _, s := range tt.list {
				lps = append(lps, domain.MustMoney(s))
			}
			var got []string
			var sum domain.Money
			for _, v := range domain.Allocate(domain.MustMoney(tt.price), lps) {
				got = append(got, v.String())
				sum = sum.Add(v)
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.price, sum.String(), "unit values must sum to the price")
		})
	}
}

func TestPackage_LiabilityAfterTwoVisits(t *testing.T) {
	h := soldAndPaid(t, oilPlan(t, domain.RefundProRata))
	require.Equal(t, "2448.00", h.pkg.Liability.String())
	h.do(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1", Mileage: 5000})
	h.do(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-2", Mileage: 10000})
	require.Equal(t, "1632.00", h.pkg.Liability.String())
	require.Equal(t, "816.00", h.pkg.Recognized.String())
	require.Equal(t, 4, h.pkg.Remaining()["oil_change"])
}

func TestRefund_WorkedFigures(t *testing.T) {
	tests := []struct {
		policy                                domain.RefundPolicy
		base, fee, amount, recognizedAtRefund string
	}{
		{domain.RefundProRata, "1632.00", "163.20", "1468.80", "163.20"},
		{domain.RefundListPrice, "1488.00", "148.80", "1339.20", "292.80"},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			h := soldAndPaid(t, oilPlan(t, tt.policy))
			h.do(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1"})
			h.do(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-2"})
			evs := h.do(domain.RefundPackage{Method: "bank_transfer", Reason: "customer moved away"})
			require.Len(t, evs, 1)
			r := evs[0].(domain.PackageRefunded)
			require.Equal(t, tt.base, r.Base.String(), "base")
			require.Equal(t, tt.fee, r.Fee.String(), "fee")
			require.Equal(t, tt.amount, r.Amount.String(), "refund")
			require.Equal(t, tt.recognizedAtRefund, r.Recognized.String(), "recognized at refund")
			require.Equal(t, domain.StatusRefunded, h.pkg.Status)
			require.True(t, h.pkg.Liability.IsZero())
		})
	}
}
