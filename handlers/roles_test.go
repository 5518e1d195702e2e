package handlers_test

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// designRoleMatrix is the role column of DESIGN.md §5, copied by hand from
// the document (not from the code): "any" is all four roles, "none" needs
// no token.
var designRoleMatrix = []struct {
	method, path, roles string
}{
	{"POST", "/v1/plans", "manager"},
	{"GET", "/v1/plans", "any"},
	{"POST", "/v1/plans/{code}/retire", "manager"},
	{"POST", "/v1/packages", "advisor"},
	{"GET", "/v1/packages/{id}", "any"},
	{"GET", "/v1/packages?vin=&plate=&customer=", "any"},
	{"POST", "/v1/packages/{id}/payments", "cashier"},
	{"POST", "/v1/packages/{id}/payments/{pid}/void", "manager"},
	{"POST", "/v1/packages/{id}/redemptions", "advisor"},
	{"POST", "/v1/packages/{id}/redemptions/{rid}/reverse", "manager"},
	{"POST", "/v1/packages/{id}/refund", "manager"},
	{"POST", "/v1/packages/{id}/breakage", "manager"},
	{"GET", "/v1/packages/{id}/history", "manager, auditor"},
	{"GET", "/v1/accounts/{customer_id}", "any"},
	{"GET", "/v1/reports/liability?from=&to=", "manager, auditor"},
	{"GET", "/v1/reports/daily-close?date=&store=", "cashier, manager, auditor"},
	{"GET", "/v1/audit/verify", "auditor"},
	{"GET", "/v1/audit/balances?as_of=<RFC3339>", "auditor"},
	{"GET", "/healthz", "none"},
}

// extraRoutes are routes server.go serves that §5 does not list, with the
// roles that follow from §1: reading one plan is like listing plans (any);
// the refund quote previews the manager's refund (manager).
var extraRoutes = []struct {
	method, path, roles string
}{
	{"GET", "/v1/plans/{code}", "any"},
	{"GET", "/v1/packages/{id}/refund", "manager"},
}

func parseRoles(s string) []domain.Role {
	switch s {
	case "any":
		return allRoles
	case "none":
		return nil
	}
	var out []domain.Role
	for _, r := range strings.Split(s, ",") {
		out = append(out, domain.Role(strings.TrimSpace(r)))
	}
	return out
}

