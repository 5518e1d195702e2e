package test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestE2E_StoryKillRestart runs the README story against the real binary,
// kills it with SIGKILL, restarts it on the same data directory, and
// requires every read model to come back identical from the log alone;
// then it writes once more and stops gracefully.
func TestE2E_StoryKillRestart(t *testing.T) {
	dataDir := t.TempDir()
	start := time.Now()
	srv := startServer(t, dataDir)
	srv.waitCaughtUp()

	// The manager defines a 6-visit oil-change plan at 85% of list, pro rata.
	plan := srv.mustAs(http.StatusCreated, "manager", http.MethodPost, "/v1/plans", map[string]any{
		"code":                  "OIL6PR",
		"name":                  "6 oil changes at 85%, pro rata refund",
		"models":                []string{},
		"entitlements":          []map[string]any{{"service": "oil_change", "count": 6, "list_price": "480.00"}},
		"rate":                  "0.85",
		"validity_months":       36,
		"refund_policy":         "pro_rata",
		"cancellation_fee_rate": "0.10",
		"service_interval":      map[string]any{"months": 6, "km": 5000},
		"gifts":                 []string{"Road rescue"},
	})
	require.Equal(t, "2880.00", str(t, plan, "list_total"))
	require.Equal(t, "2448.00", str(t, plan, "price"))
	require.Equal(t, "active", str(t, plan, "status"))
	require.Len(t, arr(t, plan, "units"), 6)

	// Roles are enforced: an advisor cannot define plans.
	status, _ := srv.as("advisor", http.MethodPost, "/v1/plans", map[string]any{"code": "X"})
	require.Equal(t, http.StatusForbidden, status)

	// The advisor sells it to customer C1 for one vehicle.
	const cust1, cust2 = "C-1001", "C-2002"
	vin1 := vin(t, "LSVAU218", "N2183294")
	vin2 := vin(t, "LFV2A21K", "M4051577")
	pkgA := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
		"plan":     "OIL6PR",
		"customer": map[string]any{"id": cust1, "name": "Wang Fang", "phone": "+86 138-0013-8000"},
		"vehicle":  map[string]any{"vin": vin1, "plate": "沪A12345", "model": "Lavida", "registered": "2024-03-15"},
	}, "Idempotency-Key", "sale-A")
	idA := str(t, pkgA, "id")
	require.Equal(t, "awaiting_payment", str(t, pkgA, "status"))
	require.Equal(t, "2448.00", str(t, pkgA, "price"))
	require.Equal(t, "0.00", str(t, pkgA, "paid"))

	// The cashier takes it in two payments; the second activates it.
	pay1 := srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+idA+"/payments",
		map[string]any{"amount": "1000.00", "method": "wechat", "receipt": "R-2026-0001"})
	require.Equal(t, "awaiting_payment", str(t, obj(t, pay1, "package"), "status"))
	require.Equal(t, "1000.00", str(t, obj(t, pay1, "package"), "paid"))
	pay2 := srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+idA+"/payments",
		map[string]any{"amount": "1448.00", "method": "card", "receipt": "R-2026-0002"})
	pA := obj(t, pay2, "package")
	require.Equal(t, "active", str(t, pA, "status"))
	require.Equal(t, "2448.00", str(t, pA, "paid"))
	require.Equal(t, "2448.00", str(t, pA, "liability"))
	require.NotEmpty(t, str(t, pA, "expires_at"))

	// The advisor deducts two visits on two repair orders.
	for i, ro := range []struct {
		order   string
		mileage int
	}{{"RO-88001", 5200}, {"RO-88417", 10150}} {
		red := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+idA+"/redemptions",
			map[string]any{"service": "oil_change", "repair_order": ro.order, "mileage": ro.mileage})
		require.Equal(t, "408.00", str(t, obj(t, red, "redemption"), "value"))
		require.Equal(t, 5-i, num(t, obj(t, obj(t, red, "package"), "remaining"), "oil_change"))
	}
	// The same repair order again deducts nothing.
	again := srv.mustAs(http.StatusOK, "advisor", http.MethodPost, "/v1/packages/"+idA+"/redemptions",
		map[string]any{"service": "oil_change", "repair_order": "RO-88417", "mileage": 10150})
	require.Equal(t, 4, num(t, obj(t, obj(t, again, "package"), "remaining"), "oil_change"))
	require.Equal(t, "1632.00", str(t, obj(t, again, "package"), "liability"))

	// The manager refunds: pro rata on the 1632.00 liability, 10% fee.
	ref := srv.mustAs(http.StatusOK, "manager", http.MethodPost, "/v1/packages/"+idA+"/refund",
		map[string]any{"method": "bank_transfer", "reason": "customer moved to another city"})
	require.Equal(t, "1468.80", str(t, obj(t, ref, "refund"), "amount"))
	require.Equal(t, "163.20", str(t, obj(t, ref, "refund"), "fee"))
	pA = obj(t, ref, "package")
	require.Equal(t, "refunded", str(t, pA, "status"))
	require.Equal(t, "0.00", str(t, pA, "liability"))
	require.Equal(t, "1468.80", str(t, pA, "refunded"))
	require.Equal(t, "979.20", str(t, pA, "recognized"), "two visits (816.00) plus what is kept at refund (163.20)")

	// A second customer's package, left active with one redemption, on a
	// demo plan (list_price policy).
	pkgB := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
		"plan":     "OIL4",
		"customer": map[string]any{"id": cust2, "name": "Li Lei", "phone": "13900139000"},
		"vehicle":  map[string]any{"vin": vin2, "plate": "沪B67890", "model": "Sagitar"},
	})
	idB := str(t, pkgB, "id")
	require.Equal(t, "1632.00", str(t, pkgB, "price"))
	srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+idB+"/payments",
		map[string]any{"amount": "1632.00", "method": "alipay", "receipt": "R-2026-0003"})
	redB := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+idB+"/redemptions",
		map[string]any{"service": "oil_change", "repair_order": "RO-88500", "mileage": 31000})
	require.Equal(t, "active", str(t, obj(t, redB, "package"), "status"))
	require.Equal(t, "1224.00", str(t, obj(t, redB, "package"), "liability"))

	// And a third, for the first customer, only partly paid.
	pkgC := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
		"plan":     "OIL10",
		"customer": map[string]any{"id": cust1, "name": "Wang Fang", "phone": "+86 138-0013-8000"},
		"vehicle":  map[string]any{"vin": vin1, "plate": "沪A12345", "model": "Lavida"},
	})
	idC := str(t, pkgC, "id")
	srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+idC+"/payments",
		map[string]any{"amount": "500.00", "method": "cash", "receipt": "R-2026-0004"})

	// The reports cover every business day the story can have touched.
	from := shanghaiDay(t, start).AddDate(0, 0, -1).Format("2006-01-02")
	to := shanghaiDay(t, time.Now()).AddDate(0, 0, 1).Format("2006-01-02")
	today := shanghaiDay(t, time.Now()).Format("2006-01-02")
	ids := []string{idA, idB, idC}
	customers := []string{cust1, cust2}
	vins := []string{vin1, vin2}

	// snapshot reads everything the API shows about this ledger.
	snapshot := func(p *proc) map[string]any {
		t.Helper()
		snap := map[string]any{}
		get := func(role, path string) {
			t.Helper()
			snap[role+" "+path] = p.mustAs(http.StatusOK, role, http.MethodGet, path, nil)
		}
		for _, id := range ids {
			get("auditor", "/v1/packages/"+id)
			get("manager", "/v1/packages/"+id+"/history")
			get("auditor", "/v1/packages/"+id+"/history")
		}
		for _, c := range customers {
			get("advisor", "/v1/packages"+q("customer", c))
			get("cashier", "/v1/accounts/"+pathEscape(c))
		}
		for _, v := range vins {
			get("advisor", "/v1/packages"+q("vin", v))
		}
		get("advisor", "/v1/packages"+q("plate", "沪A12345"))
		get("manager", "/v1/plans")
		get("advisor", "/v1/plans/OIL6PR")
		get("manager", "/v1/reports/liability"+q("from", from, "to", to, "by", "day"))
		get("auditor", "/v1/reports/liability"+q("from", from, "to", to))
		get("manager", "/v1/reports/daily-close"+q("date", today))
		get("cashier", "/v1/reports/daily-close"+q("date", today))
		health := p.waitCaughtUp()
		// The server's clock, and when its read models were last dated:
		// the fields that must differ.
		delete(health, "time")
		if proj, ok := health["projections"].(map[string]any); ok {
			delete(proj, "as_of")
			delete(proj, "age_seconds")
		}
		snap["/healthz"] = health
		return snap
	}

	before := snapshot(srv)
	// Sanity of what is being compared: the customer-1 account holds A and C.
	acct := before["cashier /v1/accounts/"+cust1].(map[string]any)
	require.Len(t, arr(t, acct, "packages"), 2)
	require.Equal(t, "500.00", str(t, acct, "liability"))
	hist := before["manager /v1/packages/"+idA+"/history"].(map[string]any)
	require.Len(t, arr(t, hist, "events"), 7, "sold, 2 payments, activated, 2 redemptions, refunded")
	rep := before["manager /v1/reports/liability"+q("from", from, "to", to, "by", "day")].(map[string]any)
	require.Equal(t, "0.00", str(t, rep, "opening"))
	require.Equal(t, "1724.00", str(t, rep, "closing"), "B's 1224.00 plus C's 500.00")
	require.Equal(t, "4580.00", str(t, rep, "payments"))
	require.Equal(t, "1468.80", str(t, rep, "refunds"))
	oldManager := srv.token("manager")

	// kill -9, then start again on the same data: new ports, new tokens.
	srv.Kill()
	srv2 := startServer(t, dataDir)
	srv2.waitCaughtUp()
	require.NotEqual(t, oldManager, srv2.token("manager"), "demo tokens change at every start")
	status, _ = srv2.do(http.MethodGet, "/v1/plans", oldManager, nil)
	require.Equal(t, http.StatusUnauthorized, status, "the previous run's token must not work")

	after := snapshot(srv2)
	require.Equal(t, before, after, "every read model must come back identical after kill -9 and restart")

	// Writes work after the restart: one more visit on the active package.
	red := srv2.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+idB+"/redemptions",
		map[string]any{"service": "oil_change", "repair_order": "RO-89012", "mileage": 36100})
	require.Equal(t, 2, num(t, obj(t, obj(t, red, "package"), "remaining"), "oil_change"))
	require.Equal(t, "816.00", str(t, obj(t, red, "package"), "liability"))
	got := srv2.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/packages/"+idB, nil)
	require.Equal(t, "816.00", str(t, got, "liability"))
	require.Len(t, arr(t, got, "redemptions"), 2)
	// A repair order already used before the crash still deducts nothing.
	dup := srv2.mustAs(http.StatusOK, "advisor", http.MethodPost, "/v1/packages/"+idB+"/redemptions",
		map[string]any{"service": "oil_change", "repair_order": "RO-88500", "mileage": 31000})
	require.Equal(t, 2, num(t, obj(t, obj(t, dup, "package"), "remaining"), "oil_change"))
	// A receipt number used before the crash is still taken.
	status, body := srv2.as("cashier", http.MethodPost, "/v1/packages/"+idC+"/payments",
		map[string]any{"amount": "100.00", "method": "cash", "receipt": "R-2026-0001"})
	require.Equal(t, http.StatusConflict, status, "%v", body)
	require.Equal(t, "duplicate_receipt", str(t, obj(t, body, "error"), "code"))

	srv2.Term()
	t.Logf("story, kill -9, restart, compare and graceful stop took %s", time.Since(start).Round(time.Millisecond))
}
