package domain_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/packledger/packledger/domain"
)

var vinForm = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)

// asciiUpper upper-cases the ASCII letters of s and nothing else.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// FuzzNormalizeVIN: an accepted VIN is 17 characters of the VIN alphabet,
// and it is what was sent, trimmed, with its ASCII letters upper-cased:
// normalizing never turns other characters into VIN letters. A refusal
// names the field.
func FuzzNormalizeVIN(f *testing.F) {
	for _, s := range []string{
		"LSVAU2180N2183294", "lsvau2180n2183294", " LSVAU2180N2183294 ", "LSVAU2180N218329", "LSVAU2180N21832944",
		"LSVAU2180N218329I", "LSVAU2180N218329O", "LSVAU2180N218329Q", "LSVAU2180N218329!", "ＬSVAU2180N2183294", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := domain.NormalizeVIN(s)
		if err != nil {
			if domain.ErrorCode(err) != domain.CodeInvalidField {
				t.Fatalf("NormalizeVIN(%q): %v, want invalid_field", s, err)
			}
			return
		}
		if !vinForm.MatchString(v) {
			t.Fatalf("NormalizeVIN(%q) = %q, not 17 characters of the VIN alphabet", s, v)
		}
		if want := asciiUpper(strings.TrimSpace(s)); v != want {
			t.Fatalf("NormalizeVIN(%q) = %q, but what was sent reads %q", s, v, want)
		}
		if again, err := domain.NormalizeVIN(v); err != nil || again != v {
			t.Fatalf("NormalizeVIN(%q) = %q is not a fixed point: %q, %v", s, v, again, err)
		}
	})
}

// FuzzCheckText: accepted text is what was sent with its surrounding space
// trimmed, valid UTF-8, of a length within the bounds, free of control,
// format and replacement characters, and accepted again as it is. A
// refusal names the field.
func FuzzCheckText(f *testing.F) {
	for _, s := range []string{
		"李伟", "  Li Wei ", "Road rescue (道路救援)", "a\u200db", "👨‍👩‍👧", "", " ", "\u3000x\u3000",
		"a\x00b", "a\tb", "a\u0085b", "a\u2028b", "a\u202eb", "a\u2067b", "a\u200bb", "a\ufeffb", "a\u00adb",
		"a\ufffdb", "a\uffffb", "a\ufdd0b", "a\U0001fffeb", "a\U000e0041b", "\xff", "a\xed\xa0\x80b",
	} {
		f.Add(s, 1, 12)
	}
	f.Add(strings.Repeat("x", 100), 1, 100)
	f.Add(strings.Repeat("李", 101), 1, 100)
	f.Fuzz(func(t *testing.T, s string, min, max int) {
		min, max = min%600, max%600
		got, err := domain.CheckText("name", s, min, max)
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalidField || de.Field != "name" {
				t.Fatalf("CheckText(%q): %v, want invalid_field on name", s, err)
			}
			return
		}
		if got != strings.TrimSpace(s) || !utf8.ValidString(got) {
			t.Fatalf("CheckText(%q) = %q, not what was sent, trimmed", s, got)
		}
		if n := utf8.RuneCountInString(got); n < min || n > max {
			t.Fatalf("CheckText(%q, %d, %d) accepted %d characters", s, min, max, n)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) || r == utf8.RuneError ||
				(unicode.Is(unicode.Cf, r) && r != '\u200c' && r != '\u200d') || r&0xfffe == 0xfffe || (r >= 0xfdd0 && r <= 0xfdef) {
				t.Fatalf("CheckText(%q) accepted U+%04X", s, r)
			}
		}
		if again, err := domain.CheckText("name", got, min, max); err != nil || again != got {
			t.Fatalf("CheckText(%q) = %q is not accepted as it is: %q, %v", s, got, again, err)
		}
	})
}

