package projections

import (
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
)

// pack is one package in the read models' compact form: amounts in cents,
// instants in nanoseconds, repeated strings and the plan copy kept once,
// a sale's strings in one string and receipts and repair orders in
// another. It holds exactly what domain.Apply would leave in a Package
// for every history that Decide writes; expand turns it back into one.
//
// A history the compact form cannot hold exactly (a unit redeemed twice,
// an amount beyond int64 cents, an event before the sale…) makes the
// package wide: from then on it is kept as domain.Apply leaves it. None
// that the domain decides does.
//
// A pack is a value in a cow.Vec: what it points to is never changed in
// place (a payment voided copies the payments), so a snapshot taken for a
// checkpoint stays as it was.
type pack struct {
	id   uuid.UUID
	plan *planCopy // with the sale's units and price
	// text is the sale's strings (see fVIN…fRegistered), then the
	// receipt numbers and repair orders that payments and redemptions
	// point into: one allocation for all of a package's text.
	text string

	paid, voided, recognized, refunded, breakage int64 // cents

	soldAt, activatedAt, expiresAt, expiredAt int64 // unix ns, valid as flags say

	payments    []payment
	redemptions []redemption
	rare        *rare
	seq         uint64

	party uint32 // interned dealer, store, vehicle model and advisor of the sale
	// The zones of the times from the envelopes (the sale's, the
	// payments', the redemptions') and of the times the events name
	// (activation, expiry): one each, as the domain writes them.
	envLoc, evLoc uint8
	status        uint8
	flags         uint8
}

// party is who and where a sale was: many sales share one.
type party struct{ dealer, store, model, advisor uint32 }

// Which of a pack's instants are set.
const (
	hasActivated = 1 << iota
	hasExpires
	hasExpired
	hasEvLoc // evLoc is set
)

// The statuses, in the order their codes have.
const (
	stNone uint8 = iota
	stAwaiting
	stActive
	stUsedUp
	stExpired
	stRefunded
	stCount
)

var statusNames = [stCount]domain.Status{"", domain.StatusAwaitingPayment, domain.StatusActive, domain.StatusUsedUp, domain.StatusExpired, domain.StatusRefunded}

// rare holds what few packages have; replaced, never changed in place.
type rare struct {
	wide    *domain.Package
	refund  *domain.Refund
	reasons map[uuid.UUID]string // void and reversal reasons, by payment or redemption id
}

type payment struct {
	id      uuid.UUID
	amount  int64
	at      int64  // in the pack's envLoc
	ref     uint32 // receipt: text[ref : ref+refLen]
	cashier uint32
	store   uint32
	method  uint8 // index in domain.PaymentMethods
	refLen  uint8
	voided  bool
}

type redemption struct {
	id       uuid.UUID
	at       int64  // in the pack's envLoc
	ro       uint32 // repair order: text[ro : ro+roLen]
	mileage  int32
	advisor  uint32
	unit     uint16
	roLen    uint8
	reversed bool
}

// methodCode is the index of a payment method in domain.PaymentMethods.
func methodCode(m domain.PaymentMethod) (uint8, bool) {
	for i, x := range domain.PaymentMethods {
		if x == m {
			return uint8(i), true
		}
	}
	return 0, false
}

func (pk *pack) wide() *domain.Package {
	if pk.rare == nil {
		return nil
	}
	return pk.rare.wide
}

// liability follows from the other columns: domain.Apply moves it with
// each of them, by the same amount.
func (pk *pack) liability() int64 {
	return pk.paid - pk.voided - pk.recognized - pk.refunded - pk.breakage
}

// redeemed counts the redemptions not reversed, each holding its own unit.
func (pk *pack) redeemed() int {
	n := 0
	for i := range pk.redemptions {
		if !pk.redemptions[i].reversed {
			n++
		}
	}
	return n
}

// move is what one event does to the roll-forward and the daily close,
// worked out from the package before it, as MovementsOf and
// DailyClose.Apply do from a domain.Package.
type move struct {
	kinds   [2]uint8
	amounts [2]int64
	n       int
	// voided is the payment a void took back, for the daily close.
	voided *payment
}

func (m *move) add(kind uint8, c int64) {
	m.kinds[m.n], m.amounts[m.n] = kind, c
	m.n++
}

