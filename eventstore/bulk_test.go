package eventstore_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

// bulkPlan is three oil changes at 85%.
func bulkPlan(t *testing.T) domain.PlanState {
	t.Helper()
	rate := domain.MustRate("0.85")
	p, err := domain.NewPlan(domain.PlanSpec{Code: "OIL3", Name: "3 oil changes",
		Entitlements: []domain.Entitlement{{Service: "oil_change", Count: 3, ListPrice: domain.MustMoney("480.00")}},
		Rate:         &rate, ValidityMonths: 24})
	require.NoError(t, err)
	return domain.PlanState{Plan: p, Status: domain.PlanStatusActive}
}

// packageCommands are a package's life as the domain decides it: sold,
// paid in full (its receipt claimed), then redeemed visits times.
func packageCommands(t *testing.T, st *eventstore.Store, id uuid.UUID, plan domain.PlanState, at time.Time, visits int) []eventstore.ImportCommand {
	t.Helper()
	cmds := []domain.Command{
		domain.Sell{PackageID: id, Plan: plan, Advisor: "u-adv",
			Customer: domain.Customer{ID: "C-1", Name: "Li Wei", Phone: "13800138000"},
			Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A12345", Model: "Lavida"}},
		domain.RecordPayment{PaymentID: uuid.New(), Amount: plan.Plan.Price, Method: "cash", Receipt: "R-" + id.String()},
	}
	for v := 0; v < visits; v++ {
		cmds = append(cmds, domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: fmt.Sprintf("RO-%d", v), Mileage: 1000 * v})
	}
	var (
		p   domain.Package
		out []eventstore.ImportCommand
	)
	for k, cmd := range cmds {
		now := at.Add(time.Duration(k) * time.Hour)
		evs, err := domain.Decide(p, cmd, now)
		require.NoError(t, err)
		for _, ev := range evs {
			p = domain.Apply(p, domain.Envelope{Event: ev, BusinessTime: now})
		}
		out = append(out, eventstore.ImportCommand{Meta: meta, At: now, Change: st.Subjects().PackageChange(id, evs)})
	}
	return out
}

