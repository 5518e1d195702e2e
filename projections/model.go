package projections

import (
	"cmp"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/internal/cow"
)

// Finding is an event that could not be applied: kept, counted and shown
// by /healthz rather than guessed at.
type Finding struct {
	Package string `json:"package,omitempty"`
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	Problem string `json:"problem"`
}

// Model holds every read model. It is not safe for concurrent use; the
// Runner guards it.
type Model struct {
	tz *time.Location

	packs      cow.Vec[pack]
	byID       *cow.Index[uuid.UUID]
	byVIN      *postings
	byPlate    *postings
	byCustomer *postings
	byPhone    *postings
	sales      *saleKeys // actor id + idempotency key → package sold
	plans      map[string]domain.PlanState
	// plansShared: a snapshot holds plans, so the next write copies it.
	plansShared bool

	strs    interner
	locs    locations
	copies  planCopies
	parties parties
	methods []uint32 // interned name of each payment method, +1 (0: not yet)

	liability *Liability
	close     *DailyClose
	findings  []Finding
	events    int
	lastSeq   uint64
	wide      int // packages kept in the domain's own form
}

// NewModel returns empty read models whose business days are calendar days
// in tz.
func NewModel(tz *time.Location) *Model {
	m := &Model{
		tz:        tz,
		plans:     map[string]domain.PlanState{},
		strs:      newInterner(),
		locs:      newLocations(),
		copies:    newPlanCopies(),
		parties:   parties{ids: map[party]uint32{}},
		methods:   make([]uint32, len(domain.PaymentMethods)),
		liability: NewLiability(tz),
	}
	m.close = newDailyClose(tz, &m.strs)
	m.byID = cow.NewIndex(func(pos int32) uuid.UUID { return m.packs.At(int(pos)).id })
	fieldOf := func(k int) func(pos int32) string {
		return func(pos int32) string { return field(m.packs.At(int(pos)).text, k) }
	}
	m.byVIN, m.byPlate, m.byCustomer = newPostings(fieldOf(fVIN)), newPostings(fieldOf(fPlate)), newPostings(fieldOf(fCustomerID))
	m.byPhone = newPostings(fieldOf(fPhone))
	m.sales = newSaleKeys(fieldOf(fSaleKey))
	return m
}

// Apply folds one decoded event into every model.
func (m *Model) Apply(env domain.Envelope) {
	m.events++
	m.lastSeq = env.Seq
	switch e := env.Event.(type) {
	case domain.PlanDefined, domain.PlanRetired:
		code := planCode(e)
		if m.plansShared {
			m.plans, m.plansShared = maps.Clone(m.plans), false
		}
		m.plans[code] = domain.ApplyPlan(m.plans[code], env)
		return
	case domain.ReceiptClaimed:
		return // a receipt's claim moves no money; the store judges it
	}
	id, err := uuid.Parse(env.Aggregate)
	if err != nil {
		m.Reject(env.Seq, env.Subject, "package event on a subject that is not a package id")
		return
	}
	pos, found := m.byID.GetOrPut(id, int32(m.packs.Len()))
	if !found {
		m.packs.Append(pack{id: id})
	}
	pk := m.packs.At(int(pos))
	if pk.wide() == nil {
		next, mv := *pk, move{}
		if m.compactApply(&next, env, &mv) {
			*m.packs.Mut(int(pos)) = next
			m.moved(env, &next, &mv)
			if _, ok := env.Event.(domain.PackageSold); ok {
				m.index(pos, field(next.text, fVIN), field(next.text, fPlate), field(next.text, fCustomerID),
					field(next.text, fPhone), field(next.text, fSaleKey))
			}
			return
		}
	}
	// The domain's own form: for a package already wide, or one whose
	// history this event takes beyond what the compact form holds.
	before := m.expand(pk)
	after := domain.Apply(before, env)
	mp := m.packs.Mut(int(pos))
	if mp.wide() == nil {
		m.wide++
	}
	r := mp.rare.copy()
	r.wide = &after
	mp.rare = r
	mp.seq = env.Seq
	if sold, ok := env.Event.(domain.PackageSold); ok {
		key := ""
		if env.Key != "" {
			key = saleKey(env.Actor.ID, env.Key)
		}
		m.index(pos, sold.Vehicle.VIN, sold.Vehicle.Plate, sold.Customer.ID, sold.Customer.Phone, key)
	}
	m.liability.Apply(env, before)
	m.close.Apply(env, before)
}

