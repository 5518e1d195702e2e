package domain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/packledger/packledger/domain"
)

// oracleDecodeEvent is DecodeEvent as it was before events were read by
// hand: a strict encoding/json Decoder for the event's type, then a check
// that nothing follows. It is kept to hold the new reader to it.
func oracleDecodeEvent(typ string, schema int, data []byte) (domain.Event, error) {
	if schema != domain.SchemaVersion {
		return nil, fmt.Errorf("event %s: unknown schema version %d", typ, schema)
	}
	dec, ok := oracleDecoders[typ]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", typ)
	}
	e, err := dec(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	return e, nil
}

var oracleDecoders = map[string]func([]byte) (domain.Event, error){
	"PlanDefined":        oracleDecodeAs[domain.PlanDefined],
	"PlanRetired":        oracleDecodeAs[domain.PlanRetired],
	"PackageSold":        oracleDecodeAs[domain.PackageSold],
	"PaymentRecorded":    oracleDecodeAs[domain.PaymentRecorded],
	"PaymentVoided":      oracleDecodeAs[domain.PaymentVoided],
	"PackageActivated":   oracleDecodeAs[domain.PackageActivated],
	"VisitRedeemed":      oracleDecodeAs[domain.VisitRedeemed],
	"RedemptionReversed": oracleDecodeAs[domain.RedemptionReversed],
	"PackageRefunded":    oracleDecodeAs[domain.PackageRefunded],
	"PackageExpired":     oracleDecodeAs[domain.PackageExpired],
	"BreakageRecognized": oracleDecodeAs[domain.BreakageRecognized],
	"BreakageReversed":   oracleDecodeAs[domain.BreakageReversed],
	"ReceiptClaimed":     oracleDecodeAs[domain.ReceiptClaimed],
}

func oracleDecodeAs[T domain.Event](b []byte) (domain.Event, error) {
	var e T
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the event")
	}
	return e, nil
}

