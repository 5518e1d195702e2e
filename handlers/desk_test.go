package handlers_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// deskClient is a browser without JavaScript: it keeps cookies, does not
// follow redirects by itself, and posts the forms of the page it last
// read with their hidden fields.
type deskClient struct {
	t    *testing.T
	api  *testAPI
	http *http.Client
	page string // the last page read
}

func newDeskClient(t *testing.T, a *testAPI) *deskClient {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &deskClient{t: t, api: a, http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// in is the client for subtest t: the same cookies, its own page.
func (c *deskClient) in(t *testing.T) *deskClient {
	cc := *c
	cc.t = t
	return &cc
}

// get reads a page; it returns the status and, for a redirect, where to.
func (c *deskClient) get(path string) (int, string) {
	c.t.Helper()
	resp, err := c.http.Get(c.api.URL + path)
	require.NoError(c.t, err)
	return c.read(resp)
}

func (c *deskClient) read(resp *http.Response) (int, string) {
	c.t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	c.page = string(b)
	if resp.StatusCode >= 400 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		// Every refusal says why, where a screen reader announces it.
		require.Contains(c.t, c.page, `role="alert"`, "a %d page that says nothing:\n%s", resp.StatusCode, c.page)
	}
	return resp.StatusCode, resp.Header.Get("Location")
}

// post sends a form as is.
func (c *deskClient) post(path string, form url.Values) (int, string) {
	c.t.Helper()
	resp, err := c.http.PostForm(c.api.URL+path, form)
	require.NoError(c.t, err)
	return c.read(resp)
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// submit posts the form of the last page whose action is path, with its
// hidden fields and the fields given.
func (c *deskClient) submit(path string, fields url.Values) (int, string) {
	c.t.Helper()
	i := strings.Index(c.page, `action="`+path+`"`)
	require.GreaterOrEqual(c.t, i, 0, "no form to %s on the page:\n%s", path, c.page)
	end := strings.Index(c.page[i:], "</form>")
	form := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(c.page[i:i+end], -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	return c.post(path, form)
}

// signIn signs in as role and returns where the desk sent the user.
func (c *deskClient) signIn(role domain.Role) string {
	c.t.Helper()
	st, _ := c.get("/signin")
	require.Equal(c.t, http.StatusOK, st)
	st, loc := c.submit("/signin", url.Values{"token": {c.api.Tokens[role]}})
	require.Equal(c.t, http.StatusSeeOther, st, "sign in as %s:\n%s", role, c.page)
	return loc
}

// has fails unless the last page holds every one of texts.
func (c *deskClient) has(texts ...string) {
	c.t.Helper()
	for _, s := range texts {
		require.Contains(c.t, c.page, s)
	}
}

func (c *deskClient) hasNot(texts ...string) {
	c.t.Helper()
	for _, s := range texts {
		require.NotContains(c.t, c.page, s)
	}
}

// TestDesk_SignIn: the desk sends a visitor to sign in; the sign-in form
// refuses a post without its CSRF token and a wrong token, and a right one
// gives an HttpOnly, SameSite=Strict session; signing out ends it, and
// sign-out too needs the CSRF token.
func TestDesk_SignIn(t *testing.T) {
	a := newTestAPI(t)
	c := newDeskClient(t, a)
	st, loc := c.get("/desk/find")
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/signin?next=%2Fdesk%2Ffind", loc)
	st, loc = c.get("/")
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/signin", loc)

	st, _ = c.get("/signin")
	require.Equal(t, http.StatusOK, st)
	c.has(`<html lang="zh-CN">`, `<label for="token">访问令牌</label>`)

	st, _ = c.post("/signin", url.Values{"token": {a.Tokens[domain.RoleAdvisor]}})
	require.Equal(t, http.StatusForbidden, st, "no CSRF token")
	c.has("页面已过期")
	st, _ = c.get("/desk/find")
	require.Equal(t, http.StatusSeeOther, st, "and no session")

	c.get("/signin")
	st, _ = c.submit("/signin", url.Values{"token": {"not-a-token"}})
	require.Equal(t, http.StatusUnauthorized, st)
	c.has("令牌无效", `aria-invalid="true"`)

	resp, err := c.http.Get(a.URL + "/signin")
	require.NoError(t, err)
	c.read(resp)
	resp, err = c.http.PostForm(a.URL+"/signin", url.Values{"token": {a.Tokens[domain.RoleAdvisor]}, "csrf": {csrfOf(t, c.page)}})
	require.NoError(t, err)
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "pl_session" {
			session = ck
		}
	}
	st, loc = c.read(resp)
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/desk/find", loc)
	require.NotNil(t, session, "a session cookie")
	require.True(t, session.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, session.SameSite)

	st, _ = c.get("/desk/find")
	require.Equal(t, http.StatusOK, st)
	c.has("advisor", "服务顾问", `action="/signout"`)

	st, _ = c.post("/signout", url.Values{})
	require.Equal(t, http.StatusForbidden, st, "sign-out without the CSRF token")
	c.get("/desk/find")
	st, loc = c.submit("/signout", nil)
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/signin", loc)
	st, _ = c.get("/desk/find")
	require.Equal(t, http.StatusSeeOther, st, "signed out")
}

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	require.NotNil(t, m, "no CSRF token on the page")
	return m[1]
}

// TestDesk_AdvisorDeducts: at reception the advisor finds the car by its
// plate, sees its package, asks to deduct a visit and is shown what it
// will take and the balance after it, with nothing written yet; the
// deduction is written only by the confirmation's post, once, however
// often that form is sent.
func TestDesk_AdvisorDeducts(t *testing.T) {
	a := newTestAPI(t)
	id := a.ActivePackage("OIL6")
	c := newDeskClient(t, a)
	require.Equal(t, "/desk/find", c.signIn(domain.RoleAdvisor))

	st, _ := c.get("/desk/find?q=" + url.QueryEscape("沪A12345"))
	require.Equal(t, http.StatusOK, st)
	c.has(`href="/desk/packages/`+id+`"`, "LSVAU2180N2183294", "生效中")
	st, _ = c.get("/desk/find?q=lsvau2180n2183294") // a VIN in any case
	require.Equal(t, http.StatusOK, st)
	c.has(`href="/desk/packages/` + id + `"`)
	st, _ = c.get("/desk/find?q=" + url.QueryEscape("+86 138-0013-8000")) // the customer's phone, as it comes
	require.Equal(t, http.StatusOK, st)
	c.has(`href="/desk/packages/` + id + `"`)
	st, _ = c.get("/desk/find?q=13900000000")
	require.Equal(t, http.StatusOK, st)
	c.has("没有找到该车辆的套餐")

	st, _ = c.get("/desk/packages/" + id)
	require.Equal(t, http.StatusOK, st)
	c.has("¥2,448.00", "¥408.00", `action="/desk/packages/`+id+`/deduct"`, `<label for="ro-oil_change">工单号</label>`)

	before := a.LastSeq()
	st, _ = c.get("/desk/packages/" + id + "/deduct?service=oil_change&repair_order=RO-1&mileage=5000")
	require.Equal(t, http.StatusOK, st)
	c.has("确认核销", "¥408.00", "¥2,040.00", "RO-1")
	require.Equal(t, before, a.LastSeq(), "the confirmation writes nothing")

	confirm := c.page
	st, _ = c.post("/desk/packages/"+id+"/deduct", url.Values{"service": {"oil_change"}, "repair_order": {"RO-1"}, "mileage": {"5000"}})
	require.Equal(t, http.StatusForbidden, st, "a post without the CSRF token")
	require.Equal(t, before, a.LastSeq(), "and nothing appended")

	c.page = confirm
	st, loc := c.submit("/desk/packages/"+id+"/deduct", nil)
	require.Equal(t, http.StatusSeeOther, st, c.page)
	require.Equal(t, "/desk/packages/"+id+"?done=deducted", loc)
	after := a.LastSeq()
	require.Greater(t, after, before)
	_, p := a.Do("GET", "/v1/packages/"+id, domain.RoleAuditor, nil)
	require.Equal(t, float64(5), p["remaining"].(map[string]any)["oil_change"])
	require.Equal(t, "2040.00", p["liability"])
	c.get(loc)
	c.has("已核销一次", "RO-1")

	// The same form again (a double click, the back button): nothing more.
	c.page = confirm
	st, _ = c.submit("/desk/packages/"+id+"/deduct", nil)
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, after, a.LastSeq())
	// The same repair order from a new confirmation: the first answer.
	c.get("/desk/packages/" + id + "/deduct?service=oil_change&repair_order=RO-1&mileage=5000")
	st, loc = c.submit("/desk/packages/"+id+"/deduct", nil)
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/desk/packages/"+id+"?done=deducted_again", loc)
	require.Equal(t, after, a.LastSeq())

	// Another deduction between the confirmation and its button: the
	// advisor is shown the new confirmation, and only that one writes.
	c.get("/desk/packages/" + id + "/deduct?service=oil_change&repair_order=RO-5&mileage=6000")
	c.has("¥1,632.00") // after it
	st, _ = a.Do("POST", "/v1/packages/"+id+"/redemptions", domain.RoleAdvisor,
		map[string]any{"service": "oil_change", "repair_order": "RO-6", "mileage": 6100})
	require.Equal(t, http.StatusCreated, st)
	after = a.LastSeq()
	st, _ = c.submit("/desk/packages/"+id+"/deduct", nil)
	require.Equal(t, http.StatusConflict, st)
	c.has("别人刚刚修改了这个套餐", "¥1,224.00")
	require.Equal(t, after, a.LastSeq())
	st, _ = c.submit("/desk/packages/"+id+"/deduct", nil)
	require.Equal(t, http.StatusSeeOther, st, c.page)
	_, p = a.Do("GET", "/v1/packages/"+id, domain.RoleAuditor, nil)
	require.Equal(t, "1224.00", p["liability"])
}

