package handlers_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/packledger/packledger/domain"
)

// BenchmarkRedeem_OneClient is one HTTP client deducting visits one after
// another, each fsynced before its answer: the latency a service advisor
// sees, and its inverse, durable redemptions per second for one client.
// Packages have ten visits, like the dealer's largest offer, so each
// command loads a realistic history.
func BenchmarkRedeem_OneClient(b *testing.B) {
	a := newTestAPI(b)
	defineOIL10(b, a)
	var id string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%10 == 0 {
			b.StopTimer()
			id = a.Sell("OIL10")
			a.Pay(id, "4080.00", fmt.Sprintf("R-%d", i))
			b.StartTimer()
		}
		st, body := a.Do("POST", "/v1/packages/"+id+"/redemptions", domain.RoleAdvisor,
			map[string]any{"service": "oil_change", "repair_order": fmt.Sprintf("RO-%d", i), "mileage": 1000})
		if st != http.StatusCreated {
			b.Fatalf("redeem %d: %d %v", i, st, body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "redemptions/s")
}

// defineOIL10 defines the benchmarks' plan: ten oil changes, as the
// dealer's largest offer, so each command loads a realistic history.
func defineOIL10(b *testing.B, a *testAPI) {
	st, body := a.Do("POST", "/v1/plans", domain.RoleManager, map[string]any{
		"code": "OIL10", "name": "10 oil changes",
		"entitlements": []map[string]any{{"service": "oil_change", "count": 10, "list_price": "480.00"}},
		"rate":         "0.85", "validity_months": 60,
	})
	if st != http.StatusCreated {
		b.Fatalf("plan: %d %v", st, body)
	}
}