// oracleSeeds are event data that probe what encoding/json does besides
// the plain case: keys matched without regard to case or spelled with
// escapes, keys given twice (the last wins, and objects and arrays given
// twice are merged into what the first left), null for each kind of
// field, numbers that are not ints, strings with escapes and bad UTF-8.
var oracleSeeds = []struct{ typ, data string }{
	{"VisitRedeemed", `{"REDEMPTION_ID":"0190a8c4-5b6e-7d8f-9a0b-1c2d3e4f5a6b","Unit":2,"ſervice":"oil_change","value":"408.00","repair_order":"RO-1","mileage":5000}`},
	{"VisitRedeemed", `{"\u0075nit":2,"unit":3,"unit":null}`},
	{"VisitRedeemed", `{"unit":-0,"mileage":9223372036854775807}`},
	{"VisitRedeemed", `{"unit":9223372036854775808}`},
	{"VisitRedeemed", `{"unit":1.0}`},
	{"VisitRedeemed", `{"unit":"1"}`},
	{"VisitRedeemed", `{"redemption_id":null,"value":null}`},
	{"VisitRedeemed", `{"redemption_id":"{0190a8c4-5b6e-7d8f-9a0b-1c2d3e4f5a6b}"}`},
	{"VisitRedeemed", `{"redemption_id":"urn:uuid:0190a8c4-5b6e-7d8f-9a0b-1c2d3e4f5a6b"}`},
	{"VisitRedeemed", `{"redemption_id":"0190a8c45b6e7d8f9a0b1c2d3e4f5a6b"}`},
	{"VisitRedeemed", `{"redemption_id":"\u0030190a8c4-5b6e-7d8f-9a0b-1c2d3e4f5a6b"}`},
	{"VisitRedeemed", `{"redemption_id":7}`},
	{"VisitRedeemed", `{"redemption_id":[1]}`},
	{"VisitRedeemed", `{"service":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\ud800x","repair_order":"` + "\xff\xfe" + `"}`},
	{"VisitRedeemed", `{"service":{"a":[1,{"b":null}]},"mileage":true}`},
	{"VisitRedeemed", `{"value":"1.00","value":{"x":1}}`},
	{"VisitRedeemed", `{"value":"\u0031.00"}`},
	{"VisitRedeemed", " \t{ \"unit\" : 1 , \"mileage\" : 2 }\n "},
	{"VisitRedeemed", `{"unit":1}x`},
	{"VisitRedeemed", `{"unit":1}}`},
	{"VisitRedeemed", `{"unit":1,}`},
	{"VisitRedeemed", `{"unit":1`},
	{"VisitRedeemed", `{"unit":01}`},
	{"VisitRedeemed", `{"":1}`},
	{"VisitRedeemed", `null`},
	{"VisitRedeemed", `nul`},
	{"VisitRedeemed", `[]`},
	{"VisitRedeemed", `"x"`},
	{"VisitRedeemed", `7`},
	{"VisitRedeemed", ` `},
	{"PackageSold", `{"plan":{"units":[{"index":1,"service":"a"},{"index":2}]},"plan":{"units":[{"service":"b"}]},"plan":{"units":[null,{},{}]}}`},
	{"PackageSold", `{"plan":{"units":[{"index":1},{"index":2}]},"plan":{"units":[]},"plan":{"units":[{}]}}`},
	{"PackageSold", `{"plan":{"models":["a","b"],"gifts":null},"plan":{"models":[null,"c"],"gifts":[]}}`},
	{"PackageSold", `{"plan":{"rate":"0.85","service_interval":{"months":6}},"plan":{"rate":null,"service_interval":{"km":5000}}}`},
	{"PackageSold", `{"plan":{"service_interval":null},"plan":{"service_interval":{}}}`},
	{"PackageSold", `{"plan":{"rate":"0.85"},"plan":{"rate":"1"}}`},
	{"PackageSold", `{"plan":{"cancellation_fee_rate":null}}`},
	{"PackageSold", `{"plan":{"service_interval":3}}`},
	{"PackageSold", `{"plan":{"units":{}}}`},
	{"PackageSold", `{"plan":{"units":[1]}}`},
	{"PackageSold", `{"plan":[]}`},
	{"PackageSold", `{"customer":{"name":"李伟","colour":"red"},"vehicle":{"vin":1}}`},
	{"PackageSold", `{"units":[{"list_price":"1.00","value":"2.00"}],"units":[{"value":"0.50"}]}`},
	{"PackageSold", `{"price":"1.00","nope":1,"price":"x"}`},
	{"PackageSold", `{"nope":{"deep":[[[[[[]]]]]]}}`},
	{"PackageActivated", `{"activated_at":"2026-01-31T10:30:00+08:00","expires_at":null}`},
	{"PackageActivated", `{"activated_at":"2026-01-31T10:30:00\u002b08:00"}`},
	{"PackageActivated", `{"activated_at":"2026-01-31t10:30:00Z"}`},
	{"PackageActivated", `{"activated_at":1}`},
	{"PaymentRecorded", `{"method":"cash","method":"card","receipt":null}`},
	{"PlanDefined", `{"plan":{"code":"A","entitlements":[{"service":"x","count":1,"list_price":"1.00"}],"entitlements":[{"count":2}]}}`},
	{"PackageRefunded", `{"amount":"1.00","fee":"0.10","recognized":"0.00","base":"1.10","policy":"pro_rata","method":"cash","reason":"r"}`},
	{"BreakageReversed", `{"amount":"0.00"}`},
	{"ReceiptClaimed", `{"receipt":"R-1","package_id":"0190a8c4-5b6e-7d8f-9a0b-1c2d3e4f5a6b","amount":"1.00","amount":"2.00"}`},
}

