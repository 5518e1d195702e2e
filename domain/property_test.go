package domain_test

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// seedFlag fixes the seed of TestPackage_RandomHistories, to rerun a failure:
//
//	go test ./domain -run '^TestPackage_RandomHistories$' -count=1 -seed=N
var seedFlag = flag.String("seed", "", "seed of TestPackage_RandomHistories (default: $PACKLEDGER_SEED, else the clock)")

func propertySeed(t *testing.T) uint64 {
	t.Helper()
	s := *seedFlag
	if s == "" {
		s = os.Getenv("PACKLEDGER_SEED")
	}
	if s == "" {
		return uint64(time.Now().UnixNano())
	}
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, "-seed and PACKLEDGER_SEED take an unsigned integer")
	return v
}

func rerunHint(seed uint64) string {
	return fmt.Sprintf("seed %d; rerun with: go test ./domain -run '^TestPackage_RandomHistories$' -count=1 -v -seed=%d (or PACKLEDGER_SEED=%d)", seed, seed, seed)
}

// TestPackage_RandomHistories runs thousands of random command sequences over
// random plans, a few packages at a time and interleaved, applies every event
// that Decide returns, and after every single event checks the invariant of
// DESIGN.md §4 on the package and on the sum over all packages. Beside the
// invariant it checks the outcome of each command against the rules (which
// error, which events), so a rule that silently stops holding fails here too.
func TestPackage_RandomHistories(t *testing.T) {
	seed := propertySeed(t)
	packages := 5000
	if testing.Short() {
		packages = 500
	}
	t.Logf("%s", rerunHint(seed))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED: %s", rerunHint(seed))
		}
	})

	s := &randomHistories{
		t:     t,
		seed:  seed,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		count: map[string]int{},
		start: time.Date(2026, 1, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600)),
	}
	const poolSize = 8
	var pool []*livePackage
	var finished []domain.Balances
	started := time.Now()
	for sold := 0; sold < packages || len(pool) > 0; {
		for len(pool) < poolSize && sold < packages {
			pool = append(pool, s.sell())
			sold++
		}
		i := s.rng.IntN(len(pool))
		l := pool[i]
		s.step(l)
		if l.pkg.Status == domain.StatusRefunded || l.steps >= l.maxSteps {
			if l.pkg.Status == domain.StatusRefunded {
				s.afterRefund(l)
			}
			finished = append(finished, l.pkg.Balances())
			pool[i] = pool[len(pool)-1]
			pool = pool[:len(pool)-1]
		}
	}

	// The running total must be the plain sum of the final balances.
	var sum domain.Balances
	for _, b := range finished {
		sum = sum.Add(b)
	}
	require.Equal(t, sum.Paid.String(), s.total.Paid.String(), rerunHint(seed))
	require.Equal(t, sum.Liability.String(), s.total.Liability.String(), rerunHint(seed))
	require.NoError(t, sum.Check(), rerunHint(seed))

	// Every kind of command, and every refusal the rules name, must have
	// happened, or this test could pass while testing nothing.
	required := []string{
		"sell/ok", "sell/plan_retired", "sell/concurrent_update",
		"pay/ok", "pay/activated", "pay/repeat", "pay/overpayment", "pay/duplicate_receipt", "pay/package_not_active",
		"void/ok", "void/ok_active", "void/visits_redeemed", "void/payment_already_voided", "void/payment_not_found", "void/package_not_active",
		"redeem/ok", "redeem/ok_used_up", "redeem/repeat", "redeem/ok_same_order_other_service",
		"redeem/redemption_already_reversed", "redeem/unknown_service", "redeem/no_visits_left", "redeem/package_not_active",
		"reverse/ok", "reverse/ok_used_up", "reverse/ok_expired", "reverse/redemption_already_reversed", "reverse/redemption_not_found",
		"refund/ok_not_started", "refund/ok_free_look", "refund/ok_pro_rata", "refund/ok_list_price",
		"refund/ok_expired", "refund/ok_after_breakage", "refund/package_used_up", "refund/package_not_active",
		"expire/ok", "expire/none",
		"breakage/ok", "breakage/package_not_expired", "breakage/breakage_already_recognized",
	}
	for _, k := range required {
		require.Positive(t, s.count[k], "%q never happened in %d packages; %s", k, packages, rerunHint(seed))
	}
	keys := make([]string, 0, len(s.count))
	for k := range s.count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, s.count[k])
	}
	t.Logf("%d packages, %d commands, %d events in %v; totals: paid %s, voided %s, recognized %s, refunded %s, breakage %s, liability %s",
		packages, s.commands, s.events, time.Since(started).Round(time.Millisecond),
		s.total.Paid, s.total.Voided, s.total.Recognized, s.total.Refunded, s.total.Breakage, s.total.Liability)
	t.Logf("outcomes:%s", b.String())
}

type randomHistories struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	start time.Time
	total domain.Balances // over every package, kept after every event
	// rollForward is the liability of all packages as the roll-forward of
	// §4 computes it from the events, not from the packages' balances.
	rollForward domain.Money
	count       map[string]int
	packages    int
	commands    int
	events      int
}