// TestDesk_FieldErrors: what was wrong is said next to its field, in
// words, with what was typed kept; nothing is written.
func TestDesk_FieldErrors(t *testing.T) {
	a := newTestAPI(t)
	id := a.ActivePackage("OIL6")
	c := newDeskClient(t, a)
	c.signIn(domain.RoleAdvisor)
	before := a.LastSeq()
	for _, tc := range []struct {
		name, query string
		status      int
		want        []string
	}{
		{"MileageNotANumber", "service=oil_change&repair_order=RO-9&mileage=abc", http.StatusBadRequest,
			[]string{`id="km-err"`, `value="abc"`, `value="RO-9"`}},
		{"NoRepairOrder", "service=oil_change&repair_order=&mileage=100", http.StatusBadRequest,
			[]string{`id="ro-err"`, `value="100"`}},
		{"UnknownService", "service=brakes&repair_order=RO-9&mileage=100", http.StatusUnprocessableEntity,
			[]string{"该套餐不含此服务项目"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			st, _ := c.get("/desk/packages/" + id + "/deduct?" + tc.query)
			require.Equal(t, tc.status, st, c.page)
			c.has(tc.want...)
			c.hasNot(`action="/desk/packages/` + id + `/deduct" class="actions"`)
		})
	}
	require.Equal(t, before, a.LastSeq())
}

