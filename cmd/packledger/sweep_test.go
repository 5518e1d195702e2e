package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
	"github.com/packledger/packledger/projections"
)

// fakeClock is the sweep's injectable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func TestSweeper_ExpiryAndBreakage(t *testing.T) {
	ctx := context.Background()
	store, _ := eventstoretest.OpenStore(t, "demo")
	runner := projections.NewRunner(store.Feed(), projections.NewModel(time.UTC), slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	clock := &fakeClock{now: time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)}
	_, err := seedDemoPlans(ctx, store, "main", clock.Now)
	require.NoError(t, err)
	plans, err := demoPlans()
	require.NoError(t, err)
	oil4 := plans[0] // 4 visits, 24 months

	// Sell, pay and redeem one visit of a package, as the API would.
	id := uuid.New()
	subject := store.Subjects().Package(id.String())
	meta := eventstore.Meta{Store: "main", Actor: domain.Actor{ID: "u1", Role: domain.RoleAdvisor}}
	for _, cmd := range []domain.Command{
		domain.Sell{PackageID: id, Plan: domain.PlanState{Plan: oil4, Status: domain.PlanStatusActive},
			Customer: domain.Customer{ID: "C1", Name: "Li", Phone: "13800000000"},
			Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A1", Model: "Lavida"}, Advisor: "u1"},
		domain.RecordPayment{PaymentID: uuid.New(), Amount: oil4.Price, Method: "cash", Receipt: "R1"},
		domain.Redeem{RedemptionID: uuid.New(), Service: "oil_change", RepairOrder: "RO1"},
	} {
		res, err := store.Update(ctx, subject, meta, clock.Now, func(h []domain.Envelope) (eventstore.Change, error) {
			evs, err := domain.Decide(domain.Fold(h), cmd, clock.Now())
			return store.Subjects().PackageChange(id, evs), err
		})
		require.NoError(t, err)
		require.NoError(t, runner.WaitFor(ctx, res.LastSeq))
	}
	pkg := func() domain.Package {
		var p domain.Package
		runner.Read(func(m *projections.Model) { p, _ = m.Package(id) })
		return p
	}
	sw := &sweeper{store: store, reads: runner, clock: clock.Now, storeID: "main", breakageAfter: 6,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	t.Run("NotYet", func(t *testing.T) {
		clock.Set(time.Date(2028, 1, 10, 8, 59, 0, 0, time.UTC)) // a minute before the 24 months end
		n, err := sw.sweep(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, domain.StatusActive, pkg().Status)
	})
	t.Run("Expire", func(t *testing.T) {
		clock.Set(time.Date(2028, 1, 10, 9, 0, 0, 0, time.UTC))
		n, err := sw.sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		p := pkg()
		require.Equal(t, domain.StatusExpired, p.Status)
		require.Equal(t, "1224.00", p.Liability.String(), "expiry keeps the money owed")
		n, err = sw.sweep(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "a second sweep writes nothing")
	})
	t.Run("BreakageByPolicy", func(t *testing.T) {
		clock.Set(time.Date(2028, 7, 10, 8, 0, 0, 0, time.UTC))
		n, err := sw.sweep(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "not yet six months after expiry")
		clock.Set(time.Date(2028, 7, 10, 9, 0, 0, 0, time.UTC))
		n, err = sw.sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		p := pkg()
		require.Equal(t, "1224.00", p.Breakage.String())
		require.True(t, p.Liability.IsZero())
		require.NoError(t, domain.CheckInvariant(p))
	})
}
