package projections_test

import (
	"math/rand/v2"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Shanghai without relying on the system's zoneinfo

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// Shared helpers of the projection tests: a small in-memory ledger that
// decides commands with the domain on the folded state of each package and
// wraps every event in an envelope with an increasing Seq, as the event
// store would, but without NATS.

var shanghai = mustLocation("Asia/Shanghai")

func mustLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// local is an instant written as a wall-clock time in Asia/Shanghai.
func local(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, shanghai)
}

func money(s string) domain.Money { return domain.MustMoney(s) }

func rate(s string) *domain.Rate {
	r := domain.MustRate(s)
	return &r
}

// requireMoney compares amounts by value: two Money values can be equal as
// amounts and differ as structs (0 and 0.00).
func requireMoney(t testing.TB, want string, got domain.Money, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, want, got.String(), msgAndArgs...)
}

func requireSameMoney(t testing.TB, want, got domain.Money, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, want.String(), got.String(), msgAndArgs...)
}

const dealer = "demo"

var (
	advisor = domain.Actor{ID: "adv1", Role: domain.RoleAdvisor}
	cashier = domain.Actor{ID: "cash1", Role: domain.RoleCashier}
	manager = domain.Actor{ID: "mgr1", Role: domain.RoleManager}
	system  = domain.Actor{ID: "system", Role: domain.RoleSystem}
)

// who is the envelope facts of a command: when, where, by whom, and the
// idempotency key if any.
type who struct {
	at    time.Time
	store string
	actor domain.Actor
	key   string
}

// ledger decides commands and records the envelopes in stream order.
type ledger struct {
	t     testing.TB
	seq   uint64
	envs  []domain.Envelope
	hist  map[uuid.UUID][]domain.Envelope
	state map[uuid.UUID]domain.Package
	plans map[string]domain.PlanState
	model *projections.Model // when set, every envelope is applied as it is recorded
}

func newLedger(t testing.TB, model *projections.Model) *ledger {
	return &ledger{
		t: t, model: model,
		hist:  map[uuid.UUID][]domain.Envelope{},
		state: map[uuid.UUID]domain.Package{},
		plans: map[string]domain.PlanState{},
	}
}

func (l *ledger) emit(aggregate, subject string, e domain.Event, w who) domain.Envelope {
	l.seq++
	env := domain.Envelope{
		ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), Schema: domain.SchemaVersion,
		Dealer: dealer, Store: w.store, Aggregate: aggregate,
		BusinessTime: w.at, RecordedAt: w.at, Actor: w.actor, Key: w.key,
		Event: e, Seq: l.seq, Subject: subject,
	}
	l.envs = append(l.envs, env)
	if l.model != nil {
		l.model.Apply(env)
	}
	return env
}

func (l *ledger) definePlan(p domain.Plan, w who) {
	l.t.Helper()
	evs, err := domain.DefinePlan(l.plans[p.Code], p)
	require.NoError(l.t, err)
	for _, e := range evs {
		env := l.emit(p.Code, "ledger."+dealer+".plans."+p.Code, e, w)
		l.plans[p.Code] = domain.ApplyPlan(l.plans[p.Code], env)
	}
}

func (l *ledger) retirePlan(code, reason string, w who) {
	l.t.Helper()
	evs, err := domain.RetirePlan(l.plans[code], code, reason)
	require.NoError(l.t, err)
	for _, e := range evs {
		env := l.emit(code, "ledger."+dealer+".plans."+code, e, w)
		l.plans[code] = domain.ApplyPlan(l.plans[code], env)
	}
}

// try decides cmd on the folded state of package id at w.at and records
// what it decides; a refusal records nothing.
func (l *ledger) try(id uuid.UUID, cmd domain.Command, w who) ([]domain.Envelope, error) {
	l.t.Helper()
	evs, err := domain.Decide(l.state[id], cmd, w.at)
	if err != nil {
		return nil, err
	}
	var out []domain.Envelope
	for _, e := range evs {
		env := l.emit(id.String(), "ledger."+dealer+".packages."+id.String(), e, w)
		l.hist[id] = append(l.hist[id], env)
		p := domain.Apply(l.state[id], env)
		if err := domain.CheckInvariant(p); err != nil {
			l.t.Fatalf("invariant broken by %s seq %d: %v", env.Type, env.Seq, err)
		}
		l.state[id] = p
		out = append(out, env)
	}
	return out, nil
}

// do is try where a refusal fails the test.
func (l *ledger) do(id uuid.UUID, cmd domain.Command, w who) []domain.Envelope {
	l.t.Helper()
	envs, err := l.try(id, cmd, w)
	require.NoError(l.t, err)
	return envs
}

// folded is the package as domain.Fold leaves its history; it must agree
// with the state kept incrementally.
func (l *ledger) folded(id uuid.UUID) domain.Package {
	return domain.Fold(l.hist[id])
}

type sale struct {
	customer, name, vin, plate, model string
	phone                             string // 13800000000 if empty
}

func (l *ledger) sell(plan string, s sale, w who) uuid.UUID {
	l.t.Helper()
	id := uuid.Must(uuid.NewV7())
	if s.name == "" {
		s.name = "Li Wei"
	}
	if s.phone == "" {
		s.phone = "13800000000"
	}
	if s.model == "" {
		s.model = "Lavida"
	}
	if w.actor.ID == "" {
		w.actor = advisor
	}
	l.do(id, domain.Sell{
		PackageID: id, Plan: l.plans[plan],
		Customer: domain.Customer{ID: s.customer, Name: s.name, Phone: s.phone},
		Vehicle:  domain.Vehicle{VIN: s.vin, Plate: s.plate, Model: s.model},
		Advisor:  w.actor.ID,
	}, w)
	return id
}