// compactApply folds env into next, a copy of the pack before it, as
// domain.Apply would. It returns false, leaving the model as it was, if
// the result is not one the compact form holds exactly.
func (m *Model) compactApply(next *pack, env domain.Envelope, mv *move) bool {
	if next.status == stNone {
		if sold, ok := env.Event.(domain.PackageSold); ok {
			return m.compactSale(next, env, sold)
		}
		return false // an event before the sale: the domain keeps it anyway
	}
	switch e := env.Event.(type) {
	case domain.PackageSold:
		return false // sold twice
	case domain.PaymentRecorded:
		c, ok := centsOf(e.Amount)
		if !ok {
			return false
		}
		if next.paid, ok = addCents(next.paid, c); !ok {
			return false
		}
		for i := range next.payments {
			if next.payments[i].id == e.PaymentID {
				return false // a void would void both
			}
		}
		at, ok := m.locs.stampIn(env.BusinessTime, next.envLoc)
		if !ok {
			return false
		}
		method, ok := methodCode(e.Method)
		if !ok {
			return false
		}
		ref, n, ok := appendRef(next, e.Receipt)
		if !ok {
			return false
		}
		p := payment{id: e.PaymentID, amount: c, at: at, ref: ref, refLen: n,
			cashier: m.strs.id(env.Actor.ID), store: m.strs.id(env.Store), method: method}
		next.payments = appendExact(next.payments, p)
		mv.add(mvPayments, c)
	case domain.PaymentVoided:
		for i := range next.payments {
			if next.payments[i].id != e.PaymentID || next.payments[i].voided {
				continue
			}
			var ok bool
			if next.voided, ok = addCents(next.voided, next.payments[i].amount); !ok {
				return false
			}
			before := next.payments[i]
			next.payments = cloneExact(next.payments)
			next.payments[i].voided = true
			next.rare = next.rare.withReason(e.PaymentID, e.Reason)
			mv.add(mvVoids, before.amount)
			mv.voided = &before
		}
		if next.status == stActive {
			// Not fully paid any more: validity starts again at the next activation.
			next.status = stAwaiting
			next.flags &^= hasActivated | hasExpires
		}
	case domain.PackageActivated:
		a, ok1 := m.eventStamp(next, e.ActivatedAt)
		x, ok2 := m.eventStamp(next, e.ExpiresAt)
		if !ok1 || !ok2 {
			return false
		}
		next.status = stActive
		next.activatedAt, next.expiresAt = a, x
		next.flags |= hasActivated | hasExpires
	case domain.VisitRedeemed:
		u := e.Unit
		pc := next.plan
		if u < 0 || u >= len(pc.units) || e.Service != pc.units[u].Service || e.Mileage < math.MinInt32 || e.Mileage > math.MaxInt32 {
			return false
		}
		if v, ok := centsOf(e.Value); !ok || v != pc.values[u] {
			return false // the value is the unit's, as Decide writes it
		}
		for i := range next.redemptions {
			r := &next.redemptions[i]
			if r.id == e.RedemptionID || (!r.reversed && int(r.unit) == u) {
				return false // one id twice, or a unit redeemed twice
			}
		}
		var ok bool
		if next.recognized, ok = addCents(next.recognized, pc.values[u]); !ok {
			return false
		}
		at, ok := m.locs.stampIn(env.BusinessTime, next.envLoc)
		if !ok {
			return false
		}
		ro, n, ok := appendRef(next, e.RepairOrder)
		if !ok {
			return false
		}
		next.redemptions = appendExact(next.redemptions, redemption{id: e.RedemptionID, at: at, ro: ro, roLen: n,
			unit: uint16(u), mileage: int32(e.Mileage), advisor: m.strs.id(env.Actor.ID)})
		mv.add(mvRecognized, pc.values[u])
		if next.status == stActive && next.redeemed() == len(pc.units) {
			next.status = stUsedUp
		}
	case domain.RedemptionReversed:
		for i := range next.redemptions {
			if next.redemptions[i].id != e.RedemptionID || next.redemptions[i].reversed {
				continue
			}
			v := next.plan.values[next.redemptions[i].unit]
			next.recognized -= v // no overflow: it was added
			next.redemptions = cloneExact(next.redemptions)
			next.redemptions[i].reversed = true
			next.rare = next.rare.withReason(e.RedemptionID, e.Reason)
			mv.add(mvReversals, v)
		}
		if next.status == stUsedUp {
			next.status = stActive
		}
	case domain.PackageRefunded:
		a, ok1 := centsOf(e.Amount)
		r, ok2 := centsOf(e.Recognized)
		var ok3, ok4 bool
		next.refunded, ok3 = addCents(next.refunded, a)
		next.recognized, ok4 = addCents(next.recognized, r)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return false
		}
		next.status = stRefunded
		rr := next.rare.copy()
		rr.refund = &domain.Refund{
			Amount: e.Amount, Fee: e.Fee, Recognized: e.Recognized, Base: e.Base,
			Policy: e.Policy, Method: e.Method, Reason: e.Reason, RefundedAt: env.BusinessTime,
		}
		next.rare = rr
		mv.add(mvRefunds, a)
		mv.add(mvRecognized, r)
	case domain.PackageExpired:
		x, ok := m.eventStamp(next, e.ExpiredAt)
		if !ok {
			return false
		}
		next.status = stExpired
		next.expiredAt = x
		next.flags |= hasExpired
	case domain.BreakageRecognized:
		c, ok := centsOf(e.Amount)
		if !ok {
			return false
		}
		if next.breakage, ok = addCents(next.breakage, c); !ok {
			return false
		}
		mv.add(mvBreakage, c)
	case domain.BreakageReversed:
		c, ok := centsOf(e.Amount)
		if !ok || c == math.MinInt64 {
			return false
		}
		if next.breakage, ok = addCents(next.breakage, -c); !ok {
			return false
		}
		mv.add(mvBreakage, -c)
	}
	if overflows(next) {
		return false
	}
	next.seq = env.Seq
	return true
}

