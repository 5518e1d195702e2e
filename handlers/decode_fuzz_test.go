package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/packledger/packledger/domain"
)

// bodyKinds are the request bodies of the write routes, each with a body
// that is accepted.
var bodyKinds = []struct {
	name  string
	new   func() any
	valid string
}{
	{"plan", func() any { return new(planRequest) }, `{"code":"OIL6","name":"6 oil changes (6次保养)","models":["Lavida","Sagitar"],` +
		`"entitlements":[{"service":"oil_change","count":6,"list_price":"480.00"}],"rate":"0.85","validity_months":36,` +
		`"refund_policy":"pro_rata","cancellation_fee_rate":"0.10","free_look_days":7,"service_interval":{"months":6,"km":5000},"gifts":["Road rescue"]}`},
	{"sell", func() any { return new(sellRequest) }, `{"plan":"OIL6","customer":{"id":"C-1001","name":"李伟","phone":"13800138000"},` +
		`"vehicle":{"vin":"LSVAU2180N2183294","plate":"沪A12345","model":"Lavida","registered":"2024-05-01"}}`},
	{"payment", func() any { return new(paymentRequest) }, `{"amount":"1000.00","method":"wechat","receipt":"R-0001"}`},
	{"redemption", func() any { return new(redeemRequest) }, `{"service":"oil_change","repair_order":"RO-2026-0101","mileage":12000}`},
	{"reason", func() any { return new(reasonRequest) }, `{"reason":"customer sold the car"}`},
	{"refund", func() any { return new(refundRequest) }, `{"method":"bank_transfer","reason":"customer sold the car"}`},
}

// FuzzDecodeBody runs the strict body decoder of every write route on
// hostile bytes. A refusal is a domain error of a 400 code, and one that
// blames a field names it by a short, readable path. An accepted body is
// one JSON object in valid UTF-8; what was decoded re-encodes to a
// canonical form that decodes to the same (the idempotency digest of a
// retry is stable); and a case-sensitive reader that keeps every key sees
// in the body exactly the values decoded (no key read without regard to
// case, no second value for a key).
func FuzzDecodeBody(f *testing.F) {
	for k, kind := range bodyKinds {
		v := []byte(kind.valid)
		for _, b := range [][]byte{
			v, []byte(``), []byte(`{}`), []byte(`[]`), []byte(`null`), []byte(`{} {}`), append(bytes.Clone(v), 'x'),
			bytes.Replace(v, []byte(`"`), []byte(`"\u00`), 1),
			bytes.Replace(v, []byte(`":"`), []byte("\":\"\xff"), 1),
			bytes.Replace(v, []byte(`":"`), []byte("\":\"\x07"), 1),
			bytes.Replace(v, []byte(`":"`), []byte("\":\"\\u0007"), 1),
			bytes.Replace(v, []byte(`":"`), []byte("\":\"\\ud800"), 1),
			bytes.Replace(v, []byte(`":"`), []byte("\":\"\\\xe6\x9d\x8e"), 1),
			bytes.Replace(v, []byte(`{"`), []byte(`{"Extra":1,"`), 1),
			bytes.Replace(v, []byte(`{"`), []byte("{\"\xff\":1,\""), 1),
			bytes.Replace(v, []byte(`{"`), []byte(`{"`+string(bytes.Repeat([]byte("K"), 300))+`":1,"`), 1),
			bytes.ToUpper(v),
			append(append([]byte(`{"a":1,`), v[1:len(v)-1]...), []byte(`,"a":2}`)...),
		} {
			f.Add(b, uint8(k))
		}
	}
	f.Add([]byte(`{"amount":"1.00","AMOUNT":"2448.00","method":"cash","receipt":"R"}`), uint8(2))
	f.Add([]byte(`{"amount":"1.00","amount":"2448.00","method":"cash","receipt":"R"}`), uint8(2))
	f.Add([]byte(`{"mileage":1.0}`), uint8(3))
	f.Add([]byte(`{"mileage":-0}`), uint8(3))
	f.Add([]byte(`{"name":null,"models":null,"service_interval":{},"price":null}`), uint8(0))
	f.Add([]byte(`{"entitlements":[{"service":"a","count":1,"list_price":"1.00"},{"list_price":1}]}`), uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, k uint8) {
		kind := bodyKinds[int(k)%len(bodyKinds)]
		v := kind.new()
		err := decodeBytes(body, v)
		if err != nil {
			checkRefusal(t, kind.name, body, err)
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("%s: accepted %q, which is not valid UTF-8 JSON", kind.name, body)
		}
		canon, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %q decoded to %#v, which does not encode: %v", kind.name, body, v, err)
		}
		v2 := kind.new()
		if err := decodeBytes(canon, v2); err != nil {
			t.Fatalf("%s: %q decoded, but its canonical form %s does not: %v", kind.name, body, canon, err)
		}
		if again, _ := json.Marshal(v2); !bytes.Equal(again, canon) {
			t.Fatalf("%s: the canonical form is not stable:\nfirst  %s\nsecond %s", kind.name, canon, again)
		}
		var sent, read any
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(canon, &read); err != nil {
			t.Fatal(err)
		}
		if path, ok := sameJSON(sent, read, ""); !ok {
			t.Fatalf("%s: %q says one thing at %q and was decoded as another: %s", kind.name, body, path, canon)
		}
	})
}

