package domain

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// Money is an amount in the deployment's one currency with exactly two
// fraction digits. Every operation keeps it at two places; rounding happens
// only where a rule of DESIGN.md §4 says how.
type Money struct{ d decimal.Decimal }

// maxMoneyDigits bounds the integer part so that a typo of a hundred digits
// is refused instead of becoming a very large liability.
const maxMoneyDigits = 12

// largestAmount is the largest amount ParseMoney accepts. Every amount the
// domain stores must stay within it, or the stored event would not decode.
var largestAmount = Money{decimal.New(99999999999999, -2)}

// ParseMoney parses a written amount such as "2448.00". It accepts nothing
// else: "2448", "2448.0", "2448.000", "-1.00", "1e3" and "" are errors.
func ParseMoney(s string) (Money, error) {
	c, ok := writtenCents(s)
	if !ok {
		return Money{}, Errorf(CodeInvalidAmount,
			"amount %q is not of the form \"480.00\": digits, a point and exactly two decimals, no sign, at most %d digits before the point",
			truncate(s, 40), maxMoneyDigits)
	}
	return Money{decimal.New(c, -2)}, nil
}

// writtenCents reads the only accepted written form of an amount — no
// sign, no exponent, no leading zeros, at most maxMoneyDigits before the
// point and exactly two after it, as in `^(0|[1-9][0-9]{0,11})\.[0-9]{2}$`
// — as a count of cents. It is written out by hand because every amount
// of every event read back from the log goes through it; the pattern is
// the fuzz test's oracle.
func writtenCents[T string | []byte](s T) (int64, bool) {
	n := len(s)
	whole := n - 3
	if whole < 1 || whole > maxMoneyDigits || s[whole] != '.' || whole > 1 && s[0] == '0' {
		return 0, false
	}
	var c int64
	for i := 0; i < n; i++ {
		if i == whole {
			continue
		}
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		c = c*10 + int64(d)
	}
	return c, true
}

// MustMoney parses s or panics; for tests and constants only.
func MustMoney(s string) Money {
	m, err := ParseMoney(s)
	if err != nil {
		panic(err)
	}
	return m
}

// Cents returns an amount from a count of cents; it may be negative, which
// is useful for differences but never for a parsed amount.
func Cents(c int64) Money { return Money{decimal.New(c, -2)} }

// String writes the amount with exactly two decimals.
func (m Money) String() string { return string(m.append(nil)) }

// append writes the amount as String does. An amount kept in cents (every
// amount the rules make is) is written from its coefficient without the
// big-number formatting of decimal.StringFixed, which a package view, with
// dozens of amounts, pays for on every answer.
func (m Money) append(b []byte) []byte {
	if m.d.Exponent() != -2 || m.d.NumDigits() > 18 {
		return append(b, m.d.StringFixed(2)...)
	}
	c := m.d.CoefficientInt64()
	if c < 0 {
		b = append(b, '-')
		c = -c
	}
	b = strconv.AppendInt(b, c/100, 10)
	return append(b, '.', byte('0'+c%100/10), byte('0'+c%10))
}

// Add returns m + o.
func (m Money) Add(o Money) Money { return Money{m.d.Add(o.d)} }

// Sub returns m - o.
func (m Money) Sub(o Money) Money { return Money{m.d.Sub(o.d)} }

// Cmp compares m and o: -1, 0 or +1.
func (m Money) Cmp(o Money) int { return m.d.Cmp(o.d) }

// Equal reports whether m and o are the same amount.
func (m Money) Equal(o Money) bool { return m.d.Equal(o.d) }

// IsZero reports whether m is 0.00.
func (m Money) IsZero() bool { return m.d.IsZero() }

// IsNegative reports whether m is below 0.00.
func (m Money) IsNegative() bool { return m.d.IsNegative() }

// IsPositive reports whether m is above 0.00.
func (m Money) IsPositive() bool { return m.d.IsPositive() }

// MulRateHalfUp returns m × r rounded half-up to the cent, the rounding that
// §4 prescribes for a price from a rate and for a cancellation fee.
func (m Money) MulRateHalfUp(r Rate) Money {
	return Money{roundHalfUp(m.d.Mul(r.d))}
}

// Decimal exposes the value for arithmetic the type does not offer.
func (m Money) Decimal() decimal.Decimal { return m.d }

