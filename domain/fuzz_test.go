package domain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/packledger/packledger/domain"
)

// Run a fuzzer for a while with, for example:
//
//	go test ./domain -run='^$' -fuzz='^FuzzParseMoney$' -fuzztime=20s
//
// Inputs that once failed are kept under testdata/fuzz/ and run as seeds by
// every plain go test.

var moneySeeds = []string{
	"0.00", "0.01", "2448.00", "480.00", "333.33", "999999999999.99",
	"", "1", "1.", "1.0", "1.000", ".50", "-1.00", "-0.00", "+1.00", "1e3", "01.00", " 1.00", "1.00 ",
	"1,00", "１.００", "1000000000000.00", "NaN", "0x10.00", "1.00\n", "\x00",
}

func FuzzParseMoney(f *testing.F) {
	for _, s := range moneySeeds {
		f.Add(s)
	}
	// The written form as a pattern: ParseMoney reads it by hand.
	written := regexp.MustCompile(`^(0|[1-9][0-9]{0,11})\.[0-9]{2}$`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := domain.ParseMoney(s)
		if want := written.MatchString(s); (err == nil) != want {
			t.Fatalf("ParseMoney(%q): accepted %v, the written form says %v", s, err == nil, want)
		}
		if err != nil {
			if code := domain.ErrorCode(err); code != domain.CodeInvalidAmount {
				t.Fatalf("ParseMoney(%q): error code %q, want %q: %v", s, code, domain.CodeInvalidAmount, err)
			}
			return
		}
		if got := m.String(); got != s {
			t.Fatalf("ParseMoney(%q).String() = %q: an accepted amount must be written back exactly", s, got)
		}
		if m.IsNegative() {
			t.Fatalf("ParseMoney(%q) is negative", s)
		}
		// The written form is canonical: it parses to an equal amount.
		again, err := domain.ParseMoney(m.String())
		if err != nil || !again.Equal(m) {
			t.Fatalf("ParseMoney(%q) does not parse back: %v", m.String(), err)
		}
	})
}

// FuzzMoneyString: an amount is written as decimal writes it with two
// places, whatever its sign, size and the arithmetic that made it.
func FuzzMoneyString(f *testing.F) {
	for _, c := range []int64{0, 1, -1, 5, 99, 100, -100, 244800, -244801, math.MaxInt64, math.MinInt64 + 1} {
		f.Add(c, int64(100))
	}
	f.Fuzz(func(t *testing.T, cents, other int64) {
		m := domain.Cents(cents)
		if got, want := m.String(), decimal.New(cents, -2).StringFixed(2); got != want {
			t.Fatalf("Cents(%d) = %s, want %s", cents, got, want)
		}
		// Arithmetic that carries past int64, and an amount not kept in
		// cents (a rate's product before rounding), take the long way.
		sum := m.Add(domain.Cents(other)).Add(domain.Cents(other))
		want := decimal.New(cents, -2).Add(decimal.New(other, -2)).Add(decimal.New(other, -2)).StringFixed(2)
		if got := sum.String(); got != want {
			t.Fatalf("Cents(%d)+2×Cents(%d) = %s, want %s", cents, other, got, want)
		}
		j, err := json.Marshal(sum)
		if err != nil || string(j) != `"`+want+`"` {
			t.Fatalf("json of %s: %s %v", want, j, err)
		}
	})
}

