package handlers

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// The pages a service advisor works on at reception: find the car, see
// its packages, deduct a visit, sell a package. Any role may find a car
// and read its package; only an advisor gets the forms that write.

// findPage looks a vehicle up by VIN or plate.
func (s *Server) findPage(d *deskReq) {
	v := s.view(d.lang, d, "find.title")
	q := strings.TrimSpace(d.r.URL.Query().Get("q"))
	v.Form = url.Values{"q": {q}}
	data := struct {
		Asked    bool
		Packages []domain.Package
	}{Asked: q != ""}
	if q != "" {
		if err := s.ready(d.r.Context()); err != nil {
			s.failed(d, err)
			return
		}
		query, ok := vehicleQuery(q)
		if !ok {
			v.Errors = map[string]string{"q": text(d.lang, "find.help")}
		} else {
			s.reads.Read(func(m *projections.Model) { data.Packages = m.Find(query) })
		}
	}
	v.Data = data
	s.render(d.w, http.StatusOK, "find", v)
}

// vehicleQuery reads what was typed at reception: a VIN (any case, spaces
// allowed), a phone number (seven digits or more, spaces, dashes and +86
// allowed) or else a plate.
func vehicleQuery(q string) (projections.Query, bool) {
	if vin, err := domain.NormalizeVIN(strings.ReplaceAll(q, " ", "")); err == nil {
		return projections.Query{VIN: vin}, true
	}
	digits := 0
	for _, r := range q {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits >= 7 && domain.CheckPhone("q", q) == nil {
		return projections.Query{Phone: q}, true
	}
	plate, err := domain.CheckText("plate", q, 2, domain.MaxPlate)
	if err != nil {
		return projections.Query{}, false
	}
	return projections.Query{Plate: plate}, true
}

// serviceLine is one service of a package: visits left of how many, and
// the value of its next visit.
type serviceLine struct {
	Service     string
	Left, Count int
	Next        domain.Money
}

func serviceLines(p domain.Package) []serviceLine {
	var out []serviceLine
	for _, e := range p.Plan.Entitlements {
		l := serviceLine{Service: e.Service, Count: e.Count}
		for _, u := range p.Units {
			if u.Service == e.Service && u.RedemptionID == nil {
				if l.Left == 0 {
					l.Next = u.Value
				}
				l.Left++
			}
		}
		out = append(out, l)
	}
	return out
}

// packageData is what the package page shows.
type packageData struct {
	P        domain.Package
	Services []serviceLine
	CanWrite bool // the user may deduct, and the package takes deductions
	Key      string
}

// flashes are the messages a redirect after a write may ask a page to
// show, by key: only these, so a link cannot put words on a page.
var flashes = map[string]string{"deducted": "deduct.done", "deducted_again": "deduct.again", "sold": "sell.done", "paid": "pay.done",
	"defined": "plans.defined", "retired": "plans.retireddone", "refunded": "refund.done", "reversed": "reverse.done", "voided": "void.done"}

// pathPackage is the package of the path's {id}, from the read models;
// if there is none, it has shown why.
func (s *Server) pathPackage(d *deskReq) (domain.Package, bool) {
	id, err := parseID(d.r.PathValue("id"), domain.CodePackageNotFound, "package")
	if err == nil {
		var p domain.Package
		if p, err = s.packageByID(d.r.Context(), id); err == nil {
			return p, true
		}
	}
	s.failed(d, err)
	return domain.Package{}, false
}

func (s *Server) packagePage(d *deskReq) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	v := s.view(d.lang, d, "pkg.title")
	if k, ok := flashes[d.r.URL.Query().Get("done")]; ok {
		v.Flash = text(d.lang, k)
	}
	v.Data = packageData{P: p, Services: serviceLines(p),
		CanWrite: d.user.Role == domain.RoleAdvisor && p.Status == domain.StatusActive}
	s.render(d.w, http.StatusOK, "package", v)
}

// deductData is what the confirmation of a deduction shows: the visit it
// takes and the package after it, as the domain decides it.
type deductData struct {
	P, After domain.Package
	Req      redeemRequest
	Unit     domain.UnitSpec
	Left     int // visits of the service left after it
	Key      string
	Failed   bool
	Repeat   bool
}

// redeemForm reads the deduction's fields from a query or a form.
func redeemForm(vals url.Values) (redeemRequest, error) {
	req := redeemRequest{Service: vals.Get("service"), RepairOrder: strings.TrimSpace(vals.Get("repair_order"))}
	m := strings.TrimSpace(vals.Get("mileage"))
	if m == "" {
		return req, domain.FieldErrorf(domain.CodeInvalidField, "mileage", "is required")
	}
	n, err := strconv.Atoi(m)
	if err != nil {
		return req, domain.FieldErrorf(domain.CodeInvalidField, "mileage", "must be a whole number of kilometres")
	}
	req.Mileage = n
	return req, nil
}

// deductPage is the confirmation of a deduction, before anything is
// written: the domain decides it on the package as the read models hold
// it, and the page shows what that would append.
func (s *Server) deductPage(d *deskReq) {
	s.confirmDeduct(d, d.r.URL.Query(), nil, false)
}

