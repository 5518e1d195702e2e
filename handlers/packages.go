package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections"
)

type sellRequest struct {
	Plan     string          `json:"plan"`
	Customer domain.Customer `json:"customer"`
	Vehicle  domain.Vehicle  `json:"vehicle"`
}

func (s *Server) sell(w http.ResponseWriter, r *http.Request) {
	var req sellRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Plan == "" {
		s.writeError(w, r, domain.FieldErrorf(domain.CodeInvalidField, "plan", "is required"))
		return
	}
	if err := domain.CheckPlanCode(req.Plan); err != nil {
		s.writeError(w, r, domain.FieldErrorf(domain.CodePlanNotFound, "plan", "no plan %q", truncateText(req.Plan, 40)))
		return
	}
	if err := s.ready(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	u := userOf(r.Context())
	id := newID()
	// A sale makes a new subject, so its idempotency key cannot be found
	// on the subject as other writes' keys are: look it up among the sales
	// first, and let JetStream's duplicate window catch a quick retry.
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		s.reads.Read(func(m *projections.Model) {
			if prev, ok := m.SaleByKey(u.ID, key); ok {
				id = prev
			}
		})
	}
	decide := func(hist []domain.Envelope) (eventstore.Change, error) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WriteTimeout)
		defer cancel()
		planHist, err := s.ledger.Load(ctx, s.ledger.Subjects().Plan(req.Plan))
		if err != nil {
			return eventstore.Change{}, unavailableErr("the plan could not be read from the ledger; retry with the same Idempotency-Key", err)
		}
		plan := foldPlan(planHist)
		if !plan.Exists() {
			return eventstore.Change{}, domain.FieldErrorf(domain.CodePlanNotFound, "plan", "no plan %q", req.Plan)
		}
		evs, err := domain.Decide(domain.Fold(hist), domain.Sell{
			PackageID: id, Plan: plan, Customer: req.Customer, Vehicle: req.Vehicle, Advisor: u.ID,
		}, s.now())
		return eventstore.Change{Events: evs}, err
	}
	res, err := s.write(r, s.ledger.Subjects().Package(id.String()), decide)
	var used *eventstore.KeyUsedError
	if errors.As(err, &used) && used.Existing.Type == "PackageSold" {
		// The first attempt's sale, seen by JetStream before the read
		// models had it: answer with that package.
		res, err = s.write(r, used.Existing.Subject, decide)
	}
	if err == nil {
		err = replayOf(res, "PackageSold")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, viewPackage(domain.Fold(res.History)))
}

// packageSubject parses the {id} of the path.
func (s *Server) packageSubject(r *http.Request) (uuid.UUID, string, error) {
	id, err := parseID(r.PathValue("id"), domain.CodePackageNotFound, "package")
	if err != nil {
		return id, "", err
	}
	return id, s.ledger.Subjects().Package(id.String()), nil
}

// packageRequest parses the path's package and decodes the body into req.
// On failure it has answered the request and returns ok false.
func (s *Server) packageRequest(w http.ResponseWriter, r *http.Request, req any) (uuid.UUID, string, bool) {
	id, subject, err := s.packageSubject(r)
	if err == nil {
		err = decode(w, r, req)
	}
	if err != nil {
		s.writeError(w, r, err)
		return id, subject, false
	}
	return id, subject, true
}

// decidePackage returns a decide function that runs one domain command on
// the package's history.
func (s *Server) decidePackage(cmd domain.Command) func([]domain.Envelope) (eventstore.Change, error) {
	return func(hist []domain.Envelope) (eventstore.Change, error) {
		evs, err := domain.Decide(domain.Fold(hist), cmd, s.now())
		return eventstore.Change{Events: evs}, err
	}
}

// readPackage returns the package of the path's {id} from the projections.
func (s *Server) readPackage(r *http.Request) (domain.Package, error) {
	id, _, err := s.packageSubject(r)
	if err != nil {
		return domain.Package{}, err
	}
	if err := s.ready(r); err != nil {
		return domain.Package{}, err
	}
	var (
		p  domain.Package
		ok bool
	)
	s.reads.Read(func(m *projections.Model) { p, ok = m.Package(id) })
	if !ok {
		return domain.Package{}, domain.Errorf(domain.CodePackageNotFound, "no package %s", id)
	}
	return p, nil
}

func (s *Server) getPackage(w http.ResponseWriter, r *http.Request) {
	p, err := s.readPackage(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewPackage(p))
}

// maxFind bounds a package search's answer.
const maxFind = 1000

