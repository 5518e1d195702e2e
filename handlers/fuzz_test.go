package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/packledger/packledger/domain"
)

// The fuzz targets send arbitrary bodies to the write routes of the real
// API, one API (embedded JetStream and all) per fuzz worker, reused across
// iterations. Whatever the body, the answer is never a 5xx nor a dropped
// connection (a handler panic), a refusal has the error shape and appends
// nothing, and an acceptance is a JSON object.
//
//	go test ./handlers -run '^$' -fuzz '^FuzzPlanBody$' -fuzztime 15s
//
// Inputs worth keeping are under testdata/fuzz/<target>/ and run with the
// ordinary tests.

// fuzzEnv is the API a fuzz worker shares across its iterations.
type fuzzEnv struct {
	a  *testAPI
	fx fixtures
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	a := newTestAPI(f)
	return &fuzzEnv{a: a, fx: newFixtures(f, a)}
}

// checkAnswer is the property every fuzz target checks. A refusal has the
// error shape, a 400 is one of the malformed-input codes, a refusal that
// blames a field or an amount names the field, and nothing is appended.
// An acceptance is a JSON object, and every event it appended holds only
// text that the field rules allow: valid UTF-8, no control or format
// character, no surrounding space, at most 500 characters.
func (e *fuzzEnv) checkAnswer(t *testing.T, path string, role domain.Role, body []byte) {
	t.Helper()
	ctx := context.Background()
	before, err := e.a.Store.LastSeq(ctx)
	if err != nil {
		t.Fatalf("last seq: %v", err)
	}
	ans, err := send(e.a, "POST", path, bearer(e.a, role), body)
	if err != nil {
		t.Fatalf("POST %s %q: no answer (a handler panic closes the connection): %v", path, body, err)
	}
	if ans.Status >= 500 {
		t.Fatalf("POST %s %q: %d %s", path, body, ans.Status, ans.Raw)
	}
	after, err := e.a.Store.LastSeq(ctx)
	if err != nil {
		t.Fatalf("last seq: %v", err)
	}
	if ans.Status >= 300 {
		code, field, err := errorShape(ans.Raw)
		if err != nil {
			t.Fatalf("POST %s %q: %d: %v", path, body, ans.Status, err)
		}
		switch {
		case ans.Status == 400 && code != domain.CodeInvalidRequest && code != domain.CodeInvalidField && code != domain.CodeInvalidAmount:
			t.Fatalf("POST %s %q: 400 with code %q: %s", path, body, code, ans.Raw)
		case (code == domain.CodeInvalidField || code == domain.CodeInvalidAmount) && field == "":
			t.Fatalf("POST %s %q: %s names no field: %s", path, body, code, ans.Raw)
		case after != before:
			t.Fatalf("POST %s %q: refused with %d but the stream moved from %d to %d: %s", path, body, ans.Status, before, after, ans.Raw)
		}
		return
	}
	var obj map[string]any
	if err := json.Unmarshal(ans.Raw, &obj); err != nil {
		t.Fatalf("POST %s %q: %d but the answer is not a JSON object: %v: %s", path, body, ans.Status, err, ans.Raw)
	}
	for seq := before + 1; seq <= after; seq++ {
		env, err := e.a.Store.Get(ctx, seq)
		if err != nil {
			t.Fatalf("POST %s %q: appended seq %d, which does not read back: %v", path, body, seq, err)
		}
		if err := storedText(env); err != nil {
			t.Fatalf("POST %s %q: appended a %s whose %v", path, body, env.Type, err)
		}
	}
}

// storedText checks every string of an appended event, envelope and data,
// against the rule for text that reaches the log.
func storedText(env domain.Envelope) error {
	for field, s := range map[string]string{"store": env.Store, "actor.id": env.Actor.ID, "idempotency_key": env.Key} {
		if err := textRule(field, s); err != nil {
			return err
		}
	}
	var data any
	if err := json.Unmarshal(env.Data, &data); err != nil {
		return fmt.Errorf("data does not decode: %v", err)
	}
	if sold, ok := env.Event.(domain.PackageSold); ok {
		if v, err := domain.NormalizeVIN(sold.Vehicle.VIN); err != nil || v != sold.Vehicle.VIN {
			return fmt.Errorf("VIN %q is not a VIN in upper case", sold.Vehicle.VIN)
		}
	}
	return walkStrings(data, "data", textRule)
}

func textRule(field, s string) error {
	t, err := domain.CheckText(field, s, 0, 500)
	if err != nil {
		return fmt.Errorf("%s %q: %v", field, s, err)
	}
	if t != s {
		return fmt.Errorf("%s %q has surrounding space", field, s)
	}
	return nil
}

