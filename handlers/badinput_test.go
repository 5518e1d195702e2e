package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// ---------------------------------------------------------------------------
// Helpers shared by badinput_test.go, roles_test.go, concurrency_test.go and
// fuzz_test.go. Unlike testAPI.Do they take the *testing.T of the caller (so
// they are safe in subtests) or return an error (so they are safe in
// goroutines and fuzz functions).

// answer is one HTTP exchange's answer.
type answer struct {
	Status int
	Header http.Header
	Raw    []byte
}

// JSON decodes the answer as a JSON object.
func (r answer) JSON(t testing.TB) map[string]any {
	t.Helper()
	var out map[string]any
	require.NoError(t, json.Unmarshal(r.Raw, &out), "answer is not a JSON object: %s", r.Raw)
	return out
}

var apiClient = &http.Client{Timeout: 60 * time.Second}

// bodyReader turns a body (nil, string, []byte or a value to encode) into a
// reader.
func bodyReader(body any) (io.Reader, error) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.NewReader(b), nil
	case []byte:
		return bytes.NewReader(b), nil
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(j), nil
	}
}

// send sends one request with a literal Authorization header value (""
// sends none) and extra header key/value pairs.
func send(a *testAPI, method, path, auth string, body any, header ...string) (answer, error) {
	rd, err := bodyReader(body)
	if err != nil {
		return answer{}, err
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		return answer{}, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Raw: raw}, nil
}

func mustSend(t testing.TB, a *testAPI, method, path, auth string, body any, header ...string) answer {
	t.Helper()
	ans, err := send(a, method, path, auth, body, header...)
	require.NoError(t, err, "%s %s", method, path)
	return ans
}

// bearer is the Authorization header of a role's user.
func bearer(a *testAPI, role domain.Role) string { return "Bearer " + a.Tokens[role] }