type livePackage struct {
	n        int
	pkg      domain.Package
	seq      uint64
	now      time.Time // this package's fake clock; never goes back
	steps    int
	maxSteps int
	serial   int // for receipt and repair-order numbers
	trace    []traceStep
}

type traceStep struct {
	at  time.Time
	cmd domain.Command
	evs []domain.Event
	err error
}

var (
	propServices   = []string{"oil_change", "inspection", "tire_rotation", "brake_fluid", "ac_cleaning", "wheel_alignment"}
	propListPrices = []string{"333.33", "0.01", "0.10", "0.03", "33.33", "480.00", "199.99", "1234.56", "7.77", "99999.99"}
	vinAlphabet    = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
)

// failf stops the test with the seed, how to rerun, and the package's
// history so far.
func (s *randomHistories) failf(l *livePackage, format string, args ...any) {
	s.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "package #%d after %d steps: ", l.n, l.steps)
	fmt.Fprintf(&b, format, args...)
	b.WriteString("\nits history:\n")
	for i, st := range l.trace {
		fmt.Fprintf(&b, "  %3d %s %T%+v\n", i, st.at.Format(time.RFC3339), st.cmd, st.cmd)
		if st.err != nil {
			fmt.Fprintf(&b, "        refused: %v\n", st.err)
		}
		for _, e := range st.evs {
			fmt.Fprintf(&b, "        %T%+v\n", e, e)
		}
	}
	fmt.Fprintf(&b, "state: status %s price %s paid %s voided %s recognized %s refunded %s breakage %s liability %s\n",
		l.pkg.Status, l.pkg.Price, l.pkg.Paid, l.pkg.Voided, l.pkg.Recognized, l.pkg.Refunded, l.pkg.Breakage, l.pkg.Liability)
	require.FailNow(s.t, b.String(), rerunHint(s.seed))
}

