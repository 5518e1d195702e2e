package eventstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

var (
	clock = func() time.Time { return time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC) }
	meta  = eventstore.Meta{Store: "s1", Actor: domain.Actor{ID: "u1", Role: domain.RoleManager}}
)

func retire(code string) func([]domain.Envelope) (eventstore.Change, error) {
	return func([]domain.Envelope) (eventstore.Change, error) {
		return eventstore.Change{Events: []domain.Event{domain.PlanRetired{Code: code, Reason: "test"}}}, nil
	}
}

func TestStore_Stream(t *testing.T) {
	st, nc := eventstoretest.OpenStore(t, "demo")
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(context.Background(), "LEDGER")
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	require.Equal(t, jetstream.FileStorage, cfg.Storage)
	require.True(t, cfg.DenyDelete)
	require.True(t, cfg.DenyPurge)
	require.Equal(t, []string{"ledger.demo.>"}, cfg.Subjects)
	require.Positive(t, cfg.Duplicates)
	require.Zero(t, cfg.MaxAge)

	t.Run("SecondDealerKeepsFirst", func(t *testing.T) {
		_, err := eventstore.Open(context.Background(), nc, eventstore.Config{Dealer: "other"})
		require.NoError(t, err)
		info, err := st.Info(context.Background())
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"ledger.demo.>", "ledger.other.>"}, info.Config.Subjects)
	})
	t.Run("DeleteRefused", func(t *testing.T) {
		_, err := st.Update(context.Background(), "ledger.demo.plans.X", meta, clock, retire("X"))
		require.NoError(t, err)
		require.Error(t, s.DeleteMsg(context.Background(), 1))
		require.Error(t, s.Purge(context.Background()))
	})
}