func FuzzMoneyUnmarshalJSON(f *testing.F) {
	for _, s := range moneySeeds {
		b, _ := json.Marshal(s)
		f.Add(b)
		f.Add([]byte(s))
	}
	for _, s := range []string{`2448.00`, `2448`, `1e3`, `null`, `true`, `{}`, `[]`, `"\u0031.00"`, `"1.00" `, `"1.00`, `"`, `""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m domain.Money
		err := m.UnmarshalJSON(b)
		if err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) || te.Type != domain.MoneyType {
				t.Fatalf("UnmarshalJSON(%q): %T %v, want a *json.UnmarshalTypeError for Money", b, err, err)
			}
			return
		}
		// Accepted: only a JSON string in the strict written form.
		var s string
		if len(b) == 0 || b[0] != '"' || json.Unmarshal(b, &s) != nil {
			t.Fatalf("UnmarshalJSON accepted %q, which is not a JSON string", b)
		}
		if m.String() != s {
			t.Fatalf("UnmarshalJSON(%q) = %s, not the string it holds", b, m)
		}
		if m.IsNegative() {
			t.Fatalf("UnmarshalJSON(%q) is negative", b)
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back domain.Money
		if err := json.Unmarshal(out, &back); err != nil || !back.Equal(m) || back.String() != m.String() {
			t.Fatalf("%s does not round-trip: %v", out, err)
		}
	})
}

// sampleEvents returns one event of every type, taken from a real history
// where there is one, as the encoder writes them.
func sampleEvents(f *testing.F) []domain.Event {
	rate, fee := domain.MustRate("0.8555"), domain.MustRate("0.10")
	price := domain.MustMoney("1000.00")
	plan, err := domain.NewPlan(domain.PlanSpec{
		Code: "MIX", Name: "Mixed", Models: []string{"Lavida"},
		Entitlements: []domain.Entitlement{
			{Service: "oil_change", Count: 3, ListPrice: domain.MustMoney("333.33")},
			{Service: "inspection", Count: 1, ListPrice: domain.MustMoney("200.00")},
		},
		Rate: &rate, ValidityMonths: 1, RefundPolicy: domain.RefundListPrice, CancellationFeeRate: &fee,
		FreeLookDays: 7, ServiceInterval: &domain.ServiceInterval{Months: 6, KM: 5000}, Gifts: []string{"floor mats"},
	})
	if err != nil {
		f.Fatal(err)
	}
	byPrice, err := domain.NewPlan(domain.PlanSpec{Code: "P", Name: "P", Price: &price, ValidityMonths: 12,
		Entitlements: []domain.Entitlement{{Service: "tire_rotation", Count: 4, ListPrice: domain.MustMoney("480.00")}}})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 1, 31, 10, 30, 0, 123456789, time.FixedZone("CST", 8*3600))
	var pkg domain.Package
	var out []domain.Event
	run := func(cmd domain.Command) {
		evs, err := domain.Decide(pkg, cmd, now)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range evs {
			pkg = domain.Apply(pkg, domain.Envelope{Event: e, BusinessTime: now})
			out = append(out, e)
		}
	}
	run(domain.Sell{PackageID: uuid.New(), Plan: domain.PlanState{Plan: plan, Status: domain.PlanStatusActive},
		Customer: domain.Customer{ID: "C1", Name: "李伟", Phone: "+86 138-0000-0000"},
		Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A12345", Model: "Lavida", Registered: "2024-02-29"}, Advisor: "adv1"})
	run(domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney("0.01"), Method: "cash", Receipt: "R-1"})
	run(domain.VoidPayment{PaymentID: pkg.Payments[0].ID, Reason: "test"})
	run(domain.RecordPayment{PaymentID: uuid.New(), Amount: pkg.Price, Method: "wechat", Receipt: "R-2"})
	run(domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-1/2", Mileage: 12345})
	run(domain.ReverseRedemption{RedemptionID: pkg.Redemptions[0].ID, Reason: "wrong car"})
	now = *pkg.ExpiresAt
	run(domain.Expire{})
	run(domain.RecognizeBreakage{Reason: "policy"})
	run(domain.RefundPackage{Method: "bank_transfer", Reason: "claimed"})
	return append(out,
		domain.PlanDefined{Plan: plan}, domain.PlanDefined{Plan: byPrice},
		domain.PlanRetired{Code: "MIX", Reason: "replaced"},
		domain.ReceiptClaimed{Receipt: "R-2", PackageID: pkg.ID, PaymentID: pkg.Payments[1].ID, Amount: pkg.Price},
	)
}

func FuzzDecodeEvent(f *testing.F) {
	types := map[string]bool{}
	for _, e := range sampleEvents(f) {
		b, err := domain.EncodeEvent(e)
		if err != nil {
			f.Fatal(err)
		}
		types[e.EventType()] = true
		f.Add(e.EventType(), domain.SchemaVersion, b)
		f.Add(e.EventType(), domain.SchemaVersion+1, b)
		f.Add("PackageSold", domain.SchemaVersion, b) // another type's data
		if i := bytes.Index(b, []byte(`":"`)); i > 0 {
			bad := append(append(bytes.Clone(b[:i+2]), "1e3"...), b[i+2:]...)
			f.Add(e.EventType(), domain.SchemaVersion, bad)
		}
	}
	if len(types) != 13 {
		f.Fatalf("samples cover %d event types", len(types))
	}
	for _, s := range []struct{ typ, data string }{
		{"PaymentRecorded", `{"payment_id":"0190a8c4-5b6e-7d8f-9a0b-1c2d3e4f5a6b","amount":100.00,"method":"cash","receipt":"R"}`},
		{"PaymentRecorded", `{"amount":"100.00","extra":1}`},
		{"PaymentRecorded", `{"amount":"100.00"} {"amount":"999.00"}`},
		{"PaymentRecorded", `null`},
		{"PaymentRecorded", `{"AMOUNT":"1.00"}`},
		{"PackageActivated", `{"activated_at":"2026-01-31T10:30:00+08:00","expires_at":"9999-12-31T23:59:59-23:59"}`},
		{"PackageExpired", `{"expired_at":"0000-01-01T00:00:00+01:00"}`},
		{"PlanDefined", `{"plan":{"rate":"1.0000","cancellation_fee_rate":"0.1000"}}`},
		{"VisitRedeemed", `{"unit":1e2}`},
		{"Nope", `{}`},
		{"", ``},
	} {
		f.Add(s.typ, domain.SchemaVersion, []byte(s.data))
	}
	f.Fuzz(func(t *testing.T, typ string, schema int, data []byte) {
		e, err := domain.DecodeEvent(typ, schema, data)
		if err != nil {
			if e != nil {
				t.Fatalf("DecodeEvent failed (%v) but returned %#v", err, e)
			}
			return
		}
		if e.EventType() != typ {
			t.Fatalf("decoded %q as a %s", typ, e.EventType())
		}
		if !json.Valid(data) {
			t.Fatalf("decoded %s from %q, which is not one JSON value", typ, data)
		}
		// Re-encoded, it decodes again, to an equal event: the encoding holds
		// every field, so equal encodings are equal events.
		b1, err := domain.EncodeEvent(e)
		if err != nil {
			t.Fatalf("decoded %s from %q cannot be encoded: %v", typ, data, err)
		}
		e2, err := domain.DecodeEvent(typ, schema, b1)
		if err != nil {
			t.Fatalf("re-encoded %s %s does not decode: %v", typ, b1, err)
		}
		b2, err := domain.EncodeEvent(e2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("%s from %q is not stable:\nfirst  %s\nsecond %s", typ, data, b1, b2)
		}
	})
}

var rateSeeds = []string{
	"0", "1", "0.85", "0.8555", "0.10", "0.1000", "1.0000", "0.0001", "0.00", "1.0",
	"", "1.0001", "1.5", "2", "-0.1", "+0.85", ".85", "0.", "0.85000", "00.85", "0.85 ", "1e-1", "０.８５", "0x1", "NaN",
}

// FuzzParseRate: an accepted rate lies in [0, 1] with at most four
// decimals, its written form is canonical (it parses back to an equal rate
// and writes the same), it survives JSON, and applied to an amount it
// gives an amount between 0.00 and that amount: a discount rate never
// makes a price above its list total, a fee rate never a fee above its
// base.
func FuzzParseRate(f *testing.F) {
	for i, s := range rateSeeds {
		f.Add(s, int64(i)*333333)
	}
	f.Add("0.8555", int64(99999999999999))
	f.Add("0.0001", int64(1))
	f.Fuzz(func(t *testing.T, s string, cents int64) {
		r, err := domain.ParseRate(s)
		if err != nil {
			if code := domain.ErrorCode(err); code != domain.CodeInvalidField {
				t.Fatalf("ParseRate(%q): error code %q, want %q: %v", s, code, domain.CodeInvalidField, err)
			}
			var rj domain.Rate
			b, _ := json.Marshal(s)
			if err := rj.UnmarshalJSON(b); err == nil {
				t.Fatalf("ParseRate(%q) fails but its JSON string %s is accepted", s, b)
			}
			return
		}
		if r.Cmp(domain.MustRate("0")) < 0 || r.Cmp(domain.MustRate("1")) > 0 {
			t.Fatalf("ParseRate(%q) = %s, outside [0, 1]", s, r)
		}
		w := r.String()
		if i := strings.IndexByte(w, '.'); i < 0 || len(w)-i-1 < 2 || len(w)-i-1 > 4 {
			t.Fatalf("ParseRate(%q).String() = %q: want two to four decimals", s, w)
		}
		again, err := domain.ParseRate(w)
		if err != nil || again.Cmp(r) != 0 || again.String() != w {
			t.Fatalf("ParseRate(%q) writes %q, which does not parse back to itself: %v", s, w, err)
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back domain.Rate
		if err := json.Unmarshal(out, &back); err != nil || back.Cmp(r) != 0 || back.String() != w {
			t.Fatalf("rate %s does not round-trip through JSON %s: %v", w, out, err)
		}
		if cents < 0 {
			cents = -(cents + 1)
		}
		m := domain.Cents(cents % 100_000_000_000_000) // up to the largest amount
		got := m.MulRateHalfUp(r)
		if got.IsNegative() || got.Cmp(m) > 0 {
			t.Fatalf("%s × %s = %s, outside [0.00, %s]", m, w, got, m)
		}
		if got.String() != got.Decimal().StringFixed(2) || !got.Decimal().Equal(got.Decimal().Round(2)) {
			t.Fatalf("%s × %s = %s is not whole cents", m, w, got.Decimal())
		}
	})
}
