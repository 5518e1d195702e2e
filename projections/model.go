package projections

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
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

	packages   map[uuid.UUID]domain.Package
	byVIN      map[string][]uuid.UUID
	byPlate    map[string][]uuid.UUID
	byCustomer map[string][]uuid.UUID
	sales      map[string]uuid.UUID // actor id + idempotency key → package sold
	plans      map[string]domain.PlanState

	liability *Liability
	close     *DailyClose
	findings  []Finding
	events    int
	lastSeq   uint64
}

// NewModel returns empty read models whose business days are calendar days
// in tz.
func NewModel(tz *time.Location) *Model {
	return &Model{
		tz:         tz,
		packages:   map[uuid.UUID]domain.Package{},
		byVIN:      map[string][]uuid.UUID{},
		byPlate:    map[string][]uuid.UUID{},
		byCustomer: map[string][]uuid.UUID{},
		sales:      map[string]uuid.UUID{},
		plans:      map[string]domain.PlanState{},
		liability:  NewLiability(tz),
		close:      NewDailyClose(tz),
	}
}

// Apply folds one decoded event into every model.
func (m *Model) Apply(env domain.Envelope) {
	m.events++
	m.lastSeq = env.Seq
	switch e := env.Event.(type) {
	case domain.PlanDefined, domain.PlanRetired:
		code := planCode(e)
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
	before := m.packages[id]
	after := domain.Apply(before, env)
	m.packages[id] = after
	if sold, ok := env.Event.(domain.PackageSold); ok {
		m.byVIN[sold.Vehicle.VIN] = append(m.byVIN[sold.Vehicle.VIN], id)
		plate := normPlate(sold.Vehicle.Plate)
		m.byPlate[plate] = append(m.byPlate[plate], id)
		m.byCustomer[sold.Customer.ID] = append(m.byCustomer[sold.Customer.ID], id)
		if env.Key != "" {
			m.sales[saleKey(env.Actor.ID, env.Key)] = id
		}
	}
	m.liability.Apply(env, before)
	m.close.Apply(env, before)
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

func saleKey(actor, key string) string { return actor + "\x00" + key }

// normPlate makes plate look-ups forgiving of case and spaces, as people
// type them at reception.
func normPlate(p string) string {
	return strings.ToUpper(strings.Join(strings.Fields(p), ""))
}

// Package returns one package.
func (m *Model) Package(id uuid.UUID) (domain.Package, bool) {
	p, ok := m.packages[id]
	return p, ok
}

// SaleByKey returns the package an actor sold with an idempotency key.
func (m *Model) SaleByKey(actor, key string) (uuid.UUID, bool) {
	id, ok := m.sales[saleKey(actor, key)]
	return id, ok
}

// Query selects packages; empty fields match anything.
type Query struct {
	VIN, Plate, Customer string
}

// Find returns the packages matching every given field, newest sale first.
func (m *Model) Find(q Query) []domain.Package {
	var sets [][]uuid.UUID
	if q.VIN != "" {
		sets = append(sets, m.byVIN[strings.ToUpper(strings.TrimSpace(q.VIN))])
	}
	if q.Plate != "" {
		sets = append(sets, m.byPlate[normPlate(q.Plate)])
	}
	if q.Customer != "" {
		sets = append(sets, m.byCustomer[q.Customer])
	}
	var ids []uuid.UUID
	if len(sets) == 0 {
		for id := range m.packages {
			ids = append(ids, id)
		}
	} else {
		ids = sets[0]
		for _, s := range sets[1:] {
			ids = slices.DeleteFunc(slices.Clone(ids), func(id uuid.UUID) bool { return !slices.Contains(s, id) })
		}
	}
	out := make([]domain.Package, 0, len(ids))
	for _, id := range ids {
		out = append(out, m.packages[id])
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
	var b domain.Balances
	for _, p := range m.packages {
		b = b.Add(p.Balances())
	}
	return b
}

// Liability returns the roll-forward model.
func (m *Model) Liability() *Liability { return m.liability }

// DailyClose returns the daily-close model.
func (m *Model) DailyClose() *DailyClose { return m.close }

// Findings returns the events that could not be applied.
func (m *Model) Findings() []Finding { return slices.Clone(m.findings) }

// Stats reports how much has been folded.
func (m *Model) Stats() (events int, lastSeq uint64, packages int) {
	return m.events, m.lastSeq, len(m.packages)
}

// ExpiryCandidates returns the ids of active packages whose validity ended
// at or before now, and of expired packages whose breakage is due under a
// policy of after months (0: no policy).
func (m *Model) ExpiryCandidates(now time.Time, after int) (expire, breakage []uuid.UUID) {
	for id, p := range m.packages {
		switch {
		case p.Status == domain.StatusActive && p.ExpiresAt != nil && !now.Before(*p.ExpiresAt):
			expire = append(expire, id)
		case after > 0 && p.Status == domain.StatusExpired && p.ExpiredAt != nil &&
			p.Liability.IsPositive() && !now.Before(domain.AddMonths(p.ExpiredAt.In(m.tz), after)):
			breakage = append(breakage, id)
		}
	}
	return expire, breakage
}