// TestBulkAppend_AsUpdateWould: an imported history reads back as the
// same commands carried out by Update: every event the ledger's own, in
// the same order, with the same headers and the same balances, and the
// package takes further commands.
func TestBulkAppend_AsUpdateWould(t *testing.T) {
	st, nc := eventstoretest.OpenStore(t, "demo")
	ctx := context.Background()
	plan := bulkPlan(t)
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

	viaUpdate := uuid.New()
	for _, c := range packageCommands(t, st, viaUpdate, plan, at, 2) {
		_, err := st.Update(ctx, st.Subjects().Package(viaUpdate.String()), c.Meta, func() time.Time { return c.At },
			func([]domain.Envelope) (eventstore.Change, error) { return c.Change, nil })
		require.NoError(t, err)
	}
	updated, err := st.LastSeq(ctx)
	require.NoError(t, err)

	imported := uuid.New()
	subject := st.Subjects().Package(imported.String())
	res, err := st.BulkAppend(ctx, []eventstore.Import{{Subject: subject, Commands: packageCommands(t, st, imported, plan, at, 2)}})
	require.NoError(t, err)
	require.Equal(t, eventstore.BulkResult{Aggregates: 1, Messages: 6, LastSeq: updated + 6}, res,
		"claim, sale, payment, activation, two visits")

	var problems []string
	n, err := st.Scan(ctx, func(seq uint64, subj string, env domain.Envelope, err error) error {
		if err != nil {
			problems = append(problems, fmt.Sprintf("%d %s: %v", seq, subj, err))
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, res.LastSeq, n)
	require.Empty(t, problems, "every imported event is the ledger's own")

	want, err := st.Load(ctx, st.Subjects().Package(viaUpdate.String()))
	require.NoError(t, err)
	got, err := st.Load(ctx, subject)
	require.NoError(t, err)
	require.Equal(t, types(want), types(got))
	for i := range got {
		require.Equal(t, want[i].BusinessTime, got[i].BusinessTime, "event %d", i)
		require.Equal(t, want[i].Actor, got[i].Actor, "event %d", i)
	}
	wp, gp := domain.Fold(want), domain.Fold(got)
	require.Equal(t, domain.StatusActive, gp.Status)
	require.Equal(t, wp.Balances(), gp.Balances())

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	for i := uint64(1); i <= 6; i++ {
		u, err := stream.GetMsg(ctx, i)
		require.NoError(t, err)
		b, err := stream.GetMsg(ctx, updated+i)
		require.NoError(t, err)
		require.Equal(t, ledgerHeaders(u.Header), ledgerHeaders(b.Header), "the ledger's headers of message %d of the history", i)
	}

	_, err = st.Update(ctx, subject, meta, clock, func(h []domain.Envelope) (eventstore.Change, error) {
		evs, err := domain.Decide(domain.Fold(h), domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO-9"}, clock())
		return eventstore.Change{Events: evs}, err
	})
	require.NoError(t, err, "an imported package takes further commands")
	got, err = st.Load(ctx, subject)
	require.NoError(t, err)
	require.Equal(t, domain.StatusUsedUp, domain.Fold(got).Status)
}

func types(envs []domain.Envelope) []string {
	var out []string
	for _, e := range envs {
		out = append(out, e.Type)
	}
	return out
}

// ledgerHeaders names the ledger's own headers of a message: JetStream's
// differ, a batch's messages carrying their batch and only the first on
// each subject an expected sequence.
func ledgerHeaders(h map[string][]string) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(k, "Ledger-") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestBulkAppend_Batches: imports beyond one batch's size are split into
// batches of whole histories, and all of them land.
func TestBulkAppend_Batches(t *testing.T) {
	st, _ := eventstoretest.OpenStore(t, "demo")
	ctx := context.Background()
	plan := bulkPlan(t)
	var imports []eventstore.Import
	for i := 0; i < 400; i++ {
		id := uuid.New()
		imports = append(imports, eventstore.Import{Subject: st.Subjects().Package(id.String()),
			Commands: packageCommands(t, st, id, plan, clock(), i%4)})
	}
	res, err := st.BulkAppend(ctx, imports)
	require.NoError(t, err)
	require.Equal(t, 400, res.Aggregates)
	require.Greater(t, res.Messages, 2*eventstore.MaxBulkBatch, "more than two batches")
	last, err := st.LastSeq(ctx)
	require.NoError(t, err)
	require.Equal(t, last, res.LastSeq)
	require.Equal(t, uint64(res.Messages), last)
	for _, i := range []int{0, 123, 399} {
		h, err := st.Load(ctx, imports[i].Subject)
		require.NoError(t, err)
		require.Len(t, h, 3+i%4, "import %d", i)
	}
}

// TestBulkAppend_NotNew: a batch holding a subject that is already written
// is refused whole; the batches before it stay.
func TestBulkAppend_NotNew(t *testing.T) {
	st, _ := eventstoretest.OpenStore(t, "demo")
	ctx := context.Background()
	plan := bulkPlan(t)
	existing := uuid.New()
	for _, c := range packageCommands(t, st, existing, plan, clock(), 0)[:1] {
		_, err := st.Update(ctx, st.Subjects().Package(existing.String()), c.Meta, clock,
			func([]domain.Envelope) (eventstore.Change, error) { return c.Change, nil })
		require.NoError(t, err)
	}
	expired := func(id uuid.UUID, n int) eventstore.Import {
		evs := make([]domain.Event, n)
		for i := range evs {
			evs[i] = domain.PackageExpired{ExpiredAt: clock()}
		}
		return eventstore.Import{Subject: st.Subjects().Package(id.String()),
			Commands: []eventstore.ImportCommand{{Meta: meta, At: clock(), Change: eventstore.Change{Events: evs}}}}
	}
	fresh := uuid.New()
	imports := []eventstore.Import{
		expired(uuid.New(), eventstore.MaxBulkBatch), // a batch of its own
		{Subject: st.Subjects().Package(existing.String()), Commands: packageCommands(t, st, existing, plan, clock(), 0)},
		expired(fresh, 1),
	}
	res, err := st.BulkAppend(ctx, imports)
	require.ErrorIs(t, err, eventstore.ErrConflict)
	require.Equal(t, 1, res.Aggregates)
	require.Equal(t, eventstore.MaxBulkBatch, res.Messages)
	h, err := st.Load(ctx, st.Subjects().Package(existing.String()))
	require.NoError(t, err)
	require.Len(t, h, 1, "the existing package is not forked")
	h, err = st.Load(ctx, st.Subjects().Package(fresh.String()))
	require.NoError(t, err)
	require.Empty(t, h, "nothing of the refused batch is stored")
}

// TestBulkAppend_BadInput: what cannot be a new history is refused with
// the reason, and nothing is appended.
func TestBulkAppend_BadInput(t *testing.T) {
	st, _ := eventstoretest.OpenStore(t, "demo")
	ctx := context.Background()
	plan := bulkPlan(t)
	pkg := func(id uuid.UUID) eventstore.Import {
		return eventstore.Import{Subject: st.Subjects().Package(id.String()), Commands: packageCommands(t, st, id, plan, clock(), 1)}
	}
	one := uuid.New()
	twin := pkg(uuid.New())
	twin.Commands = slices.Clone(twin.Commands)
	twin.Commands[1].Change.Claims = pkg(one).Commands[1].Change.Claims // one's receipt
	unclaimed := pkg(uuid.New())
	unclaimed.Commands[1].Change.Claims = nil
	wrongClaim := pkg(uuid.New())
	wrongClaim.Commands[1].Change.Claims = []eventstore.Claim{{Subject: st.Subjects().Receipt("OTHER"),
		Event: wrongClaim.Commands[1].Change.Claims[0].Event}}
	elsewhere := pkg(uuid.New())
	elsewhere.Subject = st.Subjects().Package(uuid.NewString())
	tooLong := pkg(uuid.New())
	for len(tooLong.Commands) <= eventstore.MaxBulkBatch {
		tooLong.Commands = append(tooLong.Commands, eventstore.ImportCommand{Meta: meta, At: clock(),
			Change: eventstore.Change{Events: []domain.Event{domain.PackageExpired{ExpiredAt: clock()}}}})
	}
	otherDealer := pkg(uuid.New())
	otherDealer.Subject = "ledger.other.packages." + uuid.NewString()
	empty := pkg(uuid.New())
	empty.Commands[2].Change.Events = nil

	for _, tc := range []struct {
		name    string
		imports []eventstore.Import
		want    string
	}{
		{"OtherDealer", []eventstore.Import{otherDealer}, "is not one of dealer demo"},
		{"SubjectTwice", []eventstore.Import{pkg(one), pkg(one)}, "already written by import 0"},
		{"ReceiptTwice", []eventstore.Import{pkg(one), twin}, "already written by import 0"},
		{"NoCommands", []eventstore.Import{{Subject: st.Subjects().Package(uuid.NewString())}}, "no commands"},
		{"CommandWithoutEvents", []eventstore.Import{empty}, "command 2 has no events"},
		{"PaymentWithoutClaim", []eventstore.Import{unclaimed}, "comes without the claim of receipt"},
		{"ClaimOfAnotherReceipt", []eventstore.Import{wrongClaim}, "must be the ReceiptClaimed of that receipt"},
		{"SaleOnAnotherSubject", []eventstore.Import{elsewhere}, "does not belong on"},
		{"LongerThanABatch", []eventstore.Import{tooLong}, "more than one atomic batch holds"},
		{"GoodFirstBadLast", []eventstore.Import{pkg(uuid.New()), unclaimed}, "import 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := st.BulkAppend(ctx, tc.imports)
			require.ErrorContains(t, err, tc.want)
			require.Zero(t, res)
			last, err := st.LastSeq(ctx)
			require.NoError(t, err)
			require.Zero(t, last, "nothing appended")
		})
	}
}