// TestDesk_RoleBoundaries: a cashier reads the package but gets no
// deduction form, is refused the confirmation page, and a direct post of
// a deduction, even with the cashier's own CSRF token, appends nothing.
func TestDesk_RoleBoundaries(t *testing.T) {
	a := newTestAPI(t)
	id := a.ActivePackage("OIL6")
	c := newDeskClient(t, a)
	c.signIn(domain.RoleCashier)
	st, _ := c.get("/desk/packages/" + id)
	require.Equal(t, http.StatusOK, st)
	c.has("¥2,448.00")
	c.hasNot("/deduct")
	csrf := csrfOf(t, c.page)

	st, _ = c.get("/desk/packages/" + id + "/deduct?service=oil_change&repair_order=RO-1&mileage=1")
	require.Equal(t, http.StatusForbidden, st)
	c.has("您的角色不能进行此操作")
	before := a.LastSeq()
	st, _ = c.post("/desk/packages/"+id+"/deduct", url.Values{"csrf": {csrf}, "key": {"k-1"},
		"service": {"oil_change"}, "repair_order": {"RO-1"}, "mileage": {"1"}})
	require.Equal(t, http.StatusForbidden, st)
	st, _ = c.get("/desk/sell")
	require.Equal(t, http.StatusForbidden, st)
	require.Equal(t, before, a.LastSeq())
}