// walkStrings calls fn on every key and string of a decoded JSON value.
func walkStrings(v any, path string, fn func(field, s string) error) error {
	switch v := v.(type) {
	case string:
		return fn(path, v)
	case []any:
		for i, x := range v {
			if err := walkStrings(x, fmt.Sprintf("%s[%d]", path, i), fn); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, x := range v {
			if err := fn(path+" key", k); err != nil {
				return err
			}
			if err := walkStrings(x, path+"."+k, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// seedBodies are the bodies every target starts from, beside its own.
var seedBodies = []string{
	``, ` `, `{}`, `[]`, `null`, `"x"`, `0`, `{"a":1}`, `{`, `{"`, `{}{}`, `{} x`, `{"reason":"x"}`,
	"{\"name\":\"\xff\"}", `{"name":"\u0000"}`, `{"name":"\ud800"}`, `{"amount":1e400}`, `[[[[[[[[[[]]]]]]]]]]`,
}

func addSeeds(f *testing.F, own ...string) {
	for _, s := range seedBodies {
		f.Add([]byte(s))
	}
	for _, s := range own {
		f.Add([]byte(s))
	}
}

// addSpread adds the bodies of a target that also picks one of targets
// paths: the first full of own at every one of them, the others (and the
// common seeds) each at one, turning with the body, so that the start
// covers every path without sending every body to each through the API.
func addSpread(f *testing.F, own []string, full int, targets uint8) {
	all := append(append([]string{}, own[:full]...), seedBodies...)
	all = append(all, own[full:]...)
	for i, s := range all {
		if i < full {
			for which := range targets {
				f.Add([]byte(s), which)
			}
			continue
		}
		f.Add([]byte(s), uint8(i)%targets)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func FuzzPlanBody(f *testing.F) {
	addSeeds(f,
		mustJSON(planBody("FZ1")),
		mustJSON(planBody("OIL6")),
		`{"code":"FZ2","name":"x","entitlements":[{"service":"oil_change","count":1,"list_price":"1.00"}],"rate":"0.85","validity_months":1}`,
		`{"code":"FZ3","name":"x","entitlements":[{"service":"a","count":100,"list_price":"999999999999.99"}],"rate":"1","validity_months":120,"free_look_days":365,"service_interval":{"months":60,"km":100000},"gifts":["g"],"models":["m"],"refund_policy":"list_price","cancellation_fee_rate":"0.9999"}`,
		`{"code":"FZ4","name":"x","entitlements":[{"service":"a","count":3,"list_price":"0.01"}],"rate":"0.0001","validity_months":1}`,
		`{"code":"FZ5","name":"x","entitlements":[{"service":"a","count":1,"list_price":"10.00"},{"service":"a","count":1,"list_price":"10.00"}],"price":"1.00","validity_months":1}`,
		`{"code":"FZ6","price":2400.00}`, `{"code":"FZ6","price":"1e3"}`, `{"code":"FZ6","rate":0.85}`,
		`{"code":"FZ6","entitlements":{"service":"a"}}`, `{"code":"FZ6","entitlements":[null]}`,
		`{"code":"FZ6","validity_months":1e9}`, `{"code":"FZ6","validity_months":-1}`, `{"code":"FZ6","service_interval":null}`,
	)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e.checkAnswer(t, "/v1/plans", domain.RoleManager, body)
	})
}

func FuzzSellBody(f *testing.F) {
	addSeeds(f,
		mustJSON(sellBody("OIL6")),
		mustJSON(sellBody("NOPE")),
		mustJSON(sellBody("RETIRED")),
		mustJSON(sellBody("LAV4")),
		`{"plan":"OIL6","customer":{"id":"C-2","name":"王芳","phone":"+86 138-0013-8000"},"vehicle":{"vin":"lsvau2180n2183294","plate":"京B7","model":"Passat"}}`,
		`{"plan":"OIL6","customer":{"id":"C-2","name":"x","phone":"1"},"vehicle":{"vin":"LSVAU2180N2183294","plate":"AB","model":"M","registered":"2024-02-30"}}`,
		`{"plan":"OIL6","customer":null,"vehicle":null}`, `{"plan":1}`, `{"plan":"OIL6","customer":[]}`,
		`{"plan":"OIL6","vehicle":{"vin":"LSVAU2180N218329I"}}`,
	)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e.checkAnswer(t, "/v1/packages", domain.RoleAdvisor, body)
	})
}

// packageFor picks one of the fixture packages, so that one input meets
// every state.
func (e *fuzzEnv) packageFor(which uint8) string {
	ids := []string{e.fx.unpaid, e.fx.active, e.fx.refunded, e.fx.usedUp, e.fx.redeemed, e.fx.expired,
		"0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d"}
	return ids[int(which)%len(ids)]
}

func FuzzPaymentBody(f *testing.F) {
	bodies := []string{
		mustJSON(payBody("100.00", "R-FZ-1")),
		mustJSON(payBody("2448.00", "R-FZ-2")),
		mustJSON(payBody("2448.01", "R-FZ-3")),
		mustJSON(payBody("100.00", activeReceipt)),
		`{"amount":"0.00","method":"cash","receipt":"R"}`, `{"amount":100.00,"method":"cash","receipt":"R"}`,
		`{"amount":"1e3","method":"cash","receipt":"R"}`, `{"amount":"-1.00","method":"cash","receipt":"R"}`,
		`{"amount":"","method":"cash","receipt":"R"}`, `{"amount":"999999999999.99","method":"wechat","receipt":"R-X"}`,
		`{"amount":"1000000000000.00","method":"card","receipt":"R-X"}`, `{"amount":"1.00","method":"alipay","receipt":"R/1.#_-"}`,
		`{"amount":"1.00","method":"bank_transfer","receipt":"` + fmt.Sprintf("%040d", 1) + `"}`,
		`{"amount":"1.00","method":"cash","receipt":" R-PAD "}`, `{"amount":null,"method":null,"receipt":null}`,
	}
	addSpread(f, bodies, 4, 7)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		e.checkAnswer(t, "/v1/packages/"+e.packageFor(which)+"/payments", domain.RoleCashier, body)
	})
}

func FuzzRedemptionBody(f *testing.F) {
	bodies := []string{
		mustJSON(redeemBody("RO-FZ-1")),
		mustJSON(redeemBody("RO-REDEEMED-1")),
		`{"service":"brake_pads","repair_order":"RO-1","mileage":1}`, `{"service":"oil_change","repair_order":"RO-1","mileage":-1}`,
		`{"service":"oil_change","repair_order":"RO-1","mileage":3000000}`, `{"service":"oil_change","repair_order":"RO-1","mileage":1e3}`,
		`{"service":"oil_change","repair_order":"RO-1","mileage":"1"}`, `{"service":"oil_change","repair_order":"RO-1","mileage":9223372036854775808}`,
		`{"service":"oil_change","repair_order":" RO-PAD ","mileage":0}`, `{"service":"Oil","repair_order":"","mileage":0}`,
		`{"service":null,"repair_order":null,"mileage":null}`,
	}
	addSpread(f, bodies, 2, 7)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		e.checkAnswer(t, "/v1/packages/"+e.packageFor(which)+"/redemptions", domain.RoleAdvisor, body)
	})
}