// lastSeq is the stream's last sequence.
func lastSeq(t testing.TB, a *testAPI) uint64 {
	t.Helper()
	seq, err := a.Store.LastSeq(context.Background())
	require.NoError(t, err)
	return seq
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// errorShape checks that raw is exactly {"error":{"code","message"[,"field"]}}
// with a snake_case code and a non-empty message, and returns the code and
// the field.
func errorShape(raw []byte) (code, field string, err error) {
	var body struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
			Field   *string `json:"field"`
		} `json:"error"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&body); err != nil {
		return "", "", fmt.Errorf("error body %q: %w", raw, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return "", "", fmt.Errorf("error body %q: more than one JSON value", raw)
	}
	switch {
	case body.Error == nil:
		return "", "", fmt.Errorf("error body %q: no \"error\" object", raw)
	case body.Error.Code == nil || !snakeCase.MatchString(*body.Error.Code):
		return "", "", fmt.Errorf("error body %q: code missing or not snake_case", raw)
	case body.Error.Message == nil || strings.TrimSpace(*body.Error.Message) == "":
		return "", "", fmt.Errorf("error body %q: message missing or empty", raw)
	case body.Error.Field != nil && *body.Error.Field == "":
		return "", "", fmt.Errorf("error body %q: empty field", raw)
	}
	if body.Error.Field != nil {
		field = *body.Error.Field
	}
	return *body.Error.Code, field, nil
}

func requireErrorShape(t testing.TB, ans answer) (code, field string) {
	t.Helper()
	code, field, err := errorShape(ans.Raw)
	require.NoError(t, err, "status %d", ans.Status)
	return code, field
}

// placeholder marks where jsonWith splices a raw JSON fragment.
const placeholder = "@@packledger-test-value@@"

// jsonWith encodes base with the value at a dotted path ("vehicle.vin",
// "entitlements.0.list_price") replaced by the raw JSON fragment raw, which
// may be anything, even invalid JSON or invalid UTF-8; raw == "" removes
// the key. An empty path adds nothing.
func jsonWith(base map[string]any, path, raw string) []byte {
	var doc any
	b, err := json.Marshal(base)
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		panic(err)
	}
	if path != "" {
		keys := strings.Split(path, ".")
		cur := doc
		for _, k := range keys[:len(keys)-1] {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[k]
			case []any:
				i, _ := strconv.Atoi(k)
				cur = c[i]
			}
		}
		last := keys[len(keys)-1]
		switch c := cur.(type) {
		case map[string]any:
			if raw == "" {
				delete(c, last)
			} else {
				c[last] = placeholder
			}
		case []any:
			i, _ := strconv.Atoi(last)
			c[i] = placeholder
		default:
			panic("jsonWith: no object at " + path)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return bytes.Replace(out, []byte(`"`+placeholder+`"`), []byte(raw), 1)
}

// jstr is s as a JSON string.
func jstr(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// Fixtures: one API with a package in each state the refusals need.

type fixtures struct {
	active, activePay                  string // OIL6, paid in full, nothing redeemed
	unpaid                             string // OIL6, sold, nothing paid
	refunded, refundedPay              string // OIL6, paid then refunded
	usedUp                             string // ONE1 (one visit), paid, its visit redeemed
	redeemed, redeemedPay, redeemedRed string // OIL6, paid, one visit redeemed
	expired                            string // EXP1 (one month), paid, then expired
	spare                              string // a plan code, active, never sold
	retired                            string // a plan code, retired
	lavida                             string // a plan code for the Lavida model only
}

const (
	activeReceipt = "R-ACTIVE-1"
	testVIN       = "LSVAU2180N2183294"
)

func planBody(code string) map[string]any {
	return map[string]any{
		"code": code, "name": "6 oil changes",
		"entitlements":    []map[string]any{{"service": "oil_change", "count": 6, "list_price": "480.00"}},
		"price":           "2400.00",
		"validity_months": 24, "refund_policy": "pro_rata", "cancellation_fee_rate": "0.10",
	}
}

func sellBody(plan string) map[string]any {
	return map[string]any{
		"plan":     plan,
		"customer": map[string]any{"id": "C-1", "name": "Li Wei", "phone": "13800138000"},
		"vehicle":  map[string]any{"vin": testVIN, "plate": "沪A12345", "model": "Lavida", "registered": "2023-05-04"},
	}
}

func payBody(amount, receipt string) map[string]any {
	return map[string]any{"amount": amount, "method": "cash", "receipt": receipt}
}

func redeemBody(ro string) map[string]any {
	return map[string]any{"service": "oil_change", "repair_order": ro, "mileage": 12000}
}

// definePlan defines a plan of one service with count visits at list price
// each, sold at price, valid for months.
func definePlan(t testing.TB, a *testAPI, code string, count int, list, price string, months int, models ...string) {
	t.Helper()
	body := map[string]any{
		"code": code, "name": code,
		"entitlements":    []map[string]any{{"service": "oil_change", "count": count, "list_price": list}},
		"price":           price,
		"validity_months": months, "refund_policy": "pro_rata", "cancellation_fee_rate": "0.10",
	}
	if len(models) > 0 {
		body["models"] = models
	}
	ans := mustSend(t, a, "POST", "/v1/plans", bearer(a, domain.RoleManager), body)
	require.Equal(t, http.StatusCreated, ans.Status, "define %s: %s", code, ans.Raw)
}

func sell(t testing.TB, a *testAPI, plan string) string {
	t.Helper()
	ans := mustSend(t, a, "POST", "/v1/packages", bearer(a, domain.RoleAdvisor), sellBody(plan))
	require.Equal(t, http.StatusCreated, ans.Status, "sell %s: %s", plan, ans.Raw)
	return ans.JSON(t)["id"].(string)
}

// pay records a payment and returns the payment's id.
func pay(t testing.TB, a *testAPI, id, amount, receipt string) string {
	t.Helper()
	ans := mustSend(t, a, "POST", "/v1/packages/"+id+"/payments", bearer(a, domain.RoleCashier), payBody(amount, receipt))
	require.Equal(t, http.StatusCreated, ans.Status, "pay %s: %s", id, ans.Raw)
	return ans.JSON(t)["payment"].(map[string]any)["id"].(string)
}

// redeem deducts one oil change and returns the redemption's id.
func redeem(t testing.TB, a *testAPI, id, ro string) string {
	t.Helper()
	ans := mustSend(t, a, "POST", "/v1/packages/"+id+"/redemptions", bearer(a, domain.RoleAdvisor), redeemBody(ro))
	require.Equal(t, http.StatusCreated, ans.Status, "redeem %s: %s", id, ans.Raw)
	return ans.JSON(t)["redemption"].(map[string]any)["id"].(string)
}

// expire runs the expiry sweep's command on one package, as the system
// actor, and waits until the projections have it.
func expire(t testing.TB, a *testAPI, id string) {
	t.Helper()
	ctx := context.Background()
	meta := eventstore.Meta{Store: "s1", Actor: domain.Actor{ID: "system", Role: domain.RoleSystem}}
	res, err := a.Store.Update(ctx, a.Store.Subjects().Package(id), meta, a.Now,
		func(h []domain.Envelope) (eventstore.Change, error) {
			evs, err := domain.Decide(domain.Fold(h), domain.Expire{}, a.Now())
			return eventstore.Change{Events: evs}, err
		})
	require.NoError(t, err)
	require.Len(t, res.Appended, 1, "the package did not expire")
	require.NoError(t, a.Runner.WaitFor(ctx, res.LastSeq))
}

func newFixtures(t testing.TB, a *testAPI) fixtures {
	t.Helper()
	var fx fixtures
	a.Plan("OIL6") // 6 × 480.00 at 0.85: 2448.00
	definePlan(t, a, "ONE1", 1, "400.00", "360.00", 24)
	definePlan(t, a, "EXP1", 2, "400.00", "700.00", 1)
	fx.spare, fx.retired, fx.lavida = "SPARE", "RETIRED", "LAV4"
	definePlan(t, a, fx.spare, 1, "400.00", "360.00", 12)
	definePlan(t, a, fx.retired, 1, "400.00", "360.00", 12)
	definePlan(t, a, fx.lavida, 4, "400.00", "1400.00", 12, "Lavida")
	ans := mustSend(t, a, "POST", "/v1/plans/"+fx.retired+"/retire", bearer(a, domain.RoleManager), map[string]any{"reason": "replaced"})
	require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)

	fx.active = sell(t, a, "OIL6")
	fx.activePay = pay(t, a, fx.active, "2448.00", activeReceipt)

	fx.unpaid = sell(t, a, "OIL6")

	fx.refunded = sell(t, a, "OIL6")
	fx.refundedPay = pay(t, a, fx.refunded, "2448.00", "R-REFUNDED-1")
	ans = mustSend(t, a, "POST", "/v1/packages/"+fx.refunded+"/refund", bearer(a, domain.RoleManager), map[string]any{"method": "cash", "reason": "moved"})
	require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)

	fx.usedUp = sell(t, a, "ONE1")
	pay(t, a, fx.usedUp, "360.00", "R-USEDUP-1")
	redeem(t, a, fx.usedUp, "RO-USEDUP-1")

	fx.redeemed = sell(t, a, "OIL6")
	fx.redeemedPay = pay(t, a, fx.redeemed, "2448.00", "R-REDEEMED-1")
	fx.redeemedRed = redeem(t, a, fx.redeemed, "RO-REDEEMED-1")

	fx.expired = sell(t, a, "EXP1")
	pay(t, a, fx.expired, "700.00", "R-EXPIRED-1")
	a.Advance(40 * 24 * time.Hour) // EXP1 is valid one month; the others 12 or 24
	expire(t, a, fx.expired)

	for id, want := range map[string]string{
		fx.active: "active", fx.unpaid: "awaiting_payment", fx.refunded: "refunded",
		fx.usedUp: "used_up", fx.redeemed: "active", fx.expired: "expired",
	} {
		ans := mustSend(t, a, "GET", "/v1/packages/"+id, bearer(a, domain.RoleAuditor), nil)
		require.Equal(t, http.StatusOK, ans.Status)
		require.Equal(t, want, ans.JSON(t)["status"], "fixture %s", id)
	}
	return fx
}

// ---------------------------------------------------------------------------

// badCase is one request that must be refused.
type badCase struct {
	name   string
	path   string
	auth   string // the Authorization header; "" sends none
	body   any
	header []string
	status int
	code   string // one code, or alternatives separated by "|"
	field  string // checked when set
}

// writeRoute is one write route of DESIGN.md §5 with the role allowed to
// use it and a body it would accept at path.
type writeRoute struct {
	name  string
	path  string
	role  domain.Role
	valid map[string]any
	// textField is a free-text field of the body for the control-character
	// and UTF-8 cases, with the maximum length its rule allows.
	textField string
	textMax   int
}

var allRoles = []domain.Role{domain.RoleAdvisor, domain.RoleCashier, domain.RoleManager, domain.RoleAuditor}

// genericCases are the refusals every write route owes: malformed bodies,
// authentication, roles, size, the idempotency key, and text rules.
func genericCases(a *testAPI, r writeRoute) []badCase {
	valid := jsonWith(r.valid, "", "")
	auth := bearer(a, r.role)
	firstKey := ""
	for k := range r.valid {
		if firstKey == "" || k < firstKey {
			firstKey = k
		}
	}
	cs := []badCase{
		{name: "malformed JSON", body: `{"` + firstKey + `":`, status: 400, code: "invalid_request"},
		{name: "malformed JSON single quotes", body: `{'` + firstKey + `': 'x'}`, status: 400, code: "invalid_request"},
		{name: "not an object", body: `["x"]`, status: 400, code: "invalid_request"},
		{name: "unknown field", body: jsonWith(r.valid, "bogus", `true`), status: 400, code: "invalid_request"},
		{name: "empty body", body: "", status: 400, code: "invalid_request"},
		{name: "blank body", body: " \r\n\t ", status: 400, code: "invalid_request"},
		{name: "trailing second JSON value", body: string(valid) + ` {}`, status: 400, code: "invalid_request"},
		{name: "trailing copy of the body", body: string(valid) + "\n" + string(valid), status: 400, code: "invalid_request"},
		{name: "trailing garbage", body: string(valid) + `x`, status: 400, code: "invalid_request"},
		{name: "body over 1 MiB", body: jsonWith(r.valid, firstKey, jstr(strings.Repeat("x", 1<<20))), status: 413, code: "body_too_large"},
		{name: "no token", auth: "-", body: valid, status: 401, code: "unauthorized"},
		{name: "bad token", auth: "Bearer not-a-token", body: valid, status: 401, code: "unauthorized"},
		{name: "empty bearer token", auth: "Bearer ", body: valid, status: 401, code: "unauthorized"},
		{name: "token without scheme", auth: a.Tokens[r.role], body: valid, status: 401, code: "unauthorized"},
		{name: "basic auth", auth: "Basic dS1tYW5hZ2VyOnRva2VuLW1hbmFnZXI=", body: valid, status: 401, code: "unauthorized"},
		{name: "Idempotency-Key with a space", body: valid, header: []string{"Idempotency-Key", "a key"},
			status: 400, code: "invalid_field", field: "Idempotency-Key"},
		{name: "Idempotency-Key too long", body: valid, header: []string{"Idempotency-Key", strings.Repeat("k", 201)},
			status: 400, code: "invalid_field", field: "Idempotency-Key"},
	}
	for _, role := range allRoles {
		if role != r.role {
			cs = append(cs, badCase{name: "wrong role " + string(role), auth: bearer(a, role), body: valid, status: 403, code: "forbidden"})
		}
	}
	if f := r.textField; f != "" {
		cs = append(cs,
			badCase{name: "control character escaped in " + f, body: jsonWith(r.valid, f, `"ab\u0007cd"`), status: 400, code: "invalid_field", field: f},
			badCase{name: "NUL escaped in " + f, body: jsonWith(r.valid, f, `"ab\u0000cd"`), status: 400, code: "invalid_field", field: f},
			badCase{name: "line separator in " + f, body: jsonWith(r.valid, f, `"ab\u2028cd"`), status: 400, code: "invalid_field", field: f},
			badCase{name: "raw control character in " + f, body: jsonWith(r.valid, f, "\"ab\x07cd\""), status: 400, code: "invalid_field", field: f},
			badCase{name: "raw tab in " + f, body: jsonWith(r.valid, f, "\"ab\tcd\""), status: 400, code: "invalid_field", field: f},
			badCase{name: "blank " + f, body: jsonWith(r.valid, f, `"   "`), status: 400, code: "invalid_field", field: f},
			badCase{name: "over-long " + f, body: jsonWith(r.valid, f, jstr(strings.Repeat("A", r.textMax+1))), status: 400, code: "invalid_field", field: f},
			badCase{name: f + " as a number", body: jsonWith(r.valid, f, `12`), status: 400, code: "invalid_request", field: f},
		)
		cs = append(cs,
			badCase{name: "invalid UTF-8 in " + f, body: jsonWith(r.valid, f, "\"ab\xff\xfecd\""), status: 400, code: "invalid_field", field: f},
			badCase{name: "UTF-8 of a surrogate in " + f, body: jsonWith(r.valid, f, "\"ab\xed\xa0\x80cd\""), status: 400, code: "invalid_field", field: f},
			badCase{name: "lone surrogate escaped in " + f, body: jsonWith(r.valid, f, `"ab\ud800cd"`), status: 400, code: "invalid_field", field: f},
		)
	}
	for i := range cs {
		switch cs[i].auth {
		case "":
			cs[i].auth = auth
		case "-":
			cs[i].auth = ""
		}
		cs[i].path = r.path
	}
	return cs
}

// check sends c and checks the refusal: status, error shape, code, field,
// and that the stream did not move.
func (c badCase) check(t *testing.T, a *testAPI) {
	t.Helper()
	before := lastSeq(t, a)
	ans := mustSend(t, a, "POST", c.path, c.auth, c.body, c.header...)
	require.Equal(t, c.status, ans.Status, "answer: %s", ans.Raw)
	code, field := requireErrorShape(t, ans)
	require.Contains(t, strings.Split(c.code, "|"), code, "answer: %s", ans.Raw)
	if c.field != "" {
		require.Equal(t, c.field, field, "answer: %s", ans.Raw)
	}
	if c.status == http.StatusUnauthorized {
		require.NotEmpty(t, ans.Header.Get("WWW-Authenticate"))
	}
	require.Contains(t, ans.Header.Get("Content-Type"), "application/json")
	require.Equal(t, before, lastSeq(t, a), "a refused request appended to the stream")
}

func TestAPI_BadInput(t *testing.T) {
	a := newTestAPI(t)
	fx := newFixtures(t, a)
	const unknownID = "0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d" // a valid UUIDv7 never used
	mgr, adv, csh := bearer(a, domain.RoleManager), bearer(a, domain.RoleAdvisor), bearer(a, domain.RoleCashier)
	pkg := func(id, rest string) string { return "/v1/packages/" + id + rest }
	reason := map[string]any{"reason": "entered by mistake"}

	routes := []writeRoute{
		{name: "define plan", path: "/v1/plans", role: domain.RoleManager, valid: planBody("NEWP"), textField: "name", textMax: 100},
		{name: "retire plan", path: "/v1/plans/" + fx.spare + "/retire", role: domain.RoleManager, valid: reason, textField: "reason", textMax: 500},
		{name: "sell", path: "/v1/packages", role: domain.RoleAdvisor, valid: sellBody("OIL6"), textField: "customer.name", textMax: 100},
		{name: "payment", path: pkg(fx.unpaid, "/payments"), role: domain.RoleCashier, valid: payBody("100.00", "R-NEW-1"), textField: "receipt", textMax: 40},
		{name: "void payment", path: pkg(fx.active, "/payments/"+fx.activePay+"/void"), role: domain.RoleManager, valid: reason, textField: "reason", textMax: 500},
		{name: "redemption", path: pkg(fx.active, "/redemptions"), role: domain.RoleAdvisor, valid: redeemBody("RO-NEW-1"), textField: "repair_order", textMax: 40},
		{name: "reverse redemption", path: pkg(fx.redeemed, "/redemptions/"+fx.redeemedRed+"/reverse"), role: domain.RoleManager, valid: reason, textField: "reason", textMax: 500},
		{name: "refund", path: pkg(fx.active, "/refund"), role: domain.RoleManager, valid: map[string]any{"method": "cash", "reason": "moving away"}, textField: "reason", textMax: 500},
		{name: "breakage", path: pkg(fx.expired, "/breakage"), role: domain.RoleManager, valid: reason, textField: "reason", textMax: 500},
	}

	// The cases particular to each route.
	plan := planBody("NEWP")
	noPrice := planBody("NEWP")
	delete(noPrice, "price")
	sale := sellBody("OIL6")
	payment := payBody("100.00", "R-NEW-1")
	redemption := redeemBody("RO-NEW-1")
	refund := map[string]any{"method": "cash", "reason": "moving away"}
	specific := map[string][]badCase{
		"define plan": {
			{name: "money as a JSON number", body: jsonWith(plan, "price", `2400.00`), status: 400, code: "invalid_amount", field: "price"},
			{name: "money as a JSON integer", body: jsonWith(plan, "price", `2400`), status: 400, code: "invalid_amount", field: "price"},
			{name: "list price as a JSON number", body: jsonWith(plan, "entitlements.0.list_price", `480.00`), status: 400, code: "invalid_amount", field: "entitlements[0].list_price"},
			{name: "three decimals", body: jsonWith(plan, "price", `"2400.000"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "one decimal", body: jsonWith(plan, "price", `"2400.0"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "no decimals", body: jsonWith(plan, "price", `"2400"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "exponent", body: jsonWith(plan, "price", `"1e3"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "exponent with decimals", body: jsonWith(plan, "price", `"2.40e3"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "negative", body: jsonWith(plan, "price", `"-2400.00"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "plus sign", body: jsonWith(plan, "price", `"+2400.00"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "empty string amount", body: jsonWith(plan, "price", `""`), status: 400, code: "invalid_amount", field: "price"},
			{name: "zero price", body: jsonWith(plan, "price", `"0.00"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "price above list total", body: jsonWith(plan, "price", `"2880.01"`), status: 400, code: "invalid_amount", field: "price"},
			{name: "negative list price", body: jsonWith(plan, "entitlements.0.list_price", `"-480.00"`), status: 400, code: "invalid_amount", field: "entitlements[0].list_price"},
			{name: "rate as a JSON number", body: jsonWith(noPrice, "rate", `0.85`), status: 400, code: "invalid_field", field: "rate"},
			{name: "rate with five decimals", body: jsonWith(noPrice, "rate", `"0.85001"`), status: 400, code: "invalid_field", field: "rate"},
			{name: "rate above one", body: jsonWith(noPrice, "rate", `"1.5"`), status: 400, code: "invalid_field", field: "rate"},
			{name: "price and rate", body: jsonWith(plan, "rate", `"0.85"`), status: 400, code: "invalid_field", field: "price"},
			{name: "missing required field code", body: jsonWith(plan, "code", ""), status: 400, code: "invalid_field", field: "code"},
			{name: "missing required field entitlements", body: jsonWith(plan, "entitlements", ""), status: 400, code: "invalid_field", field: "entitlements"},
			{name: "missing price and rate", body: jsonWith(noPrice, "", ""), status: 400, code: "invalid_field", field: "price"},
			{name: "missing validity", body: jsonWith(plan, "validity_months", ""), status: 400, code: "invalid_field", field: "validity_months"},
			{name: "count as a string", body: jsonWith(plan, "entitlements.0.count", `"6"`), status: 400, code: "invalid_request", field: "entitlements[0].count"},
			{name: "count as a fraction", body: jsonWith(plan, "entitlements.0.count", `6.5`), status: 400, code: "invalid_request", field: "entitlements[0].count"},
			{name: "unknown field in an entitlement", body: jsonWith(plan, "entitlements.0.colour", `"red"`), status: 400, code: "invalid_request"},
			{name: "unknown refund policy", body: jsonWith(plan, "refund_policy", `"no_refund"`), status: 400, code: "invalid_field", field: "refund_policy"},
			{name: "bad code", body: jsonWith(plan, "code", `"bad code!"`), status: 400, code: "invalid_field", field: "code"},
			{name: "plan code already defined", body: jsonWith(plan, "code", `"OIL6"`), status: 409, code: "plan_exists"},
			{name: "retired plan code redefined", body: jsonWith(plan, "code", jstr(fx.retired)), status: 409, code: "plan_exists"},
		},
		"retire plan": {
			{name: "unknown plan", path: "/v1/plans/NOPE/retire", auth: mgr, body: reason, status: 404, code: "plan_not_found"},
			{name: "invalid plan code", path: "/v1/plans/bad%20code%21/retire", auth: mgr, body: reason, status: 404, code: "plan_not_found"},
			{name: "already retired", path: "/v1/plans/" + fx.retired + "/retire", auth: mgr, body: reason, status: 409, code: "plan_retired"},
			{name: "missing required field", body: `{}`, status: 400, code: "invalid_field", field: "reason"},
		},
		"sell": {
			{name: "unknown plan", body: jsonWith(sale, "plan", `"NOPE"`), status: 404, code: "plan_not_found", field: "plan"},
			{name: "invalid plan code", body: jsonWith(sale, "plan", `"no such plan!"`), status: 404, code: "plan_not_found", field: "plan"},
			{name: "retired plan", body: jsonWith(sale, "plan", jstr(fx.retired)), status: 409, code: "plan_retired", field: "plan"},
			{name: "model not covered", body: jsonWith(jsonObj(jsonWith(sale, "plan", jstr(fx.lavida))), "vehicle.model", `"Passat"`), status: 422, code: "model_not_covered", field: "vehicle.model"},
			{name: "bad VIN too short", body: jsonWith(sale, "vehicle.vin", `"LSVAU2180N218329"`), status: 400, code: "invalid_field", field: "vehicle.vin"},
			{name: "bad VIN with I", body: jsonWith(sale, "vehicle.vin", `"LSVAU2180N218329I"`), status: 400, code: "invalid_field", field: "vehicle.vin"},
			{name: "bad VIN empty", body: jsonWith(sale, "vehicle.vin", `""`), status: 400, code: "invalid_field", field: "vehicle.vin"},
			{name: "missing required field customer.id", body: jsonWith(sale, "customer.id", ""), status: 400, code: "invalid_field", field: "customer.id"},
			{name: "missing required field vehicle", body: jsonWith(sale, "vehicle", ""), status: 400, code: "invalid_field", field: "vehicle.vin"},
			{name: "bad phone", body: jsonWith(sale, "customer.phone", `"call me"`), status: 400, code: "invalid_field", field: "customer.phone"},
			{name: "bad registration date", body: jsonWith(sale, "vehicle.registered", `"2023-02-30"`), status: 400, code: "invalid_field", field: "vehicle.registered"},
			{name: "unknown field in vehicle", body: jsonWith(sale, "vehicle.colour", `"red"`), status: 400, code: "invalid_request"},
			{name: "customer as a string", body: jsonWith(sale, "customer", `"Li Wei"`), status: 400, code: "invalid_request", field: "customer"},
		},
		"payment": {
			{name: "money as a JSON number", body: jsonWith(payment, "amount", `100.00`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "money as a JSON integer", body: jsonWith(payment, "amount", `100`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "three decimals", body: jsonWith(payment, "amount", `"100.000"`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "exponent", body: jsonWith(payment, "amount", `"1e3"`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "negative", body: jsonWith(payment, "amount", `"-100.00"`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "empty string amount", body: jsonWith(payment, "amount", `""`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "amount with spaces", body: jsonWith(payment, "amount", `" 100.00"`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "amount with a comma", body: jsonWith(payment, "amount", `"1,000.00"`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "amount with leading zero", body: jsonWith(payment, "amount", `"0100.00"`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "amount null", body: jsonWith(payment, "amount", `null`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "zero amount", body: jsonWith(payment, "amount", `"0.00"`), status: 400, code: "invalid_amount", field: "amount"},
			{name: "missing required field amount", body: jsonWith(payment, "amount", ""), status: 400, code: "invalid_amount", field: "amount"},
			{name: "missing required field receipt", body: jsonWith(payment, "receipt", ""), status: 400, code: "invalid_field", field: "receipt"},
			{name: "missing required field method", body: jsonWith(payment, "method", ""), status: 400, code: "invalid_field", field: "method"},
			{name: "unknown method", body: jsonWith(payment, "method", `"bitcoin"`), status: 400, code: "invalid_field", field: "method"},
			{name: "receipt with a space", body: jsonWith(payment, "receipt", `"R 1"`), status: 400, code: "invalid_field", field: "receipt"},
			{name: "invalid UTF-8 receipt", body: jsonWith(payment, "receipt", "\"R\xff1\""), status: 400, code: "invalid_field", field: "receipt"},
			{name: "overpayment", body: jsonWith(payment, "amount", `"2448.01"`), status: 422, code: "overpayment", field: "amount"},
			{name: "overpayment of a paid package", path: pkg(fx.active, "/payments"), auth: csh, body: payBody("1.00", "R-NEW-2"), status: 422, code: "overpayment", field: "amount"},
			{name: "payment on a refunded package", path: pkg(fx.refunded, "/payments"), auth: csh, body: payBody("1.00", "R-NEW-3"), status: 409, code: "package_not_active"},
			{name: "duplicate receipt on another package", body: jsonWith(payment, "receipt", jstr(activeReceipt)), status: 409, code: "duplicate_receipt", field: "receipt"},
			{name: "duplicate receipt padded with spaces", body: jsonWith(payment, "receipt", jstr("  "+activeReceipt+" ")), status: 409, code: "duplicate_receipt", field: "receipt"},
			{name: "duplicate receipt other amount same package", path: pkg(fx.active, "/payments"), auth: csh, body: payBody("1.00", activeReceipt), status: 409, code: "duplicate_receipt", field: "receipt"},
			{name: "unknown package", path: pkg(unknownID, "/payments"), auth: csh, body: payment, status: 404, code: "package_not_found"},
			{name: "non-uuid package", path: pkg("not-a-uuid", "/payments"), auth: csh, body: payment, status: 404, code: "package_not_found"},
		},
		"void payment": {
			{name: "unknown package", path: pkg(unknownID, "/payments/"+fx.activePay+"/void"), auth: mgr, body: reason, status: 404, code: "package_not_found"},
			{name: "non-uuid package", path: pkg("not-a-uuid", "/payments/"+fx.activePay+"/void"), auth: mgr, body: reason, status: 404, code: "package_not_found"},
			{name: "unknown payment", path: pkg(fx.active, "/payments/"+unknownID+"/void"), auth: mgr, body: reason, status: 404, code: "payment_not_found"},
			{name: "non-uuid payment", path: pkg(fx.active, "/payments/P-1/void"), auth: mgr, body: reason, status: 404, code: "payment_not_found"},
			{name: "payment of another package", path: pkg(fx.active, "/payments/"+fx.redeemedPay+"/void"), auth: mgr, body: reason, status: 404, code: "payment_not_found"},
			{name: "void after redemption", path: pkg(fx.redeemed, "/payments/"+fx.redeemedPay+"/void"), auth: mgr, body: reason, status: 409, code: "visits_redeemed"},
			{name: "void on a refunded package", path: pkg(fx.refunded, "/payments/"+fx.refundedPay+"/void"), auth: mgr, body: reason, status: 409, code: "package_not_active"},
			{name: "missing required field", body: `{}`, status: 400, code: "invalid_field", field: "reason"},
		},
		"redemption": {
			{name: "unknown service", body: jsonWith(redemption, "service", `"brake_pads"`), status: 422, code: "unknown_service", field: "service"},
			{name: "invalid service name", body: jsonWith(redemption, "service", `"Oil Change"`), status: 400, code: "invalid_field", field: "service"},
			{name: "missing required field service", body: jsonWith(redemption, "service", ""), status: 400, code: "invalid_field", field: "service"},
			{name: "missing required field repair_order", body: jsonWith(redemption, "repair_order", ""), status: 400, code: "invalid_field", field: "repair_order"},
			{name: "mileage as a string", body: jsonWith(redemption, "mileage", `"12000"`), status: 400, code: "invalid_request", field: "mileage"},
			{name: "mileage as a fraction", body: jsonWith(redemption, "mileage", `1200.5`), status: 400, code: "invalid_request", field: "mileage"},
			{name: "mileage in exponent", body: jsonWith(redemption, "mileage", `1e30`), status: 400, code: "invalid_request", field: "mileage"},
			{name: "negative mileage", body: jsonWith(redemption, "mileage", `-1`), status: 400, code: "invalid_field", field: "mileage"},
			{name: "absurd mileage", body: jsonWith(redemption, "mileage", `3000001`), status: 400, code: "invalid_field", field: "mileage"},
			{name: "repair order with a star", body: jsonWith(redemption, "repair_order", `"RO*1"`), status: 400, code: "invalid_field", field: "repair_order"},
			{name: "redemption on an unpaid package", path: pkg(fx.unpaid, "/redemptions"), auth: adv, body: redemption, status: 409, code: "package_not_active"},
			{name: "redemption on a refunded package", path: pkg(fx.refunded, "/redemptions"), auth: adv, body: redemption, status: 409, code: "package_not_active"},
			{name: "redemption on an expired package", path: pkg(fx.expired, "/redemptions"), auth: adv, body: redemption, status: 409, code: "package_not_active"},
			{name: "no_visits_left", path: pkg(fx.usedUp, "/redemptions"), auth: adv, body: redemption, status: 409, code: "no_visits_left"},
			{name: "unknown package", path: pkg(unknownID, "/redemptions"), auth: adv, body: redemption, status: 404, code: "package_not_found"},
			{name: "non-uuid package", path: pkg("not-a-uuid", "/redemptions"), auth: adv, body: redemption, status: 404, code: "package_not_found"},
		},
		"reverse redemption": {
			{name: "unknown redemption", path: pkg(fx.redeemed, "/redemptions/"+unknownID+"/reverse"), auth: mgr, body: reason, status: 404, code: "redemption_not_found"},
			{name: "non-uuid redemption", path: pkg(fx.redeemed, "/redemptions/RO-1/reverse"), auth: mgr, body: reason, status: 404, code: "redemption_not_found"},
			{name: "unknown package", path: pkg(unknownID, "/redemptions/"+fx.redeemedRed+"/reverse"), auth: mgr, body: reason, status: 404, code: "package_not_found"},
			{name: "non-uuid package", path: pkg("not-a-uuid", "/redemptions/"+fx.redeemedRed+"/reverse"), auth: mgr, body: reason, status: 404, code: "package_not_found"},
			{name: "missing required field", body: `{}`, status: 400, code: "invalid_field", field: "reason"},
		},
		"refund": {
			{name: "refund of used_up", path: pkg(fx.usedUp, "/refund"), auth: mgr, body: refund, status: 409, code: "package_used_up"},
			{name: "refund of refunded", path: pkg(fx.refunded, "/refund"), auth: mgr, body: refund, status: 409, code: "package_not_active"},
			{name: "missing required field method", body: jsonWith(refund, "method", ""), status: 400, code: "invalid_field", field: "method"},
			{name: "missing required field reason", body: jsonWith(refund, "reason", ""), status: 400, code: "invalid_field", field: "reason"},
			{name: "unknown method", body: jsonWith(refund, "method", `"gold"`), status: 400, code: "invalid_field", field: "method"},
			{name: "an amount is not the caller's to set", body: jsonWith(refund, "amount", `"2448.00"`), status: 400, code: "invalid_request"},
			{name: "unknown package", path: pkg(unknownID, "/refund"), auth: mgr, body: refund, status: 404, code: "package_not_found"},
			{name: "non-uuid package", path: pkg("not-a-uuid", "/refund"), auth: mgr, body: refund, status: 404, code: "package_not_found"},
		},
		"breakage": {
			{name: "breakage of non-expired", path: pkg(fx.active, "/breakage"), auth: mgr, body: reason, status: 409, code: "package_not_expired"},
			{name: "breakage of refunded", path: pkg(fx.refunded, "/breakage"), auth: mgr, body: reason, status: 409, code: "package_not_expired"},
			{name: "missing required field", body: `{}`, status: 400, code: "invalid_field", field: "reason"},
			{name: "unknown package", path: pkg(unknownID, "/breakage"), auth: mgr, body: reason, status: 404, code: "package_not_found"},
			{name: "non-uuid package", path: pkg("not-a-uuid", "/breakage"), auth: mgr, body: reason, status: 404, code: "package_not_found"},
		},
	}
	for route, cs := range fieldLimitCases(t, fx, pkg, mgr) {
		require.Contains(t, specific, route)
		specific[route] = append(specific[route], cs...)
	}
	// Every status in the table is one DESIGN.md §5 names for a refusal.
	for _, r := range routes {
		for _, c := range specific[r.name] {
			require.Contains(t, []int{400, 401, 403, 404, 409, 413, 422}, c.status, "%s/%s", r.name, c.name)
		}
	}

	for _, r := range routes {
		t.Run(r.name, func(t *testing.T) {
			cases := genericCases(a, r)
			for _, c := range specific[r.name] {
				if c.path == "" {
					c.path = r.path
				}
				if c.auth == "" {
					c.auth = bearer(a, r.role)
				}
				cases = append(cases, c)
			}
			seen := map[string]bool{}
			for _, c := range cases {
				require.False(t, seen[c.name], "duplicate case name %q", c.name)
				seen[c.name] = true
				t.Run(c.name, func(t *testing.T) { c.check(t, a) })
			}
		})
	}

	// Control: each route's valid body is accepted where the cases above
	// sent it, so the refusals above were refusals of the one thing that
	// was wrong. The order keeps every call legal: the reversal frees the
	// redeemed package's payment to be voided (the active package's visit,
	// redeemed here, would keep its payment from being voided).
	t.Run("control: the valid bodies are accepted", func(t *testing.T) {
		for _, step := range []struct {
			route  string
			path   string
			status int
		}{
			{"define plan", "", http.StatusCreated},
			{"retire plan", "", http.StatusOK},
			{"sell", "", http.StatusCreated},
			{"payment", "", http.StatusCreated},
			{"redemption", "", http.StatusCreated},
			{"reverse redemption", "", http.StatusOK},
			{"void payment", pkg(fx.redeemed, "/payments/"+fx.redeemedPay+"/void"), http.StatusOK},
			{"breakage", "", http.StatusOK},
		} {
			for _, r := range routes {
				if r.name != step.route {
					continue
				}
				path := r.path
				if step.path != "" {
					path = step.path
				}
				before := lastSeq(t, a)
				ans := mustSend(t, a, "POST", path, bearer(a, r.role), r.valid)
				require.Equal(t, step.status, ans.Status, "%s %s: %s", r.name, path, ans.Raw)
				require.Greater(t, lastSeq(t, a), before, "%s appended nothing", r.name)
			}
		}
		// The active package has a visit redeemed above; refund a fresh one.
		id := sell(t, a, "OIL6")
		pay(t, a, id, "2448.00", "R-CONTROL-REFUND")
		ans := mustSend(t, a, "POST", pkg(id, "/refund"), mgr, refund)
		require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)
	})

	// The 1 MiB limit is on the body, whitespace included: exactly 1 MiB is
	// read, one byte more is refused.
	t.Run("size boundary", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		for _, tc := range []struct {
			size   int
			status int
		}{{1<<20 + 1, http.StatusRequestEntityTooLarge}, {1 << 20, http.StatusCreated}} {
			b := jsonWith(payBody("100.00", fmt.Sprintf("R-SIZE-%d", tc.size)), "", "")
			b = append(b, bytes.Repeat([]byte(" "), tc.size-len(b))...)
			require.Len(t, b, tc.size)
			before := lastSeq(t, a)
			ans := mustSend(t, a, "POST", pkg(id, "/payments"), csh, b)
			require.Equal(t, tc.status, ans.Status, "%d bytes: %s", tc.size, ans.Raw)
			if tc.status != http.StatusCreated {
				code, _ := requireErrorShape(t, ans)
				require.Equal(t, "body_too_large", code)
				require.Equal(t, before, lastSeq(t, a))
			}
		}
	})

	// Anything that is no route answers 404 in the error shape.
	t.Run("no such route", func(t *testing.T) {
		for _, rq := range []struct{ method, path string }{
			{"DELETE", "/v1/plans"}, {"PUT", pkg(fx.active, "")}, {"POST", "/v1/nothing"},
			{"POST", pkg(fx.active, "/payments/"+fx.activePay)}, {"PATCH", "/v1/packages"},
		} {
			before := lastSeq(t, a)
			ans := mustSend(t, a, rq.method, rq.path, mgr, `{}`)
			require.Contains(t, []int{404, 405}, ans.Status, "%s %s: %s", rq.method, rq.path, ans.Raw)
			requireErrorShape(t, ans)
			require.Equal(t, before, lastSeq(t, a))
		}
	})
}

// jsonObj decodes JSON bytes into a map, to chain jsonWith edits.
func jsonObj(b []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}