// checkRefusal is what every refusal of a decoder owes: a domain error of
// a 400 code; a field, when blamed, named by a short readable path; a
// readable message.
func checkRefusal(t *testing.T, what string, body []byte, err error) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("%s: %q refused with %T %v, not a domain error", what, body, err, err)
	}
	switch de.Code {
	case domain.CodeInvalidRequest:
	case domain.CodeInvalidField, domain.CodeInvalidAmount:
		if de.Field == "" {
			t.Fatalf("%s: %q refused with %s but no field: %v", what, body, de.Code, err)
		}
	default:
		t.Fatalf("%s: %q refused with code %q, not a 400 one: %v", what, body, de.Code, err)
	}
	if len(de.Field) > 200 || !utf8.ValidString(de.Field) {
		t.Fatalf("%s: %q blames a field that is no readable path: %q", what, body, de.Field)
	}
	if !utf8.ValidString(de.Message) || de.Message == "" || len(de.Message) > 500 {
		t.Fatalf("%s: %q refused with an unreadable message: %q", what, body, de.Message)
	}
}

// sameJSON reports whether every value sent is the value read back, where
// read may hold more keys (every field, encoded), may leave out an empty
// one (omitempty), a null sent reads back as a zero value and a rate in
// its canonical form. It returns the path where they differ.
func sameJSON(sent, read any, path string) (string, bool) {
	switch s := sent.(type) {
	case nil:
		return path, zeroJSON(read)
	case map[string]any:
		r, ok := read.(map[string]any)
		if !ok {
			return path, false
		}
		for k, sv := range s {
			rv, ok := r[k]
			if !ok { // omitempty: written only when not empty
				if !zeroJSON(sv) {
					return path + "." + k, false
				}
				continue
			}
			if p, ok := sameJSON(sv, rv, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		r, ok := read.([]any)
		if !ok || len(r) != len(s) {
			return path, false
		}
		for i := range s {
			if p, ok := sameJSON(s[i], r[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	}
	if s, ok := sent.(string); ok && s != read {
		// A rate is written in one form: "0.0" reads back "0.00".
		r, _ := read.(string)
		a, err1 := domain.ParseRate(s)
		b, err2 := domain.ParseRate(r)
		return path, err1 == nil && err2 == nil && a.Cmp(b) == 0
	}
	return path, sent == read
}

func zeroJSON(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case float64:
		return v == 0
	case bool:
		return !v
	case []any:
		return len(v) == 0
	case map[string]any:
		for _, x := range v {
			if !zeroJSON(x) {
				return false
			}
		}
		return true
	}
	return false
}