// TestDesk_Sell: the advisor picks a plan (its price, the value of a
// visit, its validity) and enters the customer and the car; a phone that
// is not one is named next to its field with everything typed kept, and
// nothing is sold; the sale then opens the new package, awaiting payment.
func TestDesk_Sell(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	c := newDeskClient(t, a)
	c.signIn(domain.RoleAdvisor)
	st, _ := c.get("/desk/sell")
	require.Equal(t, http.StatusOK, st)
	c.has("6 oil changes", "¥2,448.00", "¥2,880.00", "¥408.00", "24 个月", `<label for="f-customer-phone">电话</label>`)

	fields := url.Values{"plan": {"OIL6"}, "customer.id": {"C-7"}, "customer.name": {"王芳"}, "customer.phone": {"12"},
		"vehicle.vin": {"LSVAU2180N2183294"}, "vehicle.plate": {"沪B77777"}, "vehicle.model": {"Lavida"}}
	before := a.LastSeq()
	page := c.page
	st, _ = c.submit("/desk/sell", fields)
	require.Equal(t, http.StatusBadRequest, st)
	c.has(`id="f-customer-phone-err"`, `value="王芳"`, `value="沪B77777"`, `value="OIL6" checked`)
	require.Equal(t, before, a.LastSeq())

	c.page = page
	fields.Set("customer.phone", "13800138000")
	st, loc := c.submit("/desk/sell", fields)
	require.Equal(t, http.StatusSeeOther, st, c.page)
	require.Contains(t, loc, "?done=sold")
	c.get(loc)
	c.has("待付款", "王芳", "沪B77777", "已开单")
}

// TestDesk_English: the switch shows the desk in English and comes back to
// the page it was on.
func TestDesk_English(t *testing.T) {
	a := newTestAPI(t)
	id := a.ActivePackage("OIL6")
	c := newDeskClient(t, a)
	c.signIn(domain.RoleAdvisor)
	st, loc := c.get("/lang?to=en&back=" + url.QueryEscape("/desk/packages/"+id))
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/desk/packages/"+id, loc)
	c.get(loc)
	c.has(`<html lang="en">`, "Visits left", "Deduct a visit", "¥2,448.00", "中文")
	st, loc = c.get("/lang?to=zh-CN&back=//evil.example")
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/", loc, "only a path of this site")
}

