package eventstore

import (
	"fmt"
	"regexp"
	"strings"
)

// Subjects names the subjects of one dealer's ledger (DESIGN.md §3).
type Subjects struct{ Dealer string }

var dealerPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// CheckDealer validates a dealer id, which becomes a subject token.
func CheckDealer(d string) error {
	if !dealerPattern.MatchString(d) {
		return fmt.Errorf("dealer id %q: 1 to 32 lower-case letters, digits, '-' or '_'", d)
	}
	return nil
}

// All matches every subject of the dealer.
func (s Subjects) All() string { return "ledger." + s.Dealer + ".>" }

// Package is a package's subject.
func (s Subjects) Package(id string) string { return "ledger." + s.Dealer + ".packages." + id }

// Packages matches every package subject.
func (s Subjects) Packages() string { return "ledger." + s.Dealer + ".packages.*" }

// Plan is a plan's subject.
func (s Subjects) Plan(code string) string { return "ledger." + s.Dealer + ".plans." + code }

// Receipt is the subject that claims a receipt number for the dealer.
func (s Subjects) Receipt(number string) string {
	return "ledger." + s.Dealer + ".receipts." + EncodeToken(number)
}

// EncodeToken makes any text a valid, readable subject token: letters,
// digits, '-' and '_' stay as they are, every other byte becomes %XX. It is
// reversible, so distinct numbers never share a subject.
func EncodeToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