func (s *Server) findPackages(w http.ResponseWriter, r *http.Request) {
	fq, err := parseFindQuery(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.ready(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var ps []domain.Package
	s.reads.Read(func(m *projections.Model) {
		for _, p := range m.Find(fq.Query) {
			if fq.status == "" || p.Status == fq.status {
				ps = append(ps, p)
			}
		}
	})
	total := len(ps)
	if len(ps) > fq.limit {
		ps = ps[:fq.limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{"packages": viewPackages(ps), "count": len(ps), "total": total})
}

// findQuery is what a package search asks for.
type findQuery struct {
	projections.Query
	status domain.Status
	limit  int
}

// parseFindQuery reads a package search: vin, plate and customer under the
// rules of the fields they look up (a VIN in any case), status, limit.
func parseFindQuery(q url.Values) (findQuery, error) {
	fq := findQuery{limit: 100}
	var err error
	if v := q.Get("vin"); v != "" {
		if fq.VIN, err = domain.NormalizeVIN(v); err != nil {
			return fq, err
		}
	}
	if v := q.Get("plate"); v != "" {
		if fq.Plate, err = domain.CheckText("plate", v, 2, domain.MaxPlate); err != nil {
			return fq, err
		}
	}
	if v := q.Get("customer"); v != "" {
		if err := domain.CheckID("customer", v); err != nil {
			return fq, err
		}
		fq.Customer = v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxFind {
			return fq, domain.FieldErrorf(domain.CodeInvalidField, "limit", "must be a whole number from 1 to %d", maxFind)
		}
		fq.limit = n
	}
	fq.status = domain.Status(q.Get("status"))
	switch fq.status {
	case "", domain.StatusAwaitingPayment, domain.StatusActive, domain.StatusUsedUp, domain.StatusExpired, domain.StatusRefunded:
	default:
		return fq, domain.FieldErrorf(domain.CodeInvalidField, "status", "unknown status %q", truncateText(string(fq.status), 40))
	}
	return fq, nil
}

type paymentRequest struct {
	Amount  domain.Money         `json:"amount"`
	Method  domain.PaymentMethod `json:"method"`
	Receipt string               `json:"receipt"`
}

type paymentResponse struct {
	Payment domain.Payment `json:"payment"`
	Package packageView    `json:"package"`
}

func (s *Server) recordPayment(w http.ResponseWriter, r *http.Request) {
	var req paymentRequest
	id, subject, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	paymentID := newID()
	res, err := s.write(r, subject, func(hist []domain.Envelope) (eventstore.Change, error) {
		evs, err := domain.Decide(domain.Fold(hist), domain.RecordPayment{
			PaymentID: paymentID, Amount: req.Amount, Method: req.Method, Receipt: req.Receipt,
		}, s.now())
		if err != nil {
			return eventstore.Change{}, err
		}
		return s.ledger.Subjects().PackageChange(id, evs), nil
	})
	var taken *eventstore.ClaimTakenError
	if errors.As(err, &taken) {
		err = s.receiptTaken(r, id, req, taken)
		if err == nil {
			// The same payment, recorded by a request that raced this one.
			res, err = s.write(r, subject, s.decidePackage(domain.RecordPayment{
				PaymentID: paymentID, Amount: req.Amount, Method: req.Method, Receipt: req.Receipt,
			}))
		}
	}
	if err == nil {
		err = replayOf(res, "PaymentRecorded")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := domain.Fold(res.History)
	status := http.StatusCreated
	var pay domain.Payment
	if len(res.Appended) == 0 {
		// The receipt was already recorded for this package and amount.
		status = http.StatusOK
		pay, _ = p.PaymentByReceipt(trimmedRef("receipt", req.Receipt))
	} else {
		pay, _ = p.PaymentByID(res.Appended[0].Event.(domain.PaymentRecorded).PaymentID)
	}
	writeJSON(w, status, paymentResponse{Payment: pay, Package: viewPackage(p)})
}

// receiptTaken decides what a taken receipt number means: nil if it was
// taken by this very payment (same package and amount), else the conflict.
func (s *Server) receiptTaken(r *http.Request, id uuid.UUID, req paymentRequest, taken *eventstore.ClaimTakenError) error {
	if c, ok := taken.Existing.Event.(domain.ReceiptClaimed); ok && c.PackageID == id && c.Amount.Equal(req.Amount) {
		return nil
	}
	other := ""
	if c, ok := taken.Existing.Event.(domain.ReceiptClaimed); ok {
		other = " (package " + c.PackageID.String() + ", " + c.Amount.String() + ")"
	}
	return domain.FieldErrorf(domain.CodeDuplicateReceipt, "receipt", "receipt %s was already used for another payment%s", req.Receipt, other)
}

func (s *Server) voidPayment(w http.ResponseWriter, r *http.Request) {
	var req reasonRequest
	_, subject, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	pid, err := parseID(r.PathValue("pid"), domain.CodePaymentNotFound, "payment")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writePackage(w, r, subject, domain.VoidPayment{PaymentID: pid, Reason: req.Reason}, "PaymentVoided")
}

// writePackage runs a command whose answer is the package.
func (s *Server) writePackage(w http.ResponseWriter, r *http.Request, subject string, cmd domain.Command, eventType string) {
	res, err := s.write(r, subject, s.decidePackage(cmd))
	if err == nil {
		err = replayOf(res, eventType)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewPackage(domain.Fold(res.History)))
}

type redeemRequest struct {
	Service     string `json:"service"`
	RepairOrder string `json:"repair_order"`
	Mileage     int    `json:"mileage"`
}

type redemptionResponse struct {
	Redemption domain.Redemption `json:"redemption"`
	Package    packageView       `json:"package"`
}

func (s *Server) redeem(w http.ResponseWriter, r *http.Request) {
	var req redeemRequest
	_, subject, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	res, err := s.write(r, subject, s.decidePackage(domain.Redeem{
		RedemptionID: newID(), Service: req.Service, RepairOrder: req.RepairOrder, Mileage: req.Mileage,
	}))
	if err == nil {
		err = replayOf(res, "VisitRedeemed")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := domain.Fold(res.History)
	status := http.StatusCreated
	var red domain.Redemption
	if len(res.Appended) == 0 {
		// This repair order already deducted this service: its first answer.
		status = http.StatusOK
		red, _ = p.RedemptionFor(trimmedRef("repair_order", req.RepairOrder), req.Service)
	} else {
		red, _ = p.RedemptionByID(res.Appended[0].Event.(domain.VisitRedeemed).RedemptionID)
	}
	writeJSON(w, status, redemptionResponse{Redemption: red, Package: viewPackage(p)})
}

func (s *Server) reverse(w http.ResponseWriter, r *http.Request) {
	var req reasonRequest
	_, subject, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	rid, err := parseID(r.PathValue("rid"), domain.CodeRedemptionNotFound, "redemption")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writePackage(w, r, subject, domain.ReverseRedemption{RedemptionID: rid, Reason: req.Reason}, "RedemptionReversed")
}

func (s *Server) breakage(w http.ResponseWriter, r *http.Request) {
	var req reasonRequest
	_, subject, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	s.writePackage(w, r, subject, domain.RecognizeBreakage{Reason: req.Reason}, "BreakageRecognized")
}

type refundRequest struct {
	Method domain.PaymentMethod `json:"method"`
	Reason string               `json:"reason"`
}

type refundResponse struct {
	Refund  *domain.Refund `json:"refund"`
	Package packageView    `json:"package"`
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	var req refundRequest
	_, subject, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	res, err := s.write(r, subject, s.decidePackage(domain.RefundPackage{Method: req.Method, Reason: req.Reason}))
	if err == nil && res.Replayed {
		// A refund after breakage starts with BreakageReversed.
		last := res.Appended[len(res.Appended)-1]
		if last.Type != "PackageRefunded" {
			err = domain.Errorf(domain.CodeIdempotencyConflict, "this Idempotency-Key was already used for a %s", last.Type)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := domain.Fold(res.History)
	writeJSON(w, http.StatusOK, refundResponse{Refund: p.Refund, Package: viewPackage(p)})
}

// quoteRefund previews a refund: what the policy would pay back now.
func (s *Server) quoteRefund(w http.ResponseWriter, r *http.Request) {
	p, err := s.readPackage(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Decide on a throw-away command tells whether a refund is allowed at all.
	if _, err := domain.Decide(p, domain.RefundPackage{Method: "cash", Reason: "preview"}, s.now()); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"quote": domain.QuoteRefund(p, s.now()), "package": viewPackage(p)})
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	id, subject, err := s.packageSubject(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hist, err := s.ledger.Load(r.Context(), subject)
	if err != nil {
		s.writeError(w, r, unavailableErr("the ledger could not be read", err))
		return
	}
	if len(hist) == 0 {
		s.writeError(w, r, domain.Errorf(domain.CodePackageNotFound, "no package %s", id))
		return
	}
	entries := make([]historyEntry, 0, len(hist))
	var p domain.Package
	for _, e := range hist {
		p = domain.Apply(p, e)
		entries = append(entries, historyEntry{
			Seq: e.Seq, ID: e.ID, Type: e.Type, Schema: e.Schema, Dealer: e.Dealer, Store: e.Store,
			BusinessTime: e.BusinessTime, RecordedAt: e.RecordedAt, Actor: e.Actor, Key: e.Key,
			Prev: e.Prev, Hash: e.Hash, Data: e.Data,
			After: historyAfter{Status: p.Status, Paid: p.Paid, Liability: p.Liability, Remaining: p.Remaining()},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"package_id": id, "events": entries})
}

// trimmedRef is a receipt or repair-order number as the domain stores it.
func trimmedRef(field, s string) string {
	t, err := domain.CheckReference(field, s)
	if err != nil {
		return s
	}
	return t
}
