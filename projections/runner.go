package projections

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/packledger/packledger/domain"
)

// Source is the part of the event store the runner reads.
type Source interface {
	// Follow delivers every event from sequence from on, in order, until
	// ctx ends or fn fails; err is set for a message that cannot be decoded.
	Follow(ctx context.Context, from uint64, fn func(seq uint64, subject string, env domain.Envelope, err error) error) error
	// Head is the sequence of the last event there is now, 0 if none.
	Head(ctx context.Context) (uint64, error)
}

// Runner feeds the Model from the stream, at start and as events arrive,
// and lets writers wait until their own event has been applied. With
// checkpoints (see UseCheckpoints), a start loads the newest trusted one
// and reads only the events after it.
type Runner struct {
	src Source
	log *slog.Logger
	ck  *checkpointer // nil: no checkpoints

	mu      sync.RWMutex
	model   *Model
	applied uint64
	ready   bool
	head    uint64 // what "caught up" meant at start
	advance chan struct{}
	lastErr error
	// syncedAt is the last instant at which the model was known to hold
	// every event the stream had: what a read served while NATS is away
	// is as old as.
	syncedAt time.Time
	// advancedAt is when applied last moved; stopFollow ends the follow
	// under way, so that a stalled one is started again.
	advancedAt  time.Time
	behindSince time.Time // when the model was first seen behind the head, zero if not
	stopFollow  context.CancelFunc
}

// stallAfter is how long the model may stay behind a reachable stream
// without a single event arriving before the follow is started again. The
// client notices a consumer lost with its cluster node on its own, by
// missed heartbeats, most of the time; this is for the times it does not
// (seen after a stream leader was killed: the ordered consumer waited for
// ever, or retried on a doubling backoff seconds after a new leader was
// there, while writes piled up behind read-your-writes).
//
// A restart costs one consumer and resumes after the last applied event,
// so a false alarm is cheap; a real stall holds every write's answer.
const stallAfter = 1500 * time.Millisecond

// syncEvery is how often the runner asks the stream for its head to tell
// how current the model is. One stream info request a second is nothing
// to JetStream, and makes a healthy ledger's reads at most a second old.
const syncEvery = time.Second

// NewRunner returns a runner over model; call Run to start it.
func NewRunner(src Source, model *Model, log *slog.Logger) *Runner {
	return &Runner{src: src, model: model, log: log, advance: make(chan struct{})}
}

