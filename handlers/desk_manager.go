package handlers

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// The service manager's pages: plans (define with a preview the domain
// computes, retire), a refund previewed before it is confirmed, the
// reversal of a deduction and the void of a payment, each with a reason,
// and the liability report with its chart.

// plansData is the plans page: every plan, and the form of a new one.
type plansData struct {
	Plans   []domain.PlanState
	Preview *domain.Plan // the plan the form's fields make, if they make one
	Rows    []int        // the entitlement rows of the form
	Key     string
}

// entitlementRows is how many entitlement lines the plan form offers.
const entitlementRows = 4

func (s *Server) plansPage(d *deskReq) {
	s.showPlans(d, http.StatusOK, nil, nil)
}

// showPlans shows the plans and the plan form: typed holds what was
// typed into it, err what was wrong with it.
func (s *Server) showPlans(d *deskReq, status int, typed url.Values, err error) {
	if rerr := s.ready(d.r.Context()); rerr != nil {
		s.failed(d, rerr)
		return
	}
	v := s.view(d.lang, d, "plans.title")
	if k, ok := flashes[d.r.URL.Query().Get("done")]; ok {
		v.Flash = text(d.lang, k)
	}
	data := plansData{Key: newFormKey()}
	for i := range entitlementRows {
		data.Rows = append(data.Rows, i)
	}
	s.reads.Read(func(m *projections.Model) { data.Plans = m.Plans() })
	if typed != nil {
		v.Form = typed
		if k := typed.Get("key"); k != "" {
			data.Key = k
		}
		if err == nil {
			// The preview: the plan as the domain would define it.
			spec, _, perr := planForm(typed)
			var p domain.Plan
			if perr == nil {
				p, perr = domain.NewPlan(domain.PlanSpec(spec))
			}
			if perr == nil {
				data.Preview = &p
			} else {
				err = perr
			}
		}
	}
	if err != nil {
		var errs map[string]string
		status, errs = s.fieldErrors(d.lang, err)
		_, rows, _ := planForm(typed)
		v.Errors = shownAt(planFields(errs, rows), planFormFields...)
	}
	v.Data = data
	s.render(d.w, status, "plans", v)
}

// planFormFields are the fields the plan form shows errors next to.
var planFormFields = func() []string {
	f := []string{"code", "name", "rate", "price", "validity_months", "cancellation_fee_rate", "free_look_days", "entitlements"}
	for i := range entitlementRows {
		f = append(f, fmt.Sprintf("service%d", i), fmt.Sprintf("count%d", i), fmt.Sprintf("list%d", i))
	}
	return f
}()

// entitlementField is an entitlement's field as the domain names it in
// its errors: entitlements[1].list_price.
var entitlementField = regexp.MustCompile(`^entitlements\[(\d+)\]\.(service|count|list_price)$`)

// planFields names the domain's entitlement errors by the form's fields:
// entitlements[1].list_price of a form whose second filled row is its
// third is list2.
func planFields(errs map[string]string, rows []int) map[string]string {
	for k, msg := range errs {
		m := entitlementField.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		if i >= len(rows) {
			continue // shown with the form's
		}
		name := map[string]string{"service": "service", "count": "count", "list_price": "list"}[m[2]]
		delete(errs, k)
		errs[fmt.Sprintf("%s%d", name, rows[i])] = msg
	}
	return errs
}

// planPreview shows the plan form's preview without writing anything:
// the form's button for it without JavaScript, the page's script as the
// manager types. It is a post, so that the form's CSRF token never goes
// into an address (history, logs, the language link).
func (s *Server) planPreview(d *deskReq) {
	s.showPlans(d, http.StatusOK, d.r.PostForm, nil)
}

// planForm reads a plan request from the plan form, and the form's row of
// each entitlement. Blank entitlement rows are left out; numbers must be
// whole.
func planForm(f url.Values) (planRequest, []int, error) {
	req, err := readPlanForm(f)
	var rows []int
	for i := range entitlementRows {
		if strings.TrimSpace(f.Get(fmt.Sprintf("service%d", i))+f.Get(fmt.Sprintf("count%d", i))+f.Get(fmt.Sprintf("list%d", i))) != "" {
			rows = append(rows, i)
		}
	}
	return req, rows, err
}

