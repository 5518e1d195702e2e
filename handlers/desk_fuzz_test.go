package handlers

import (
	"net/url"
	"testing"

	"github.com/packledger/packledger/domain"
)

// FuzzPlanForm: no plan form makes planForm panic; what it accepts, the
// domain either refuses with a domain error or makes a plan whose unit
// values sum to its price.
func FuzzPlanForm(f *testing.F) {
	f.Add("OIL5", "5次", "oil_change", "5", "480.00", "rate", "0.85", "", "24", "0.10", "洗车\n脚垫")
	f.Add("X", "", "", "", "", "price", "", "100.00", "x", "", "")
	f.Add("P", "p", "a", "-1", "0.00", "price", "0.85", "-5.00", "1", "2", "")
	f.Fuzz(func(t *testing.T, code, name, service, count, list, pricing, rate, price, months, fee, gifts string) {
		form := url.Values{"code": {code}, "name": {name}, "service0": {service}, "count0": {count}, "list0": {list},
			"pricing": {pricing}, "rate": {rate}, "price": {price}, "validity_months": {months},
			"cancellation_fee_rate": {fee}, "gifts": {gifts}, "refund_policy": {"pro_rata"}}
		req, _, err := planForm(form)
		if err != nil {
			if domain.ErrorCode(err) == domain.CodeInternal {
				t.Fatalf("not a domain error: %v", err)
			}
			return
		}
		p, err := domain.NewPlan(domain.PlanSpec(req))
		if err != nil {
			return
		}
		sum := domain.MustMoney("0.00")
		for _, u := range p.Units {
			sum = sum.Add(u.Value)
		}
		if !sum.Equal(p.Price) {
			t.Fatalf("units sum to %s, the price is %s", sum, p.Price)
		}
	})
}

// FuzzVehicleQuery: whatever is typed at reception, the search is a VIN,
// a phone or a plate the domain's rules accept, or nothing.
func FuzzVehicleQuery(f *testing.F) {
	for _, s := range []string{"LSVAU2180N2183294", "lsvau2180n2183294", "沪A12345", "+86 138-0013-8000", "1", "", " \t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, ok := vehicleQuery(q)
		if !ok {
			return
		}
		switch {
		case got.VIN != "":
			if _, err := domain.NormalizeVIN(got.VIN); err != nil {
				t.Fatalf("VIN %q: %v", got.VIN, err)
			}
		case got.Phone != "":
			if err := domain.CheckPhone("q", got.Phone); err != nil {
				t.Fatalf("phone %q: %v", got.Phone, err)
			}
		case got.Plate != "":
		default:
			t.Fatalf("%q: an empty search accepted", q)
		}
	})
}