// index files a sale under its VIN, plate, customer, phone and
// idempotency key.
func (m *Model) index(pos int32, vin, plate, customer, phone, key string) {
	m.byVIN.add(vin, pos)
	m.byPlate.add(normPlate(plate), pos)
	m.byCustomer.add(customer, pos)
	m.byPhone.add(normPhone(phone), pos)
	if key != "" {
		m.sales.put(key, pos)
	}
}

// moved records what a compact apply did to the roll-forward and the
// daily close.
func (m *Model) moved(env domain.Envelope, after *pack, mv *move) {
	for i := 0; i < mv.n; i++ {
		if mv.amounts[i] != 0 {
			m.liability.add(env.BusinessTime, mv.kinds[i], mv.amounts[i])
		}
	}
	switch e := env.Event.(type) {
	case domain.PaymentRecorded:
		p := &after.payments[len(after.payments)-1]
		m.close.payment(m.close.dayOf(env.BusinessTime), p.store, p.cashier, m.methodID(p.method), e.Amount)
	case domain.PaymentVoided:
		if p := mv.voided; p != nil {
			m.close.void(m.close.dayOf(env.BusinessTime), p.store, p.cashier, m.methodID(p.method), money(p.amount))
		}
	case domain.PackageRefunded:
		m.close.refund(m.close.dayOf(env.BusinessTime), m.strs.id(env.Store), m.strs.id(string(e.Method)), e.Amount)
	}
}

// methodID is the interned name of a payment method.
func (m *Model) methodID(code uint8) uint32 {
	if m.methods[code] == 0 {
		m.methods[code] = m.strs.id(string(domain.PaymentMethods[code])) + 1
	}
	return m.methods[code] - 1
}

// Reject records an event that cannot be applied.
func (m *Model) Reject(seq uint64, subject, problem string) {
	m.lastSeq = seq
	f := Finding{Seq: seq, Subject: subject, Problem: problem}
	if _, id, ok := strings.Cut(subject, ".packages."); ok {
		f.Package = id
	}
	m.findings = append(m.findings, f)
}

func planCode(e domain.Event) string {
	switch e := e.(type) {
	case domain.PlanDefined:
		return e.Plan.Code
	case domain.PlanRetired:
		return e.Code
	}
	return ""
}

// Package returns one package.
func (m *Model) Package(id uuid.UUID) (domain.Package, bool) {
	pos, ok := m.byID.Get(id)
	if !ok {
		return domain.Package{}, false
	}
	return m.expand(m.packs.At(int(pos))), true
}

// SaleByKey returns the package an actor sold with an idempotency key.
func (m *Model) SaleByKey(actor, key string) (uuid.UUID, bool) {
	pos, ok := m.sales.get(saleKey(actor, key))
	if !ok {
		return uuid.UUID{}, false
	}
	return m.packs.At(int(pos)).id, true
}

// Query selects packages; empty fields match anything.
type Query struct {
	VIN, Plate, Customer string
	// Phone is the customer's phone, in any spacing, with or without +86.
	Phone string
}

