package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// The bench's data: package histories decided by the domain, as a dealer's
// tills would have made them, signed and chained by eventstore.BulkAppend
// so that the ledger's own readers accept every event.

// life is what happens to one package after its sale.
type life struct {
	payments int  // 1, or 2 for a deposit and the rest
	visits   int  // redeemed, at most the plan's
	reverse  bool // the last visit given back
	refund   bool // refunded at the end
}

// lifeOf varies lives over k the way a dealer's book does: most packages
// paid at once, a third in two parts; zero to eight visits used; a visit
// given back now and then; one in ten refunded.
func lifeOf(k int) life {
	l := life{payments: 1 + boolInt(k%3 == 0), visits: k % 9}
	l.reverse = l.visits > 0 && k%13 == 0
	// lives with more visits than a plan holds use it up
	l.refund = k%10 == 0
	return l
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var benchStores = []string{"main", "east", "west"}

// packageImport decides package k's commands with the domain, from its
// sale at sold on, gap apart, and returns its history for BulkAppend.
func packageImport(subjects eventstore.Subjects, k int, plan domain.PlanState, l life, sold time.Time, gap time.Duration) (eventstore.Import, error) {
	id := uuid.New()
	store := benchStores[k%len(benchStores)]
	actor := func(role domain.Role, n int) eventstore.Meta {
		return eventstore.Meta{Store: store, Actor: domain.Actor{ID: fmt.Sprintf("%s-%d", role, n), Role: role}}
	}
	advisor, cashier, manager := actor(domain.RoleAdvisor, k%12), actor(domain.RoleCashier, k%4), actor(domain.RoleManager, 1)
	type step struct {
		meta eventstore.Meta
		cmd  domain.Command
	}
	steps := []step{{advisor, domain.Sell{PackageID: id, Plan: plan, Advisor: advisor.Actor.ID,
		Customer: domain.Customer{ID: fmt.Sprintf("C%07d", k), Name: "王芳", Phone: "13800138000"},
		Vehicle:  domain.Vehicle{VIN: fmt.Sprintf("LSVAU2180N%07d", k%10_000_000), Plate: fmt.Sprintf("沪A%05d", k%100_000), Model: "Lavida"}}}}
	price := plan.Plan.Price
	parts := []domain.Money{price}
	if l.payments == 2 {
		parts = []domain.Money{domain.MustMoney("1000.00"), price.Sub(domain.MustMoney("1000.00"))}
	}
	for i, amount := range parts {
		steps = append(steps, step{cashier, domain.RecordPayment{PaymentID: uuid.New(), Amount: amount,
			Method: domain.PaymentMethods[(k+i)%len(domain.PaymentMethods)], Receipt: fmt.Sprintf("R%d-%d", k, i)}})
	}
	visits := min(l.visits, len(plan.Plan.Units))
	var last uuid.UUID
	for v := 0; v < visits; v++ {
		last = uuid.New()
		steps = append(steps, step{advisor, domain.Redeem{RedemptionID: last, Service: "oil_change",
			RepairOrder: fmt.Sprintf("RO%d-%d", k, v), Mileage: 5000 * (v + 1)}})
	}
	if l.reverse {
		steps = append(steps, step{manager, domain.ReverseRedemption{RedemptionID: last, Reason: "entered on the wrong package"}})
	}
	// A package used up has nothing left to refund.
	if l.refund && (visits < len(plan.Plan.Units) || l.reverse) {
		steps = append(steps, step{manager, domain.RefundPackage{Method: "bank_transfer", Reason: "customer moved away"}})
	}
	im := eventstore.Import{Subject: subjects.Package(id.String())}
	var p domain.Package
	for i, s := range steps {
		at := sold.Add(time.Duration(i) * gap)
		evs, err := domain.Decide(p, s.cmd, at)
		if err != nil {
			return eventstore.Import{}, fmt.Errorf("package %d, %T: %w", k, s.cmd, err)
		}
		for _, ev := range evs {
			p = domain.Apply(p, domain.Envelope{Event: ev, BusinessTime: at, Actor: s.meta.Actor, Store: store})
		}
		im.Commands = append(im.Commands, eventstore.ImportCommand{Meta: s.meta, At: at, Change: subjects.PackageChange(id, evs)})
	}
	return im, nil
}

// importMessages counts the messages an import appends.
func importMessages(im eventstore.Import) int {
	n := 0
	for _, c := range im.Commands {
		n += len(c.Change.Events) + len(c.Change.Claims)
	}
	return n
}

// benchPlan is the demo plan of the given code: OIL10, ten oil changes,
// is the one the write scenarios redeem.
func benchPlan(code string) (domain.PlanState, error) {
	plans, err := demoPlans()
	if err != nil {
		return domain.PlanState{}, err
	}
	for _, p := range plans {
		if p.Code == code {
			return domain.PlanState{Plan: p, Status: domain.PlanStatusActive}, nil
		}
	}
	return domain.PlanState{}, fmt.Errorf("no demo plan %s", code)
}

// activePackages sets up n paid, active OIL10 packages for the write
// scenarios, sold an hour ago, and returns their ids and the sequence of
// the last event written.
func activePackages(ctx context.Context, store *eventstore.Store, n int) ([]string, uint64, error) {
	plan, err := benchPlan("OIL10")
	if err != nil {
		return nil, 0, err
	}
	sold := time.Now().Add(-25 * time.Hour)
	ids := make([]string, 0, n)
	var last uint64
	for start := 0; start < n; start += bulkChunk {
		var imports []eventstore.Import
		for k := start; k < min(n, start+bulkChunk); k++ {
			im, err := packageImport(store.Subjects(), k, plan, life{payments: 1}, sold, 24*time.Hour) // paid an hour ago
			if err != nil {
				return nil, 0, err
			}
			imports = append(imports, im)
			ids = append(ids, strings.TrimPrefix(im.Subject, store.Subjects().Package("")))
		}
		res, err := store.BulkAppend(ctx, imports)
		if err != nil {
			return nil, 0, err
		}
		last = res.LastSeq
	}
	return ids, last, nil
}

// bulkChunk is how many packages one BulkAppend call carries: a few
// thousand, so that building one chunk overlaps appending the last.
const bulkChunk = 2000

// dataset is a generated ledger in a data directory, as serve keeps one.
type dataset struct {
	dir      string
	messages uint64 // events and receipt claims: the stream's last sequence
	packages int
}

// genDataset writes at least events messages of package histories (the
// demo plans, lives varied by lifeOf) into a new ledger in dir, with its
// signing key where serve looks for it. Business time runs with the
// stream, as in a ledger that tills write to: package after package over
// the last months, each one's steps close together and before the next
// package's sale. It syncs lazily: the data is only measured, and only
// once it is all written.
func genDataset(ctx context.Context, dir string, events int, log *slog.Logger, progress func(done int)) (dataset, error) {
	node, _, err := benchNode(ctx, dir, log, "--fsync=false")
	if err != nil {
		return dataset{}, err
	}
	defer node.shutdown()
	// At least five messages a package; the last sale a month ago, so
	// that none of the plans' validity (two years or more) has run out
	// and serve's sweep at start writes nothing.
	start := time.Now().AddDate(0, -10, 0)
	apart := min(30*time.Second, 9*30*24*time.Hour/time.Duration(max(events/5, 1)))
	if _, err := seedDemoPlans(ctx, node.store, "main", func() time.Time { return start.Add(-time.Hour) }); err != nil {
		return dataset{}, err
	}
	plans, err := demoPlans()
	if err != nil {
		return dataset{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []eventstore.Import, 1) // the next chunk decided while one is appended
	var genErr error
	go func() {
		defer close(chunks)
		produced := 0
		for k := 0; produced < events; {
			chunk := make([]eventstore.Import, 0, bulkChunk)
			for ; len(chunk) < bulkChunk && produced < events; k++ {
				plan := domain.PlanState{Plan: plans[k%len(plans)], Status: domain.PlanStatusActive}
				// 16 steps at most: sale, two payments, ten visits, a
				// reversal, a refund.
				im, err := packageImport(node.store.Subjects(), k, plan, lifeOf(k), start.Add(time.Duration(k)*apart), apart/16)
				if err != nil {
					genErr = err
					cancel()
					return
				}
				chunk = append(chunk, im)
				produced += importMessages(im)
			}
			select {
			case chunks <- chunk:
			case <-ctx.Done():
				return
			}
		}
	}()
	// One appender, so that the stream keeps business time's order.
	var ds dataset
	done := 0
	for chunk := range chunks {
		res, err := node.store.BulkAppend(ctx, chunk)
		if err != nil {
			cancel()
			for range chunks {
			}
			return dataset{}, fmt.Errorf("generate data: %w", err)
		}
		ds.packages += res.Aggregates
		done += res.Messages
		if progress != nil {
			progress(done)
		}
	}
	if genErr != nil {
		return dataset{}, fmt.Errorf("generate data: %w", genErr)
	}
	if ds.messages, err = node.store.LastSeq(ctx); err != nil {
		return dataset{}, err
	}
	ds.dir = dir
	return ds, nil
}