// confirmDeduct shows the confirmation for the fields in vals, or the
// package page's form again with failure next to its field; changed says
// the package changed since the confirmation the advisor sent.
func (s *Server) confirmDeduct(d *deskReq, vals url.Values, failure error, changed bool) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	v := s.view(d.lang, d, "deduct.title")
	v.Form = vals
	data := deductData{P: p, Key: newFormKey()}
	req, err := redeemForm(vals)
	data.Req = req
	if err == nil {
		err = failure
	}
	if err == nil {
		var evs []domain.Event
		evs, err = domain.Decide(p, domain.Redeem{RedemptionID: newID(), Service: req.Service,
			RepairOrder: req.RepairOrder, Mileage: req.Mileage}, s.now())
		if err == nil {
			data.After = applyAll(p, evs, s.now())
			data.Repeat = len(evs) == 0 // the repair order deducted this service already
			for _, e := range evs {
				if r, ok := e.(domain.VisitRedeemed); ok {
					data.Unit = p.Units[r.Unit].UnitSpec
				}
			}
			data.Left = data.After.Remaining()[req.Service]
		}
	}
	status := http.StatusOK
	switch {
	case err != nil:
		status, v.Errors = s.fieldErrors(d.lang, err)
		v.Errors = shownAt(v.Errors, "service", "repair_order", "mileage")
		data.Failed = true
	case changed:
		status, v.Errors = s.fieldErrors(d.lang, domain.Errorf(domain.CodeConcurrentUpdate, "the package changed"))
	}
	v.Data = data
	s.render(d.w, status, "deduct", v)
}

// applyAll is p after events the domain decided, as the ledger would
// apply them once appended.
func applyAll(p domain.Package, evs []domain.Event, now time.Time) domain.Package {
	for _, e := range evs {
		p = domain.Apply(p, domain.Envelope{Type: e.EventType(), Event: e, BusinessTime: now, RecordedAt: now})
	}
	return p
}

// deduct writes the deduction the confirmation showed.
func (s *Server) deduct(d *deskReq) {
	id, err := parseID(d.r.PathValue("id"), domain.CodePackageNotFound, "package")
	if err != nil {
		s.failed(d, err)
		return
	}
	req, err := redeemForm(d.r.PostForm)
	if err != nil {
		s.confirmDeduct(d, d.r.PostForm, err, false)
		return
	}
	// The visit deducted is the one the confirmation showed: if another
	// deduction or a reversal came in between, the new one is shown.
	if p, perr := s.packageByID(d.r.Context(), id); perr == nil && d.r.PostForm.Get("unit") != "" {
		evs, derr := domain.Decide(p, domain.Redeem{RedemptionID: newID(), Service: req.Service,
			RepairOrder: req.RepairOrder, Mileage: req.Mileage}, s.now())
		for _, e := range evs {
			if r, ok := e.(domain.VisitRedeemed); ok && derr == nil && strconv.Itoa(r.Unit) != d.r.PostForm.Get("unit") {
				s.confirmDeduct(d, d.r.PostForm, nil, true)
				return
			}
		}
	}
	o, err := formOp(d, req)
	if err != nil {
		s.failed(d, err)
		return
	}
	_, _, created, err := s.redeemVisit(d.r.Context(), o, id, req)
	if err != nil {
		s.confirmDeduct(d, d.r.PostForm, err, false)
		return
	}
	done := "deducted"
	if !created {
		done = "deducted_again"
	}
	http.Redirect(d.w, d.r, "/desk/packages/"+id.String()+"?done="+done, http.StatusSeeOther)
}

// sellData is what the sale form shows: the plans on sale.
type sellData struct {
	Plans []domain.Plan
	Key   string
}

func (s *Server) sellPage(d *deskReq) {
	s.showSell(d, http.StatusOK, nil)
}

// showSell shows the sale form; after a refused post, with err next to
// its field and what was typed.
func (s *Server) showSell(d *deskReq, status int, err error) {
	if rerr := s.ready(d.r.Context()); rerr != nil {
		s.failed(d, rerr)
		return
	}
	v := s.view(d.lang, d, "sell.title")
	data := sellData{Key: newFormKey()}
	s.reads.Read(func(m *projections.Model) {
		for _, p := range m.Plans() {
			if p.Status == domain.PlanStatusActive {
				data.Plans = append(data.Plans, p.Plan)
			}
		}
	})
	if err != nil {
		status = s.refused(d, &v, &data.Key, err, "plan", "customer.id", "customer.name", "customer.phone", "vehicle.vin", "vehicle.plate", "vehicle.model")
	}
	v.Data = data
	s.render(d.w, status, "sell", v)
}

func (s *Server) sellForm(d *deskReq) {
	f := d.r.PostForm
	req := sellRequest{
		Plan: f.Get("plan"),
		Customer: domain.Customer{ID: strings.TrimSpace(f.Get("customer.id")), Name: strings.TrimSpace(f.Get("customer.name")),
			Phone: strings.TrimSpace(f.Get("customer.phone"))},
		Vehicle: domain.Vehicle{VIN: strings.TrimSpace(f.Get("vehicle.vin")), Plate: strings.TrimSpace(f.Get("vehicle.plate")),
			Model: strings.TrimSpace(f.Get("vehicle.model"))},
	}
	o, err := formOp(d, req)
	if err == nil {
		var p domain.Package
		p, err = s.sellPackage(d.r.Context(), o, req)
		if err == nil {
			http.Redirect(d.w, d.r, "/desk/packages/"+p.ID.String()+"?done=sold", http.StatusSeeOther)
			return
		}
	}
	s.showSell(d, 0, err)
}
