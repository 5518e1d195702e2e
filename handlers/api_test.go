package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

func TestAPI_Story(t *testing.T) {
	a := newTestAPI(t)
	id := a.ActivePackage("OIL6")
	for i, ro := range []string{"RO-1", "RO-2"} {
		st, body := a.Do("POST", "/v1/packages/"+id+"/redemptions", domain.RoleAdvisor,
			map[string]any{"service": "oil_change", "repair_order": ro, "mileage": 5000 * (i + 1)})
		require.Equal(t, http.StatusCreated, st, "%v", body)
	}
	st, body := a.Do("GET", "/v1/packages/"+id, domain.RoleAuditor, nil)
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, "1632.00", body["liability"])
	st, body = a.Do("POST", "/v1/packages/"+id+"/refund", domain.RoleManager, map[string]any{"method": "cash", "reason": "moved"})
	require.Equal(t, http.StatusOK, st, "%v", body)
	refund := body["refund"].(map[string]any)
	require.Equal(t, "1468.80", refund["amount"])
	require.Equal(t, "163.20", refund["fee"])

	st, body = a.Do("GET", "/v1/audit/verify", domain.RoleAuditor, nil)
	require.Equal(t, http.StatusOK, st, "%v", body)
	require.Equal(t, true, body["ok"], "%v", body["findings"])
	require.EqualValues(t, 1, body["packages"])
	st, body = a.Do("GET", "/v1/audit/balances?as_of="+a.Now().Format(time.RFC3339), domain.RoleAuditor, nil)
	require.Equal(t, http.StatusOK, st, "%v", body)
	require.Equal(t, "0.00", body["totals"].(map[string]any)["liability"])
	require.Equal(t, "1468.80", body["totals"].(map[string]any)["refunded"])
}

// TestAPI_StrictKeys: keys are matched exactly, once, or the request is
// refused: encoding/json alone would accept other cases and the last of
// two equal keys, which another parser might read differently.
func TestAPI_StrictKeys(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	id := a.Sell("OIL6")
	path := "/v1/packages/" + id + "/payments"
	for _, tc := range []struct{ name, body, field string }{
		{"DuplicateKey", `{"amount":"1.00","amount":"2448.00","method":"cash","receipt":"R-1"}`, "amount"},
		{"UpperCaseKey", `{"AMOUNT":"1.00","method":"cash","receipt":"R-1"}`, "AMOUNT"},
		{"NestedDuplicate", `{"amount":"1.00","method":"cash","receipt":"R-1","x":{"a":1,"a":2}}`, "x.a"},
		{"Null", `null`, ""},
		{"Array", `[{"amount":"1.00","method":"cash","receipt":"R-1"}]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.LastSeq()
			st, body := a.Do("POST", path, domain.RoleCashier, tc.body)
			require.Equal(t, http.StatusBadRequest, st, "%v", body)
			e := body["error"].(map[string]any)
			require.Equal(t, "invalid_request", e["code"])
			if tc.field != "" {
				require.Equal(t, tc.field, e["field"])
			}
			require.Equal(t, before, a.LastSeq())
		})
	}
}

// TestAPI_KeyReusedForAnotherPayment: a till that reuses an Idempotency-Key
// for a second, different payment must be told, not answered with the
// first payment while the second is silently dropped.
func TestAPI_KeyReusedForAnotherPayment(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	id := a.Sell("OIL6")
	path := "/v1/packages/" + id + "/payments"
	st, first := a.Do("POST", path, domain.RoleCashier, map[string]any{"amount": "1000.00", "method": "cash", "receipt": "R-A"}, "Idempotency-Key", "till-1")
	require.Equal(t, http.StatusCreated, st, "%v", first)
	// The same request again, keys in another order: a retry.
	st, again := a.Do("POST", path, domain.RoleCashier, `{"receipt":"R-A","method":"cash","amount":"1000.00"}`, "Idempotency-Key", "till-1")
	require.Equal(t, http.StatusCreated, st)
	require.Equal(t, first, again)
	before := a.LastSeq()
	st, body := a.Do("POST", path, domain.RoleCashier, map[string]any{"amount": "500.00", "method": "cash", "receipt": "R-B"}, "Idempotency-Key", "till-1")
	require.Equal(t, http.StatusUnprocessableEntity, st, "%v", body)
	require.Equal(t, "idempotency_key_reused", body["error"].(map[string]any)["code"])
	require.Equal(t, before, a.LastSeq())

	t.Run("Sale", func(t *testing.T) {
		sell := func(name string) (int, map[string]any) {
			return a.Do("POST", "/v1/packages", domain.RoleAdvisor, map[string]any{
				"plan":     "OIL6",
				"customer": map[string]any{"id": "C-2", "name": name, "phone": "13800138000"},
				"vehicle":  map[string]any{"vin": "LSVAU2180N2183294", "plate": "沪A12345", "model": "Lavida"},
			}, "Idempotency-Key", "sale-9")
		}
		st, _ := sell("Wang")
		require.Equal(t, http.StatusCreated, st)
		st, body := sell("Zhao")
		require.Equal(t, http.StatusUnprocessableEntity, st, "%v", body)
	})
}