// Find returns the packages matching every given field, newest sale first.
func (m *Model) Find(q Query) []domain.Package {
	var sets [][]int32
	if q.VIN != "" {
		sets = append(sets, m.byVIN.get(strings.ToUpper(strings.TrimSpace(q.VIN))))
	}
	if q.Plate != "" {
		sets = append(sets, m.byPlate.get(normPlate(q.Plate)))
	}
	if q.Customer != "" {
		sets = append(sets, m.byCustomer.get(q.Customer))
	}
	if q.Phone != "" {
		// A phone of no digits is no one's.
		sets = append(sets, m.byPhone.get(cmp.Or(normPhone(q.Phone), "\x00")))
	}
	var out []domain.Package
	if len(sets) == 0 {
		out = make([]domain.Package, 0, m.packs.Len())
		for i := range m.packs.Len() {
			out = append(out, m.expand(m.packs.At(i)))
		}
	} else {
		pos := sets[0]
		for _, s := range sets[1:] {
			pos = slices.DeleteFunc(slices.Clone(pos), func(p int32) bool { return !slices.Contains(s, p) })
		}
		out = make([]domain.Package, 0, len(pos))
		for _, p := range pos {
			out = append(out, m.expand(m.packs.At(int(p))))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].SoldAt.Equal(out[j].SoldAt) {
			return out[i].SoldAt.After(out[j].SoldAt)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

// Account is a customer's prepaid account.
type Account struct {
	CustomerID string           `json:"customer_id"`
	Liability  domain.Money     `json:"liability"`
	Packages   []domain.Package `json:"packages"`
}

// Account returns the prepaid account of a customer, and whether the
// customer has any package.
func (m *Model) Account(customer string) (Account, bool) {
	ps := m.Find(Query{Customer: customer})
	a := Account{CustomerID: customer, Packages: ps}
	for _, p := range ps {
		a.Liability = a.Liability.Add(p.Liability)
	}
	return a, len(ps) > 0
}

// Plan returns one plan.
func (m *Model) Plan(code string) (domain.PlanState, bool) {
	p, ok := m.plans[code]
	return p, ok
}

// Plans returns every plan, active first, then by code.
func (m *Model) Plans() []domain.PlanState {
	out := make([]domain.PlanState, 0, len(m.plans))
	for _, p := range m.plans {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Status != out[j].Status {
			return out[i].Status == domain.PlanStatusActive
		}
		return out[i].Plan.Code < out[j].Plan.Code
	})
	return out
}

// Totals sums the balances of every package.
func (m *Model) Totals() domain.Balances {
	var cols [6]sum128
	var odd domain.Balances
	for i := range m.packs.Len() {
		pk := m.packs.At(i)
		if w := pk.wide(); w != nil {
			odd = odd.Add(w.Balances())
			continue
		}
		for k, c := range [6]int64{pk.paid, pk.voided, pk.recognized, pk.refunded, pk.breakage, pk.liability()} {
			cols[k] = cols[k].addCents(c)
		}
	}
	return domain.Balances{
		Paid: cols[0].money(), Voided: cols[1].money(), Recognized: cols[2].money(),
		Refunded: cols[3].money(), Breakage: cols[4].money(), Liability: cols[5].money(),
	}.Add(odd)
}

// Liability returns the roll-forward model.
func (m *Model) Liability() *Liability { return m.liability }

// DailyClose returns the daily-close model.
func (m *Model) DailyClose() *DailyClose { return m.close }

// Findings returns the events that could not be applied.
func (m *Model) Findings() []Finding { return slices.Clone(m.findings) }

// Stats reports how much has been folded.
func (m *Model) Stats() (events int, lastSeq uint64, packages int) {
	return m.events, m.lastSeq, m.packs.Len()
}

// Awaiting returns the packages awaiting payment, of store if it is not
// "", the longest waiting first, at most limit of them, and how many there
// are. It looks at every package (a few milliseconds for half a million):
// the cashier's queue is read by a person, not by a till's every request.
func (m *Model) Awaiting(store string, limit int) ([]domain.Package, int) {
	storeID, known := m.strs.ids[store]
	if store != "" && !known {
		return nil, 0 // no sale was ever made there
	}
	var out []domain.Package
	for i := range m.packs.Len() {
		pk := m.packs.At(i)
		if w := pk.wide(); w != nil {
			if w.Status == domain.StatusAwaitingPayment && (store == "" || w.Store == store) {
				out = append(out, m.expand(pk))
			}
			continue
		}
		// Compact: status and store read without expanding the package.
		if pk.status == stAwaiting && (store == "" || m.parties.list[pk.party].store == storeID) {
			out = append(out, m.expand(pk))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].SoldAt.Equal(out[j].SoldAt) {
			return out[i].SoldAt.Before(out[j].SoldAt)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out[:min(limit, len(out))], len(out)
}

// ExpiryCandidates returns the ids of active packages whose validity ended
// at or before now, and of expired packages whose breakage is due under a
// policy of after months (0: no policy).
func (m *Model) ExpiryCandidates(now time.Time, after int) (expire, breakage []uuid.UUID) {
	for i := range m.packs.Len() {
		pk := m.packs.At(i)
		if pk.wide() != nil {
			p := *pk.wide()
			if expireDue(p, now) {
				expire = append(expire, pk.id)
			} else if breakageDue(p, now, after, m.tz) {
				breakage = append(breakage, pk.id)
			}
			continue
		}
		switch {
		case pk.status == stActive && pk.flags&hasExpires != 0:
			if !now.Before(m.locs.time(pk.expiresAt, pk.evLoc)) {
				expire = append(expire, pk.id)
			}
		case after > 0 && pk.status == stExpired && pk.flags&hasExpired != 0 && pk.liability() > 0:
			if !now.Before(domain.AddMonths(time.Unix(0, pk.expiredAt).In(m.tz), after)) {
				breakage = append(breakage, pk.id)
			}
		}
	}
	return expire, breakage
}

func expireDue(p domain.Package, now time.Time) bool {
	return p.Status == domain.StatusActive && p.ExpiresAt != nil && !now.Before(*p.ExpiresAt)
}

func breakageDue(p domain.Package, now time.Time, after int, tz *time.Location) bool {
	return after > 0 && p.Status == domain.StatusExpired && p.ExpiredAt != nil &&
		p.Liability.IsPositive() && !now.Before(domain.AddMonths(p.ExpiredAt.In(tz), after))
}