func (s *randomHistories) uuid() uuid.UUID {
	var u uuid.UUID
	binary.LittleEndian.PutUint64(u[:8], s.rng.Uint64())
	binary.LittleEndian.PutUint64(u[8:], s.rng.Uint64())
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func (s *randomHistories) chance(n int) bool { return s.rng.IntN(n) == 0 }

// decide decides cmd on the package at its clock and applies what comes
// back. A refusal must come with no events and a rule's code.
func (s *randomHistories) decide(l *livePackage, cmd domain.Command) (domain.Package, []domain.Event, error) {
	s.t.Helper()
	s.commands++
	before := l.pkg
	evs, err := domain.Decide(l.pkg, cmd, l.now)
	l.trace = append(l.trace, traceStep{at: l.now, cmd: cmd, evs: evs, err: err})
	if err != nil {
		if len(evs) != 0 {
			s.failf(l, "refused with %v but returned %d events", err, len(evs))
		}
		if domain.ErrorCode(err) == domain.CodeInternal {
			s.failf(l, "refused with an error that is not a domain error: %v", err)
		}
		return before, nil, err
	}
	for _, e := range evs {
		s.apply(l, e)
	}
	return before, evs, nil
}

func actorOf(e domain.Event) domain.Actor {
	switch e.(type) {
	case domain.PackageSold, domain.VisitRedeemed:
		return domain.Actor{ID: "adv1", Role: domain.RoleAdvisor}
	case domain.PaymentRecorded, domain.PackageActivated:
		return domain.Actor{ID: "cash1", Role: domain.RoleCashier}
	case domain.PackageExpired:
		return domain.Actor{ID: "sweep", Role: domain.RoleSystem}
	}
	return domain.Actor{ID: "mgr1", Role: domain.RoleManager}
}

// apply folds one event and checks everything that must hold after any
// event, on this package and on the sum over all packages.
func (s *randomHistories) apply(l *livePackage, e domain.Event) {
	s.t.Helper()
	before := l.pkg
	old := before.Balances()
	l.seq++
	l.pkg = domain.Apply(l.pkg, domain.Envelope{
		ID: s.uuid(), Type: e.EventType(), Schema: domain.SchemaVersion, Dealer: "demo", Store: "S1",
		Aggregate: l.pkg.ID.String(), BusinessTime: l.now, RecordedAt: l.now, Actor: actorOf(e),
		Event: e, Seq: l.seq,
	})
	s.events++
	s.total = addDelta(s.total, old, l.pkg.Balances())
	p := &l.pkg

	// §4's roll-forward, from the events alone: opening (0) + payments −
	// voids − recognized + reversals − refunds − breakage = closing.
	flow := liabilityFlow(before, e)
	s.rollForward = s.rollForward.Add(flow)
	if !p.Liability.Sub(before.Liability).Equal(flow) {
		s.failf(l, "after %T: liability moved by %s, its flows say %s", e, p.Liability.Sub(before.Liability), flow)
	}
	if !s.rollForward.Equal(s.total.Liability) {
		s.failf(l, "after %T: roll-forward closes at %s, the liability of all packages is %s", e, s.rollForward, s.total.Liability)
	}

	if err := domain.CheckInvariant(*p); err != nil {
		s.failf(l, "after %T: invariant: %v", e, err)
	}
	if p.Liability.IsNegative() {
		s.failf(l, "after %T: liability %s is negative", e, p.Liability)
	}
	if p.Seq != l.seq {
		s.failf(l, "after %T: seq %d, want %d", e, p.Seq, l.seq)
	}
	var sum, unused domain.Money
	used := 0
	for _, u := range p.Units {
		sum = sum.Add(u.Value)
		if u.RedemptionID == nil {
			unused = unused.Add(u.Value)
		} else {
			used++
		}
	}
	if !sum.Equal(p.Price) {
		s.failf(l, "after %T: unit values sum to %s, not the price %s", e, sum, p.Price)
	}
	live := 0
	for _, r := range p.Redemptions {
		if !r.Reversed {
			live++
			if u := p.Units[r.Unit]; u.RedemptionID == nil || *u.RedemptionID != r.ID {
				s.failf(l, "after %T: redemption %s is not on its unit %d", e, r.ID, r.Unit)
			}
		}
	}
	if live != used {
		s.failf(l, "after %T: %d units used but %d redemptions not reversed", e, used, live)
	}
	switch p.Status {
	case domain.StatusActive, domain.StatusUsedUp:
		// §4: for an active package, liability = Σ values of unused units.
		if !p.Breakage.IsZero() || !p.Liability.Equal(unused) {
			s.failf(l, "after %T: %s with liability %s and breakage %s, unused units worth %s", e, p.Status, p.Liability, p.Breakage, unused)
		}
	case domain.StatusRefunded:
		if !p.Liability.IsZero() || !p.Breakage.IsZero() {
			s.failf(l, "after %T: refunded with liability %s, breakage %s", e, p.Liability, p.Breakage)
		}
	}
	if err := s.total.Check(); err != nil {
		s.failf(l, "after %T: the sum over all packages: %v", e, err)
	}
}

// liabilityFlow is what one event adds to the liability, by the roll-forward
// of DESIGN.md §4.
func liabilityFlow(before domain.Package, e domain.Event) domain.Money {
	var zero domain.Money
	switch e := e.(type) {
	case domain.PaymentRecorded:
		return e.Amount // payments
	case domain.PaymentVoided:
		if pay, ok := before.PaymentByID(e.PaymentID); ok && !pay.Voided {
			return zero.Sub(pay.Amount) // voids
		}
	case domain.VisitRedeemed:
		return zero.Sub(e.Value) // recognized
	case domain.RedemptionReversed:
		if r, ok := before.RedemptionByID(e.RedemptionID); ok && !r.Reversed {
			return r.Value // reversals
		}
	case domain.PackageRefunded:
		return zero.Sub(e.Amount).Sub(e.Recognized) // refunds, and recognized at refund
	case domain.BreakageRecognized:
		return zero.Sub(e.Amount) // breakage
	case domain.BreakageReversed:
		return e.Amount // breakage reversed
	}
	return zero
}

func addDelta(total, old, new domain.Balances) domain.Balances {
	return domain.Balances{
		Paid:       total.Paid.Add(new.Paid).Sub(old.Paid),
		Voided:     total.Voided.Add(new.Voided).Sub(old.Voided),
		Recognized: total.Recognized.Add(new.Recognized).Sub(old.Recognized),
		Refunded:   total.Refunded.Add(new.Refunded).Sub(old.Refunded),
		Breakage:   total.Breakage.Add(new.Breakage).Sub(old.Breakage),
		Liability:  total.Liability.Add(new.Liability).Sub(old.Liability),
	}
}

// expectCode checks that a command was refused with code, or, for
// code "", that it was carried out.
func (s *randomHistories) expectCode(l *livePackage, what string, err error, code string) {
	s.t.Helper()
	if got := domain.ErrorCode(err); got != code {
		if code == "" {
			code = "success"
		}
		s.failf(l, "%s: got %v, want %s", what, err, code)
	}
}

func (s *randomHistories) expectEvents(l *livePackage, what string, evs []domain.Event, types ...string) {
	s.t.Helper()
	ok := len(evs) == len(types)
	for i := 0; ok && i < len(evs); i++ {
		ok = evs[i].EventType() == types[i]
	}
	if !ok {
		got := make([]string, len(evs))
		for i, e := range evs {
			got[i] = e.EventType()
		}
		s.failf(l, "%s: events %v, want %v", what, got, types)
	}
}

func centsOf(m domain.Money) int64 { return m.Decimal().Shift(2).IntPart() }

// randomPlan makes a valid plan with odd prices and random terms.
func (s *randomHistories) randomPlan(n int) domain.Plan {
	s.t.Helper()
	r := s.rng
	perm := r.Perm(len(propServices))
	var ents []domain.Entitlement
	var totalCents int64
	for i := 0; i < 1+r.IntN(4); i++ {
		var lp domain.Money
		if r.IntN(2) == 0 {
			lp = domain.MustMoney(propListPrices[r.IntN(len(propListPrices))])
		} else {
			lp = domain.Cents(1 + r.Int64N(300000))
		}
		c := 1 + r.IntN(6)
		ents = append(ents, domain.Entitlement{Service: propServices[perm[i]], Count: c, ListPrice: lp})
		totalCents += int64(c) * centsOf(lp)
	}
	spec := domain.PlanSpec{
		Code: "P" + strconv.Itoa(n), Name: "Plan " + strconv.Itoa(n), Entitlements: ents,
		ValidityMonths: 1 + r.IntN(36),
		RefundPolicy:   []domain.RefundPolicy{"", domain.RefundProRata, domain.RefundListPrice}[r.IntN(3)],
	}
	var wantPrice int64
	if r.IntN(2) == 0 {
		// A rate with one to four decimals, in (0, 1].
		places := 1 + r.IntN(4)
		den := int64(1)
		for i := 0; i < places; i++ {
			den *= 10
		}
		num := 1 + r.Int64N(den)
		var rs string
		if num == den {
			rs = "1"
		} else {
			rs = fmt.Sprintf("0.%0*d", places, num)
		}
		rate := domain.MustRate(rs)
		spec.Rate = &rate
		wantPrice = (totalCents*num + den/2) / den // half-up, in integers
		if wantPrice == 0 {
			spec.Rate = nil // a price that rounds to 0.00 is refused; give a price instead
		}
	}
	if spec.Rate == nil {
		if r.IntN(5) == 0 {
			wantPrice = 1 + r.Int64N(min(totalCents, 300))
		} else {
			wantPrice = 1 + r.Int64N(totalCents)
		}
		price := domain.Cents(wantPrice)
		spec.Price = &price
	}
	switch r.IntN(4) {
	case 0: // no fee
	case 1:
		fee := domain.MustRate("0.10")
		spec.CancellationFeeRate = &fee
	default:
		fee := domain.MustRate(fmt.Sprintf("0.%04d", r.IntN(10000)))
		spec.CancellationFeeRate = &fee
	}
	switch r.IntN(10) {
	case 0:
		spec.FreeLookDays = 365
	case 1, 2, 3, 4:
		spec.FreeLookDays = 1 + r.IntN(30)
	}
	plan, err := domain.NewPlan(spec)
	require.NoError(s.t, err, "plan %+v; %s", spec, rerunHint(s.seed))
	require.Equal(s.t, domain.Cents(totalCents).String(), plan.ListTotal.String(), "list total; %s", rerunHint(s.seed))
	require.Equal(s.t, domain.Cents(wantPrice).String(), plan.Price.String(), "price of %+v; %s", spec, rerunHint(s.seed))
	var sum int64
	for _, u := range plan.Units {
		v := centsOf(u.Value)
		sum += v
		// Within a cent of the exact share, never above the list price.
		exact := float64(wantPrice) * float64(centsOf(u.ListPrice)) / float64(totalCents)
		if v < 0 || v > centsOf(u.ListPrice) || float64(v) < exact-1.0001 || float64(v) > exact+1.0001 {
			require.Failf(s.t, "unit value", "unit %d of %+v is worth %s; %s", u.Index, spec, u.Value, rerunHint(s.seed))
		}
	}
	require.Equal(s.t, wantPrice, sum, "unit values must sum to the price; %s", rerunHint(s.seed))
	return plan
}

func (s *randomHistories) sell() *livePackage {
	s.t.Helper()
	r := s.rng
	s.packages++
	l := &livePackage{
		n:        s.packages,
		now:      s.start.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))),
		maxSteps: 3 + r.IntN(70),
	}
	plan := s.randomPlan(l.n)
	vin := make([]byte, 17)
	for i := range vin {
		vin[i] = vinAlphabet[r.IntN(len(vinAlphabet))]
	}
	cmd := domain.Sell{
		PackageID: s.uuid(),
		Plan:      domain.PlanState{Plan: plan, Status: domain.PlanStatusActive},
		Customer:  domain.Customer{ID: "C" + strconv.Itoa(r.IntN(500)), Name: "Customer", Phone: fmt.Sprintf("138%08d", r.IntN(1e8))},
		Vehicle:   domain.Vehicle{VIN: string(vin), Plate: fmt.Sprintf("沪A%05d", r.IntN(1e5)), Model: "Lavida"},
		Advisor:   "adv1",
	}
	if s.chance(20) {
		retired := cmd
		retired.Plan.Status = domain.PlanStatusRetired
		_, _, err := s.decide(l, retired)
		s.expectCode(l, "sell of a retired plan", err, domain.CodePlanRetired)
		s.count["sell/plan_retired"]++
	}
	_, evs, err := s.decide(l, cmd)
	s.expectCode(l, "sell", err, "")
	s.expectEvents(l, "sell", evs, "PackageSold")
	if l.pkg.Status != domain.StatusAwaitingPayment || !l.pkg.Price.Equal(plan.Price) || len(l.pkg.Units) != len(plan.Units) {
		s.failf(l, "sold package is %s at %s with %d units", l.pkg.Status, l.pkg.Price, len(l.pkg.Units))
	}
	s.count["sell/ok"]++
	if s.chance(20) {
		_, _, err := s.decide(l, cmd)
		s.expectCode(l, "sell again", err, domain.CodeConcurrentUpdate)
		s.count["sell/concurrent_update"]++
	}
	return l
}

