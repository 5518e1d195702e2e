package projections_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// fakeSource is an in-memory stream behind the projections.Source
// interface. Messages have seq 1..n. Follow delivers from the asked
// sequence up to limit, then waits for more; it can be told to fail after a
// sequence, to start elsewhere than asked (a redelivery), or to deliver a
// stretch of messages a second time.
type fakeSource struct {
	mu      sync.Mutex
	msgs    []fakeMsg
	limit   uint64 // deliver no message beyond this seq
	changed chan struct{}

	follows   []uint64          // the from of every Follow call, as asked
	failAfter map[int]uint64    // Follow call → fail once this seq is delivered
	startAt   map[int]uint64    // Follow call → deliver from here instead
	rewind    map[uint64]uint64 // after delivering seq k, go back to seq v (once)
	stall     map[int]uint64    // Follow call → deliver nothing past this seq, and never fail
	headErrs  int               // fail this many Head calls first
	heads     int
}

type fakeMsg struct {
	subject string
	env     domain.Envelope
	err     error
}

var errConnLost = errors.New("nats: connection lost")

func newFakeSource() *fakeSource {
	return &fakeSource{
		limit: ^uint64(0), changed: make(chan struct{}),
		failAfter: map[int]uint64{}, startAt: map[int]uint64{}, rewind: map[uint64]uint64{}, stall: map[int]uint64{},
	}
}

func (s *fakeSource) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// add appends envelopes; their Seq must be the next ones.
func (s *fakeSource) add(t testing.TB, envs ...domain.Envelope) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range envs {
		require.Equal(t, uint64(len(s.msgs)+1), e.Seq, "the fake stream's sequences have no gaps")
		s.msgs = append(s.msgs, fakeMsg{subject: e.Subject, env: e})
	}
	s.notifyLocked()
}

// addBad appends a message that cannot be decoded.
func (s *fakeSource) addBad(subject string, err error) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, fakeMsg{subject: subject, err: err})
	s.notifyLocked()
	return uint64(len(s.msgs))
}

func (s *fakeSource) setLimit(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
	s.notifyLocked()
}

func (s *fakeSource) followCalls() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.follows...)
}

func (s *fakeSource) Head(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heads++
	if s.heads <= s.headErrs {
		return 0, errConnLost
	}
	return uint64(len(s.msgs)), nil
}

