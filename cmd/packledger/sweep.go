package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections"
)

// sweeper expires packages whose validity has ended and, under a breakage
// policy, recognizes the breakage of packages expired long enough. It acts
// as the system actor. Several servers may sweep at once: Decide returns
// nothing for a package already expired, so nothing is written twice.
type sweeper struct {
	store         *eventstore.Store
	reads         *projections.Runner
	clock         func() time.Time
	storeID       string
	breakageAfter int
	log           *slog.Logger
}

var systemActor = domain.Actor{ID: "system", Role: domain.RoleSystem}

// run sweeps once the projections are ready, then every interval.
func (s *sweeper) run(ctx context.Context, every time.Duration) {
	if err := s.reads.WaitReady(ctx); err != nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.sweep(ctx); err != nil {
			s.log.Warn("expiry sweep incomplete", "done", n, "err", err)
		} else if n > 0 {
			s.log.Info("expiry sweep", "changed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep makes one pass and returns how many packages it changed.
func (s *sweeper) sweep(ctx context.Context) (int, error) {
	now := s.clock()
	var expire, breakage []uuid.UUID
	s.reads.Read(func(m *projections.Model) { expire, breakage = m.ExpiryCandidates(now, s.breakageAfter) })
	n := 0
	do := func(id uuid.UUID, cmd domain.Command) error {
		meta := eventstore.Meta{Store: s.storeID, Actor: systemActor}
		res, err := s.store.Update(ctx, s.store.Subjects().Package(id.String()), meta, s.clock,
			func(hist []domain.Envelope) (eventstore.Change, error) {
				evs, err := domain.Decide(domain.Fold(hist), cmd, s.clock())
				return eventstore.Change{Events: evs}, err
			})
		if err != nil {
			return fmt.Errorf("package %s: %w", id, err)
		}
		if len(res.Appended) > 0 {
			n++
			return s.reads.WaitFor(ctx, res.LastSeq)
		}
		return nil
	}
	// One package that fails (refunded meanwhile, unreadable) must not
	// keep the others from expiring.
	var errs []error
	for _, id := range expire {
		errs = append(errs, do(id, domain.Expire{}))
	}
	reason := fmt.Sprintf("breakage policy: %d months after expiry", s.breakageAfter)
	for _, id := range breakage {
		errs = append(errs, do(id, domain.RecognizeBreakage{Reason: reason}))
	}
	return n, errors.Join(errs...)
}
