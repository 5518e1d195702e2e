package handlers_test

import (
	"net/http"
	"testing"

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
}