// overflows reports whether the liability, which expand computes from the
// columns, would not fit.
func overflows(pk *pack) bool {
	l := sumOf(pk.paid).sub(sumOf(pk.voided)).sub(sumOf(pk.recognized)).sub(sumOf(pk.refunded)).sub(sumOf(pk.breakage))
	return !((l.hi == 0 && l.lo <= math.MaxInt64) || (l.hi == -1 && l.lo > math.MaxInt64))
}

// eventStamp is a time an event names, in the pack's evLoc, which the
// first such time sets.
func (m *Model) eventStamp(pk *pack, t time.Time) (int64, bool) {
	if pk.flags&hasEvLoc == 0 {
		ns, loc, ok := m.locs.stamp(t)
		pk.evLoc = loc
		pk.flags |= hasEvLoc
		return ns, ok
	}
	return m.locs.stampIn(t, pk.evLoc)
}

func (m *Model) compactSale(next *pack, env domain.Envelope, e domain.PackageSold) bool {
	if len(e.Units) > math.MaxUint16 {
		return false
	}
	pc, ok := m.copies.of(e.Plan, e.Units, e.Price, env.Data)
	if !ok {
		return false
	}
	at, loc, ok := m.locs.stamp(env.BusinessTime)
	if !ok {
		return false
	}
	var key string
	if env.Key != "" {
		key = saleKey(env.Actor.ID, env.Key)
	}
	var fields [textFields]string
	fields[fVIN], fields[fCustomerID], fields[fPlate], fields[fSaleKey] = e.Vehicle.VIN, e.Customer.ID, e.Vehicle.Plate, key
	fields[fCustomerName], fields[fPhone], fields[fRegistered] = e.Customer.Name, e.Customer.Phone, e.Vehicle.Registered
	size := 0
	for _, f := range fields {
		size += len(f) + 2
	}
	text := make([]byte, 0, size)
	for _, f := range fields {
		text = appendField(text, f)
	}
	next.id = e.PackageID
	next.plan = pc
	next.text = string(text)
	next.party = m.partyOf(party{dealer: m.strs.id(env.Dealer), store: m.strs.id(env.Store), model: m.strs.id(e.Vehicle.Model), advisor: m.strs.id(e.Advisor)})
	next.soldAt, next.envLoc = at, loc
	next.status = stAwaiting
	next.seq = env.Seq
	return true
}

// appendRef adds a receipt or repair-order number to the pack's text.
func appendRef(pk *pack, s string) (off uint32, n uint8, ok bool) {
	if len(s) > math.MaxUint8 || len(pk.text)+len(s) > math.MaxUint32 {
		return 0, 0, false
	}
	off = uint32(len(pk.text))
	pk.text += s
	return off, uint8(len(s)), true
}

// appendExact appends to a copy sized to fit: most packages have a
// handful of payments and redemptions, and a doubling slice would leave
// a third of its room empty.
func appendExact[T any](s []T, x T) []T {
	out := make([]T, len(s)+1)
	copy(out, s)
	out[len(s)] = x
	return out
}

