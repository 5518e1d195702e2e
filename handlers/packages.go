package handlers

import (
	"context"
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
	p, err := s.sellPackage(r.Context(), opOf(r), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, viewPackage(p))
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
	return s.packageByID(r.Context(), id)
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
	if err := s.ready(r.Context()); err != nil {
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
	if v := q.Get("phone"); v != "" {
		if err := domain.CheckPhone("phone", v); err != nil {
			return fq, err
		}
		fq.Phone = v
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
	id, _, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	pay, p, created, err := s.recordPaymentFor(r.Context(), opOf(r), id, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // the receipt was already recorded for this package and amount
	}
	writeJSON(w, status, paymentResponse{Payment: pay, Package: viewPackage(p)})
}

func (s *Server) voidPayment(w http.ResponseWriter, r *http.Request) {
	var req reasonRequest
	id, _, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	pid, err := parseID(r.PathValue("pid"), domain.CodePaymentNotFound, "payment")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writePackage(w, r, id, domain.VoidPayment{PaymentID: pid, Reason: req.Reason}, "PaymentVoided")
}

// writePackage runs a command whose answer is the package.
func (s *Server) writePackage(w http.ResponseWriter, r *http.Request, id uuid.UUID, cmd domain.Command, eventType string) {
	p, err := s.packageCommand(r.Context(), opOf(r), id, cmd, eventType)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewPackage(p))
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
	id, _, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	red, p, created, err := s.redeemVisit(r.Context(), opOf(r), id, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // this repair order already deducted this service: its first answer
	}
	writeJSON(w, status, redemptionResponse{Redemption: red, Package: viewPackage(p)})
}

func (s *Server) reverse(w http.ResponseWriter, r *http.Request) {
	var req reasonRequest
	id, _, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	rid, err := parseID(r.PathValue("rid"), domain.CodeRedemptionNotFound, "redemption")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writePackage(w, r, id, domain.ReverseRedemption{RedemptionID: rid, Reason: req.Reason}, "RedemptionReversed")
}

func (s *Server) breakage(w http.ResponseWriter, r *http.Request) {
	var req reasonRequest
	id, _, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	s.writePackage(w, r, id, domain.RecognizeBreakage{Reason: req.Reason}, "BreakageRecognized")
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
	id, _, ok := s.packageRequest(w, r, &req)
	if !ok {
		return
	}
	p, err := s.refundPackageFor(r.Context(), opOf(r), id, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, refundResponse{Refund: p.Refund, Package: viewPackage(p)})
}

// quoteRefund previews a refund: what the policy would pay back now.
func (s *Server) quoteRefund(w http.ResponseWriter, r *http.Request) {
	p, err := s.readPackage(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q, err := s.refundQuote(p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"quote": q, "package": viewPackage(p)})
}

// refundQuote is what a refund of p would pay back now, or why p cannot
// be refunded.
func (s *Server) refundQuote(p domain.Package) (domain.RefundQuote, error) {
	// Decide on a throw-away command tells whether a refund is allowed at all.
	if _, err := domain.Decide(p, domain.RefundPackage{Method: "cash", Reason: "preview"}, s.now()); err != nil {
		return domain.RefundQuote{}, err
	}
	return domain.QuoteRefund(p, s.now()), nil
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	id, _, err := s.packageSubject(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	entries, err := s.historyOf(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"package_id": id, "events": entries})
}

// historyOf is every event of package id, in order, each with the
// package's figures after it.
func (s *Server) historyOf(ctx context.Context, id uuid.UUID) ([]historyEntry, error) {
	hist, err := s.ledger.Load(ctx, s.ledger.Subjects().Package(id.String()))
	if err != nil {
		return nil, unavailableErr("the ledger could not be read", err)
	}
	if len(hist) == 0 {
		return nil, domain.Errorf(domain.CodePackageNotFound, "no package %s", id)
	}
	entries := make([]historyEntry, 0, len(hist))
	var p domain.Package
	for _, e := range hist {
		p = domain.Apply(p, e)
		entries = append(entries, historyEntry{
			Seq: e.Seq, ID: e.ID, Type: e.Type, Schema: e.Schema, Dealer: e.Dealer, Store: e.Store,
			BusinessTime: e.BusinessTime, RecordedAt: e.RecordedAt, Actor: e.Actor, Key: e.Key,
			Prev: e.Prev, Hash: e.Hash, Data: e.Data, Event: e.Event,
			After: historyAfter{Status: p.Status, Paid: p.Paid, Voided: p.Voided, Liability: p.Liability, Remaining: p.Remaining()},
		})
	}
	return entries, nil
}

// trimmedRef is a receipt or repair-order number as the domain stores it.
func trimmedRef(field, s string) string {
	t, err := domain.CheckReference(field, s)
	if err != nil {
		return s
	}
	return t
}