func (s *fakeSource) Follow(ctx context.Context, from uint64, fn func(uint64, string, domain.Envelope, error) error) error {
	s.mu.Lock()
	call := len(s.follows)
	s.follows = append(s.follows, from)
	next := from
	if v, ok := s.startAt[call]; ok {
		next = v
	}
	s.mu.Unlock()
	if next < 1 {
		next = 1
	}
	for {
		s.mu.Lock()
		if f, ok := s.failAfter[call]; ok && next > f {
			s.mu.Unlock()
			return errConnLost
		}
		stalled := false
		if v, ok := s.stall[call]; ok && next > v {
			stalled = true
		}
		if !stalled && next <= uint64(len(s.msgs)) && next <= s.limit {
			m, seq := s.msgs[next-1], next
			if back, ok := s.rewind[seq]; ok {
				delete(s.rewind, seq)
				next = back
			} else {
				next++
			}
			s.mu.Unlock()
			if err := fn(seq, m.subject, m.env, m.err); err != nil {
				return err
			}
			continue
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

var _ projections.Source = (*fakeSource)(nil)

// startRunner runs a runner over src until the test ends, and checks that
// Run returns nil once its context is cancelled.
func startRunner(t *testing.T, src projections.Source) (*projections.Runner, *projections.Model) {
	t.Helper()
	m := projections.NewModel(shanghai)
	r := projections.NewRunner(src, m, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "Run returns nil when its context ends")
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return r, m
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// runnerHistory is a package sold, part-paid, paid up (and activated) and
// used once: seq 1 the plan, 2 sale, 3 payment, 4 payment, 5 activation,
// 6 redemption.
func runnerHistory(t *testing.T) (*ledger, uuid.UUID) {
	l := newLedger(t, nil)
	setupOil(t, l, local(2026, 11, 1, 8, 0))
	id := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A12345"}, who{at: local(2026, 11, 1, 9, 0), store: "S1"})
	l.pay(id, "1000.00", "cash", "R-1", who{at: local(2026, 11, 1, 10, 0), store: "S1"})
	l.pay(id, "1448.00", "card", "R-2", who{at: local(2026, 11, 1, 11, 0), store: "S1"})
	l.redeem(id, "oil_change", "RO-1", who{at: local(2026, 11, 2, 10, 0), store: "S1"})
	require.Len(t, l.envs, 6)
	return l, id
}

func readPackage(r *projections.Runner, id uuid.UUID) (p domain.Package, ok bool) {
	r.Read(func(m *projections.Model) { p, ok = m.Package(id) })
	return p, ok
}

func TestRunner(t *testing.T) {
	t.Run("WaitForReturnsOnceApplied", func(t *testing.T) {
		t.Parallel()
		l, id := runnerHistory(t)
		src := newFakeSource()
		src.add(t, l.envs[:3]...)
		r, _ := startRunner(t, src)

		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 3))
		p, ok := readPackage(r, id)
		require.True(t, ok)
		requireMoney(t, "1000.00", p.Paid, "seq 3 is applied when WaitFor(3) returns")

		// A writer appends and waits for its own event.
		go func() {
			time.Sleep(30 * time.Millisecond)
			src.add(t, l.envs[3:5]...)
			time.Sleep(30 * time.Millisecond)
			src.add(t, l.envs[5])
		}()
		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 5))
		p, _ = readPackage(r, id)
		require.Equal(t, domain.StatusActive, p.Status, "seq 4 and 5 applied")
		require.GreaterOrEqual(t, r.Status().AppliedSeq, uint64(5))
		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 6))
		p, _ = readPackage(r, id)
		require.Equal(t, 5, p.Remaining()["oil_change"])
		require.Equal(t, uint64(6), p.Seq)

		// Already applied: at once.
		require.NoError(t, r.WaitFor(within(t, time.Second), 1))
		require.NoError(t, r.WaitFor(within(t, time.Second), 0))

		// Never reached: the context's error, wrapped.
		err := r.WaitFor(within(t, 100*time.Millisecond), 99)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Contains(t, err.Error(), "99")
	})

	t.Run("WaitForManyWaiters", func(t *testing.T) {
		t.Parallel()
		l, _ := runnerHistory(t)
		src := newFakeSource()
		src.setLimit(0)
		src.add(t, l.envs...)
		r, _ := startRunner(t, src)
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for seq := uint64(1); seq <= 6; seq++ {
			wg.Go(func() {
				err := r.WaitFor(within(t, 5*time.Second), seq)
				if err == nil && r.Status().AppliedSeq < seq {
					err = errors.New("returned before its seq was applied")
				}
				errs <- err
			})
		}
		time.Sleep(20 * time.Millisecond)
		for n := uint64(1); n <= 6; n++ {
			src.setLimit(n)
			time.Sleep(5 * time.Millisecond)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})

	t.Run("WaitReadyWaitsForTheHeadAtStart", func(t *testing.T) {
		t.Parallel()
		l, _ := runnerHistory(t)
		src := newFakeSource()
		src.add(t, l.envs[:5]...) // the head at start is 5
		src.setLimit(3)           // the stream is slow: only 1..3 come for now
		r, _ := startRunner(t, src)

		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 3))
		err := r.WaitReady(within(t, 200*time.Millisecond))
		require.ErrorIs(t, err, context.DeadlineExceeded, "not ready at 3 of 5")
		require.False(t, r.Status().Ready)

		// An event written after start does not move the goal.
		src.add(t, l.envs[5])
		src.setLimit(5)
		require.NoError(t, r.WaitReady(within(t, 5*time.Second)))
		st := r.Status()
		require.True(t, st.Ready)
		require.GreaterOrEqual(t, st.AppliedSeq, uint64(5))

		// Once ready, always ready.
		src.setLimit(6)
		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 6))
		require.NoError(t, r.WaitReady(within(t, 100*time.Millisecond)))
	})

	t.Run("WaitReadyEmptyStream", func(t *testing.T) {
		t.Parallel()
		r, _ := startRunner(t, newFakeSource())
		require.NoError(t, r.WaitReady(within(t, 5*time.Second)))
		st := r.Status()
		require.True(t, st.Ready)
		require.Zero(t, st.AppliedSeq)
		require.Empty(t, st.Findings)
	})

	t.Run("WaitReadyBeforeRun", func(t *testing.T) {
		t.Parallel()
		r := projections.NewRunner(newFakeSource(), projections.NewModel(shanghai), slog.New(slog.DiscardHandler))
		require.ErrorIs(t, r.WaitReady(within(t, 100*time.Millisecond)), context.DeadlineExceeded,
			"nothing is ready before Run has looked at the stream")
	})

	t.Run("DecodeErrorBecomesFinding", func(t *testing.T) {
		t.Parallel()
		l, id := runnerHistory(t)
		src := newFakeSource()
		src.add(t, l.envs[:3]...)
		bad := "ledger.demo.packages." + id.String()
		// The remaining events shift by one seq in this stream.
		seq := src.addBad(bad, errors.New("decode PaymentRecorded: amount \"12.345\" is not of the form \"480.00\""))
		require.Equal(t, uint64(4), seq)
		for _, e := range l.envs[3:] {
			e.Seq++
			src.add(t, e)
		}
		r, m := startRunner(t, src)
		require.NoError(t, r.WaitReady(within(t, 5*time.Second)))
		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 7))

		st := r.Status()
		require.Equal(t, uint64(7), st.AppliedSeq, "a bad message is passed over, not waited on")
		require.Equal(t, 6, st.Events, "six applied, one rejected")
		require.Equal(t, []projections.Finding{{Package: strings.TrimPrefix(bad, "ledger.demo.packages."), Seq: 4, Subject: bad,
			Problem: "decode PaymentRecorded: amount \"12.345\" is not of the form \"480.00\""}}, st.Findings)
		require.Empty(t, st.Error, "a bad message is a finding, not a stream failure")
		var fs []projections.Finding
		r.Read(func(mm *projections.Model) { require.Same(t, m, mm); fs = mm.Findings() })
		require.Equal(t, st.Findings, fs)
		p, ok := readPackage(r, id)
		require.True(t, ok)
		requireMoney(t, "2448.00", p.Paid, "the events after the bad one are applied")
	})

	t.Run("RedeliveredIgnored", func(t *testing.T) {
		t.Parallel()
		l, id := runnerHistory(t)
		src := newFakeSource()
		src.add(t, l.envs...)
		src.rewind[4] = 2 // 1 2 3 4 2 3 4 5 6
		src.rewind[6] = 6 // … 6 6
		r, _ := startRunner(t, src)
		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 6))
		time.Sleep(20 * time.Millisecond) // let the repeat of 6 arrive
		st := r.Status()
		require.Equal(t, uint64(6), st.AppliedSeq)
		require.Equal(t, 6, st.Events, "each event applied once")
		p, _ := readPackage(r, id)
		requireMoney(t, "2448.00", p.Paid, "the payments are not counted twice")
		require.Len(t, p.Payments, 2)
		require.Len(t, p.Redemptions, 1)
		var rep projections.Report
		r.Read(func(m *projections.Model) {
			rep = m.Liability().Report(local(2026, 11, 1, 0, 0), local(2026, 12, 1, 0, 0), false)
		})
		requireMoney(t, "2448.00", rep.Payments)
		requireMoney(t, "2040.00", rep.Closing)
	})

	t.Run("ResumesAfterFollowFails", func(t *testing.T) {
		t.Parallel()
		l, id := runnerHistory(t)
		src := newFakeSource()
		src.add(t, l.envs...)
		src.failAfter[0] = 3 // the connection drops after seq 3
		src.startAt[1] = 1   // and the new consumer starts over from 1
		r, _ := startRunner(t, src)

		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 3))
		require.Eventually(t, func() bool { return r.Status().Error != "" }, 2*time.Second, 5*time.Millisecond,
			"the failure is reported while the runner waits to retry")
		require.Contains(t, r.Status().Error, errConnLost.Error())

		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 6))
		calls := src.followCalls()
		require.GreaterOrEqual(t, len(calls), 2)
		require.Equal(t, []uint64{1, 4}, calls[:2], "first from the start, then from applied+1")
		st := r.Status()
		require.Equal(t, 6, st.Events, "1..3 seen again after the reconnect are ignored")
		require.Empty(t, st.Error, "cleared once events flow again")
		p, _ := readPackage(r, id)
		requireMoney(t, "2448.00", p.Paid)
		requireMoney(t, "2040.00", p.Liability)
	})

	t.Run("RestartsAStalledFollow", func(t *testing.T) {
		t.Parallel()
		l, id := runnerHistory(t)
		src := newFakeSource()
		src.add(t, l.envs...)
		src.stall[0] = 3 // the first follow goes silent after seq 3
		r, _ := startRunner(t, src)

		require.NoError(t, r.WaitFor(within(t, 15*time.Second), 6), "a follow silent while the stream is ahead is started again")
		calls := src.followCalls()
		require.GreaterOrEqual(t, len(calls), 2)
		require.Equal(t, []uint64{1, 4}, calls[:2], "the second follow resumes after the last applied event")
		p, ok := readPackage(r, id)
		require.True(t, ok)
		require.Len(t, p.Redemptions, 1)
	})

	t.Run("AsOfDatesTheModel", func(t *testing.T) {
		t.Parallel()
		l, _ := runnerHistory(t)
		src := newFakeSource()
		src.add(t, l.envs...)
		before := time.Now()
		r, _ := startRunner(t, src)
		require.NoError(t, r.WaitFor(within(t, 5*time.Second), 6))
		deadline := time.Now().Add(5 * time.Second)
		for r.AsOf().IsZero() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		at := r.AsOf()
		require.False(t, at.IsZero(), "dated once the model holds the head")
		require.False(t, at.Before(before))
		st := r.Status()
		require.NotNil(t, st.AsOf)
		require.NotNil(t, st.AgeSeconds)
		require.GreaterOrEqual(t, *st.AgeSeconds, 0.0)

		// Behind the stream, the date stands still.
		src.setLimit(6)
		src.addBad("ledger.demo.packages.x", errors.New("never delivered"))
		time.Sleep(2500 * time.Millisecond)
		require.True(t, r.AsOf().Before(time.Now().Add(-2*time.Second)), "a model behind the stream is not dated anew")
	})

	t.Run("RetriesWhenHeadFails", func(t *testing.T) {
		t.Parallel()
		l, _ := runnerHistory(t)
		src := newFakeSource()
		src.add(t, l.envs...)
		src.headErrs = 1
		r, _ := startRunner(t, src)
		require.Eventually(t, func() bool { return r.Status().Error != "" }, 2*time.Second, 5*time.Millisecond)
		require.False(t, r.Status().Ready)
		require.NoError(t, r.WaitReady(within(t, 5*time.Second)))
		require.Equal(t, uint64(6), r.Status().AppliedSeq)
		require.Equal(t, []uint64{1}, src.followCalls())
	})
}
