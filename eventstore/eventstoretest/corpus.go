package eventstoretest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// Record is one stored message of a corpus, as the stream would hold it.
type Record struct {
	Subject string
	Body    []byte
	Hash    string
	Sig     string // empty when the corpus is unsigned
	KeyID   string
}

// Header is the record's headers as the store writes them.
func (r Record) Header() nats.Header {
	h := nats.Header{}
	h.Set(eventstore.HeaderHash, r.Hash)
	if r.Sig != "" {
		h.Set(eventstore.HeaderSig, r.Sig)
		h.Set(eventstore.HeaderKey, r.KeyID)
	}
	return h
}

// Decode decodes the record as stored at seq, its subject a string of its
// own as a message read from NATS has: what keeps it is charged for it.
func (r Record) Decode(seq uint64) (domain.Envelope, error) {
	return eventstore.Decode(strings.Clone(r.Subject), seq, r.Header(), r.Body)
}

// CorpusConfig shapes a generated history.
type CorpusConfig struct {
	Dealer   string // default "demo"
	Packages int
	Seed     uint64
	// Signer signs every record; nil leaves them unsigned (for measuring
	// what does not depend on signatures).
	Signer *eventstore.Signer
	Start  time.Time // first business time; default 2026-01-01 UTC
}

// Corpus is a realistic history, decided by the domain: two plans of ten
// visits each; every package sold, paid in one or two payments (each
// with its receipt claim) and activated; zero to ten visits redeemed; a
// few reversals, voids and refunds. Records are in stream order from seq 1
// on, each chained to its subject's previous one.
type Corpus struct {
	Records  []Record
	Packages []uuid.UUID
	Events   map[string]int // records per event type
}

// NewCorpus generates a corpus. Its events are the ones the server would
// write for the same commands, business times UTC and increasing.
func NewCorpus(tb testing.TB, cfg CorpusConfig) Corpus {
	tb.Helper()
	g, err := newCorpusGen(cfg)
	if err != nil {
		tb.Fatalf("corpus: %v", err)
	}
	if err := g.run(cfg.Packages); err != nil {
		tb.Fatalf("corpus: %v", err)
	}
	return g.c
}

type corpusGen struct {
	cfg    CorpusConfig
	rng    *rand.Rand
	ids    *rand.ChaCha8
	subj   eventstore.Subjects
	now    time.Time
	prev   map[string]string
	plans  []domain.PlanState
	c      Corpus
	refs   int
	stores []string
}

func newCorpusGen(cfg CorpusConfig) (*corpusGen, error) {
	if cfg.Dealer == "" {
		cfg.Dealer = "demo"
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
	}
	var seed [32]byte
	for i := range 8 {
		seed[i] = byte(cfg.Seed >> (8 * i))
	}
	g := &corpusGen{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), ids: rand.NewChaCha8(seed),
		subj: eventstore.Subjects{Dealer: cfg.Dealer}, now: cfg.Start, prev: map[string]string{},
		c:      Corpus{Events: map[string]int{}},
		stores: []string{"S1", "S2", "S3", "S4", "S5"},
	}
	rate := func(s string) *domain.Rate { r := domain.MustRate(s); return &r }
	specs := []domain.PlanSpec{
		{Code: "TEN", Name: "ten tire rotations", Entitlements: []domain.Entitlement{{Service: "tire_rotation", Count: 10, ListPrice: domain.MustMoney("133.33")}},
			Rate: rate("0.8"), ValidityMonths: 36, RefundPolicy: domain.RefundProRata, CancellationFeeRate: rate("0.10")},
		{Code: "CARE10", Name: "six oil changes and four inspections", Models: []string{"Lavida", "Passat", "Tiguan"},
			Entitlements: []domain.Entitlement{{Service: "oil_change", Count: 6, ListPrice: domain.MustMoney("480.00")}, {Service: "inspection", Count: 4, ListPrice: domain.MustMoney("200.00")}},
			Rate:         rate("0.85"), ValidityMonths: 36, RefundPolicy: domain.RefundListPrice, CancellationFeeRate: rate("0.05"),
			ServiceInterval: &domain.ServiceInterval{Months: 6, KM: 7500}, Gifts: []string{"car wash"}},
	}
	manager := domain.Actor{ID: "mgr1", Role: domain.RoleManager}
	for _, spec := range specs {
		p, err := domain.NewPlan(spec)
		if err != nil {
			return nil, err
		}
		env, err := g.emit(p.Code, g.subj.Plan(p.Code), domain.PlanDefined{Plan: p}, "S1", manager)
		if err != nil {
			return nil, err
		}
		g.plans = append(g.plans, domain.ApplyPlan(domain.PlanState{}, env))
	}
	return g, nil
}

func (g *corpusGen) emit(aggregate, subject string, ev domain.Event, store string, actor domain.Actor) (domain.Envelope, error) {
	data, err := domain.EncodeEvent(ev)
	if err != nil {
		return domain.Envelope{}, err
	}
	env := domain.Envelope{
		ID: uuid.Must(uuid.NewV7FromReader(g.ids)), Type: ev.EventType(), Schema: domain.SchemaVersion,
		Dealer: g.cfg.Dealer, Store: store, Aggregate: aggregate,
		BusinessTime: g.now, RecordedAt: g.now, Actor: actor, Prev: g.prev[subject], Data: data,
	}
	body, hash, err := eventstore.Encode(env)
	if err != nil {
		return domain.Envelope{}, err
	}
	r := Record{Subject: subject, Body: body, Hash: hash}
	if g.cfg.Signer != nil {
		r.Sig, r.KeyID = g.cfg.Signer.Sign(hash)
	}
	g.prev[subject] = hash
	g.c.Records = append(g.c.Records, r)
	g.c.Events[env.Type]++
	env.Event, env.Seq, env.Subject, env.Hash = ev, uint64(len(g.c.Records)), subject, hash
	return env, nil
}