// step advances the package's clock and runs one random command, chosen
// with weights that suit the package's status.
func (s *randomHistories) step(l *livePackage) {
	s.t.Helper()
	l.steps++
	r := s.rng
	switch n := r.IntN(100); {
	case n < 70:
		l.now = l.now.Add(time.Duration(r.Int64N(int64(36 * time.Hour))))
	case n < 95:
		l.now = l.now.Add(time.Duration(r.Int64N(int64(10 * 24 * time.Hour))))
	default:
		l.now = l.now.Add(time.Duration(r.Int64N(int64(120 * 24 * time.Hour))))
	}
	p := &l.pkg
	if p.Status == domain.StatusActive && !l.now.Before(*p.ExpiresAt) && s.chance(2) {
		s.expire(l, false) // the sweep
		return
	}
	type action struct {
		w int
		f func()
	}
	var acts []action
	pay := func(m payMode) func() { return func() { s.pay(l, m) } }
	redeem := func(m redeemMode) func() { return func() { s.redeem(l, m) } }
	switch p.Status {
	case domain.StatusAwaitingPayment:
		acts = []action{
			{6, pay(payPartial)}, {5, pay(payFull)}, {1, pay(payOver)}, {1, pay(payRepeat)},
			{2, func() { s.void(l) }}, {1, redeem(redeemFresh)}, {1, func() { s.refund(l) }},
			{1, func() { s.expire(l, false) }}, {1, func() { s.breakage(l) }}, {1, func() { s.reverse(l) }},
		}
	case domain.StatusActive:
		acts = []action{
			{12, redeem(redeemFresh)}, {2, redeem(redeemRepeat)}, {1, redeem(redeemOtherService)}, {1, redeem(redeemUnknownService)},
			{4, func() { s.reverse(l) }}, {2, func() { s.void(l) }}, {1, pay(payOver)}, {1, pay(payRepeat)},
			{2, func() { s.refund(l) }}, {2, func() { s.expire(l, true) }}, {1, func() { s.expire(l, false) }},
			{1, func() { s.breakage(l) }},
		}
	case domain.StatusUsedUp:
		acts = []action{
			{5, func() { s.reverse(l) }}, {2, redeem(redeemFresh)}, {1, redeem(redeemRepeat)},
			{1, func() { s.refund(l) }}, {1, func() { s.void(l) }}, {1, pay(payOver)}, {1, func() { s.expire(l, false) }},
		}
	case domain.StatusExpired:
		acts = []action{
			{4, func() { s.breakage(l) }}, {3, func() { s.refund(l) }}, {3, func() { s.reverse(l) }},
			{1, redeem(redeemFresh)}, {1, redeem(redeemRepeat)}, {1, pay(payPartial)}, {1, func() { s.void(l) }},
			{1, func() { s.expire(l, false) }},
		}
	default:
		s.failf(l, "step on a package that is %q", p.Status)
	}
	total := 0
	for _, a := range acts {
		total += a.w
	}
	k := r.IntN(total)
	for _, a := range acts {
		if k < a.w {
			a.f()
			return
		}
		k -= a.w
	}
}