// reasonTexts are reasons worth trying in every {reason} body.
var reasonTexts = []string{
	"entered by mistake", "  padded  ", strings.Repeat("x", 500), strings.Repeat("x", 501), strings.Repeat("李", 500),
	"a\\u0000b", "a\\tb", "a\\u2028b", "a\\u202eb", "a\\u200bb", "a\\ufeffb", "a\\ufffdb", "a\\ud800b", "a\\u00adb", "\\u3000", "",
}

func reasonBodies() []string {
	var out []string
	for _, r := range reasonTexts {
		out = append(out, `{"reason":"`+r+`"}`)
	}
	return append(out, `{"reason":null}`, `{"reason":1}`, `{"reason":["x"]}`, `{"reason":"x","amount":"1.00"}`,
		`{"reason":"x","reason":"y"}`, `{"Reason":"x"}`, "{\"reason\":\"a\x01b\"}", "{\"reason\":\"a\xffb\"}")
}

// reasonRoute picks one of the {reason} routes and a target for it, so
// that one input meets every route and state.
func (e *fuzzEnv) reasonRoute(which uint8) (string, domain.Role) {
	const unknown = "0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d"
	pkg := func(id, rest string) string { return "/v1/packages/" + id + rest }
	routes := []string{
		pkg(e.fx.active, "/payments/"+e.fx.activePay+"/void"),
		pkg(e.fx.redeemed, "/payments/"+e.fx.redeemedPay+"/void"),
		pkg(e.fx.active, "/payments/"+unknown+"/void"),
		pkg(e.fx.redeemed, "/redemptions/"+e.fx.redeemedRed+"/reverse"),
		pkg(e.fx.usedUp, "/redemptions/"+unknown+"/reverse"),
		"/v1/plans/" + e.fx.spare + "/retire",
		"/v1/plans/" + e.fx.retired + "/retire",
		"/v1/plans/NOPE/retire",
		pkg(e.fx.expired, "/breakage"),
		pkg(e.fx.active, "/breakage"),
	}
	return routes[int(which)%len(routes)], domain.RoleManager
}

// FuzzReasonBody: the {reason} bodies of void, reverse, retire and
// breakage.
func FuzzReasonBody(f *testing.F) {
	addSpread(f, reasonBodies(), 2, 10)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		path, role := e.reasonRoute(which)
		e.checkAnswer(t, path, role, body)
	})
}

// FuzzRefundBody: the {method, reason} body of a refund, on a package in
// every state.
func FuzzRefundBody(f *testing.F) {
	bodies := []string{
		`{"method":"cash","reason":"moving away"}`, `{"method":"bank_transfer","reason":"customer sold the car"}`,
		`{"method":"gold","reason":"x"}`, `{"method":"","reason":"x"}`, `{"method":"CASH","reason":"x"}`, `{"method":" cash","reason":"x"}`,
		`{"method":"cash"}`, `{"reason":"x"}`, `{"method":null,"reason":null}`, `{"method":"cash","reason":"x","amount":"2448.00"}`,
		`{"method":"cash","reason":"x","fee":"0.00"}`, `{"method":"cash\u0000","reason":"x"}`,
	}
	for _, r := range reasonTexts {
		bodies = append(bodies, `{"method":"wechat","reason":"`+r+`"}`)
	}
	addSpread(f, bodies, 2, 7)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		e.checkAnswer(t, "/v1/packages/"+e.packageFor(which)+"/refund", domain.RoleManager, body)
	})
}
