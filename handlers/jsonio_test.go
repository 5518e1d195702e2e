package handlers

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/packledger/packledger/domain"
)

// TestDecodeBytes_StringFaults: a string holding invalid UTF-8 or a raw
// control character is named by its JSON path, once the rest of the body
// is known to be well formed; elsewhere such bytes are malformed JSON.
func TestDecodeBytes_StringFaults(t *testing.T) {
	for _, c := range []struct {
		name, body  string
		code, field string
		into        any // default: a refund's body
	}{
		{"invalid UTF-8 in a value", "{\"reason\":\"a\xffb\"}", domain.CodeInvalidField, "reason", nil},
		{"raw control character in a value", "{\"reason\":\"a\x01b\"}", domain.CodeInvalidField, "reason", nil},
		{"raw newline in a value", "{\"reason\":\"a\nb\"}", domain.CodeInvalidField, "reason", nil},
		{"in a nested value", "{\"plan\":\"P\",\"vehicle\":{\"vin\":\"V\",\"plate\":\"\xe6\xb2\xaaA\xff\"}}", domain.CodeInvalidField, "vehicle.plate", &sellRequest{}},
		{"in an array element", "{\"code\":\"P\",\"models\":[\"ok\",\"b\xc3\"]}", domain.CodeInvalidField, "models[1]", &planRequest{}},
		{"in an array of objects", "{\"code\":\"P\",\"entitlements\":[{},{\"service\":\"\x1b[2J\"}]}", domain.CodeInvalidField, "entitlements[1].service", &planRequest{}},
		{"the first of two", "{\"method\":\"c\xffsh\",\"reason\":\"\x07\"}", domain.CodeInvalidField, "method", nil},
		{"after an escape", "{\"reason\":\"\\\"\xff\"}", domain.CodeInvalidField, "reason", nil},
		{"a valid escape is no fault", "{\"reason\":\"\\u00e9\\\\\\\"\"}", "", "", nil},
		{"in a key", "{\"reas\xffon\":\"x\"}", domain.CodeInvalidRequest, "reas?on", nil},
		{"outside any string", "{\"reason\":\"x\"}\xff", domain.CodeInvalidRequest, "", nil},
		{"raw control character outside strings", "{\"reason\":\x01\"x\"}", domain.CodeInvalidRequest, "", nil},
		{"an unknown field before the fault", "{\"bogus\":\"\xff\"}", domain.CodeInvalidRequest, "", nil},
		{"a wrong type before the fault", "{\"reason\":1,\"method\":\"\xff\"}", domain.CodeInvalidRequest, "reason", nil},
		{"an over-long key is no field name", "{\"" + strings.Repeat("K", 65) + "\":1}", domain.CodeInvalidRequest, "", nil},
		{"a short bad key is", "{\"Reason\":\"x\"}", domain.CodeInvalidRequest, "Reason", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.into == nil {
				c.into = &refundRequest{}
			}
			err := decodeBytes([]byte(c.body), c.into)
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a domain error", err)
			}
			if de.Code != c.code || de.Field != c.field {
				t.Fatalf("got code %q field %q (%s), want code %q field %q", de.Code, de.Field, de.Message, c.code, c.field)
			}
		})
	}
}

// TestDecodeBytes_TypeErrorPath: a value of the wrong type is named by its
// JSON path, with the index of its array element.
func TestDecodeBytes_TypeErrorPath(t *testing.T) {
	for _, c := range []struct{ body, code, field string }{
		{`{"entitlements":[{"service":"a","count":1,"list_price":"1.00"},{"service":"b","count":1,"list_price":480}]}`, domain.CodeInvalidAmount, "entitlements[1].list_price"},
		{`{"entitlements":[{"count":"1"}]}`, domain.CodeInvalidRequest, "entitlements[0].count"},
		{`{"models":["a",1]}`, domain.CodeInvalidRequest, "models[1]"},
		{`{"price":480}`, domain.CodeInvalidAmount, "price"},
		{`{"service_interval":{"months":"6"}}`, domain.CodeInvalidRequest, "service_interval.months"},
		{`{"entitlements":{"service":"a"}}`, domain.CodeInvalidRequest, "entitlements"},
	} {
		var req planRequest
		var de *domain.Error
		if err := decodeBytes([]byte(c.body), &req); !errors.As(err, &de) || de.Code != c.code || de.Field != c.field {
			t.Errorf("%s: got %v, want %s on %s", c.body, err, c.code, c.field)
		}
	}
}

func TestTruncateText_KeepsCharactersWhole(t *testing.T) {
	for _, s := range []string{"沪A12345", "李伟李伟", "abc"} {
		for n := 0; n <= len(s); n++ {
			got := truncateText(s, n)
			if !strings.HasPrefix(s, strings.TrimSuffix(got, "…")) || !utf8.ValidString(got) {
				t.Fatalf("truncateText(%q, %d) = %q", s, n, got)
			}
		}
	}
}
