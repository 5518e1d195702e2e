package handlers

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
)

// BenchmarkDesk_PackagePage: the server's time to render the package page
// of a package of 10 units with 20 events (sale, two payments and the
// activation, 12 visits of which 4 reversed), from the
// package to the last byte written.
func BenchmarkDesk_PackagePage(b *testing.B) {
	tz, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		b.Fatal(err)
	}
	price := domain.MustMoney("4080.00")
	plan, err := domain.NewPlan(domain.PlanSpec{Code: "OIL10", Name: "10次保养套餐", Price: &price, ValidityMonths: 36,
		RefundPolicy: domain.RefundPolicy("pro_rata"), Gifts: []string{"洗车 2 次", "脚垫"},
		Entitlements: []domain.Entitlement{{Service: "oil_change", Count: 8, ListPrice: domain.MustMoney("480.00")},
			{Service: "inspection", Count: 2, ListPrice: domain.MustMoney("200.00")}}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, tz)
	var p domain.Package
	n := 0
	do := func(cmd domain.Command) []domain.Event {
		evs, err := domain.Decide(p, cmd, now.Add(time.Duration(n)*time.Hour))
		if err != nil {
			b.Fatalf("%T: %v", cmd, err)
		}
		p = applyAll(p, evs, now.Add(time.Duration(n)*time.Hour))
		n += len(evs)
		return evs
	}
	do(domain.Sell{PackageID: uuid.New(), Plan: domain.PlanState{Plan: plan, Status: domain.PlanStatusActive},
		Customer: domain.Customer{ID: "C-1", Name: "王芳", Phone: "13800138000"},
		Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A12345", Model: "Lavida"}, Advisor: "u-a"})
	do(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("2000.00"), Method: "wechat", Receipt: "R-1"})
	do(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("2080.00"), Method: "cash", Receipt: "R-2"})
	// 12 visits, 4 of them reversed: 16 events more, 8 units used.
	reversed := 0
	for i := 0; n < 20; i++ {
		svc := "oil_change"
		if p.Remaining()[svc] == 0 {
			svc = "inspection"
		}
		evs := do(domain.Redeem{RedemptionID: uuid.New(), Service: svc, RepairOrder: fmt.Sprintf("RO-%d", i), Mileage: 5000 * i})
		if i%3 == 1 && reversed < 4 {
			do(domain.ReverseRedemption{RedemptionID: evs[0].(domain.VisitRedeemed).RedemptionID, Reason: "录错工单"})
			reversed++
		}
	}
	s := &Server{cfg: Config{TZ: tz}, log: slog.New(slog.DiscardHandler), desk: newDesk()}
	u := User{ID: "u-a", Name: "李伟", Role: domain.RoleAdvisor, Store: "s1"}
	d := &deskReq{user: u, sess: &session{csrf: "csrf"}, lang: langZH, r: httptest.NewRequest("GET", "/desk/packages/"+p.ID.String(), nil)}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		v := s.view(langZH, d, "pkg.title")
		v.Data = packageData{P: p, Services: serviceLines(p), CanWrite: p.Status == domain.StatusActive}
		s.render(w, 200, "package", v)
		if w.Code != 200 || w.Body.Len() < 1000 {
			b.Fatalf("%d, %d bytes", w.Code, w.Body.Len())
		}
	}
	b.ReportMetric(float64(n), "events")
	b.ReportMetric(float64(len(p.Units)), "units")
}
