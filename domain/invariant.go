package domain

import "fmt"

// Balances are the money columns of one package or of many summed.
type Balances struct {
	Paid       Money `json:"paid"`
	Voided     Money `json:"voided"`
	Recognized Money `json:"recognized"`
	Refunded   Money `json:"refunded"`
	Breakage   Money `json:"breakage"`
	Liability  Money `json:"liability"`
}

// Balances returns the package's money columns.
func (p *Package) Balances() Balances {
	return Balances{p.Paid, p.Voided, p.Recognized, p.Refunded, p.Breakage, p.Liability}
}

// Add sums two sets of balances.
func (b Balances) Add(o Balances) Balances {
	return Balances{
		b.Paid.Add(o.Paid), b.Voided.Add(o.Voided), b.Recognized.Add(o.Recognized),
		b.Refunded.Add(o.Refunded), b.Breakage.Add(o.Breakage), b.Liability.Add(o.Liability),
	}
}

// Equal reports whether two sets of balances are the same amounts.
func (b Balances) Equal(o Balances) bool {
	return b.Paid.Equal(o.Paid) && b.Voided.Equal(o.Voided) && b.Recognized.Equal(o.Recognized) &&
		b.Refunded.Equal(o.Refunded) && b.Breakage.Equal(o.Breakage) && b.Liability.Equal(o.Liability)
}

// Check verifies the identity of DESIGN.md §4 on summed balances:
// paid − voided = recognized + refunded + breakage + liability, and
// liability ≥ 0.
func (b Balances) Check() error {
	left := b.Paid.Sub(b.Voided)
	right := b.Recognized.Add(b.Refunded).Add(b.Breakage).Add(b.Liability)
	if !left.Equal(right) {
		return fmt.Errorf("paid %s − voided %s = %s, but recognized %s + refunded %s + breakage %s + liability %s = %s",
			b.Paid, b.Voided, left, b.Recognized, b.Refunded, b.Breakage, b.Liability, right)
	}
	if b.Liability.IsNegative() {
		return fmt.Errorf("liability %s is negative", b.Liability)
	}
	return nil
}

// CheckInvariant verifies everything §4 promises of one package after any
// event: the balance identity, a liability never negative, unit values that
// sum to the price, and a liability that is the value of the unused units
// whenever the package is fully paid and not settled. Tests and verify call
// it after every event.
func CheckInvariant(p Package) error {
	if !p.Exists() {
		return nil
	}
	if err := p.Balances().Check(); err != nil {
		return err
	}
	var sum Money
	for _, u := range p.Units {
		sum = sum.Add(u.Value)
	}
	if !sum.Equal(p.Price) {
		return fmt.Errorf("unit values sum to %s, not the price %s", sum, p.Price)
	}
	for _, m := range []struct {
		name string
		v    Money
	}{{"voided", p.Voided}, {"recognized", p.Recognized}, {"refunded", p.Refunded}, {"breakage", p.Breakage}} {
		if m.v.IsNegative() {
			return fmt.Errorf("%s %s is negative", m.name, m.v)
		}
	}
	switch p.Status {
	case StatusAwaitingPayment:
		if !p.Recognized.IsZero() || !p.Breakage.IsZero() || !p.Refunded.IsZero() {
			return fmt.Errorf("awaiting payment with recognized %s, breakage %s, refunded %s", p.Recognized, p.Breakage, p.Refunded)
		}
		// Equal to the price only between the last payment and the
		// activation that the same command appends right after it.
		if p.NetPaid().Cmp(p.Price) > 0 {
			return fmt.Errorf("awaiting payment with %s paid of %s", p.NetPaid(), p.Price)
		}
	case StatusActive, StatusUsedUp, StatusExpired:
		if !p.NetPaid().Equal(p.Price) {
			return fmt.Errorf("%s with %s paid of %s", p.Status, p.NetPaid(), p.Price)
		}
		if owed := p.Liability.Add(p.Breakage); !owed.Equal(p.unusedValue()) {
			return fmt.Errorf("%s: liability %s + breakage %s ≠ value of unused units %s", p.Status, p.Liability, p.Breakage, p.unusedValue())
		}
		if p.Status == StatusUsedUp && !allRedeemed(p.Units) {
			return fmt.Errorf("used up with unused units")
		}
	case StatusRefunded:
		if !p.Liability.IsZero() {
			return fmt.Errorf("refunded with liability %s", p.Liability)
		}
	}
	return nil
}