// TestDesk_CashierPaysInTwoParts: the cashier's queue shows the sale
// awaiting payment; a payment in two parts (the second refused first for
// being too much, then for a receipt number already used, each said next
// to its field with what was typed kept and nothing written) activates
// the package; each part has its receipt, the contract can be printed,
// and the day's close counts both parts.
func TestDesk_CashierPaysInTwoParts(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	id := a.Sell("OIL6")
	c := newDeskClient(t, a)
	require.Equal(t, "/desk/queue", c.signIn(domain.RoleCashier))
	st, _ := c.get("/desk/queue")
	require.Equal(t, http.StatusOK, st)
	c.has(`href="/desk/packages/`+id+`/pay"`, "¥2,448.00", "门店 s1：1 个待付款")

	st, _ = c.get("/desk/packages/" + id + "/pay")
	require.Equal(t, http.StatusOK, st)
	c.has(`value="2448.00"`, `<label for="receipt">收据号</label>`, `<option value="wechat" selected>微信支付</option>`)
	form := c.page
	st, loc := c.submit("/desk/packages/"+id+"/pay", url.Values{"amount": {"1000.00"}, "method": {"cash"}, "receipt": {"R-1"}})
	require.Equal(t, http.StatusSeeOther, st, c.page)
	require.Contains(t, loc, "/desk/packages/"+id+"/receipts/")
	firstReceipt := loc
	c.get(loc)
	c.has("收款收据", "R-1", "¥1,000.00", "¥1,448.00", "现金", "已收款")

	before := a.LastSeq()
	for _, tc := range []struct {
		name   string
		fields url.Values
		status int
		want   []string
	}{
		{"TooMuch", url.Values{"amount": {"2000.00"}, "method": {"card"}, "receipt": {"R-2"}}, http.StatusUnprocessableEntity,
			[]string{`id="amount-err"`, "付款超过应付金额", `value="2000.00"`, `value="R-2"`, `<option value="card" selected>`}},
		{"ReceiptUsed", url.Values{"amount": {"1448.00"}, "method": {"cash"}, "receipt": {"R-1"}}, http.StatusConflict,
			[]string{`id="receipt-err"`, "该收据号已用于另一笔付款", `value="1448.00"`}},
		{"NotAnAmount", url.Values{"amount": {"14.5"}, "method": {"cash"}, "receipt": {"R-2"}}, http.StatusBadRequest,
			[]string{`id="amount-err"`, "金额格式不对", `value="14.5"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			c.get("/desk/packages/" + id + "/pay")
			st, _ := c.submit("/desk/packages/"+id+"/pay", tc.fields)
			require.Equal(t, tc.status, st, c.page)
			c.has(tc.want...)
			require.Equal(t, before, a.LastSeq(), "nothing written")
		})
	}

	c.get("/desk/packages/" + id + "/pay")
	c.has("¥1,448.00", "R-1")
	st, loc = c.submit("/desk/packages/"+id+"/pay", url.Values{"amount": {"1448.00"}, "method": {"wechat"}, "receipt": {"R-2"}})
	require.Equal(t, http.StatusSeeOther, st, c.page)
	c.get(loc)
	c.has("R-2", "¥1,448.00", "¥0.00")
	_, p := a.Do("GET", "/v1/packages/"+id, domain.RoleAuditor, nil)
	require.Equal(t, "active", p["status"])
	// The first form sent again: the same payment, nothing more.
	after := a.LastSeq()
	c.page = form
	st, _ = c.submit("/desk/packages/"+id+"/pay", url.Values{"amount": {"1000.00"}, "method": {"cash"}, "receipt": {"R-1"}})
	require.Equal(t, http.StatusSeeOther, st, c.page)
	require.Equal(t, after, a.LastSeq())

	// The first receipt, printed again, says what it said then.
	c.get(firstReceipt)
	c.has("R-1", "¥1,000.00 / ¥2,448.00", "¥1,448.00")
	c.get("/desk/queue")
	c.has("当前没有待付款的套餐")
	st, _ = c.get("/desk/packages/" + id + "/contract")
	require.Equal(t, http.StatusOK, st)
	c.has("保养套餐预售合同", "Li Wei", "LSVAU2180N2183294", "6 oil changes", "¥2,448.00", "¥2,880.00",
		"激活后 24 个月内有效", "扣除其 10% 作为手续费", "未使用的金额不作废", "客户签字", "经销商盖章")
	st, _ = c.get("/desk/close?date=2026-11-02")
	require.Equal(t, http.StatusOK, st)
	c.has("2026-11-02 · s1", "¥1,000.00", "¥1,448.00", "¥2,448.00", "u-cashier")
}

// TestDesk_CashierBoundaries: an advisor has no queue, and a direct post
// of a payment with the advisor's own CSRF token appends nothing.
func TestDesk_CashierBoundaries(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	id := a.Sell("OIL6")
	c := newDeskClient(t, a)
	c.signIn(domain.RoleAdvisor)
	st, _ := c.get("/desk/queue")
	require.Equal(t, http.StatusForbidden, st)
	csrf := csrfOf(t, c.page)
	before := a.LastSeq()
	st, _ = c.post("/desk/packages/"+id+"/pay", url.Values{"csrf": {csrf}, "key": {"k"}, "amount": {"2448.00"}, "method": {"cash"}, "receipt": {"R-9"}})
	require.Equal(t, http.StatusForbidden, st)
	require.Equal(t, before, a.LastSeq())
	st, _ = c.get("/desk/close")
	require.Equal(t, http.StatusForbidden, st)
}

// TestDesk_ManagerPlans: the plan form previews what the domain makes of
// it (list total, price by the rate, each visit's value) before anything
// is written; a count that is not a number is named next to its field;
// the plan defined is on sale, and retired with a reason.
func TestDesk_ManagerPlans(t *testing.T) {
	a := newTestAPI(t)
	c := newDeskClient(t, a)
	c.signIn(domain.RoleManager)
	st, _ := c.get("/desk/plans")
	require.Equal(t, http.StatusOK, st)
	plan := url.Values{"code": {"OIL8"}, "name": {"8次保养"}, "service0": {"oil_change"}, "count0": {"8"}, "list0": {"480.00"},
		"service1": {"inspection"}, "count1": {"1"}, "list1": {"200.00"},
		"pricing": {"rate"}, "rate": {"0.85"}, "validity_months": {"36"}, "refund_policy": {"pro_rata"},
		"cancellation_fee_rate": {"0.10"}, "gifts": {"洗车\n脚垫"}}
	before := a.LastSeq()
	preview := url.Values{"csrf": {csrfOf(t, c.page)}}
	for k, v := range plan {
		preview[k] = v
	}
	st, _ = c.post("/desk/plans/preview", preview)
	require.Equal(t, http.StatusOK, st)
	c.has("¥4,040.00", "¥3,434.00", "¥408.00", "¥170.00", `value="OIL8"`)
	require.Equal(t, before, a.LastSeq(), "a preview writes nothing")

	bad := url.Values{}
	for k, v := range plan {
		bad[k] = v
	}
	bad.Set("count0", "eight")
	st, _ = c.submit("/desk/plans", bad)
	require.Equal(t, http.StatusBadRequest, st)
	c.has(`value="eight"`, `aria-invalid="true"`)
	require.Equal(t, before, a.LastSeq())

	// What the domain refuses is said, whichever field it is about; a
	// blank row before the bad one does not put the error on another row.
	for _, tc := range []struct {
		name  string
		field string
		value string
		want  string
	}{
		{"ServiceNotAName", "service1", "Oil Change", `id="service2-err"`},
		{"NoVisits", "count1", "0", `id="count2-err"`},
		{"NoValidity", "validity_months", "0", `id="f-validity_months-err"`},
		{"PolicyUnknown", "refund_policy", "none", `role="alert"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			bad := url.Values{}
			for k, v := range plan {
				bad[k] = v
			}
			// The second entitlement on the third row, the second left blank.
			bad.Del("service1")
			bad.Del("count1")
			bad.Del("list1")
			bad.Set("service2", "inspection")
			bad.Set("count2", "1")
			bad.Set("list2", "200.00")
			f := tc.field
			if f == "service1" || f == "count1" {
				f = strings.Replace(f, "1", "2", 1)
			}
			bad.Set(f, tc.value)
			c.get("/desk/plans")
			st, _ := c.submit("/desk/plans", bad)
			require.GreaterOrEqual(t, st, 400, c.page)
			c.has(tc.want)
			require.Equal(t, before, a.LastSeq())
		})
	}

	c.get("/desk/plans")
	st, loc := c.submit("/desk/plans", plan)
	require.Equal(t, http.StatusSeeOther, st, c.page)
	c.get(loc)
	c.has("方案已保存", "OIL8", "8次保养", "在售")
	st, _ = c.submit("/desk/plans/OIL8/retire", url.Values{"reason": {"   "}})
	require.Equal(t, http.StatusBadRequest, st, "a reason of spaces is none")
	c.get("/desk/plans")
	st, _ = c.submit("/desk/plans/OIL8/retire", url.Values{"reason": {"换季"}})
	require.Equal(t, http.StatusSeeOther, st, c.page)
	_, body := a.Do("GET", "/v1/plans/OIL8", domain.RoleAuditor, nil)
	require.Equal(t, "retired", body["status"])
	require.Equal(t, "3434.00", body["price"])
}