func readPlanForm(f url.Values) (planRequest, error) {
	req := planRequest{Code: strings.TrimSpace(f.Get("code")), Name: strings.TrimSpace(f.Get("name")),
		RefundPolicy: domain.RefundPolicy(f.Get("refund_policy"))}
	for _, m := range strings.FieldsFunc(f.Get("models"), func(r rune) bool { return r == ',' || r == '，' || r == '\n' }) {
		if m = strings.TrimSpace(m); m != "" {
			req.Models = append(req.Models, m)
		}
	}
	for _, g := range strings.Split(f.Get("gifts"), "\n") {
		if g = strings.TrimSpace(g); g != "" {
			req.Gifts = append(req.Gifts, g)
		}
	}
	for i := range entitlementRows {
		svc := strings.TrimSpace(f.Get(fmt.Sprintf("service%d", i)))
		count := strings.TrimSpace(f.Get(fmt.Sprintf("count%d", i)))
		list := strings.TrimSpace(f.Get(fmt.Sprintf("list%d", i)))
		if svc == "" && count == "" && list == "" {
			continue
		}
		n, err := strconv.Atoi(count)
		if err != nil {
			return req, domain.FieldErrorf(domain.CodeInvalidField, fmt.Sprintf("count%d", i), "must be a whole number of visits")
		}
		lp, err := domain.ParseMoney(list)
		if err != nil {
			return req, domain.FieldErrorf(domain.CodeInvalidAmount, fmt.Sprintf("list%d", i), "%s", domain.ErrorMessage(err))
		}
		req.Entitlements = append(req.Entitlements, domain.Entitlement{Service: svc, Count: n, ListPrice: lp})
	}
	var err error
	if req.ValidityMonths, err = wholeField(f, "validity_months"); err != nil {
		return req, err
	}
	if req.FreeLookDays, err = wholeField(f, "free_look_days"); err != nil {
		return req, err
	}
	switch f.Get("pricing") {
	case "rate":
		r, err := domain.ParseRate(strings.TrimSpace(f.Get("rate")))
		if err != nil {
			return req, domain.FieldErrorf(domain.CodeInvalidField, "rate", "%s", domain.ErrorMessage(err))
		}
		req.Rate = &r
	default:
		p, err := domain.ParseMoney(strings.TrimSpace(f.Get("price")))
		if err != nil {
			return req, domain.FieldErrorf(domain.CodeInvalidAmount, "price", "%s", domain.ErrorMessage(err))
		}
		req.Price = &p
	}
	if fee := strings.TrimSpace(f.Get("cancellation_fee_rate")); fee != "" {
		r, err := domain.ParseRate(fee)
		if err != nil {
			return req, domain.FieldErrorf(domain.CodeInvalidField, "cancellation_fee_rate", "%s", domain.ErrorMessage(err))
		}
		req.CancellationFeeRate = &r
	}
	return req, nil
}

// wholeField reads a whole number field; blank is 0.
func wholeField(f url.Values, name string) (int, error) {
	s := strings.TrimSpace(f.Get(name))
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, domain.FieldErrorf(domain.CodeInvalidField, name, "must be a whole number")
	}
	return n, nil
}

func (s *Server) definePlanForm(d *deskReq) {
	req, _, err := planForm(d.r.PostForm)
	var o op
	if err == nil {
		o, err = formOp(d, req)
	}
	if err == nil {
		if _, err = s.definePlanFor(d.r.Context(), o, req); err == nil {
			http.Redirect(d.w, d.r, "/desk/plans?done=defined", http.StatusSeeOther)
			return
		}
	}
	s.showPlans(d, 0, d.r.PostForm, err)
}

func (s *Server) retirePlanForm(d *deskReq) {
	req := reasonRequest{Reason: strings.TrimSpace(d.r.PostForm.Get("reason"))}
	o, err := formOp(d, req)
	if err == nil {
		if _, err = s.retirePlanFor(d.r.Context(), o, d.r.PathValue("code"), req.Reason); err == nil {
			http.Redirect(d.w, d.r, "/desk/plans?done=retired", http.StatusSeeOther)
			return
		}
	}
	s.showPlans(d, 0, nil, err)
}

// refundData is the refund preview and its confirmation.
type refundData struct {
	P       domain.Package
	Quote   domain.RefundQuote
	Methods []domain.PaymentMethod
	Key     string
}