// TestAPI_RoleMatrix calls every route with every role, no token and a bad
// token: 401 without a valid token, 403 for a role the matrix does not
// list, and neither for a role it lists.
func TestAPI_RoleMatrix(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	definePlan(t, a, "EXP1", 2, "400.00", "700.00", 1)
	definePlan(t, a, "ROLES", 1, "400.00", "360.00", 12)

	// One package per write, so that each allowed write is legal.
	unpaid := sell(t, a, "OIL6")
	voidable := sell(t, a, "OIL6")
	voidPay := pay(t, a, voidable, "100.00", "R-ROLES-VOID")
	active := sell(t, a, "OIL6")
	pay(t, a, active, "2448.00", "R-ROLES-ACTIVE")
	reversible := sell(t, a, "OIL6")
	pay(t, a, reversible, "2448.00", "R-ROLES-REV")
	rid := redeem(t, a, reversible, "RO-ROLES-REV")
	refundable := sell(t, a, "OIL6")
	pay(t, a, refundable, "2448.00", "R-ROLES-REFUND")
	expiring := sell(t, a, "EXP1")
	pay(t, a, expiring, "700.00", "R-ROLES-EXP")
	a.Advance(40 * 24 * time.Hour)
	expire(t, a, expiring)

	reason := map[string]any{"reason": "role matrix"}
	concrete := map[string]struct {
		path string
		body any
	}{
		"POST /v1/plans":                                   {"/v1/plans", planBody("ROLES2")},
		"GET /v1/plans":                                    {"/v1/plans", nil},
		"GET /v1/plans/{code}":                             {"/v1/plans/OIL6", nil},
		"POST /v1/plans/{code}/retire":                     {"/v1/plans/ROLES/retire", reason},
		"POST /v1/packages":                                {"/v1/packages", sellBody("OIL6")},
		"GET /v1/packages/{id}":                            {"/v1/packages/" + active, nil},
		"GET /v1/packages?vin=&plate=&customer=":           {"/v1/packages?vin=" + testVIN + "&customer=C-1", nil},
		"POST /v1/packages/{id}/payments":                  {"/v1/packages/" + unpaid + "/payments", payBody("100.00", "R-ROLES-PAY")},
		"POST /v1/packages/{id}/payments/{pid}/void":       {"/v1/packages/" + voidable + "/payments/" + voidPay + "/void", reason},
		"POST /v1/packages/{id}/redemptions":               {"/v1/packages/" + active + "/redemptions", redeemBody("RO-ROLES-1")},
		"POST /v1/packages/{id}/redemptions/{rid}/reverse": {"/v1/packages/" + reversible + "/redemptions/" + rid + "/reverse", reason},
		"GET /v1/packages/{id}/refund":                     {"/v1/packages/" + active + "/refund", nil},
		"POST /v1/packages/{id}/refund":                    {"/v1/packages/" + refundable + "/refund", map[string]any{"method": "cash", "reason": "moved"}},
		"POST /v1/packages/{id}/breakage":                  {"/v1/packages/" + expiring + "/breakage", reason},
		"GET /v1/packages/{id}/history":                    {"/v1/packages/" + active + "/history", nil},
		"GET /v1/accounts/{customer_id}":                   {"/v1/accounts/C-1", nil},
		"GET /v1/reports/liability?from=&to=":              {"/v1/reports/liability?from=2026-11-01&to=2026-12-31", nil},
		"GET /v1/reports/daily-close?date=&store=":         {"/v1/reports/daily-close?date=2026-11-02&store=s1", nil},
		"GET /v1/audit/verify":                             {"/v1/audit/verify", nil},
		"GET /v1/audit/balances?as_of=<RFC3339>":           {"/v1/audit/balances?as_of=2026-11-02T00:00:00Z", nil},
		"GET /healthz":                                     {"/healthz", nil},
	}

	type row struct{ method, path, roles string }
	var rows []row
	for _, r := range designRoleMatrix {
		rows = append(rows, row(r))
	}
	for _, r := range extraRoutes {
		rows = append(rows, row(r))
	}

	// Every route server.go registers is in the matrix (a new route must
	// say who may use it).
	t.Run("every server.go route is in the matrix", func(t *testing.T) {
		src, err := os.ReadFile("server.go")
		require.NoError(t, err)
		var have []string
		for _, r := range rows {
			have = append(have, r.method+" "+strings.SplitN(r.path, "?", 2)[0])
		}
		re := regexp.MustCompile(`mux\.HandleFunc\("([A-Z]+) ([^"]+)"`)
		ms := re.FindAllStringSubmatch(string(src), -1)
		require.NotEmpty(t, ms)
		for _, m := range ms {
			route := m[1] + " " + regexp.MustCompile(`\{customer\}`).ReplaceAllString(m[2], "{customer_id}")
			require.Contains(t, have, route, "server.go serves %s, which the role matrix does not list", route)
		}
	})

	// The daily close has one more rule: a cashier reads only their own
	// store's day.
	t.Run("cashier reads another store's close", func(t *testing.T) {
		ans := mustSend(t, a, "GET", "/v1/reports/daily-close?date=2026-11-02&store=s2", bearer(a, domain.RoleCashier), nil)
		require.Equal(t, http.StatusForbidden, ans.Status, "%s", ans.Raw)
		code, _ := requireErrorShape(t, ans)
		require.Equal(t, "forbidden", code)
		ans = mustSend(t, a, "GET", "/v1/reports/daily-close?date=2026-11-02&store=s2", bearer(a, domain.RoleManager), nil)
		require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)
	})

	for _, r := range rows {
		key := r.method + " " + r.path
		c, ok := concrete[key]
		require.True(t, ok, "no concrete request for %s", key)
		allowed := parseRoles(r.roles)
		t.Run(key, func(t *testing.T) {
			refused := func(t *testing.T, auth string, status int, code string) {
				t.Helper()
				before := lastSeq(t, a)
				ans := mustSend(t, a, r.method, c.path, auth, c.body)
				require.Equal(t, status, ans.Status, "%s", ans.Raw)
				got, _ := requireErrorShape(t, ans)
				require.Equal(t, code, got)
				if status == http.StatusUnauthorized {
					require.NotEmpty(t, ans.Header.Get("WWW-Authenticate"))
				}
				require.Equal(t, before, lastSeq(t, a), "a refused request appended")
			}
			if r.roles == "none" {
				for _, auth := range []string{"", "Bearer not-a-token", bearer(a, domain.RoleAuditor)} {
					ans := mustSend(t, a, r.method, c.path, auth, nil)
					require.Equal(t, http.StatusOK, ans.Status, "%q: %s", auth, ans.Raw)
					require.NotEmpty(t, ans.JSON(t)["status"])
				}
				return
			}
			t.Run("no token", func(t *testing.T) { refused(t, "", http.StatusUnauthorized, "unauthorized") })
			t.Run("bad token", func(t *testing.T) { refused(t, "Bearer not-a-token", http.StatusUnauthorized, "unauthorized") })
			// Forbidden roles first: they must leave the state as it is for
			// the allowed role's call.
			for _, role := range allRoles {
				if slices.Contains(allowed, role) {
					continue
				}
				t.Run(string(role), func(t *testing.T) { refused(t, bearer(a, role), http.StatusForbidden, "forbidden") })
			}
			for _, role := range allRoles {
				if !slices.Contains(allowed, role) {
					continue
				}
				t.Run(string(role), func(t *testing.T) {
					ans := mustSend(t, a, r.method, c.path, bearer(a, role), c.body)
					require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, ans.Status,
						"%s may %s: %s", role, key, ans.Raw)
					if ans.Status >= 400 {
						code, _ := requireErrorShape(t, ans)
						require.NotEqual(t, "not_found", code, "no such route: %s", ans.Raw)
					}
					if ans.Status >= 300 {
						t.Logf("%s %s as %s: %d %s", r.method, c.path, role, ans.Status, ans.Raw)
					}
				})
			}
		})
	}
}