// TestDesk_ManagerRefund: the refund page shows what the policy pays back
// (base, fee, refund) before the manager confirms; the confirmation
// refunds exactly that. An advisor sees no refund and a direct post of
// one is refused.
func TestDesk_ManagerRefund(t *testing.T) {
	a := newTestAPI(t)
	id := a.ActivePackage("OIL6")
	st, _ := a.Do("POST", "/v1/packages/"+id+"/redemptions", domain.RoleAdvisor,
		map[string]any{"service": "oil_change", "repair_order": "RO-1", "mileage": 1000})
	require.Equal(t, http.StatusCreated, st)

	adv := newDeskClient(t, a)
	adv.signIn(domain.RoleAdvisor)
	adv.get("/desk/packages/" + id)
	adv.hasNot("/refund")
	csrf := csrfOf(t, adv.page)
	before := a.LastSeq()
	st, _ = adv.post("/desk/packages/"+id+"/refund", url.Values{"csrf": {csrf}, "key": {"k"}, "method": {"cash"}, "reason": {"x"}})
	require.Equal(t, http.StatusForbidden, st)
	require.Equal(t, before, a.LastSeq())

	c := newDeskClient(t, a)
	c.signIn(domain.RoleManager)
	c.get("/desk/packages/" + id)
	c.has(`href="/desk/packages/` + id + `/refund"`)
	st, _ = c.get("/desk/packages/" + id + "/refund")
	require.Equal(t, http.StatusOK, st)
	c.has("¥2,040.00", "¥204.00", "¥1,836.00", "按未使用余额")
	require.Equal(t, before, a.LastSeq(), "the preview writes nothing")
	st, _ = c.submit("/desk/packages/"+id+"/refund", url.Values{"method": {"cash"}, "reason": {""}})
	require.Equal(t, http.StatusBadRequest, st, "a refund needs a reason")
	c.has(`id="f-reason-err"`)
	require.Equal(t, before, a.LastSeq())
	// A visit deducted after the preview: the confirmation does not pay
	// the old amount, it shows the new one.
	page := c.page
	st, _ = a.Do("POST", "/v1/packages/"+id+"/redemptions", domain.RoleAdvisor,
		map[string]any{"service": "oil_change", "repair_order": "RO-2", "mileage": 2000})
	require.Equal(t, http.StatusCreated, st)
	before = a.LastSeq()
	c.page = page
	st, _ = c.submit("/desk/packages/"+id+"/refund", url.Values{"method": {"cash"}, "reason": {"客户搬家"}})
	require.Equal(t, http.StatusConflict, st)
	c.has("别人刚刚修改了这个套餐", "¥1,632.00", "¥163.20", "¥1,468.80")
	require.Equal(t, before, a.LastSeq())
	st, loc := c.submit("/desk/packages/"+id+"/refund", url.Values{"method": {"cash"}, "reason": {"客户搬家"}})
	require.Equal(t, http.StatusSeeOther, st, c.page)
	c.get(loc)
	c.has("已退款", "已退款。")
	_, p := a.Do("GET", "/v1/packages/"+id, domain.RoleAuditor, nil)
	require.Equal(t, "refunded", p["status"])
	require.Equal(t, "1468.80", p["refunded"])
}