func (g *corpusGen) ref(prefix string) string {
	g.refs++
	return fmt.Sprintf("%s%07d", prefix, g.refs)
}

// do decides cmd on p and records what it decides, claims first.
func (g *corpusGen) do(p *domain.Package, id uuid.UUID, cmd domain.Command, store string, actor domain.Actor) error {
	g.now = g.now.Add(time.Duration(5+g.rng.IntN(40)) * time.Second)
	evs, err := domain.Decide(*p, cmd, g.now)
	if err != nil {
		return fmt.Errorf("%T: %w", cmd, err)
	}
	if pay, ok := cmd.(domain.RecordPayment); ok && len(evs) > 0 {
		claim := domain.ReceiptClaimed{Receipt: pay.Receipt, PackageID: id, PaymentID: pay.PaymentID, Amount: pay.Amount}
		if _, err := g.emit(eventstore.EncodeToken(pay.Receipt), g.subj.Receipt(pay.Receipt), claim, store, actor); err != nil {
			return err
		}
	}
	for _, ev := range evs {
		env, err := g.emit(id.String(), g.subj.Package(id.String()), ev, store, actor)
		if err != nil {
			return err
		}
		*p = domain.Apply(*p, env)
	}
	return nil
}

func (g *corpusGen) newID() uuid.UUID { return uuid.Must(uuid.NewV7FromReader(g.ids)) }

func (g *corpusGen) run(n int) error {
	const vinAlphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
	models := []string{"Lavida", "Passat", "Tiguan"}
	for i := range n {
		store := g.stores[g.rng.IntN(len(g.stores))]
		adv := domain.Actor{ID: fmt.Sprintf("adv%02d", g.rng.IntN(40)), Role: domain.RoleAdvisor}
		cash := domain.Actor{ID: fmt.Sprintf("cash%02d", g.rng.IntN(15)), Role: domain.RoleCashier}
		mgr := domain.Actor{ID: fmt.Sprintf("mgr%d", g.rng.IntN(5)), Role: domain.RoleManager}
		vin := make([]byte, 17)
		for k := range vin {
			vin[k] = vinAlphabet[g.rng.IntN(len(vinAlphabet))]
		}
		id := g.newID()
		g.c.Packages = append(g.c.Packages, id)
		var p domain.Package
		sell := domain.Sell{
			PackageID: id, Plan: g.plans[i%len(g.plans)], Advisor: adv.ID,
			Customer: domain.Customer{ID: fmt.Sprintf("C%07d", g.rng.IntN(n*3/4+1)), Name: "Wang Fang", Phone: fmt.Sprintf("139%08d", g.rng.IntN(100000000))},
			Vehicle: domain.Vehicle{VIN: string(vin), Plate: fmt.Sprintf("沪A%05d", g.rng.IntN(100000)), Model: models[g.rng.IntN(len(models))],
				Registered: fmt.Sprintf("2024-%02d-%02d", 1+g.rng.IntN(12), 1+g.rng.IntN(28))},
		}
		if err := g.do(&p, id, sell, store, adv); err != nil {
			return err
		}
		pay := func(amount domain.Money) error {
			return g.do(&p, id, domain.RecordPayment{PaymentID: g.newID(), Amount: amount, Method: domain.PaymentMethods[g.rng.IntN(len(domain.PaymentMethods))], Receipt: g.ref("R")}, store, cash)
		}
		if g.rng.IntN(5) == 0 {
			first := domain.Cents(50000)
			if err := pay(first); err != nil {
				return err
			}
			if g.rng.IntN(10) == 0 { // keyed wrong: voided and paid again
				if err := g.do(&p, id, domain.VoidPayment{PaymentID: p.Payments[0].ID, Reason: "keyed wrong"}, store, mgr); err != nil {
					return err
				}
				if err := pay(first); err != nil {
					return err
				}
			}
			if err := pay(p.Price.Sub(p.NetPaid())); err != nil {
				return err
			}
		} else if err := pay(p.Price); err != nil {
			return err
		}
		visits := g.rng.IntN(len(p.Units) + 1)
		for range visits {
			u := p.Units[g.rng.IntN(len(p.Units))]
			err := g.do(&p, id, domain.Redeem{RedemptionID: g.newID(), Service: u.Service, RepairOrder: g.ref("RO"), Mileage: 1000 + g.rng.IntN(90000)}, store, adv)
			if err != nil && domain.ErrorCode(err) != domain.CodeNoVisitsLeft {
				return err
			}
		}
		if len(p.Redemptions) > 0 && g.rng.IntN(20) == 0 {
			if err := g.do(&p, id, domain.ReverseRedemption{RedemptionID: p.Redemptions[0].ID, Reason: "wrong car"}, store, mgr); err != nil {
				return err
			}
		}
		if p.Status == domain.StatusActive && g.rng.IntN(30) == 0 {
			if err := g.do(&p, id, domain.RefundPackage{Method: "bank_transfer", Reason: "moved away"}, store, mgr); err != nil {
				return err
			}
		}
	}
	return nil
}

// Publish appends records to the ledger's stream on nc as the store
// would, asynchronously and many in flight: the way to fill a stream with
// a large corpus quickly. It returns once every one is acknowledged.
func Publish(tb testing.TB, nc *nats.Conn, recs []Record) {
	tb.Helper()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		tb.Fatalf("publish: %v", err)
	}
	for i, r := range recs {
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: r.Subject, Header: r.Header(), Data: r.Body}); err != nil {
			tb.Fatalf("publish record %d: %v", i+1, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Minute):
		tb.Fatalf("publish: %d records not acknowledged", js.PublishAsyncPending())
	}
}
