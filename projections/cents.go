package projections

import (
	"math"
	"math/bits"

	"github.com/packledger/packledger/domain"
)

// The read models keep amounts as int64 cents, which the domain's
// two-place decimals convert to exactly: a decimal costs a pointer and a
// big.Int allocation per amount, and a million packages hold tens of
// millions of amounts. Every conversion is checked; an amount that would
// not convert exactly is never approximated (a package holding one is
// kept in the domain's own form instead, see pack.go).

// centsOf returns m in cents, if it is a whole number of cents that fits.
func centsOf(m domain.Money) (int64, bool) {
	d := m.Decimal()
	exp := d.Exponent()
	if exp > 0 || exp < -2 || d.NumDigits() > 17 {
		if d.IsZero() {
			return 0, true
		}
		// Rare forms (1e3, 1.500): worth the slow, exact way.
		c := d.Shift(2)
		if !c.IsInteger() {
			return 0, false
		}
		b := c.BigInt()
		if !b.IsInt64() {
			return 0, false
		}
		return b.Int64(), true
	}
	c := d.CoefficientInt64()
	for ; exp > -2; exp-- {
		c *= 10 // at most 17 digits and two shifts: no overflow
	}
	return c, true
}

// money is an amount of cents. Zero is the zero Money, as a column no
// event has moved is in the domain's own fold, and costs no allocation.
func money(c int64) domain.Money {
	if c == 0 {
		return domain.Money{}
	}
	return domain.Cents(c)
}

// addCents adds two amounts, and says whether the sum fits.
func addCents(a, b int64) (int64, bool) {
	s := a + b
	return s, (s > a) == (b > 0) || b == 0
}

// sum128 is a sum of many amounts: a 128-bit count of cents, so that
// totals over every event of a ledger can never overflow.
type sum128 struct {
	hi int64
	lo uint64
}

func sumOf(c int64) sum128 {
	if c < 0 {
		return sum128{hi: -1, lo: uint64(c)}
	}
	return sum128{lo: uint64(c)}
}

func (a sum128) add(b sum128) sum128 {
	lo, carry := bits.Add64(a.lo, b.lo, 0)
	return sum128{hi: a.hi + b.hi + int64(carry), lo: lo}
}

func (a sum128) addCents(c int64) sum128 { return a.add(sumOf(c)) }

func (a sum128) neg() sum128 {
	lo, borrow := bits.Sub64(0, a.lo, 0)
	return sum128{hi: -a.hi - int64(borrow), lo: lo}
}

func (a sum128) sub(b sum128) sum128 { return a.add(b.neg()) }

// money converts the sum back to an amount, exactly.
func (a sum128) money() domain.Money {
	if (a.hi == 0 && a.lo <= math.MaxInt64) || (a.hi == -1 && a.lo > math.MaxInt64) {
		return domain.Cents(int64(a.lo))
	}
	// Beyond 2^63 cents: hi·2^64 + lo, built from amounts Cents can make.
	two63 := domain.Cents(math.MaxInt64).Add(domain.Cents(1))
	two64 := two63.Add(two63)
	hi := domain.Cents(0)
	n := a.hi
	neg := n < 0
	if neg {
		n = -n // a.hi > math.MinInt64 for any sum of int64s this side of 2^64 of them
	}
	for p, k := two64, n; k > 0; k >>= 1 {
		if k&1 == 1 {
			hi = hi.Add(p)
		}
		p = p.Add(p)
	}
	if neg {
		hi = domain.Cents(0).Sub(hi)
	}
	lo := domain.Cents(int64(a.lo >> 1)).Add(domain.Cents(int64(a.lo >> 1))).Add(domain.Cents(int64(a.lo & 1)))
	return hi.Add(lo)
}