func (l *ledger) pay(id uuid.UUID, amount string, method domain.PaymentMethod, receipt string, w who) uuid.UUID {
	l.t.Helper()
	pid := uuid.Must(uuid.NewV7())
	if w.actor.ID == "" {
		w.actor = cashier
	}
	l.do(id, domain.RecordPayment{PaymentID: pid, Amount: money(amount), Method: method, Receipt: receipt}, w)
	return pid
}

func (l *ledger) redeem(id uuid.UUID, service, ro string, w who) uuid.UUID {
	l.t.Helper()
	rid := uuid.Must(uuid.NewV7())
	if w.actor.ID == "" {
		w.actor = advisor
	}
	l.do(id, domain.Redeem{RedemptionID: rid, Service: service, RepairOrder: ro, Mileage: 1000}, w)
	return rid
}

// oilPlan is the worked example of DESIGN.md §4: 6 oil changes at 480.00
// sold at 85% of list, 2448.00, each unit worth 408.00.
func oilPlan(t testing.TB, code string, policy domain.RefundPolicy, validityMonths int) domain.Plan {
	t.Helper()
	p, err := domain.NewPlan(domain.PlanSpec{
		Code: code, Name: "6 oil changes",
		Entitlements:   []domain.Entitlement{{Service: "oil_change", Count: 6, ListPrice: money("480.00")}},
		Rate:           rate("0.85"),
		ValidityMonths: validityMonths, RefundPolicy: policy, CancellationFeeRate: rate("0.10"),
	})
	require.NoError(t, err)
	return p
}

// setupOil defines the worked-example plan OIL6 (pro_rata, 10% fee, 24
// months) on a ledger.
func setupOil(t testing.TB, l *ledger, at time.Time) {
	t.Helper()
	l.definePlan(oilPlan(t, "OIL6", domain.RefundProRata, 24), who{at: at, store: "S1", actor: manager})
}

// commandOdds are the cumulative chances of each command a randomized
// history gives a package in each status; what is left over does nothing.
type commandOdds struct {
	pay, voidAwaiting, refundAwaiting         float64
	redeem, reverse, voidActive, refundActive float64
	reverseUsedUp                             float64
	breakage, refundExpired, reverseExpired   float64
}

// randomCommand picks a command for package p and who gives it: cash,
// mgr and adv are the cashier, manager and advisor at that instant. It
// returns nil when the dice say to leave the package alone.
func randomCommand(rng *rand.Rand, p domain.Package, odds commandOdds, ref func(string) string, cash, mgr, adv who) (domain.Command, who) {
	methods := domain.PaymentMethods
	pick := rng.IntN
	x := rng.Float64()
	switch p.Status {
	case domain.StatusAwaitingPayment:
		due := p.Price.Sub(p.NetPaid())
		switch {
		case x < odds.pay:
			amount := due
			if cents := due.Decimal().Shift(2).IntPart(); cents > 1 && rng.Float64() < 0.4 {
				amount = domain.Cents(1 + rng.Int64N(cents-1))
			}
			return domain.RecordPayment{PaymentID: uuid.New(), Amount: amount, Method: methods[pick(len(methods))], Receipt: ref("R")}, cash
		case x < odds.voidAwaiting && len(p.Payments) > 0:
			return domain.VoidPayment{PaymentID: p.Payments[pick(len(p.Payments))].ID, Reason: "keyed wrong"}, mgr
		case x < odds.refundAwaiting:
			return domain.RefundPackage{Method: methods[pick(len(methods))], Reason: "changed mind"}, mgr
		}
	case domain.StatusActive:
		switch {
		case x < odds.redeem:
			svc := p.Units[pick(len(p.Units))].Service
			return domain.Redeem{RedemptionID: uuid.New(), Service: svc, RepairOrder: ref("RO"), Mileage: pick(200000)}, adv
		case x < odds.reverse && len(p.Redemptions) > 0:
			return domain.ReverseRedemption{RedemptionID: p.Redemptions[pick(len(p.Redemptions))].ID, Reason: "wrong car"}, mgr
		case x < odds.voidActive && len(p.Payments) > 0:
			return domain.VoidPayment{PaymentID: p.Payments[pick(len(p.Payments))].ID, Reason: "keyed wrong"}, mgr
		case x < odds.refundActive:
			return domain.RefundPackage{Method: methods[pick(len(methods))], Reason: "moved away"}, mgr
		}
	case domain.StatusUsedUp:
		if x < odds.reverseUsedUp && len(p.Redemptions) > 0 {
			return domain.ReverseRedemption{RedemptionID: p.Redemptions[pick(len(p.Redemptions))].ID, Reason: "wrong car"}, mgr
		}
	case domain.StatusExpired:
		switch {
		case x < odds.breakage:
			return domain.RecognizeBreakage{Reason: "manager's estimate"}, mgr
		case x < odds.refundExpired:
			return domain.RefundPackage{Method: methods[pick(len(methods))], Reason: "claimed after expiry"}, mgr
		case x < odds.reverseExpired && len(p.Redemptions) > 0:
			return domain.ReverseRedemption{RedemptionID: p.Redemptions[pick(len(p.Redemptions))].ID, Reason: "wrong car"}, mgr
		}
	}
	return nil, who{}
}
