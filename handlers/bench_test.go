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
// paid, by the same 64 clients, before the clock starts.
func BenchmarkRedeem_64Clients(b *testing.B) {
	const clients = 64
	a := newTestAPI(b)
	defineOIL10(b, a)
	quota := func(c int) int {
		if c < b.N%clients {
			return b.N/clients + 1
		}
		return b.N / clients
	}
	ids := make([][]string, clients)
	each := func(f func(c int, hc *http.Client) error) {
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := f(c, &http.Client{}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
	}
	each(func(c int, hc *http.Client) error {
		for k := range quota(c)/10 + 1 {
			var sold struct{ ID string }
			if err := post(hc, a, "/v1/packages", domain.RoleAdvisor, map[string]any{"plan": "OIL10",
				"customer": map[string]any{"id": fmt.Sprintf("C-%d", c), "name": "Li Wei", "phone": "13800138000"},
				"vehicle":  map[string]any{"vin": "LSVAU2180N2183294", "plate": "沪A12345", "model": "Lavida"}}, &sold); err != nil {
				return err
			}
			if err := post(hc, a, "/v1/packages/"+sold.ID+"/payments", domain.RoleCashier,
				map[string]any{"amount": "4080.00", "method": "cash", "receipt": fmt.Sprintf("R-%d-%d", c, k)}, nil); err != nil {
				return err
			}
			ids[c] = append(ids[c], sold.ID)
		}
		return nil
	})
	before := a.Store.CommitStats()
	b.ResetTimer()
	each(func(c int, hc *http.Client) error {
		for n := range quota(c) {
			if err := post(hc, a, "/v1/packages/"+ids[c][n/10]+"/redemptions", domain.RoleAdvisor,
				map[string]any{"service": "oil_change", "repair_order": fmt.Sprintf("RO-%d-%d", c, n), "mileage": 1000}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "redemptions/s")
	if st := a.Store.CommitStats(); st.Appends > before.Appends {
		b.ReportMetric(float64(st.Commands-before.Commands)/float64(st.Appends-before.Appends), "cmds/append")
	}
}

// post sends a write as role and decodes its 201 answer into out (nil:
// discard it); any other answer is an error.
func post(hc *http.Client, a *testAPI, path string, role domain.Role, body, out any) error {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, a.URL+path, bytes.NewReader(j))
	req.Header.Set("Authorization", "Bearer "+a.Tokens[role])
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}