type payMode int

const (
	payPartial payMode = iota
	payFull
	payOver
	payRepeat
)

func (s *randomHistories) pay(l *livePackage, mode payMode) {
	s.t.Helper()
	r := s.rng
	p := l.pkg
	due := centsOf(p.Price) - centsOf(p.NetPaid())
	l.serial++
	receipt := fmt.Sprintf("R-%d-%d", l.n, l.serial)
	var amount int64
	repeatOf := -1
	switch mode {
	case payPartial:
		amount = 1
		if due > 1 {
			amount = 1 + r.Int64N(due-1)
			if s.chance(3) {
				amount = 1 + r.Int64N(min(due-1, 100))
			}
		}
	case payFull:
		amount = max(due, 1)
	case payOver:
		amount = due + 1 + r.Int64N(100000)
	case payRepeat:
		if len(p.Payments) == 0 {
			s.pay(l, payPartial)
			return
		}
		repeatOf = r.IntN(len(p.Payments))
		receipt = p.Payments[repeatOf].Receipt
		amount = centsOf(p.Payments[repeatOf].Amount)
		if s.chance(3) {
			amount++
			repeatOf = -2 // same receipt, another amount
		}
	}
	method := domain.PaymentMethods[r.IntN(len(domain.PaymentMethods))]
	cmd := domain.RecordPayment{PaymentID: s.uuid(), Amount: domain.Cents(amount), Method: method, Receipt: receipt}
	before, evs, err := s.decide(l, cmd)
	switch {
	case repeatOf >= 0 && p.Payments[repeatOf].Voided:
		// A voided payment's receipt stays used: a new payment needs a new one.
		s.expectCode(l, "receipt of a voided payment", err, domain.CodeDuplicateReceipt)
		s.count["pay/duplicate_receipt"]++
	case repeatOf >= 0:
		// The same receipt and amount again: the first payment stands.
		s.expectCode(l, "repeated payment", err, "")
		s.expectEvents(l, "repeated payment", evs)
		s.count["pay/repeat"]++
	case repeatOf == -2:
		s.expectCode(l, "receipt reused for another amount", err, domain.CodeDuplicateReceipt)
		s.count["pay/duplicate_receipt"]++
	case before.Status == domain.StatusActive || before.Status == domain.StatusUsedUp:
		s.expectCode(l, "payment of a paid package", err, domain.CodeOverpayment)
		s.count["pay/overpayment"]++
	case before.Status != domain.StatusAwaitingPayment:
		s.expectCode(l, "payment of a "+string(before.Status)+" package", err, domain.CodePackageNotActive)
		s.count["pay/package_not_active"]++
	case amount > due:
		s.expectCode(l, "overpayment", err, domain.CodeOverpayment)
		s.count["pay/overpayment"]++
	case amount == due:
		s.expectCode(l, "last payment", err, "")
		s.expectEvents(l, "last payment", evs, "PaymentRecorded", "PackageActivated")
		a := evs[1].(domain.PackageActivated)
		want := addMonthsClamped(l.now, p.Plan.ValidityMonths)
		if !a.ActivatedAt.Equal(l.now) || !a.ExpiresAt.Equal(want) || l.pkg.Status != domain.StatusActive {
			s.failf(l, "activated at %v until %v (status %s), want %v until %v", a.ActivatedAt, a.ExpiresAt, l.pkg.Status, l.now, want)
		}
		s.count["pay/activated"]++
	default:
		s.expectCode(l, "partial payment", err, "")
		s.expectEvents(l, "partial payment", evs, "PaymentRecorded")
		if l.pkg.Status != domain.StatusAwaitingPayment {
			s.failf(l, "partial payment left the package %s", l.pkg.Status)
		}
		s.count["pay/ok"]++
	}
}

