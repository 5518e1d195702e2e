package handlers

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections"
)

// The commands of the ledger as both the JSON API and the web desk carry
// them out: one set of rules, whatever the form of the request.

// op is who asks for a write and how a repeat of it is known: the user,
// the idempotency key (may be empty) and the digest of what was asked.
type op struct {
	user   User
	key    string
	digest string
}

// write carries out one command on one subject for op's user and waits
// until the projections hold its result.
func (s *Server) write(ctx context.Context, o op, subject string, decide func([]domain.Envelope) (eventstore.Change, error)) (eventstore.Result, error) {
	if err := checkKey(o.key); err != nil {
		return eventstore.Result{}, err
	}
	meta := eventstore.Meta{Store: o.user.Store, Actor: domain.Actor{ID: o.user.ID, Role: o.user.Role}, Key: o.key,
		Request: o.digest}
	uctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	res, err := s.ledger.Update(uctx, subject, meta, s.clock, decide)
	cancel()
	if err != nil {
		return res, err
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteWait)
	defer cancel()
	if err := s.reads.WaitFor(wctx, res.LastSeq); err != nil {
		return res, unavailableErr("the write is stored, but the read models are behind; retry with the same Idempotency-Key to get its answer", err)
	}
	return res, nil
}

// sellPackage sells a plan for a customer's vehicle.
func (s *Server) sellPackage(ctx context.Context, o op, req sellRequest) (domain.Package, error) {
	if req.Plan == "" {
		return domain.Package{}, domain.FieldErrorf(domain.CodeInvalidField, "plan", "is required")
	}
	if err := domain.CheckPlanCode(req.Plan); err != nil {
		return domain.Package{}, domain.FieldErrorf(domain.CodePlanNotFound, "plan", "no plan %q", truncateText(req.Plan, 40))
	}
	if err := s.ready(ctx); err != nil {
		return domain.Package{}, err
	}
	id := newID()
	// A sale makes a new subject, so its idempotency key cannot be found
	// on the subject as other writes' keys are: look it up among the sales
	// first, and let JetStream's duplicate window catch a quick retry.
	if o.key != "" {
		s.reads.Read(func(m *projections.Model) {
			if prev, ok := m.SaleByKey(o.user.ID, o.key); ok {
				id = prev
			}
		})
	}
	decide := func(hist []domain.Envelope) (eventstore.Change, error) {
		lctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
		defer cancel()
		planHist, err := s.ledger.Load(lctx, s.ledger.Subjects().Plan(req.Plan))
		if err != nil {
			return eventstore.Change{}, unavailableErr("the plan could not be read from the ledger; retry with the same Idempotency-Key", err)
		}
		plan := foldPlan(planHist)
		if !plan.Exists() {
			return eventstore.Change{}, domain.FieldErrorf(domain.CodePlanNotFound, "plan", "no plan %q", req.Plan)
		}
		evs, err := domain.Decide(domain.Fold(hist), domain.Sell{
			PackageID: id, Plan: plan, Customer: req.Customer, Vehicle: req.Vehicle, Advisor: o.user.ID,
		}, s.now())
		return eventstore.Change{Events: evs}, err
	}
	res, err := s.write(ctx, o, s.ledger.Subjects().Package(id.String()), decide)
	var used *eventstore.KeyUsedError
	if errors.As(err, &used) && used.Existing.Type == "PackageSold" {
		// The first attempt's sale, seen by JetStream before the read
		// models had it: answer with that package.
		res, err = s.write(ctx, o, used.Existing.Subject, decide)
	}
	if err == nil {
		err = replayOf(res, "PackageSold")
	}
	if err != nil {
		return domain.Package{}, err
	}
	return domain.Fold(res.History), nil
}

// recordPaymentFor records a payment on package id. created is false when
// the receipt was already recorded for this package and amount: pay is
// then that first payment.
func (s *Server) recordPaymentFor(ctx context.Context, o op, id uuid.UUID, req paymentRequest) (pay domain.Payment, p domain.Package, created bool, err error) {
	subject := s.ledger.Subjects().Package(id.String())
	paymentID := newID()
	cmd := domain.RecordPayment{PaymentID: paymentID, Amount: req.Amount, Method: req.Method, Receipt: req.Receipt}
	res, err := s.write(ctx, o, subject, func(hist []domain.Envelope) (eventstore.Change, error) {
		evs, err := domain.Decide(domain.Fold(hist), cmd, s.now())
		if err != nil {
			return eventstore.Change{}, err
		}
		return s.ledger.Subjects().PackageChange(id, evs), nil
	})
	var taken *eventstore.ClaimTakenError
	if errors.As(err, &taken) {
		err = receiptTaken(id, req, taken)
		if err == nil {
			// The same payment, recorded by a request that raced this one.
			res, err = s.write(ctx, o, subject, s.decidePackage(cmd))
		}
	}
	if err == nil {
		err = replayOf(res, "PaymentRecorded")
	}
	if err != nil {
		return pay, p, false, err
	}
	p = domain.Fold(res.History)
	if len(res.Appended) == 0 {
		pay, _ = p.PaymentByReceipt(trimmedRef("receipt", req.Receipt))
		return pay, p, false, nil
	}
	pay, _ = p.PaymentByID(res.Appended[0].Event.(domain.PaymentRecorded).PaymentID)
	return pay, p, true, nil
}