// roundHalfUp rounds half away from zero to two places. decimal.Round does
// exactly that; naming it keeps the rule visible at each call site.
func roundHalfUp(d decimal.Decimal) decimal.Decimal { return d.Round(2) }

// MaxMoney returns the larger of a and b.
func MaxMoney(a, b Money) Money {
	if a.Cmp(b) >= 0 {
		return a
	}
	return b
}

// MinMoney returns the smaller of a and b.
func MinMoney(a, b Money) Money {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

// MarshalJSON writes the amount as a JSON string, "2448.00". It holds
// only digits, a point and perhaps a sign: nothing to escape.
func (m Money) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 24)
	b = append(b, '"')
	b = m.append(b)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts only a JSON string in the strict form of ParseMoney:
// a JSON number is refused, since a float in transit has already lost the
// cents that a ledger must keep. Failures are *json.UnmarshalTypeError with
// Type MoneyType, so that the JSON decoder names the field at fault.
func (m *Money) UnmarshalJSON(b []byte) error {
	// The written form needs no escapes; a string with none is read in
	// place (an event read back holds a dozen amounts).
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && bytes.IndexByte(b[1:n-1], '\\') < 0 {
		c, ok := writtenCents(b[1 : n-1])
		if !ok {
			return &json.UnmarshalTypeError{Value: strconv.Quote(truncate(string(b[1:n-1]), 40)), Type: MoneyType}
		}
		*m = Money{decimal.New(c, -2)}
		return nil
	}
	var s string
	if len(b) == 0 || b[0] != '"' || json.Unmarshal(b, &s) != nil {
		return &json.UnmarshalTypeError{Value: "JSON " + jsonKind(b), Type: MoneyType}
	}
	v, err := ParseMoney(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: strconv.Quote(truncate(s, 40)), Type: MoneyType}
	}
	*m = v
	return nil
}

// MoneyType and RateType let a decoder tell a bad amount or rate from
// other type errors.
var (
	MoneyType = reflect.TypeOf(Money{})
	RateType  = reflect.TypeOf(Rate{})
)

// jsonKind names the kind of a JSON value for an error message.
func jsonKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number " + truncate(string(b), 40)
}

// Rate is a decimal factor such as a discount rate ("0.85") or a
// cancellation-fee rate ("0.10"), written with at most four decimals.
type Rate struct{ d decimal.Decimal }

var ratePattern = regexp.MustCompile(`^[01](\.[0-9]{1,4})?$`)

// ParseRate parses a rate between 0 and 1 inclusive, such as "0.85".
func ParseRate(s string) (Rate, error) {
	if !ratePattern.MatchString(s) {
		return Rate{}, Errorf(CodeInvalidField, "rate %q is not a decimal between 0 and 1 with at most four decimals, such as \"0.85\"", truncate(s, 40))
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Rate{}, Errorf(CodeInvalidField, "rate %q: %v", truncate(s, 40), err)
	}
	if d.GreaterThan(decimal.NewFromInt(1)) {
		return Rate{}, Errorf(CodeInvalidField, "rate %q is above 1", s)
	}
	return Rate{d}, nil
}

// MustRate parses s or panics; for tests and constants only.
func MustRate(s string) Rate {
	r, err := ParseRate(s)
	if err != nil {
		panic(err)
	}
	return r
}

// String writes the rate with two decimals at least ("0.10", "0.855").
func (r Rate) String() string {
	// decimal's String drops trailing zeros ("0.8550" → "0.855", but also
	// "0.1000" → "0.1"): keep its form only beyond two decimals.
	s := r.d.String()
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 > 2 {
		return s
	}
	return r.d.StringFixed(2)
}

// IsZero reports whether the rate is 0.
func (r Rate) IsZero() bool { return r.d.IsZero() }

// Cmp compares two rates.
func (r Rate) Cmp(o Rate) int { return r.d.Cmp(o.d) }

// MarshalJSON writes the rate as a JSON string.
func (r Rate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON accepts only a JSON string, for the same reason as Money,
// and fails the same way.
func (r *Rate) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) == 0 || b[0] != '"' || json.Unmarshal(b, &s) != nil {
		return &json.UnmarshalTypeError{Value: "JSON " + jsonKind(b), Type: RateType}
	}
	v, err := ParseRate(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: strconv.Quote(truncate(s, 40)), Type: RateType}
	}
	*r = v
	return nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func decimalFromBigCents(c *big.Int) decimal.Decimal { return decimal.NewFromBigInt(c, -2) }
