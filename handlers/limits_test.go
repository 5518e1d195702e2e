package handlers_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// fieldLimitCases are the refusals of TestAPI_BadInput that hold every
// request field to its limit: a bounded length, valid UTF-8, no control
// or format character, and the field's own alphabet. Each answer is 400
// and names the field by its JSON path; a field that breaks its rule is
// refused whatever the state of the package, so some are sent where the
// request would otherwise be refused for the state.
func fieldLimitCases(t *testing.T, fx fixtures, pkg func(id, rest string) string, mgr string) map[string][]badCase {
	t.Helper()
	plan := planBody("NEWP")
	sale := sellBody("OIL6")
	payment := payBody("100.00", "R-NEW-1")
	redemption := redeemBody("RO-NEW-1")
	refund := map[string]any{"method": "cash", "reason": "moving away"}
	long := func(n int) string { return jstr(strings.Repeat("A", n)) }
	bad := func(name string, body []byte, field string) badCase {
		return badCase{name: name, body: body, status: 400, code: "invalid_field", field: field}
	}
	amount := func(name string, body []byte, field string) badCase {
		return badCase{name: name, body: body, status: 400, code: "invalid_amount", field: field}
	}
	reason501 := map[string]any{"reason": strings.Repeat("r", domain.MaxReason+1)}
	return map[string][]badCase{
		"define plan": {
			bad("code too long", jsonWith(plan, "code", long(33)), "code"),
			bad("code with a dot", jsonWith(plan, "code", `"OIL.6"`), "code"),
			bad("code with a control character", jsonWith(plan, "code", `"OIL\u00076"`), "code"),
			bad("name with a zero-width space", jsonWith(plan, "name", `"6 oil\u200bchanges"`), "name"),
			bad("model too long", jsonWith(plan, "models", `["Lavida",`+long(61)+`]`), "models[1]"),
			bad("model blank", jsonWith(plan, "models", `["  "]`), "models[0]"),
			bad("model with a control character", jsonWith(plan, "models", `["La\u0000vida"]`), "models[0]"),
			bad("model with invalid UTF-8", jsonWith(plan, "models", "[\"La\xffvida\"]"), "models[0]"),
			bad("too many models", jsonWith(plan, "models", `[`+strings.Repeat(`"m",`, 50)+`"m"]`), "models"),
			bad("gift too long", jsonWith(plan, "gifts", `[`+long(101)+`]`), "gifts[0]"),
			bad("gift with a bidi override", jsonWith(plan, "gifts", `["floor\u202emats"]`), "gifts[0]"),
			bad("too many gifts", jsonWith(plan, "gifts", `[`+strings.Repeat(`"g",`, 20)+`"g"]`), "gifts"),
			bad("service name too long", jsonWith(plan, "entitlements.0.service", jstr(strings.Repeat("s", 33))), "entitlements[0].service"),
			bad("service name with a control character", jsonWith(plan, "entitlements.0.service", "\"oil\x01change\""), "entitlements[0].service"),
			bad("count over 100", jsonWith(plan, "entitlements.0.count", `101`), "entitlements[0].count"),
			bad("negative count", jsonWith(plan, "entitlements.0.count", `-1`), "entitlements[0].count"),
			amount("list price of 13 digits", jsonWith(plan, "entitlements.0.list_price", `"1000000000000.00"`), "entitlements[0].list_price"),
			amount("list total over the largest amount", jsonWith(jsonObj(jsonWith(plan, "entitlements.0.list_price", `"999999999999.99"`)), "price", `"1.00"`), "entitlements"),
			bad("validity over 120 months", jsonWith(plan, "validity_months", `121`), "validity_months"),
			bad("free look over 365 days", jsonWith(plan, "free_look_days", `366`), "free_look_days"),
			bad("service interval over 60 months", jsonWith(plan, "service_interval", `{"months":61,"km":5000}`), "service_interval"),
			bad("service interval over 100000 km", jsonWith(plan, "service_interval", `{"months":6,"km":100001}`), "service_interval"),
		},
		"retire plan": {
			{name: "reason too long on a retired plan", path: "/v1/plans/" + fx.retired + "/retire", auth: mgr, body: reason501, status: 400, code: "invalid_field", field: "reason"},
		},
		"sell": {
			bad("VIN of 18 characters", jsonWith(sale, "vehicle.vin", `"LSVAU2180N21832944"`), "vehicle.vin"),
			bad("VIN with O", jsonWith(sale, "vehicle.vin", `"LSVAU2180N218329O"`), "vehicle.vin"),
			bad("VIN with Q", jsonWith(sale, "vehicle.vin", `"LSVAU2180N218329Q"`), "vehicle.vin"),
			bad("VIN with a long s", jsonWith(sale, "vehicle.vin", `"L\u017fVAU2180N2183294"`), "vehicle.vin"),
			bad("VIN with a space inside", jsonWith(sale, "vehicle.vin", `"LSVAU 2180N218329"`), "vehicle.vin"),
			bad("VIN in full-width letters", jsonWith(sale, "vehicle.vin", jstr("ＬＳＶＡＵ2180N2183294")), "vehicle.vin"),
			bad("VIN with a control character", jsonWith(sale, "vehicle.vin", "\"LSVAU2180N218329\x004\""), "vehicle.vin"),
			bad("plate too long", jsonWith(sale, "vehicle.plate", jstr("沪A123456789012")), "vehicle.plate"),
			bad("plate of one character", jsonWith(sale, "vehicle.plate", `"A"`), "vehicle.plate"),
			bad("plate with a control character", jsonWith(sale, "vehicle.plate", `"沪A\u000712345"`), "vehicle.plate"),
			bad("plate with a raw control character", jsonWith(sale, "vehicle.plate", "\"沪A\x0712345\""), "vehicle.plate"),
			bad("plate with invalid UTF-8", jsonWith(sale, "vehicle.plate", "\"\xe6\xb2A12345\""), "vehicle.plate"),
			bad("plate with a zero-width space", jsonWith(sale, "vehicle.plate", `"沪A\u200b12345"`), "vehicle.plate"),
			bad("plate missing", jsonWith(sale, "vehicle.plate", ""), "vehicle.plate"),
			bad("model too long", jsonWith(sale, "vehicle.model", long(61)), "vehicle.model"),
			bad("model with a line separator", jsonWith(sale, "vehicle.model", `"La\u2028vida"`), "vehicle.model"),
			bad("registered before 1900", jsonWith(sale, "vehicle.registered", `"1899-12-31"`), "vehicle.registered"),
			bad("registered after the sale", jsonWith(sale, "vehicle.registered", `"2099-01-01"`), "vehicle.registered"),
			bad("registered as an instant", jsonWith(sale, "vehicle.registered", `"2023-05-04T00:00:00Z"`), "vehicle.registered"),
			bad("customer id too long", jsonWith(sale, "customer.id", jstr(strings.Repeat("C", 65))), "customer.id"),
			bad("customer id with a space", jsonWith(sale, "customer.id", `"C 1"`), "customer.id"),
			bad("customer id in Chinese", jsonWith(sale, "customer.id", jstr("李伟")), "customer.id"),
			bad("customer name with invalid UTF-8", jsonWith(sale, "customer.name", "\"\xe6\x9d\x8e\xe4\xbc\""), "customer.name"),
			bad("customer name with a byte-order mark", jsonWith(sale, "customer.name", `"Li\ufeffWei"`), "customer.name"),
			bad("phone too long", jsonWith(sale, "customer.phone", jstr(strings.Repeat("1", 33))), "customer.phone"),
			bad("phone with a letter", jsonWith(sale, "customer.phone", `"1380013800O"`), "customer.phone"),
			bad("phone with a control character", jsonWith(sale, "customer.phone", `"13800\u000a138000"`), "customer.phone"),
			{name: "bad VIN for a retired plan", body: jsonWith(jsonObj(jsonWith(sale, "plan", jstr(fx.retired))), "vehicle.vin", `"X"`), status: 400, code: "invalid_field", field: "vehicle.vin"},
		},
		"payment": {
			bad("receipt too long", jsonWith(payment, "receipt", jstr(strings.Repeat("R", 41))), "receipt"),
			bad("receipt with a tab inside", jsonWith(payment, "receipt", `"R\t1"`), "receipt"),
			bad("receipt in full-width letters", jsonWith(payment, "receipt", jstr("Ｒ-1")), "receipt"),
			bad("receipt with a colon", jsonWith(payment, "receipt", `"R:1"`), "receipt"),
			bad("receipt with a control character", jsonWith(payment, "receipt", `"R-\u00001"`), "receipt"),
			bad("method with a space", jsonWith(payment, "method", `"cash "`), "method"),
			bad("method in capitals", jsonWith(payment, "method", `"CASH"`), "method"),
			amount("amount of 13 digits", jsonWith(payment, "amount", `"1000000000000.00"`), "amount"),
			{name: "package id in capitals", path: pkg(strings.ToUpper(fx.unpaid), "/payments"), body: payment, status: 404, code: "package_not_found"},
			{name: "package id in braces", path: pkg("{"+fx.unpaid+"}", "/payments"), body: payment, status: 404, code: "package_not_found"},
			{name: "bad receipt on a refunded package", path: pkg(fx.refunded, "/payments"), auth: "", body: payBody("1.00", "R 1"), status: 400, code: "invalid_field", field: "receipt"},
		},
		"redemption": {
			bad("repair order with a space", jsonWith(redemption, "repair_order", `"RO 1"`), "repair_order"),
			bad("repair order too long", jsonWith(redemption, "repair_order", jstr(strings.Repeat("9", 41))), "repair_order"),
			bad("repair order in Chinese", jsonWith(redemption, "repair_order", jstr("工单1")), "repair_order"),
			bad("repair order with a control character", jsonWith(redemption, "repair_order", `"RO-\u001b1"`), "repair_order"),
			bad("service name too long", jsonWith(redemption, "service", jstr(strings.Repeat("s", 33))), "service"),
			bad("mileage far negative", jsonWith(redemption, "mileage", `-9223372036854775808`), "mileage"),
			{name: "mileage beyond an integer", body: jsonWith(redemption, "mileage", `9223372036854775808`), status: 400, code: "invalid_request", field: "mileage"},
			{name: "bad repair order on a used-up package", path: pkg(fx.usedUp, "/redemptions"), body: redeemBody("RO 1"), status: 400, code: "invalid_field", field: "repair_order"},
		},
		"void payment": {
			{name: "reason too long after a redemption", path: pkg(fx.redeemed, "/payments/"+fx.redeemedPay+"/void"), auth: mgr, body: reason501, status: 400, code: "invalid_field", field: "reason"},
		},
		"reverse redemption": {
			{name: "blank reason on an unknown redemption", path: pkg(fx.redeemed, "/redemptions/0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d/reverse"), auth: mgr, body: map[string]any{"reason": " "}, status: 400, code: "invalid_field", field: "reason"},
		},
		"refund": {
			bad("method in capitals", jsonWith(refund, "method", `"CASH"`), "method"),
			bad("reason with a soft hyphen", jsonWith(refund, "reason", `"mov\u00ading"`), "reason"),
			{name: "bad method on a used-up package", path: pkg(fx.usedUp, "/refund"), auth: mgr, body: map[string]any{"method": "gold", "reason": "x"}, status: 400, code: "invalid_field", field: "method"},
		},
		"breakage": {
			{name: "reason too long on an active package", path: pkg(fx.active, "/breakage"), auth: mgr, body: reason501, status: 400, code: "invalid_field", field: "reason"},
		},
	}
}

