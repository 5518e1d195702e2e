package test

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// health is /healthz decoded.
func (p *proc) health() map[string]any {
	p.t.Helper()
	status, h := p.do(http.MethodGet, "/healthz", "", nil)
	require.Equal(p.t, http.StatusOK, status, "/healthz answers 200 while the server can answer: %v", h)
	return h
}

// waitHealth polls /healthz until ok says it is the wanted state.
func (p *proc) waitHealth(what string, ok func(h map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var h map[string]any
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		if h = p.health(); ok(h) {
			return h
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("/healthz never showed %s within %s: %v\nstderr:\n%s", what, readyTimeout, h, p.stderr)
	return nil
}

func ageSeconds(h map[string]any) float64 {
	proj, _ := h["projections"].(map[string]any)
	if proj == nil {
		return -1
	}
	f, err := strconv.ParseFloat(string(proj["age_seconds"].(json.Number)), 64)
	if err != nil {
		return -1
	}
	return f
}

// TestE2E_NATSUnavailable runs the real binary on a nats-server process
// and kills that process: writes answer 503 ledger_unreachable with a
// Retry-After at once and append nothing; reads keep answering from the
// read models, saying how old they are; /healthz says what is wrong; and
// once nats-server is back on its files the program recovers by itself,
// and the refused writes, retried with their keys, land exactly once.
func TestE2E_NATSUnavailable(t *testing.T) {
	node := newNATSNode(t, t.TempDir(), "solo", freePort(t), 0, nil)
	node.Start()
	keyFile := filepath.Join(t.TempDir(), "ledger.key")
	out, err := exec.Command(binPath, "key", "--init", "--key-file", keyFile).CombinedOutput()
	require.NoError(t, err, "%s", out)
	srv := startServer(t, t.TempDir(), "--nats", node.URL(), "--key-file", keyFile)
	srv.waitCaughtUp()

	car := vin(t, "LSVAU218", "N2183294")
	sale := map[string]any{"plan": "OIL6",
		"customer": map[string]any{"id": "C-DOWN", "name": "王芳", "phone": "13900139000"},
		"vehicle":  map[string]any{"vin": car, "plate": "沪B54321", "model": "Lavida", "registered": "2024-05-01"}}
	pkg := str(t, srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", sale), "id")
	srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+pkg+"/payments",
		map[string]any{"amount": "2448.00", "method": "card", "receipt": "R-DOWN-1"}, "Idempotency-Key", "pay-down-1")
	redeem := map[string]any{"service": "oil_change", "repair_order": "RO-DOWN-1", "mileage": 9000}
	srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+pkg+"/redemptions", redeem, "Idempotency-Key", "ro-down-1")
	before := srv.mustAs(http.StatusOK, "cashier", http.MethodGet, "/v1/packages/"+pkg, nil)
	require.Equal(t, "2040.00", str(t, before, "liability"))
	h := srv.waitHealth("a dated read model", func(h map[string]any) bool { return ageSeconds(h) >= 0 && h["status"] == "ok" })
	require.Empty(t, arr(t, h, "problems"))

	killedAt := time.Now()
	node.Kill()
	h = srv.waitHealth("NATS gone", func(h map[string]any) bool { return h["nats_connected"] == false })
	require.Equal(t, "degraded", h["status"])
	problems := arr(t, h, "problems")
	require.NotEmpty(t, problems)
	require.Contains(t, problems[0], "NATS cannot be reached")

	// Writes: refused at once with a code a till can act on, nothing
	// appended (checked once NATS is back).
	writes := []struct {
		role, path, key string
		body            any
	}{
		{"cashier", "/v1/packages/" + pkg + "/payments", "", map[string]any{"amount": "1.00", "method": "cash", "receipt": "R-DOWN-NEVER"}},
		{"advisor", "/v1/packages/" + pkg + "/redemptions", "ro-down-2", map[string]any{"service": "oil_change", "repair_order": "RO-DOWN-2", "mileage": 9500}},
		{"advisor", "/v1/packages", "sale-down-2", map[string]any{"plan": "OIL4", "customer": sale["customer"], "vehicle": sale["vehicle"]}},
		{"manager", "/v1/plans/OIL10/retire", "", map[string]any{"reason": "while NATS is away"}},
	}
	for _, w := range writes {
		var hdr []string
		if w.key != "" {
			hdr = []string{"Idempotency-Key", w.key}
		}
		start := time.Now()
		a := srv.call(srv.token(w.role), http.MethodPost, w.path, w.body, hdr...)
		took := time.Since(start)
		require.Equal(t, http.StatusServiceUnavailable, a.Status, "POST %s with NATS down: %v", w.path, a.Body)
		e := obj(t, a.Body, "error")
		require.Equal(t, "ledger_unreachable", str(t, e, "code"), "POST %s", w.path)
		require.Contains(t, str(t, e, "message"), "this attempt wrote nothing")
		ra, err := strconv.Atoi(a.Header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q is a number of seconds", a.Header.Get("Retry-After"))
		require.Positive(t, ra)
		t.Logf("POST %s refused in %v", w.path, took.Round(time.Millisecond))
	}

	// Reads: answered from the read models, as they were, with their age.
	time.Sleep(1100 * time.Millisecond) // let the age pass a whole second
	reads := []string{"/v1/packages/" + pkg, "/v1/packages?vin=" + car, "/v1/accounts/C-DOWN",
		"/v1/plans", "/v1/reports/daily-close", "/v1/reports/liability"}
	for _, path := range reads {
		role := "cashier"
		if strings.HasPrefix(path, "/v1/reports/liability") {
			role = "manager"
		}
		a := srv.call(srv.token(role), http.MethodGet, path, nil)
		require.Equal(t, http.StatusOK, a.Status, "GET %s with NATS down: %v", path, a.Body)
		age, err := strconv.Atoi(a.Header.Get("Age"))
		require.NoError(t, err, "GET %s: Age %q", path, a.Header.Get("Age"))
		require.GreaterOrEqual(t, age, 1, "GET %s: the read is older than the outage", path)
		asOf, err := time.Parse(time.RFC3339Nano, a.Header.Get("Ledger-As-Of"))
		require.NoError(t, err, "GET %s: Ledger-As-Of", path)
		require.True(t, asOf.Before(killedAt), "GET %s: as of %v, NATS died at %v", path, asOf, killedAt)
	}
	during := srv.mustAs(http.StatusOK, "cashier", http.MethodGet, "/v1/packages/"+pkg, nil)
	require.Equal(t, before, during, "the read models answer what they held")
	// The package history and the auditor's check read the log itself.
	a := srv.call(srv.token("auditor"), http.MethodGet, "/v1/packages/"+pkg+"/history", nil)
	require.Equal(t, http.StatusServiceUnavailable, a.Status, "%v", a.Body)
	require.NotEmpty(t, a.Header.Get("Retry-After"))
	outage := srv.health()
	require.GreaterOrEqual(t, ageSeconds(outage), 1.0, "/healthz tells the read models' age: %v", outage)

	// NATS back on its files: the program reconnects and catches up by
	// itself.
	node.Start()
	backAt := time.Now()
	h = srv.waitHealth("recovery", func(h map[string]any) bool {
		return h["nats_connected"] == true && h["status"] == "ok" && ageSeconds(h) >= 0 && ageSeconds(h) < 2
	})
	t.Logf("NATS down %v; recovered %v after restart", backAt.Sub(killedAt).Round(time.Millisecond), time.Since(backAt).Round(time.Millisecond))
	require.Empty(t, arr(t, h, "problems"))

	after := srv.mustAs(http.StatusOK, "cashier", http.MethodGet, "/v1/packages/"+pkg, nil)
	require.Equal(t, str(t, before, "liability"), str(t, after, "liability"), "nothing refused was written")
	require.Len(t, arr(t, after, "payments"), 1)
	require.Len(t, arr(t, after, "redemptions"), 1)
	found := srv.mustAs(http.StatusOK, "cashier", http.MethodGet, "/v1/packages?customer=C-DOWN", nil)
	require.Len(t, arr(t, found, "packages"), 1, "the refused sale made no package")
	plan := srv.mustAs(http.StatusOK, "cashier", http.MethodGet, "/v1/plans/OIL10", nil)
	require.Equal(t, "active", str(t, plan, "status"))

	// The refused redemption and sale, retried with their keys, land once.
	for i := 0; i < 2; i++ {
		r := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+pkg+"/redemptions", writes[1].body, "Idempotency-Key", "ro-down-2")
		require.Equal(t, "1632.00", str(t, obj(t, r, "package"), "liability"))
		srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", writes[2].body, "Idempotency-Key", "sale-down-2")
	}
	found = srv.mustAs(http.StatusOK, "cashier", http.MethodGet, "/v1/packages?customer=C-DOWN", nil)
	require.Len(t, arr(t, found, "packages"), 2, "the retried sale made one package")
	v := srv.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/audit/verify", nil)
	require.Equal(t, true, v["ok"], "verify after the outage: %v", v)
	require.Empty(t, arr(t, v, "findings"))
}