// addMonthsClamped is the validity rule written out independently of the
// domain: the same day n months on, or the last day of that month.
func addMonthsClamped(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	ym := int(y)*12 + int(m) - 1 + n
	ty, tm := ym/12, time.Month(ym%12+1)
	last := time.Date(ty, tm+1, 0, 12, 0, 0, 0, time.UTC).Day()
	if d > last {
		d = last
	}
	hh, mm, ss := t.Clock()
	return time.Date(ty, tm, d, hh, mm, ss, t.Nanosecond(), t.Location())
}

func (s *randomHistories) void(l *livePackage) {
	s.t.Helper()
	p := l.pkg
	var pay domain.Payment
	found := len(p.Payments) > 0 && !s.chance(15)
	if found {
		pay = p.Payments[s.rng.IntN(len(p.Payments))]
		for _, x := range p.Payments { // prefer one that is not voided yet
			if !x.Voided && s.chance(2) {
				pay = x
			}
		}
	} else {
		pay.ID = s.uuid()
	}
	before, _, err := s.decide(l, domain.VoidPayment{PaymentID: pay.ID, Reason: "wrong amount keyed"})
	liveRedemptions := 0
	for _, r := range before.Redemptions {
		if !r.Reversed {
			liveRedemptions++
		}
	}
	switch {
	case !found:
		s.expectCode(l, "void of an unknown payment", err, domain.CodePaymentNotFound)
		s.count["void/payment_not_found"]++
	case pay.Voided:
		s.expectCode(l, "second void", err, domain.CodePaymentVoided)
		s.count["void/payment_already_voided"]++
	case before.Status != domain.StatusAwaitingPayment && before.Status != domain.StatusActive && before.Status != domain.StatusUsedUp:
		s.expectCode(l, "void on a "+string(before.Status)+" package", err, domain.CodePackageNotActive)
		s.count["void/package_not_active"]++
	case liveRedemptions > 0:
		s.expectCode(l, "void after redemptions", err, domain.CodeVisitsRedeemed)
		s.count["void/visits_redeemed"]++
	default:
		s.expectCode(l, "void", err, "")
		if l.pkg.Status != domain.StatusAwaitingPayment || l.pkg.ActivatedAt != nil || l.pkg.ExpiresAt != nil ||
			!l.pkg.NetPaid().Equal(before.NetPaid().Sub(pay.Amount)) {
			s.failf(l, "after the void of %s: %s, net paid %s", pay.Amount, l.pkg.Status, l.pkg.NetPaid())
		}
		if before.Status == domain.StatusActive {
			s.count["void/ok_active"]++
		} else {
			s.count["void/ok"]++
		}
	}
}

type redeemMode int

const (
	redeemFresh redeemMode = iota
	redeemRepeat
	redeemOtherService
	redeemUnknownService
)