// receiptTaken decides what a taken receipt number means: nil if it was
// taken by this very payment (same package and amount), else the conflict.
func receiptTaken(id uuid.UUID, req paymentRequest, taken *eventstore.ClaimTakenError) error {
	if c, ok := taken.Existing.Event.(domain.ReceiptClaimed); ok && c.PackageID == id && c.Amount.Equal(req.Amount) {
		return nil
	}
	other := ""
	if c, ok := taken.Existing.Event.(domain.ReceiptClaimed); ok {
		other = " (package " + c.PackageID.String() + ", " + c.Amount.String() + ")"
	}
	return domain.FieldErrorf(domain.CodeDuplicateReceipt, "receipt", "receipt %s was already used for another payment%s", req.Receipt, other)
}

// redeemVisit deducts a visit of package id. created is false when the
// repair order had already deducted this service: red is then that first
// redemption.
func (s *Server) redeemVisit(ctx context.Context, o op, id uuid.UUID, req redeemRequest) (red domain.Redemption, p domain.Package, created bool, err error) {
	res, err := s.write(ctx, o, s.ledger.Subjects().Package(id.String()), s.decidePackage(domain.Redeem{
		RedemptionID: newID(), Service: req.Service, RepairOrder: req.RepairOrder, Mileage: req.Mileage,
	}))
	if err == nil {
		err = replayOf(res, "VisitRedeemed")
	}
	if err != nil {
		return red, p, false, err
	}
	p = domain.Fold(res.History)
	if len(res.Appended) == 0 {
		red, _ = p.RedemptionFor(trimmedRef("repair_order", req.RepairOrder), req.Service)
		return red, p, false, nil
	}
	red, _ = p.RedemptionByID(res.Appended[0].Event.(domain.VisitRedeemed).RedemptionID)
	return red, p, true, nil
}

// refundPackageFor refunds package id by its plan's policy.
func (s *Server) refundPackageFor(ctx context.Context, o op, id uuid.UUID, req refundRequest) (domain.Package, error) {
	res, err := s.write(ctx, o, s.ledger.Subjects().Package(id.String()),
		s.decidePackage(domain.RefundPackage{Method: req.Method, Reason: req.Reason}))
	if err == nil && res.Replayed {
		// A refund after breakage starts with BreakageReversed.
		last := res.Appended[len(res.Appended)-1]
		if last.Type != "PackageRefunded" {
			err = domain.Errorf(domain.CodeIdempotencyConflict, "this Idempotency-Key was already used for a %s", last.Type)
		}
	}
	if err != nil {
		return domain.Package{}, err
	}
	return domain.Fold(res.History), nil
}

// packageCommand runs a command on package id whose answer is the package;
// eventType is the event it appends, to tell a replayed key of another
// command.
func (s *Server) packageCommand(ctx context.Context, o op, id uuid.UUID, cmd domain.Command, eventType string) (domain.Package, error) {
	res, err := s.write(ctx, o, s.ledger.Subjects().Package(id.String()), s.decidePackage(cmd))
	if err == nil {
		err = replayOf(res, eventType)
	}
	if err != nil {
		return domain.Package{}, err
	}
	return domain.Fold(res.History), nil
}

// definePlanFor defines a plan.
func (s *Server) definePlanFor(ctx context.Context, o op, req planRequest) (domain.PlanState, error) {
	plan, err := domain.NewPlan(domain.PlanSpec(req))
	if err != nil {
		return domain.PlanState{}, err
	}
	res, err := s.write(ctx, o, s.ledger.Subjects().Plan(plan.Code), func(hist []domain.Envelope) (eventstore.Change, error) {
		evs, err := domain.DefinePlan(foldPlan(hist), plan)
		return eventstore.Change{Events: evs}, err
	})
	if err == nil {
		err = replayOf(res, "PlanDefined")
	}
	if err != nil {
		return domain.PlanState{}, err
	}
	return foldPlan(res.History), nil
}

// retirePlanFor retires plan code: no new sales.
func (s *Server) retirePlanFor(ctx context.Context, o op, code, reason string) (domain.PlanState, error) {
	if err := domain.CheckPlanCode(code); err != nil {
		return domain.PlanState{}, domain.Errorf(domain.CodePlanNotFound, "no plan %q", truncateText(code, 40))
	}
	res, err := s.write(ctx, o, s.ledger.Subjects().Plan(code), func(hist []domain.Envelope) (eventstore.Change, error) {
		evs, err := domain.RetirePlan(foldPlan(hist), code, reason)
		return eventstore.Change{Events: evs}, err
	})
	if err == nil {
		err = replayOf(res, "PlanRetired")
	}
	if err != nil {
		return domain.PlanState{}, err
	}
	return foldPlan(res.History), nil
}

// packageByID is package id from the read models.
func (s *Server) packageByID(ctx context.Context, id uuid.UUID) (domain.Package, error) {
	if err := s.ready(ctx); err != nil {
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