// TestAPI_BadQuery: every query parameter is held to its rule, answered
// 400 with the parameter named.
func TestAPI_BadQuery(t *testing.T) {
	a := newTestAPI(t)
	aud, csh := bearer(a, domain.RoleAuditor), bearer(a, domain.RoleCashier)
	for _, c := range []struct {
		path, auth, field string
	}{
		{"/v1/packages?vin=LSVAU2180N218329I", aud, "vin"},
		{"/v1/packages?vin=LSVAU2180N21832944", aud, "vin"},
		{"/v1/packages?vin=L%C5%BFVAU2180N2183294", aud, "vin"},
		{"/v1/packages?plate=%E6%B2%AAA123456789012", aud, "plate"},
		{"/v1/packages?plate=%E6%B2%AAA%0712345", aud, "plate"},
		{"/v1/packages?plate=%E6%B2%AA%FF", aud, "plate"},
		{"/v1/packages?customer=C%201", aud, "customer"},
		{"/v1/packages?status=ACTIVE", aud, "status"},
		{"/v1/packages?limit=0", aud, "limit"},
		{"/v1/packages?limit=1001", aud, "limit"},
		{"/v1/packages?limit=ten", aud, "limit"},
		{"/v1/reports/liability?from=2026-02-30", aud, "from"},
		{"/v1/reports/liability?from=1999-12-31", aud, "from"},
		{"/v1/reports/liability?from=1900-06-01", aud, "from"},
		{"/v1/reports/liability?to=9999-12-31", aud, "to"},
		{"/v1/reports/liability?to=2026-01-01T00:00:00", aud, "to"},
		{"/v1/reports/liability?from=2026-02-01&to=2026-01-01", aud, "to"},
		{"/v1/reports/liability?by=week", aud, "by"},
		{"/v1/reports/liability?from=2000-01-01&to=2026-01-01&by=day", aud, "by"},
		{"/v1/reports/daily-close?date=2026-02-30", aud, "date"},
		{"/v1/reports/daily-close?date=1899-12-31", aud, "date"},
		{"/v1/reports/daily-close?store=s%201", aud, "store"},
		{"/v1/reports/daily-close?store=" + strings.Repeat("s", 65), csh, "store"},
		{"/v1/audit/balances", aud, "as_of"},
		{"/v1/audit/balances?as_of=2026-01-31", aud, "as_of"},
		{"/v1/audit/balances?as_of=0001-01-01T00:00:00Z", aud, "as_of"},
		{"/v1/audit/balances?as_of=9999-12-31T23:59:59-23:59", aud, "as_of"},
		{"/v1/accounts/C%201", aud, "customer_id"},
	} {
		ans := mustSend(t, a, "GET", c.path, c.auth, nil)
		require.Equal(t, 400, ans.Status, "%s: %s", c.path, ans.Raw)
		code, field := requireErrorShape(t, ans)
		require.Equal(t, domain.CodeInvalidField, code, "%s: %s", c.path, ans.Raw)
		require.Equal(t, c.field, field, "%s: %s", c.path, ans.Raw)
	}
	// What the rules allow is answered.
	for _, path := range []string{
		"/v1/packages?vin=lsvau2180n2183294&plate=%E6%B2%AAa+12345&customer=C-1&status=active&limit=1000",
		"/v1/reports/liability?from=2000-01-01&to=9998-12-31",
		"/v1/reports/daily-close?date=2026-11-02&store=s1",
		"/v1/audit/balances?as_of=2026-01-31T10:30:00.5%2B08:00",
	} {
		ans := mustSend(t, a, "GET", path, aud, nil)
		require.Equal(t, 200, ans.Status, "%s: %s", path, ans.Raw)
		ans.JSON(t)
	}
}