// Run follows the stream until ctx ends, resuming after the last applied
// event whenever the stream connection fails.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.watchSync(ctx)
	}()
	defer wg.Wait()
	r.resume(ctx)
	for {
		head, err := r.src.Head(ctx)
		if err == nil {
			r.mu.Lock()
			if !r.ready {
				r.head = head
				r.markReadyLocked()
			}
			from := r.applied + 1
			fctx, stop := context.WithCancel(ctx)
			r.stopFollow, r.advancedAt = stop, time.Now()
			r.mu.Unlock()
			err = r.src.Follow(fctx, from, r.apply)
			restarted := fctx.Err() != nil && ctx.Err() == nil
			stop()
			if restarted {
				continue // stopped by watchSync: nothing failed
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		r.lastErr = err
		r.mu.Unlock()
		r.log.Warn("projections: following the stream failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (r *Runner) apply(seq uint64, subject string, env domain.Envelope, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq <= r.applied {
		return nil // redelivered after a reconnect
	}
	if err != nil {
		r.model.Reject(seq, subject, err.Error())
		r.log.Error("projections: event not applied", "seq", seq, "subject", subject, "err", err)
	} else {
		r.model.Apply(env)
	}
	if r.ck != nil {
		r.ck.applied(r, seq, subject, env.Hash)
	}
	r.applied = seq
	r.advancedAt = time.Now()
	r.lastErr = nil
	r.markReadyLocked()
	close(r.advance)
	r.advance = make(chan struct{})
	return nil
}

func (r *Runner) markReadyLocked() {
	if !r.ready && r.applied >= r.head {
		r.ready = true
	}
}

// watchSync keeps syncedAt: every syncEvery it reads the stream's head
// and, once the model has applied up to it, dates the model to the instant
// it asked. While NATS cannot be reached the date stands still and reads
// grow older.
func (r *Runner) watchSync(ctx context.Context) {
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	for {
		r.checkSync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runner) checkSync(ctx context.Context) {
	at := time.Now()
	ctx, cancel := context.WithTimeout(ctx, syncEvery)
	defer cancel()
	head, err := r.src.Head(ctx)
	if err != nil {
		return
	}
	if err := r.WaitFor(ctx, head); err != nil {
		r.mu.Lock()
		behind := r.applied < head
		if behind && r.behindSince.IsZero() {
			r.behindSince = at
		}
		stalled := behind && time.Since(r.behindSince) > stallAfter && time.Since(r.advancedAt) > stallAfter && r.stopFollow != nil
		if stalled {
			r.stopFollow()
			r.advancedAt, r.behindSince = time.Now(), time.Time{}
		}
		applied := r.applied
		r.mu.Unlock()
		if stalled {
			r.log.Warn("projections: no event arrived while the stream is ahead; following it again", "applied", applied, "head", head)
		}
		return
	}
	r.mu.Lock()
	if at.After(r.syncedAt) {
		r.syncedAt = at
	}
	r.behindSince = time.Time{}
	r.mu.Unlock()
}

// AsOf is the last instant at which the model was known to hold every
// event of the stream; zero before the first check.
func (r *Runner) AsOf() time.Time {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.syncedAt
}

// WaitFor blocks until the event at seq (and all before it) is applied:
// the write path's read-your-writes.
func (r *Runner) WaitFor(ctx context.Context, seq uint64) error {
	for {
		r.mu.RLock()
		done, ch := r.applied >= seq, r.advance
		r.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for projections to reach seq %d: %w", seq, ctx.Err())
		}
	}
}

// WaitReady blocks until the runner has caught up with the stream as it
// was at start, so reads never show a half-built ledger.
func (r *Runner) WaitReady(ctx context.Context) error {
	for {
		r.mu.RLock()
		ready, ch := r.ready, r.advance
		r.mu.RUnlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("projections still catching up: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond): // readiness can come from Run, not only apply
		}
	}
}

// Read runs f with the model under the read lock. f must not keep
// references to the model's maps beyond the call. The model may not be
// the one NewRunner was given: Run replaces it with one read from a
// checkpoint.
func (r *Runner) Read(f func(m *Model)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f(r.model)
}

// Status is what /healthz reports of the projections.
type Status struct {
	Ready      bool      `json:"caught_up"`
	AppliedSeq uint64    `json:"applied_seq"`
	Events     int       `json:"events"`
	Packages   int       `json:"packages"`
	Findings   []Finding `json:"findings"`
	Error      string    `json:"error,omitempty"`
	// AsOf is when the model was last known to hold the whole stream;
	// AgeSeconds is how long ago that was (both absent before the first
	// check).
	AsOf       *time.Time `json:"as_of,omitempty"`
	AgeSeconds *float64   `json:"age_seconds,omitempty"`
	// Checkpoint is where this start resumed from and what was last
	// saved, when checkpoints are on.
	Checkpoint *CheckpointStatus `json:"checkpoint,omitempty"`
}

// Status reports progress and problems.
func (r *Runner) Status() Status {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ev, _, pk := r.model.Stats()
	s := Status{Ready: r.ready, AppliedSeq: r.applied, Events: ev, Packages: pk, Findings: r.model.Findings()}
	if r.lastErr != nil {
		s.Error = r.lastErr.Error()
	}
	if r.ck != nil {
		cs := r.ck.status
		cs.Ignored = slices.Clone(cs.Ignored)
		s.Checkpoint = &cs
	}
	if !r.syncedAt.IsZero() {
		at := r.syncedAt.UTC()
		age := time.Since(r.syncedAt).Round(time.Millisecond).Seconds()
		s.AsOf, s.AgeSeconds = &at, &age
	}
	return s
}