func (s *Server) refundPage(d *deskReq) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	s.showRefund(d, p, http.StatusOK, nil)
}

// showRefund previews the refund of p as the domain computes it now, with
// err next to its field, if any.
func (s *Server) showRefund(d *deskReq, p domain.Package, status int, err error) {
	q, qerr := s.refundQuote(p)
	if qerr != nil {
		s.failed(d, qerr)
		return
	}
	v := s.view(d.lang, d, "refund.title")
	data := refundData{P: p, Quote: q, Methods: domain.PaymentMethods, Key: newFormKey()}
	if err != nil {
		status = s.refused(d, &v, &data.Key, err, "method", "reason")
	}
	v.Data = data
	s.render(d.w, status, "refund", v)
}

func (s *Server) refundForm(d *deskReq) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	req := refundRequest{Method: domain.PaymentMethod(d.r.PostForm.Get("method")), Reason: strings.TrimSpace(d.r.PostForm.Get("reason"))}
	o, err := formOp(d, req)
	// The refund the manager confirmed is the one previewed: if the package
	// changed since (a visit deducted, a payment voided), the new preview
	// is shown instead of paying out another amount.
	if q, qerr := s.refundQuote(p); err == nil && qerr == nil && q.Amount.String() != d.r.PostForm.Get("quoted") {
		err = domain.Errorf(domain.CodeConcurrentUpdate, "the refund is now %s, not %s", q.Amount, d.r.PostForm.Get("quoted"))
	}
	if err == nil {
		if _, err = s.refundPackageFor(d.r.Context(), o, p.ID, req); err == nil {
			http.Redirect(d.w, d.r, "/desk/packages/"+p.ID.String()+"?done=refunded", http.StatusSeeOther)
			return
		}
	}
	s.showRefund(d, p, 0, err)
}

// correction is a reversal or a void: a command on one item of a
// package, with a reason.
func (s *Server) correction(d *deskReq, item, code, what string, cmd func(uuid.UUID, string) domain.Command, eventType, done string) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	id, err := parseID(d.r.PathValue(item), code, what)
	req := reasonRequest{Reason: strings.TrimSpace(d.r.PostForm.Get("reason"))}
	var o op
	if err == nil {
		o, err = formOp(d, req)
	}
	if err == nil {
		if _, err = s.packageCommand(d.r.Context(), o, p.ID, cmd(id, req.Reason), eventType); err == nil {
			http.Redirect(d.w, d.r, "/desk/packages/"+p.ID.String()+"?done="+done, http.StatusSeeOther)
			return
		}
	}
	s.failed(d, err)
}

func (s *Server) reverseForm(d *deskReq) {
	s.correction(d, "rid", domain.CodeRedemptionNotFound, "redemption", func(id uuid.UUID, reason string) domain.Command {
		return domain.ReverseRedemption{RedemptionID: id, Reason: reason}
	}, "RedemptionReversed", "reversed")
}

func (s *Server) voidForm(d *deskReq) {
	s.correction(d, "pid", domain.CodePaymentNotFound, "payment", func(id uuid.UUID, reason string) domain.Command {
		return domain.VoidPayment{PaymentID: id, Reason: reason}
	}, "PaymentVoided", "voided")
}

// liabilityData is the roll-forward and its chart.
type liabilityData struct {
	Report projections.Report
	From   string // the form's days
	To     string
	Chart  chart
}

func (s *Server) liabilityPage(d *deskReq) {
	q := d.r.URL.Query()
	rq, err := parseReportQuery(q, s.now(), s.cfg.TZ)
	if err == nil && rq.to.Sub(rq.from) > 400*24*time.Hour {
		err = domain.FieldErrorf(domain.CodeInvalidField, "to", "at most 400 days in one report")
	}
	if err == nil {
		err = s.ready(d.r.Context())
	}
	if err != nil {
		s.failed(d, err)
		return
	}
	var rep projections.Report
	s.reads.Read(func(m *projections.Model) { rep = m.Liability().Report(rq.from, rq.to, true) })
	v := s.view(d.lang, d, "liability.title")
	v.Data = liabilityData{Report: rep, From: day(rq.from, s.cfg.TZ), To: day(rq.to.Add(-time.Nanosecond), s.cfg.TZ),
		Chart: liabilityChart(rep, s.cfg.TZ)}
	s.render(d.w, http.StatusOK, "liability", v)
}