func cloneExact[T any](s []T) []T { return append([]T(nil), s...) }

func (r *rare) copy() *rare {
	if r == nil {
		return &rare{}
	}
	c := *r
	return &c
}

func (r *rare) withReason(id uuid.UUID, reason string) *rare {
	c := r.copy()
	reasons := make(map[uuid.UUID]string, len(c.reasons)+1)
	for k, v := range c.reasons {
		reasons[k] = v
	}
	reasons[id] = reason
	c.reasons = reasons
	return c
}

func (r *rare) reason(id uuid.UUID) string {
	if r == nil {
		return ""
	}
	return r.reasons[id]
}

// expand returns the package as domain.Apply leaves it. What it returns
// shares nothing the model changes: reads copy, so that applying an event
// never has to.
func (m *Model) expand(pk *pack) domain.Package {
	if w := pk.wide(); w != nil {
		return *w // domain.Apply copies what it changes
	}
	if pk.status == stNone {
		return domain.Package{} // about to take its first event
	}
	pc := pk.plan
	str := func(i uint32) string { return m.strs.strs[i] }
	who := m.parties.list[pk.party]
	p := domain.Package{
		ID: pk.id, Dealer: str(who.dealer), Store: str(who.store), Status: statusNames[pk.status],
		Plan: pc.plan,
		Customer: domain.Customer{
			ID: field(pk.text, fCustomerID), Name: field(pk.text, fCustomerName), Phone: field(pk.text, fPhone),
		},
		Vehicle: domain.Vehicle{
			VIN: field(pk.text, fVIN), Plate: field(pk.text, fPlate), Model: str(who.model), Registered: field(pk.text, fRegistered),
		},
		Advisor: str(who.advisor),
		Price:   money(pc.price), Paid: money(pk.paid), Voided: money(pk.voided), Recognized: money(pk.recognized),
		Refunded: money(pk.refunded), Breakage: money(pk.breakage), Liability: money(pk.liability()),
		Units:  make([]domain.Unit, len(pc.units)),
		SoldAt: m.locs.time(pk.soldAt, pk.envLoc),
		Seq:    pk.seq,
	}
	for i, u := range pc.units {
		p.Units[i].UnitSpec = u
	}
	if n := pk.redeemed(); n > 0 {
		ids := make([]uuid.UUID, 0, n)
		for i := range pk.redemptions {
			if r := &pk.redemptions[i]; !r.reversed {
				ids = append(ids, r.id)
				p.Units[r.unit].RedemptionID = &ids[len(ids)-1]
			}
		}
	}
	if len(pk.payments) > 0 {
		p.Payments = make([]domain.Payment, len(pk.payments))
		for i := range pk.payments {
			x := &pk.payments[i]
			p.Payments[i] = domain.Payment{
				ID: x.id, Amount: money(x.amount), Method: domain.PaymentMethods[x.method],
				Receipt: pk.text[x.ref : x.ref+uint32(x.refLen)], Voided: x.voided, VoidReason: pk.rare.reason(x.id),
				RecordedAt: m.locs.time(x.at, pk.envLoc), Cashier: str(x.cashier), Store: str(x.store),
			}
		}
	}
	if len(pk.redemptions) > 0 {
		p.Redemptions = make([]domain.Redemption, len(pk.redemptions))
		for i := range pk.redemptions {
			x := &pk.redemptions[i]
			u := pc.units[x.unit]
			p.Redemptions[i] = domain.Redemption{
				ID: x.id, Unit: int(x.unit), Service: u.Service, Value: u.Value,
				RepairOrder: pk.text[x.ro : x.ro+uint32(x.roLen)], Mileage: int(x.mileage),
				Reversed: x.reversed, ReverseReason: pk.rare.reason(x.id),
				RedeemedAt: m.locs.time(x.at, pk.envLoc), Advisor: str(x.advisor),
			}
		}
	}
	if pk.rare != nil && pk.rare.refund != nil {
		r := *pk.rare.refund
		p.Refund = &r
	}
	if pk.flags&hasActivated != 0 {
		t := m.locs.time(pk.activatedAt, pk.evLoc)
		p.ActivatedAt = &t
	}
	if pk.flags&hasExpires != 0 {
		t := m.locs.time(pk.expiresAt, pk.evLoc)
		p.ExpiresAt = &t
	}
	if pk.flags&hasExpired != 0 {
		t := m.locs.time(pk.expiredAt, pk.evLoc)
		p.ExpiredAt = &t
	}
	return p
}
