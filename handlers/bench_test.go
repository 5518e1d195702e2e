package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
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

// BenchmarkRedeem_64Clients is 64 HTTP clients at once, each deducting
// visits on packages of its own, fsync on: a busy dealer group's
// Saturday morning, and what group commit is for. Packages are sold and
// paid before the clock starts.
func BenchmarkRedeem_64Clients(b *testing.B) {
	const clients = 64
	a := newTestAPI(b)
	defineOIL10(b, a)
	perClient := (b.N+clients-1)/clients/10 + 1
	ids := make([][]string, clients)
	for c := range ids {
		for k := range perClient {
			id := a.Sell("OIL10")
			a.Pay(id, "4080.00", fmt.Sprintf("R-%d-%d", c, k))
			ids[c] = append(ids[c], id)
		}
	}
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range clients {
		quota := b.N / clients
		if c < b.N%clients {
			quota++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{}
			for n := range quota {
				body, _ := json.Marshal(map[string]any{"service": "oil_change", "repair_order": fmt.Sprintf("RO-%d-%d", c, n), "mileage": 1000})
				req, _ := http.NewRequest(http.MethodPost, a.URL+"/v1/packages/"+ids[c][n/10]+"/redemptions", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+a.Tokens[domain.RoleAdvisor])
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Errorf("redeem: %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "redemptions/s")
	if st := a.Store.CommitStats(); st.Appends > 0 {
		b.ReportMetric(float64(st.Commands)/float64(st.Appends), "cmds/append")
	}
}
