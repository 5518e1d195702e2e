package domain

import (
	"math/big"
	"sort"
)

// Allocate splits price over units in proportion to their list prices
// (DESIGN.md §4): unit i gets price × listPrice_i / Σ listPrice rounded down
// to the cent, and the cents left over go one each to the units with the
// largest dropped remainders, the lower index first on a tie. The result
// sums to price exactly.
//
// Integer cents in big.Int keep it exact: a product of two amounts in cents
// can pass the range of int64.
func Allocate(price Money, listPrices []Money) []Money {
	n := len(listPrices)
	out := make([]Money, n)
	if n == 0 {
		return out
	}
	p := cents(price)
	weights := make([]*big.Int, n)
	total := new(big.Int)
	for i, lp := range listPrices {
		weights[i] = cents(lp)
		total.Add(total, weights[i])
	}
	if total.Sign() == 0 {
		// Nothing to weigh by (plans forbid it, history may not): equal shares.
		for i := range weights {
			weights[i] = big.NewInt(1)
		}
		total.SetInt64(int64(n))
	}
	rem := make([]*big.Int, n)
	sum := new(big.Int)
	for i, w := range weights {
		num := new(big.Int).Mul(p, w)
		q, r := new(big.Int).QuoRem(num, total, new(big.Int))
		out[i] = moneyFromCents(q)
		rem[i] = r
		sum.Add(sum, q)
	}
	left := new(big.Int).Sub(p, sum).Int64() // < n by construction
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return rem[order[a]].Cmp(rem[order[b]]) > 0
	})
	for k := int64(0); k < left; k++ {
		i := order[k]
		out[i] = out[i].Add(Cents(1))
	}
	return out
}

func cents(m Money) *big.Int {
	return m.d.Shift(2).BigInt()
}

func moneyFromCents(c *big.Int) Money {
	return Money{decimalFromBigCents(c)}
}