func TestCheckText(t *testing.T) {
	for _, s := range []string{"李伟", "  Li Wei ", "a\u200db", "👨‍👩‍👧", "O'Brien-Smith", "沪A·12345", "\ue000"} {
		if _, err := domain.CheckText("name", s, 1, 100); err != nil {
			t.Errorf("CheckText(%q) refused: %v", s, err)
		}
	}
	for _, s := range []string{
		"", "   ", "a\x00b", "a\tb", "a\nb", "a\x7fb", "a\u0085b", "a\u2028b", "a\u2029b", "a\u202eb", "a\u2066b",
		"a\u200bb", "a\ufeffb", "a\u00adb", "a\u200eb", "a\U000e0041b", "a\ufffdb", "a\uffffb", "a\ufdd0b", "\xffab",
		strings.Repeat("x", 101),
	} {
		if _, err := domain.CheckText("name", s, 1, 100); err == nil {
			t.Errorf("CheckText(%q) accepted", s)
		} else {
			requireField(t, err, "name")
		}
	}
}

func TestNormalizeVIN(t *testing.T) {
	for in, want := range map[string]string{
		"LSVAU2180N2183294": "LSVAU2180N2183294", " lsvau2180n2183294\t": "LSVAU2180N2183294",
	} {
		if got, err := domain.NormalizeVIN(in); err != nil || got != want {
			t.Errorf("NormalizeVIN(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "LSVAU2180N218329", "LSVAU2180N21832944", "LSVAU2180N218329I", "LSVAU2180N218329O", "LSVAU2180N218329Q",
		"LSVAU2180N218329i", "LSVAU 2180N2183294", "L\u017fVAU2180N2183294", "ＬSVAU2180N2183294", "LSVAU2180N218329\x00",
	} {
		if _, err := domain.NormalizeVIN(in); err == nil {
			t.Errorf("NormalizeVIN(%q) accepted", in)
		} else {
			requireField(t, err, "vin")
		}
	}
}

func requireField(t *testing.T, err error, field string) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeInvalidField || de.Field != field {
		t.Errorf("got %v, want invalid_field on %s", err, field)
	}
}

// TestDecide_FieldsFirst: a command whose own field breaks its rule is
// refused for that field, before the package is looked at: here there is
// no package at all.
func TestDecide_FieldsFirst(t *testing.T) {
	long := strings.Repeat("r", domain.MaxReason+1)
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		cmd   domain.Command
		field string
	}{
		{domain.Sell{Customer: domain.Customer{ID: "C 1"}}, "customer.id"},
		{domain.Sell{Customer: domain.Customer{ID: "C1", Name: "Li", Phone: "138"},
			Vehicle: domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A1", Model: "M", Registered: "2026-11-03"}}, "vehicle.registered"},
		{domain.RecordPayment{Receipt: "R 1"}, "receipt"},
		{domain.RecordPayment{Receipt: "R1", Method: "gold"}, "method"},
		{domain.RecordPayment{Receipt: "R1", Method: "cash"}, "amount"},
		{domain.VoidPayment{Reason: long}, "reason"},
		{domain.Redeem{Service: "oil_change", RepairOrder: "RO 1"}, "repair_order"},
		{domain.Redeem{Service: "oil_change", RepairOrder: "RO1", Mileage: -1}, "mileage"},
		{domain.ReverseRedemption{Reason: " "}, "reason"},
		{domain.RefundPackage{Method: "CASH", Reason: "x"}, "method"},
		{domain.RecognizeBreakage{Reason: "a\u200bb"}, "reason"},
	} {
		_, err := domain.Decide(domain.Package{}, c.cmd, at)
		var de *domain.Error
		if !errors.As(err, &de) || (de.Code != domain.CodeInvalidField && de.Code != domain.CodeInvalidAmount) || de.Field != c.field {
			t.Errorf("%T: got %v, want a refusal of %s", c.cmd, err, c.field)
		}
	}
	if _, err := domain.RetirePlan(domain.PlanState{}, "P", long); domain.ErrorCode(err) != domain.CodeInvalidField {
		t.Errorf("RetirePlan of no plan with a reason too long: %v", err)
	}
}
