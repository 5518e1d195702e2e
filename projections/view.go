package projections

import "github.com/packledger/packledger/domain"

// PackageView is a package as the API and the auditor's tools show it
// (DESIGN.md §5): its state, the remaining visits per service, and empty
// lists rather than null.
type PackageView struct {
	domain.Package
	Remaining map[string]int `json:"remaining"`
}

// ViewPackage returns the view of a package.
func ViewPackage(p domain.Package) PackageView {
	if p.Payments == nil {
		p.Payments = []domain.Payment{}
	}
	if p.Redemptions == nil {
		p.Redemptions = []domain.Redemption{}
	}
	if p.Units == nil {
		p.Units = []domain.Unit{}
	}
	return PackageView{Package: p, Remaining: p.Remaining()}
}

// ViewPackages returns the views of packages, in order.
func ViewPackages(ps []domain.Package) []PackageView {
	out := make([]PackageView, len(ps))
	for i, p := range ps {
		out[i] = ViewPackage(p)
	}
	return out
}