func (s *randomHistories) redeem(l *livePackage, mode redeemMode) {
	s.t.Helper()
	r := s.rng
	p := l.pkg
	ents := p.Plan.Entitlements
	service := ents[r.IntN(len(ents))].Service
	l.serial++
	ro := fmt.Sprintf("RO-%d-%d", l.n, l.serial)
	switch mode {
	case redeemRepeat, redeemOtherService:
		if len(p.Redemptions) == 0 {
			break
		}
		prev := p.Redemptions[r.IntN(len(p.Redemptions))]
		ro = prev.RepairOrder
		if mode == redeemRepeat {
			service = prev.Service
		} else {
			// One repair order may deduct each service once: take another.
			for _, e := range ents {
				if _, ok := p.RedemptionFor(ro, e.Service); !ok {
					service = e.Service
				}
			}
		}
	case redeemUnknownService:
		service = "car_wash"
	}
	cmd := domain.Redeem{RedemptionID: s.uuid(), Service: service, RepairOrder: ro, Mileage: r.IntN(300000)}
	before, evs, err := s.decide(l, cmd)
	prev, seen := before.RedemptionFor(ro, service)
	lowest := -1
	for _, u := range before.Units {
		if u.Service == service && u.RedemptionID == nil {
			lowest = u.Index
			break
		}
	}
	switch {
	case seen && prev.Reversed:
		s.expectCode(l, "repeat of a reversed deduction", err, domain.CodeRedemptionReversed)
		s.count["redeem/redemption_already_reversed"]++
	case seen:
		// The same repair order and service again: no second deduction.
		s.expectCode(l, "repeated deduction", err, "")
		s.expectEvents(l, "repeated deduction", evs)
		s.count["redeem/repeat"]++
	case !before.Plan.HasService(service):
		s.expectCode(l, "unknown service", err, domain.CodeUnknownService)
		s.count["redeem/unknown_service"]++
	case before.Status == domain.StatusUsedUp:
		s.expectCode(l, "redeem on a used-up package", err, domain.CodeNoVisitsLeft)
		s.count["redeem/no_visits_left"]++
	case before.Status != domain.StatusActive || !l.now.Before(*before.ExpiresAt):
		s.expectCode(l, "redeem on a "+string(before.Status)+" package", err, domain.CodePackageNotActive)
		s.count["redeem/package_not_active"]++
	case lowest < 0:
		s.expectCode(l, "redeem with none of the service left", err, domain.CodeNoVisitsLeft)
		s.count["redeem/no_visits_left"]++
	default:
		s.expectCode(l, "redeem", err, "")
		s.expectEvents(l, "redeem", evs, "VisitRedeemed")
		v := evs[0].(domain.VisitRedeemed)
		if v.Unit != lowest || !v.Value.Equal(before.Units[lowest].Value) || v.Service != service {
			s.failf(l, "redeemed unit %d worth %s, want the lowest unused %s unit %d", v.Unit, v.Value, service, lowest)
		}
		if !l.pkg.Liability.Equal(before.Liability.Sub(v.Value)) {
			s.failf(l, "liability %s after redeeming %s from %s", l.pkg.Liability, v.Value, before.Liability)
		}
		switch {
		case l.pkg.Status == domain.StatusUsedUp:
			s.count["redeem/ok_used_up"]++
		case mode == redeemOtherService:
			s.count["redeem/ok_same_order_other_service"]++
		default:
			s.count["redeem/ok"]++
		}
	}
}

func (s *randomHistories) reverse(l *livePackage) {
	s.t.Helper()
	p := l.pkg
	var red domain.Redemption
	found := len(p.Redemptions) > 0 && !s.chance(15)
	if found {
		red = p.Redemptions[s.rng.IntN(len(p.Redemptions))]
		for _, x := range p.Redemptions {
			if !x.Reversed && s.chance(2) {
				red = x
			}
		}
	} else {
		red.ID = s.uuid()
	}
	before, evs, err := s.decide(l, domain.ReverseRedemption{RedemptionID: red.ID, Reason: "wrong package"})
	switch {
	case !found:
		s.expectCode(l, "reversal of an unknown redemption", err, domain.CodeRedemptionNotFound)
		s.count["reverse/redemption_not_found"]++
	case red.Reversed:
		s.expectCode(l, "second reversal", err, domain.CodeRedemptionReversed)
		s.count["reverse/redemption_already_reversed"]++
	case before.Status != domain.StatusActive && before.Status != domain.StatusUsedUp && before.Status != domain.StatusExpired:
		s.expectCode(l, "reversal on a "+string(before.Status)+" package", err, domain.CodePackageNotActive)
		s.count["reverse/package_not_active"]++
	default:
		s.expectCode(l, "reversal", err, "")
		s.expectEvents(l, "reversal", evs, "RedemptionReversed")
		want := before.Status
		if want == domain.StatusUsedUp {
			want = domain.StatusActive
		}
		if l.pkg.Status != want || l.pkg.Units[red.Unit].RedemptionID != nil || !l.pkg.Liability.Equal(before.Liability.Add(red.Value)) {
			s.failf(l, "after reversing unit %d (%s): status %s, liability %s", red.Unit, red.Value, l.pkg.Status, l.pkg.Liability)
		}
		switch before.Status {
		case domain.StatusUsedUp:
			s.count["reverse/ok_used_up"]++
		case domain.StatusExpired:
			s.count["reverse/ok_expired"]++
		default:
			s.count["reverse/ok"]++
		}
	}
}