// FuzzDecodeEventOracle holds DecodeEvent to oracleDecodeEvent on
// arbitrary bytes: both accept or both refuse, with the same message, and
// what both accept they read as the same event.
func FuzzDecodeEventOracle(f *testing.F) {
	for _, e := range sampleEvents(f) {
		b, err := domain.EncodeEvent(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.EventType(), domain.SchemaVersion, b)
		f.Add(e.EventType(), domain.SchemaVersion, bytes.ToUpper(b))
		f.Add("PackageSold", domain.SchemaVersion, b)
	}
	for _, s := range oracleSeeds {
		f.Add(s.typ, domain.SchemaVersion, []byte(s.data))
	}
	f.Add("Nope", domain.SchemaVersion, []byte(`{}`))
	f.Add("VisitRedeemed", 2, []byte(`{}`))
	f.Fuzz(func(t *testing.T, typ string, schema int, data []byte) {
		want, werr := oracleDecodeEvent(typ, schema, data)
		got, gerr := domain.DecodeEvent(typ, schema, data)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("DecodeEvent(%s, %q):\n got error %v\nwant error %v", typ, data, gerr, werr)
		}
		if werr != nil {
			if gerr.Error() != werr.Error() {
				t.Fatalf("DecodeEvent(%s, %q):\n got error %v\nwant error %v", typ, data, gerr, werr)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeEvent(%s, %q):\n got %#v\nwant %#v", typ, data, got, want)
		}
	})
}

// TestDecodeEvent_Errors pins what a refused event is told, word for
// word as encoding/json told it (the oracle must agree).
func TestDecodeEvent_Errors(t *testing.T) {
	for _, c := range []struct{ typ, data, want string }{
		{"VisitRedeemed", `{"unit":1,"colour":"red"}`, `decode VisitRedeemed: json: unknown field "colour"`},
		{"VisitRedeemed", `{"unit":"1"}`, `decode VisitRedeemed: json: cannot unmarshal string into Go struct field VisitRedeemed.unit of type int`},
		{"VisitRedeemed", `{"unit":1.5}`, `decode VisitRedeemed: json: cannot unmarshal number 1.5 into Go struct field VisitRedeemed.unit of type int`},
		{"PaymentRecorded", `{"amount":"12.345"}`, `decode PaymentRecorded: json: cannot unmarshal "12.345" into Go struct field PaymentRecorded.amount of type domain.Money`},
		{"PaymentRecorded", `{"amount":12.34}`, `decode PaymentRecorded: json: cannot unmarshal JSON number 12.34 into Go struct field PaymentRecorded.amount of type domain.Money`},
		{"PaymentRecorded", `{"payment_id":"nope"}`, `decode PaymentRecorded: invalid UUID length: 4`},
		{"PackageSold", `{"plan":{"units":[{"index":"0"}]}}`, `decode PackageSold: json: cannot unmarshal string into Go struct field UnitSpec.plan.units.index of type int`},
		{"PackageSold", `{"plan":{"rate":"2"}}`, `decode PackageSold: json: cannot unmarshal "2" into Go struct field Plan.plan.rate of type domain.Rate`},
		{"PackageSold", `{"customer":7}`, `decode PackageSold: json: cannot unmarshal number into Go struct field PackageSold.customer of type domain.Customer`},
		{"PackageActivated", `{"activated_at":"yesterday"}`, `decode PackageActivated: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`},
		{"VisitRedeemed", `[]`, `decode VisitRedeemed: json: cannot unmarshal array into Go value of type domain.VisitRedeemed`},
		{"VisitRedeemed", `{"unit":1} {"unit":2}`, `decode VisitRedeemed: trailing data after the event`},
		{"VisitRedeemed", `{"unit":1`, `decode VisitRedeemed: unexpected EOF`},
		{"VisitRedeemed", `{"unit":x}`, `decode VisitRedeemed: invalid character 'x' looking for beginning of value`},
		{"VisitRedeemed", ``, `decode VisitRedeemed: EOF`},
		{"Nope", `{}`, `unknown event type "Nope"`},
	} {
		_, err := domain.DecodeEvent(c.typ, domain.SchemaVersion, []byte(c.data))
		_, oracle := oracleDecodeEvent(c.typ, domain.SchemaVersion, []byte(c.data))
		if err == nil || err.Error() != c.want || oracle == nil || oracle.Error() != c.want {
			t.Errorf("DecodeEvent(%s, %s):\n   got %v\noracle %v\n  want %s", c.typ, c.data, err, oracle, c.want)
		}
	}
}
