package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/packledger/packledger/domain"
)

// BenchmarkDurability is what fsync before acknowledgement costs: the
// same HTTP writes with the embedded server's fsync on (the program's
// default) and off (JetStream's own default, which syncs every two
// minutes and can lose acknowledged writes when the machine loses power).
// Each client goes through whole package lives: a sale, the payment with
// its receipt claim (one atomic batch) and ten deductions, twelve durable
// writes; writes/s counts every one.
func BenchmarkDurability(b *testing.B) {
	for _, mode := range []struct {
		name string
		sync bool
	}{{"fsync=always", true}, {"fsync=lazy", false}} {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode.name, clients), func(b *testing.B) {
				benchLives(b, newTestAPISync(b, mode.sync), clients)
			})
		}
	}
}

func benchLives(b *testing.B, a *testAPI, clients int) {
	defineOIL10(b, a)
	var writes atomic.Int64
	b.SetParallelism((clients + 1) / 2) // GOMAXPROCS is 2 here
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := &http.Client{}
		post := func(path string, role domain.Role, body any) map[string]any {
			j, _ := json.Marshal(body)
			req, _ := http.NewRequest(http.MethodPost, a.URL+path, bytes.NewReader(j))
			req.Header.Set("Authorization", "Bearer "+a.Tokens[role])
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return nil
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("POST %s: %d %s", path, resp.StatusCode, raw)
				return nil
			}
			var out map[string]any
			_ = json.Unmarshal(raw, &out)
			writes.Add(1)
			return out
		}
		var id string
		n := 0
		for pb.Next() {
			switch n % 12 {
			case 0:
				sold := post("/v1/packages", domain.RoleAdvisor, map[string]any{"plan": "OIL10",
					"customer": map[string]any{"id": "C-1", "name": "Li Wei", "phone": "13800138000"},
					"vehicle":  map[string]any{"vin": "LSVAU2180N2183294", "plate": "沪A12345", "model": "Lavida"}})
				if sold == nil {
					return
				}
				id = sold["id"].(string)
			case 1:
				if post("/v1/packages/"+id+"/payments", domain.RoleCashier,
					map[string]any{"amount": "4080.00", "method": "cash", "receipt": "R-" + id}) == nil {
					return
				}
			default:
				if post("/v1/packages/"+id+"/redemptions", domain.RoleAdvisor,
					map[string]any{"service": "oil_change", "repair_order": fmt.Sprintf("RO-%s-%d", id[24:], n%12), "mileage": 1000}) == nil {
					return
				}
			}
			n++
		}
	})
	b.ReportMetric(float64(writes.Load())/b.Elapsed().Seconds(), "writes/s")
	if st := a.Store.CommitStats(); st.Appends > 0 {
		b.ReportMetric(float64(st.Commands)/float64(st.Appends), "cmds/append")
	}
}