func (s *randomHistories) refund(l *livePackage) {
	s.t.Helper()
	method := domain.PaymentMethods[s.rng.IntN(len(domain.PaymentMethods))]
	quote := domain.QuoteRefund(l.pkg, l.now)
	before, evs, err := s.decide(l, domain.RefundPackage{Method: method, Reason: "customer request"})
	switch before.Status {
	case domain.StatusUsedUp:
		s.expectCode(l, "refund of a used-up package", err, domain.CodePackageUsedUp)
		s.count["refund/package_used_up"]++
		return
	case domain.StatusRefunded:
		s.expectCode(l, "second refund", err, domain.CodePackageNotActive)
		s.count["refund/package_not_active"]++
		return
	}
	s.expectCode(l, "refund of a "+string(before.Status)+" package", err, "")
	if before.Breakage.IsPositive() {
		s.expectEvents(l, "refund after breakage", evs, "BreakageReversed", "PackageRefunded")
		if b := evs[0].(domain.BreakageReversed); !b.Amount.Equal(before.Breakage) {
			s.failf(l, "breakage reversed %s of %s", b.Amount, before.Breakage)
		}
		s.count["refund/ok_after_breakage"]++
	} else {
		s.expectEvents(l, "refund", evs, "PackageRefunded")
	}
	got := evs[len(evs)-1].(domain.PackageRefunded)
	if !got.Amount.Equal(quote.Amount) || !got.Fee.Equal(quote.Fee) || !got.Base.Equal(quote.Base) ||
		!got.Recognized.Equal(quote.Recognized) || got.Policy != quote.Policy || got.Method != method {
		s.failf(l, "refund %+v differs from its quote %+v", got, quote)
	}
	owed := before.Liability.Add(before.Breakage)
	if got.Amount.IsNegative() || got.Fee.IsNegative() || got.Recognized.IsNegative() ||
		!got.Amount.Add(got.Fee).Equal(got.Base) || got.Base.Cmp(owed) > 0 ||
		!got.Amount.Add(got.Recognized).Equal(owed) {
		s.failf(l, "refund %+v of a package owing %s", got, owed)
	}
	switch got.Policy {
	case "not_started", "free_look":
		if !got.Fee.IsZero() || !got.Amount.Equal(before.NetPaid()) {
			s.failf(l, "%s refund %+v, want everything paid (%s) back with no fee", got.Policy, got, before.NetPaid())
		}
	default:
		if got.Policy != string(before.Plan.RefundPolicy) {
			s.failf(l, "refund policy %q, plan says %q", got.Policy, before.Plan.RefundPolicy)
		}
		if want := got.Base.MulRateHalfUp(before.Plan.CancellationFeeRate); !got.Fee.Equal(want) {
			s.failf(l, "fee %s, want %s", got.Fee, want)
		}
	}
	if before.Status == domain.StatusExpired {
		s.count["refund/ok_expired"]++
	} else {
		s.count["refund/ok_"+got.Policy]++
	}
}

// expire decides Expire; with jump it first moves the clock past the
// package's expires_at.
func (s *randomHistories) expire(l *livePackage, jump bool) {
	s.t.Helper()
	if jump && l.pkg.ExpiresAt != nil {
		at := l.pkg.ExpiresAt.Add(time.Duration(s.rng.Int64N(int64(10 * 24 * time.Hour))))
		if at.After(l.now) {
			l.now = at
		}
	}
	before, evs, err := s.decide(l, domain.Expire{})
	s.expectCode(l, "expire", err, "")
	if before.Status == domain.StatusActive && !l.now.Before(*before.ExpiresAt) {
		s.expectEvents(l, "expire", evs, "PackageExpired")
		if e := evs[0].(domain.PackageExpired); !e.ExpiredAt.Equal(*before.ExpiresAt) {
			s.failf(l, "expired at %v, expires_at is %v", e.ExpiredAt, *before.ExpiresAt)
		}
		// The money stays owed.
		if l.pkg.Status != domain.StatusExpired || !l.pkg.Liability.Equal(before.Liability) {
			s.failf(l, "expired: status %s, liability %s (was %s)", l.pkg.Status, l.pkg.Liability, before.Liability)
		}
		s.count["expire/ok"]++
		return
	}
	s.expectEvents(l, "expire of a "+string(before.Status)+" package", evs)
	s.count["expire/none"]++
}

func (s *randomHistories) breakage(l *livePackage) {
	s.t.Helper()
	before, evs, err := s.decide(l, domain.RecognizeBreakage{Reason: "breakage policy"})
	switch {
	case before.Status != domain.StatusExpired:
		s.expectCode(l, "breakage on a "+string(before.Status)+" package", err, domain.CodePackageNotExpired)
		s.count["breakage/package_not_expired"]++
	case !before.Liability.IsPositive() && before.Breakage.IsPositive():
		s.expectCode(l, "second breakage", err, domain.CodeBreakageRecognized)
		s.count["breakage/breakage_already_recognized"]++
	case !before.Liability.IsPositive():
		s.expectCode(l, "breakage of nothing", err, domain.CodeNothingToRecover)
		s.count["breakage/nothing_to_recognize"]++
	default:
		s.expectCode(l, "breakage", err, "")
		s.expectEvents(l, "breakage", evs, "BreakageRecognized")
		if b := evs[0].(domain.BreakageRecognized); !b.Amount.Equal(before.Liability) || !l.pkg.Liability.IsZero() {
			s.failf(l, "breakage of %s with liability %s, left %s", b.Amount, before.Liability, l.pkg.Liability)
		}
		s.count["breakage/ok"]++
	}
}

// afterRefund checks that a refunded package takes nothing more.
func (s *randomHistories) afterRefund(l *livePackage) {
	s.t.Helper()
	l.now = l.now.Add(time.Hour)
	s.pay(l, payPartial)
	s.redeem(l, redeemFresh)
	s.refund(l)
	s.breakage(l)
	s.expire(l, false)
	s.void(l)
	s.reverse(l)
}