// TestDesk_ManagerCorrections: a wrong payment is voided and a wrong
// deduction reversed, each from the package page with a reason.
func TestDesk_ManagerCorrections(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	id := a.Sell("OIL6")
	a.Pay(id, "1000.00", "R-1")
	c := newDeskClient(t, a)
	c.signIn(domain.RoleManager)
	c.get("/desk/packages/" + id)
	i := strings.Index(c.page, "/payments/")
	require.Greater(t, i, 0)
	voidPath := c.page[i-len("/desk/packages/")-36 : i+len("/payments/")+36+len("/void")]
	st, loc := c.submit(voidPath, url.Values{"reason": {"收错金额"}})
	require.Equal(t, http.StatusSeeOther, st, c.page)
	c.get(loc)
	c.has("付款已作废", "已作废")
	// Paid again in full: its receipt counts the void before it, and the
	// first receipt still says what it said then.
	a.Pay(id, "2448.00", "R-2")
	cash := newDeskClient(t, a)
	cash.signIn(domain.RoleCashier)
	cash.get("/desk/packages/" + id)
	cash.has("¥2,448.00")
	i = strings.Index(cash.page, "/receipts/")
	first := cash.page[i-len("/desk/packages/")-36 : i+len("/receipts/")+36]
	j := strings.LastIndex(cash.page, "/receipts/")
	second := cash.page[j-len("/desk/packages/")-36 : j+len("/receipts/")+36]
	cash.get(second)
	cash.has("R-2", "¥2,448.00 / ¥2,448.00", "¥0.00")
	cash.hasNot("¥3,448.00", "-¥")
	cash.get(first)
	cash.has("R-1", "¥1,000.00 / ¥2,448.00", "¥1,448.00", "已作废")

	id2 := a.ActivePackage("OIL6X")
	st, _ = a.Do("POST", "/v1/packages/"+id2+"/redemptions", domain.RoleAdvisor,
		map[string]any{"service": "oil_change", "repair_order": "RO-1", "mileage": 1000})
	require.Equal(t, http.StatusCreated, st)
	c.get("/desk/packages/" + id2)
	i = strings.Index(c.page, "/redemptions/")
	require.Greater(t, i, 0)
	revPath := c.page[i-len("/desk/packages/")-36 : i+len("/redemptions/")+36+len("/reverse")]
	st, loc = c.submit(revPath, url.Values{"reason": {"录错工单"}})
	require.Equal(t, http.StatusSeeOther, st, c.page)
	c.get(loc)
	c.has("核销已冲销")
	_, p := a.Do("GET", "/v1/packages/"+id2, domain.RoleAuditor, nil)
	require.Equal(t, float64(6), p["remaining"].(map[string]any)["oil_change"])
}

