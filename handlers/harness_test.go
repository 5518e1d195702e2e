package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
	"github.com/packledger/packledger/handlers"
	"github.com/packledger/packledger/projections"
)

// testAPI is the real API on a real embedded JetStream, served by httptest
// on 127.0.0.1, with one user per role.
type testAPI struct {
	t      testing.TB
	URL    string
	Store  *eventstore.Store
	Runner *projections.Runner
	Tokens map[domain.Role]string
	nc     *nats.Conn
	signer *eventstore.Signer
	*fakeClock
}

// fakeClock is the API's injected clock, shared by the servers of a test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// Now is the API's clock.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the API's clock.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestAPI(t testing.TB) *testAPI {
	t.Helper()
	return newTestAPISync(t, true)
}

// newTestAPISync is newTestAPI with the server's fsync on or off.
func newTestAPISync(t testing.TB, syncAlways bool) *testAPI {
	t.Helper()
	return newTestAPIConfig(t, syncAlways, eventstore.Config{})
}

// newTestAPIConfig is newTestAPISync with the store opened as cfg says
// (its dealer is always demo).
func newTestAPIConfig(t testing.TB, syncAlways bool, cfg eventstore.Config) *testAPI {
	t.Helper()
	_, nc := eventstoretest.RunServerSync(t, t.TempDir(), syncAlways)
	return serveAPI(t, nc, cfg, &fakeClock{now: time.Date(2026, 11, 2, 2, 0, 0, 0, time.UTC)})
}

// another is a second server on the same ledger, as another process
// sharing the stream would be: its own store, read models and HTTP
// server; the same signing key, users and clock.
func (a *testAPI) another(cfg eventstore.Config) *testAPI {
	a.t.Helper()
	cfg.Signer = a.signer
	return serveAPI(a.t, a.nc, cfg, a.fakeClock)
}

func serveAPI(t testing.TB, nc *nats.Conn, cfg eventstore.Config, clock *fakeClock) *testAPI {
	t.Helper()
	cfg.Dealer = "demo"
	if cfg.Signer == nil {
		cfg.Signer = eventstoretest.NewSigner(t)
	}
	store := eventstoretest.OpenConfig(t, nc, cfg)
	tz, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	runner := projections.NewRunner(store.Feed(), projections.NewModel(tz), log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	a := &testAPI{t: t, Store: store, Runner: runner, Tokens: map[domain.Role]string{}, nc: nc, signer: cfg.Signer, fakeClock: clock}
	var users []handlers.User
	for _, r := range []domain.Role{domain.RoleAdvisor, domain.RoleCashier, domain.RoleManager, domain.RoleAuditor} {
		tok := "token-" + string(r)
		a.Tokens[r] = tok
		users = append(users, handlers.User{ID: "u-" + string(r), Name: string(r), Role: r, Store: "s1", TokenSHA256: handlers.HashToken(tok)})
	}
	api := handlers.New(handlers.Config{
		Dealer: "demo", DefaultStore: "s1", TZ: tz, Clock: clock.Now, Log: log, NATSConnected: nc.IsConnected,
	}, store, runner, users)
	srv := httptest.NewServer(api.Handler()) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// Do sends a request as role (empty: no token) and decodes the JSON answer.
// body may be a string (sent as is) or a value (encoded as JSON).
func (a *testAPI) Do(method, path string, role domain.Role, body any, header ...string) (int, map[string]any) {
	a.t.Helper()
	status, raw := a.DoRaw(method, path, role, body, header...)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(a.t, json.Unmarshal(raw, &out), "answer is not a JSON object: %s", raw)
	}
	return status, out
}

// DoRaw is Do without decoding.
func (a *testAPI) DoRaw(method, path string, role domain.Role, body any, header ...string) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(a.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	require.NoError(a.t, err)
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+a.Tokens[role])
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp.StatusCode, raw
}

// LastSeq is the stream's last sequence, to prove a refused request
// appended nothing.
func (a *testAPI) LastSeq() uint64 {
	a.t.Helper()
	seq, err := a.Store.LastSeq(context.Background())
	require.NoError(a.t, err)
	return seq
}

// Plan defines the worked-example plan: 6 oil changes at 480.00, rate 0.85.
func (a *testAPI) Plan(code string) {
	a.t.Helper()
	st, body := a.Do("POST", "/v1/plans", domain.RoleManager, map[string]any{
		"code": code, "name": "6 oil changes",
		"entitlements": []map[string]any{{"service": "oil_change", "count": 6, "list_price": "480.00"}},
		"rate":         "0.85", "validity_months": 24, "refund_policy": "pro_rata", "cancellation_fee_rate": "0.10",
	})
	require.Equal(a.t, http.StatusCreated, st, "define plan: %v", body)
}

// Sell sells plan and returns the package id.
func (a *testAPI) Sell(plan string) string {
	a.t.Helper()
	st, body := a.Do("POST", "/v1/packages", domain.RoleAdvisor, map[string]any{
		"plan":     plan,
		"customer": map[string]any{"id": "C-1", "name": "Li Wei", "phone": "13800138000"},
		"vehicle":  map[string]any{"vin": "LSVAU2180N2183294", "plate": "沪A12345", "model": "Lavida"},
	})
	require.Equal(a.t, http.StatusCreated, st, "sell: %v", body)
	return body["id"].(string)
}

// Pay records a payment.
func (a *testAPI) Pay(id, amount, receipt string) map[string]any {
	a.t.Helper()
	st, body := a.Do("POST", "/v1/packages/"+id+"/payments", domain.RoleCashier, map[string]any{
		"amount": amount, "method": "cash", "receipt": receipt,
	})
	require.Equal(a.t, http.StatusCreated, st, "pay: %v", body)
	return body
}

// ActivePackage defines a plan, sells it and pays it in full.
func (a *testAPI) ActivePackage(code string) string {
	a.t.Helper()
	a.Plan(code)
	id := a.Sell(code)
	a.Pay(id, "2448.00", "R-"+id[len(id)-8:])
	return id
}