func TestStore_Cases(t *testing.T) {
	ctx := context.Background()
	t.Run("EmptySubject", func(t *testing.T) {
		st, _ := eventstoretest.OpenStore(t, "demo")
		h, err := st.Load(ctx, "ledger.demo.plans.NONE")
		require.NoError(t, err)
		require.Empty(t, h)
		sub, err := st.LoadSubject(ctx, "ledger.demo.plans.NONE")
		require.NoError(t, err)
		require.Zero(t, sub.LastSeq)
	})
	t.Run("WrongSequence", func(t *testing.T) {
		st, _ := eventstoretest.OpenStore(t, "demo")
		subj := "ledger.demo.plans.A"
		_, err := st.Update(ctx, subj, meta, clock, retire("A"))
		require.NoError(t, err)
		stale := uint64(0)
		_, err = st.Append(ctx, []eventstore.Outgoing{{Subject: subj, Body: []byte("{}"), Hash: "x", Type: "T", Expect: &stale}})
		require.ErrorIs(t, err, eventstore.ErrConflict)
		h, err := st.Load(ctx, subj)
		require.NoError(t, err)
		require.Len(t, h, 1, "a refused append stores nothing")
	})
	t.Run("ChainAndOrder", func(t *testing.T) {
		st, _ := eventstoretest.OpenStore(t, "demo")
		subj := "ledger.demo.plans.B"
		for i := 0; i < 3; i++ {
			_, err := st.Update(ctx, subj, meta, clock, retire("B"))
			require.NoError(t, err)
		}
		h, err := st.Load(ctx, subj)
		require.NoError(t, err)
		require.Len(t, h, 3)
		require.Empty(t, h[0].Prev)
		for i := 1; i < len(h); i++ {
			require.Equal(t, h[i-1].Hash, h[i].Prev, "event %d must chain to %d", i, i-1)
			require.Greater(t, h[i].Seq, h[i-1].Seq)
		}
	})
	t.Run("LoadManyBatches", func(t *testing.T) {
		_, nc := eventstoretest.RunServer(t)
		signer := eventstoretest.NewSigner(t)
		st := eventstoretest.Open(t, nc, "demo", signer)
		subj := "ledger.demo.plans.C"
		n := 1300 // more than two direct-get batches
		data, err := domain.EncodeEvent(domain.PlanRetired{Code: "C", Reason: "r"})
		require.NoError(t, err)
		prev := ""
		for i := 0; i < n; i++ {
			// Appended directly, signed and chained as Update would.
			body, hash, err := eventstore.Encode(domain.Envelope{ID: uuid.New(), Type: "PlanRetired", Schema: 1,
				Dealer: "demo", Aggregate: "C", Prev: prev, Data: data})
			require.NoError(t, err)
			sig, key := signer.Sign(hash)
			_, err = st.Append(ctx, []eventstore.Outgoing{{Subject: subj, Body: body, Hash: hash, Type: "PlanRetired", Sig: sig, KeyID: key}})
			require.NoError(t, err)
			prev = hash
		}
		h, err := st.Load(ctx, subj)
		require.NoError(t, err)
		require.Len(t, h, n)
	})
	t.Run("AtomicBatch", func(t *testing.T) {
		st, _ := eventstoretest.OpenStore(t, "demo")
		subj := "ledger.demo.plans.D"
		r, err := st.Update(ctx, subj, meta, clock, func([]domain.Envelope) (eventstore.Change, error) {
			return eventstore.Change{
				Events: []domain.Event{domain.PlanRetired{Code: "D", Reason: "1"}, domain.PlanRetired{Code: "D", Reason: "2"}},
				Claims: []eventstore.Claim{{Subject: "ledger.demo.receipts.R1", Event: domain.ReceiptClaimed{Receipt: "R1"}}},
			}, nil
		})
		require.NoError(t, err)
		require.Len(t, r.Appended, 2)
		require.Equal(t, r.Appended[0].Seq+1, r.Appended[1].Seq)
		h, err := st.Load(ctx, subj)
		require.NoError(t, err)
		require.Len(t, h, 2)
		require.Equal(t, h[0].Hash, h[1].Prev)

		t.Run("ClaimTaken", func(t *testing.T) {
			before, err := st.LastSeq(ctx)
			require.NoError(t, err)
			_, err = st.Update(ctx, "ledger.demo.plans.E", meta, clock, func([]domain.Envelope) (eventstore.Change, error) {
				return eventstore.Change{
					Events: []domain.Event{domain.PlanRetired{Code: "E", Reason: "x"}},
					Claims: []eventstore.Claim{{Subject: "ledger.demo.receipts.R1", Event: domain.ReceiptClaimed{Receipt: "R1"}}},
				}, nil
			})
			var taken *eventstore.ClaimTakenError
			require.ErrorAs(t, err, &taken)
			after, err := st.LastSeq(ctx)
			require.NoError(t, err)
			require.Equal(t, before, after, "nothing of a refused batch lands")
		})
	})
	t.Run("RetryRecognised", func(t *testing.T) {
		st, _ := eventstoretest.OpenStore(t, "demo")
		subj := "ledger.demo.plans.F"
		m := meta
		m.Key = "key-1"
		first, err := st.Update(ctx, subj, m, clock, retire("F"))
		require.NoError(t, err)
		again, err := st.Update(ctx, subj, m, clock, retire("F"))
		require.NoError(t, err)
		require.True(t, again.Replayed)
		require.Equal(t, first.Appended[0].ID, again.Appended[0].ID)
		h, _ := st.Load(ctx, subj)
		require.Len(t, h, 1)

		t.Run("OtherSubjectSameKey", func(t *testing.T) {
			_, err := st.Update(ctx, "ledger.demo.plans.G", m, clock, retire("G"))
			require.Equal(t, domain.CodeIdempotencyConflict, domain.ErrorCode(err))
		})
	})
	t.Run("ConcurrentAppends", func(t *testing.T) {
		// Two stores on two connections: no shared in-process lock, so
		// only JetStream's expected sequence keeps the chain whole.
		_, nc1 := eventstoretest.RunServer(t)
		sg := eventstoretest.NewSigner(t)
		st1 := eventstoretest.Open(t, nc1, "demo", sg)
		st2 := eventstoretest.Open(t, nc1, "demo", sg)
		subj := "ledger.demo.plans.H"
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := 0; i < 20; i++ {
			for _, st := range []*eventstore.Store{st1, st2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := st.Update(ctx, subj, meta, clock, retire("H"))
					errs <- err
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		h, err := st1.Load(ctx, subj)
		require.NoError(t, err)
		require.Len(t, h, 40)
		for i := 1; i < len(h); i++ {
			require.Equal(t, h[i-1].Hash, h[i].Prev)
		}
	})
}

func TestStore_Follow(t *testing.T) {
	st, _ := eventstoretest.OpenStore(t, "demo")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 5; i++ {
		code := "P" + uuid.NewString()[:4]
		_, err := st.Update(ctx, "ledger.demo.plans."+code, meta, clock, retire(code))
		require.NoError(t, err)
	}
	var seqs []uint64
	err := st.Feed().Follow(ctx, 2, func(seq uint64, _ string, _ domain.Envelope, err error) error {
		require.NoError(t, err)
		seqs = append(seqs, seq)
		if seq == 5 {
			return errStop
		}
		return nil
	})
	require.ErrorIs(t, err, errStop)
	require.Equal(t, []uint64{2, 3, 4, 5}, seqs)
}

var errStop = errors.New("stop")