// TestDesk_Liability: the roll-forward with its chart, drawn by the
// server: a bar a day.
func TestDesk_Liability(t *testing.T) {
	a := newTestAPI(t)
	a.ActivePackage("OIL6")
	c := newDeskClient(t, a)
	c.signIn(domain.RoleManager)
	st, _ := c.get("/desk/reports/liability?from=2026-11-01&to=2026-11-07")
	require.Equal(t, http.StatusOK, st, c.page)
	c.has("<svg", `role="img"`, "每日期末预收负债", "¥2,448.00", "2026-11-02: ¥2,448.00")
	require.Equal(t, 7, strings.Count(c.page, `class="bar"`), "a bar a day")
	st, _ = c.get("/desk/reports/liability?from=2026-11-01&to=2027-12-31")
	require.Equal(t, http.StatusBadRequest, st, "at most 400 days")
}

// TestDesk_Auditor: the auditor starts at the audit page; a package's
// timeline names who did each thing, where, and the balance after it;
// the integrity check passes on an honest ledger; the balances as of an
// instant before the visit show the money still owed; the JSON downloads
// are the API's answers. An advisor gets none of it.
func TestDesk_Auditor(t *testing.T) {
	a := newTestAPI(t)
	id := a.ActivePackage("OIL6") // at 10:00 in Shanghai
	a.Advance(2 * time.Hour)
	st, _ := a.Do("POST", "/v1/packages/"+id+"/redemptions", domain.RoleAdvisor,
		map[string]any{"service": "oil_change", "repair_order": "RO-1", "mileage": 1000})
	require.Equal(t, http.StatusCreated, st)

	c := newDeskClient(t, a)
	require.Equal(t, "/desk/audit", c.signIn(domain.RoleAuditor))
	st, _ = c.get("/desk/packages/" + id + "/timeline")
	require.Equal(t, http.StatusOK, st)
	c.has("售出", "收款", "生效", "核销", "u-advisor", "u-cashier", "服务顾问", "收银", "¥2,448.00", "¥2,040.00", "RO-1", "2026-11-02 12:00")

	st, _ = c.get("/desk/audit/verify")
	require.Equal(t, http.StatusOK, st, c.page)
	c.has("全部一致")
	st, _ = c.get("/desk/audit/balances?as_of=2026-11-02T11:00")
	require.Equal(t, http.StatusOK, st, c.page)
	c.has("¥2,448.00", "套餐（1 个）")
	c.hasNot("¥2,040.00")
	st, _ = c.get("/desk/audit/balances?as_of=2026-11-02T12:30")
	require.Equal(t, http.StatusOK, st)
	c.has("¥2,040.00")
	st, _ = c.get("/desk/audit/balances?as_of=yesterday")
	require.Equal(t, http.StatusBadRequest, st)

	resp, err := c.http.Get(a.URL + "/desk/export/balances.json?as_of=2026-11-02T03:00:00Z")
	require.NoError(t, err)
	require.Contains(t, resp.Header.Get("Content-Disposition"), "balances.json")
	var b map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	resp.Body.Close()
	require.Equal(t, "2448.00", b["totals"].(map[string]any)["liability"])

	adv := newDeskClient(t, a)
	adv.signIn(domain.RoleAdvisor)
	for _, path := range []string{"/desk/audit", "/desk/packages/" + id + "/timeline", "/desk/export/verify.json", "/desk/reports/liability"} {
		st, _ := adv.get(path)
		require.Equal(t, http.StatusForbidden, st, path)
	}
}
