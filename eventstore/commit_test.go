package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

// TestUpdate_GroupCommitWithAnotherServer: two stores on one stream, as
// two servers, write the same subjects at once. Each decides on the
// subjects as it last wrote them and appends in batches with other
// commands, so the other's writes make its expectations stale inside
// batches. Every command must land exactly once, each subject's chain
// must stay whole, and no command may fail for a batch-mate's sake.
func TestUpdate_GroupCommitWithAnotherServer(t *testing.T) {
	_, nc := eventstoretest.RunServerSync(t, t.TempDir(), true)
	sg := eventstoretest.NewSigner(t)
	open := func() *eventstore.Store {
		st, err := eventstore.Open(context.Background(), nc, eventstore.Config{Dealer: "demo", Signer: sg, GroupCommit: eventstore.GroupCommitAlways})
		require.NoError(t, err)
		return st
	}
	a, b := open(), open()
	const subjects, perWorker = 24, 6
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 2 * subjects {
		st := a
		if w%3 == 2 {
			st = b // every third worker writes as the other server
		}
		code := fmt.Sprintf("S%02d", w%subjects)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				reason := fmt.Sprintf("w%d-%d", w, i)
				_, err := st.Update(ctx, "ledger.demo.plans."+code, meta, clock, func([]domain.Envelope) (eventstore.Change, error) {
					return eventstore.Change{Events: []domain.Event{domain.PlanRetired{Code: code, Reason: reason}}}, nil
				})
				if !assertNoError(t, err, reason) {
					return
				}
			}
		}()
	}
	wg.Wait()
	for s := range subjects {
		code := fmt.Sprintf("S%02d", s)
		sub, err := a.LoadSubject(ctx, "ledger.demo.plans."+code)
		require.NoError(t, err)
		require.Empty(t, sub.Foreign, "the chain of %s stays whole", code)
		seen := map[string]bool{}
		for _, e := range sub.Events {
			r := e.Event.(domain.PlanRetired).Reason
			require.False(t, seen[r], "%s landed twice on %s", r, code)
			seen[r] = true
		}
		require.Len(t, seen, 2*perWorker, "every command on %s landed", code)
	}
	st := a.CommitStats()
	require.Greater(t, st.Commands, st.Appends, "commands were appended together")
}

func assertNoError(t *testing.T, err error, what string) bool {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return false
	}
	return true
}

// TestUpdate_CachedRefusalDecidedAgain: a store decides a command on a
// subject as it last wrote it; when another server has written it since,
// a refusal decided on that stale state is not given: the command is
// decided again on a fresh read.
func TestUpdate_CachedRefusalDecidedAgain(t *testing.T) {
	_, nc := eventstoretest.RunServerSync(t, t.TempDir(), true)
	sg := eventstoretest.NewSigner(t)
	a := eventstoretest.Open(t, nc, "demo", sg)
	b := eventstoretest.Open(t, nc, "demo", sg)
	ctx := context.Background()
	const subject = "ledger.demo.plans.X"
	_, err := a.Update(ctx, subject, meta, clock, retire("X"))
	require.NoError(t, err)
	_, err = b.Update(ctx, subject, meta, clock, retire("X"))
	require.NoError(t, err)

	decided := 0
	res, err := a.Update(ctx, subject, meta, clock, func(hist []domain.Envelope) (eventstore.Change, error) {
		decided++
		if len(hist) != 2 {
			return eventstore.Change{}, domain.Errorf(domain.CodePlanRetired, "saw %d events", len(hist))
		}
		return retire("X")(hist)
	})
	require.NoError(t, err, "decided on the fresh state, not the cached one")
	require.Equal(t, 2, decided)
	require.Len(t, res.History, 3)
}
