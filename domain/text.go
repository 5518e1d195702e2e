package domain

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Rules for the free-text and identifier fields that reach the log. Events
// are kept for ever and read by auditors, so what goes in is bounded,
// valid UTF-8 and free of control characters.

var (
	vinPattern     = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`) // ISO 3779: no I, O or Q
	codePattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)
	servicePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)
	phonePattern   = regexp.MustCompile(`^\+?[0-9][0-9 -]{2,30}$`)
	datePattern    = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// NormalizeVIN upper-cases and checks a vehicle identification number:
// 17 characters of the VIN alphabet (digits and capitals but I, O, Q).
// Only ASCII letters are upper-cased: strings.ToUpper would turn the long
// s 'ſ' into 'S', accepting a VIN that was not sent.
func NormalizeVIN(s string) (string, error) {
	v := []byte(strings.TrimSpace(s))
	for i, c := range v {
		if c >= 'a' && c <= 'z' {
			v[i] = c - 'a' + 'A'
		}
	}
	if !vinPattern.Match(v) {
		return "", FieldErrorf(CodeInvalidField, "vin", "VIN %q must be 17 characters of digits and capital letters other than I, O and Q", truncate(s, 40))
	}
	return string(v), nil
}

// CheckText checks a free-text field: valid UTF-8, no control characters,
// between min and max characters (runes) once surrounding space is trimmed.
// It returns the trimmed text. Control characters are those of Unicode's
// Cc (C0, DEL, C1) and the line and paragraph separators, and also the
// invisible format characters (Cf: bidirectional overrides, zero-width
// space, byte-order mark, soft hyphen…) but the zero-width joiner and
// non-joiner that some scripts and emoji need; U+FFFD, what a decoder
// leaves of bytes it could not read; and the noncharacters.
func CheckText(field, s string, min, max int) (string, error) {
	if !utf8.ValidString(s) {
		return "", FieldErrorf(CodeInvalidField, field, "is not valid UTF-8")
	}
	t := strings.TrimSpace(s)
	n := utf8.RuneCountInString(t)
	if n < min {
		if min == 1 {
			return "", FieldErrorf(CodeInvalidField, field, "is required")
		}
		return "", FieldErrorf(CodeInvalidField, field, "must be at least %d characters", min)
	}
	if n > max {
		return "", FieldErrorf(CodeInvalidField, field, "must be at most %d characters, got %d", max, n)
	}
	for _, r := range t {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "", FieldErrorf(CodeInvalidField, field, "must not contain control characters")
		}
		if forbiddenRune(r) {
			return "", FieldErrorf(CodeInvalidField, field, "must not contain the character U+%04X", r)
		}
	}
	return t, nil
}

// forbiddenRune reports the printable-looking characters no text field may
// hold. A format character is invisible: the bidirectional overrides make
// a printed name read differently from what is stored, a zero-width space
// makes two names that print alike differ.
func forbiddenRune(r rune) bool {
	switch {
	case r == utf8.RuneError:
		return true
	case r == '\u200c' || r == '\u200d': // non-joiner, joiner
		return false
	case unicode.Is(unicode.Cf, r):
		return true
	case r >= '\ufdd0' && r <= '\ufdef', r&0xfffe == 0xfffe: // noncharacters
		return true
	}
	return false
}

// checkPattern checks an identifier-like field against a pattern.
func checkPattern(field, s string, p *regexp.Regexp, what string) error {
	if !p.MatchString(s) {
		return FieldErrorf(CodeInvalidField, field, "%q is not %s", truncate(s, 40), what)
	}
	return nil
}

// CheckPlanCode checks a plan code; it becomes a subject token, so the
// alphabet is narrow.
func CheckPlanCode(s string) error {
	return checkPattern("code", s, codePattern, "a plan code: 1 to 32 letters, digits, '-' or '_', starting with a letter or digit")
}

// CheckService checks a service type name such as "oil_change".
func CheckService(field, s string) error {
	return checkPattern(field, s, servicePattern, "a service name: 1 to 32 lower-case letters, digits or '_', starting with a letter")
}

// CheckID checks a customer or user id.
func CheckID(field, s string) error {
	return checkPattern(field, s, idPattern, "an id: 1 to 64 letters, digits, '.', '_', ':' or '-'")
}

// CheckReference checks a receipt or repair-order number: printed on paper
// and typed by people, so letters, digits and a few separators, 1 to 40.
func CheckReference(field, s string) (string, error) {
	t, err := CheckText(field, s, 1, 40)
	if err != nil {
		return "", err
	}
	for _, r := range t {
		if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_/.#", r))) {
			return "", FieldErrorf(CodeInvalidField, field, "%q may hold only ASCII letters, digits and - _ / . #", truncate(s, 40))
		}
	}
	return t, nil
}

// CheckPhone checks a phone number: digits, spaces and dashes, an optional
// leading +.
func CheckPhone(field, s string) error {
	return checkPattern(field, s, phonePattern, "a phone number: digits, spaces or '-', optionally starting with '+'")
}

// CheckDate checks a calendar date written YYYY-MM-DD, from the year 1900.
func CheckDate(field, s string) error {
	if !datePattern.MatchString(s) {
		return FieldErrorf(CodeInvalidField, field, "%q is not a date written YYYY-MM-DD", truncate(s, 40))
	}
	d, err := parseDate(s)
	if err != nil {
		return FieldErrorf(CodeInvalidField, field, "%q is not a real date", s)
	}
	if d.Year() < 1900 {
		return FieldErrorf(CodeInvalidField, field, "%q is before 1900", s)
	}
	return nil
}
