package projections

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CheckpointStore keeps checkpoints where a later start can trust them
// (eventstore.Checkpoints): Save signs what it writes, and Load offers use
// only a checkpoint that matches the stream, the newest first, telling
// reject why it passed over each other one.
type CheckpointStore interface {
	Save(ctx context.Context, seq uint64, subject, hash string, parts ...[]byte) error
	Load(ctx context.Context, use func(seq uint64, parts [][]byte) error, reject func(name string, err error)) (string, error)
}

// ResumableSource is a Source whose own state (the feed's chain
// judgments) goes into a checkpoint with the read models, since a resumed
// feed must judge the next event exactly as an unbroken one would.
// Snapshot and Release are called between two events from the goroutine
// that follows, or while none does.
type ResumableSource interface {
	Source
	Snapshot() (appendTo func(b []byte) []byte)
	Release()
	// Restore reads the source's state from a checkpoint and returns
	// what puts it in place, changing nothing until then.
	Restore(data []byte, seq uint64) (commit func(), err error)
}

// CheckpointPolicy says when the runner writes a checkpoint: after Every
// events, or Interval after the last one once an event has been applied,
// and once at the end of a start's catch-up that read a tenth of Every.
// Stop with SaveCheckpoint for the last one.
type CheckpointPolicy struct {
	Every    int
	Interval time.Duration
}

// Defaults of CheckpointPolicy: a checkpoint of a million packages takes
// a core a few seconds to write, so not too often; a start then reads at
// most a million events past it, a few seconds' work.
const (
	DefaultCheckpointEvery    = 1_000_000
	DefaultCheckpointInterval = 10 * time.Minute
)

// CheckpointStatus is what /healthz tells of checkpoints.
type CheckpointStatus struct {
	// Seq is the sequence this start resumed after: 0 when it read the
	// whole stream.
	Seq  uint64 `json:"seq"`
	Name string `json:"name,omitempty"`
	// Ignored says why each checkpoint passed over was not trusted.
	Ignored  []string   `json:"ignored,omitempty"`
	SavedSeq uint64     `json:"saved_seq,omitempty"`
	SavedAt  *time.Time `json:"saved_at,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// checkpointer is the runner's part in checkpoints; the runner's lock
// guards it.
type checkpointer struct {
	store  CheckpointStore
	src    ResumableSource
	policy CheckpointPolicy

	since   int       // events applied since the last snapshot
	last    time.Time // when the last snapshot was taken
	busy    chan struct{}
	release bool // the last snapshots are written: release them
	// The last event applied: a checkpoint names it.
	lastSeq               uint64
	lastSubject, lastHash string
	status                CheckpointStatus
}

// UseCheckpoints makes the runner resume from a checkpoint in store and
// write them by policy. Call it before Run; src must be a ResumableSource.
func (r *Runner) UseCheckpoints(store CheckpointStore, policy CheckpointPolicy) error {
	src, ok := r.src.(ResumableSource)
	if !ok {
		return errors.New("checkpoints: the source cannot save and restore its own state")
	}
	if policy.Every <= 0 {
		policy.Every = DefaultCheckpointEvery
	}
	if policy.Interval <= 0 {
		policy.Interval = DefaultCheckpointInterval
	}
	r.ck = &checkpointer{store: store, src: src, policy: policy, last: time.Now()}
	return nil
}

// resume loads the newest checkpoint that can be trusted and read, if
// any: the model and the source's state both, or neither.
func (r *Runner) resume(ctx context.Context) {
	c := r.ck
	if c == nil {
		return
	}
	start := time.Now()
	var read time.Duration // of start to when the last was read
	var size int
	use := func(seq uint64, parts [][]byte) error {
		read, size = time.Since(start), 0
		for _, p := range parts {
			size += len(p)
		}
		if len(parts) != 2 {
			return fmt.Errorf("it has %d parts, not 2", len(parts))
		}
		// The two parts read at once: each is a second or so for a
		// million packages.
		var commit func()
		var ferr error
		feedDone := make(chan struct{})
		go func() {
			defer close(feedDone)
			commit, ferr = c.src.Restore(parts[1], seq)
		}()
		m, err := decodeModel(r.model.tz, parts[0])
		<-feedDone
		if err = errors.Join(err, ferr); err != nil {
			return err
		}
		if m.lastSeq != seq {
			return fmt.Errorf("it covers seq %d but its read models seq %d", seq, m.lastSeq)
		}
		commit()
		r.mu.Lock()
		r.model, r.applied = m, seq
		c.status.Seq = seq
		r.mu.Unlock()
		return nil
	}
	reject := func(name string, err error) {
		r.log.Warn("projections: checkpoint ignored; reading the stream instead", "checkpoint", name, "why", err)
		r.mu.Lock()
		c.status.Ignored = append(c.status.Ignored, name+": "+err.Error())
		r.mu.Unlock()
	}
	name, err := c.store.Load(ctx, use, reject)
	switch {
	case err != nil:
		r.log.Warn("projections: checkpoints could not be read; reading the whole stream", "err", err)
	case name == "":
		r.log.Info("projections: no checkpoint to resume from; reading the whole stream")
	default:
		r.mu.Lock()
		c.status.Name = name
		seq := c.status.Seq
		r.mu.Unlock()
		took := time.Since(start)
		r.log.Info("projections: resumed from checkpoint", "checkpoint", name, "seq", seq, "bytes", size,
			"took", took.Round(time.Millisecond), "reading", read.Round(time.Millisecond), "decoding", (took - read).Round(time.Millisecond))
	}
}

// applied is told of each event the runner applies, under its lock, and
// takes a snapshot when one is due.
func (c *checkpointer) applied(r *Runner, seq uint64, subject, hash string) {
	if c.release {
		r.model.release()
		c.src.Release()
		c.release = false
	}
	c.since++
	c.lastSeq, c.lastSubject, c.lastHash = seq, subject, hash
	if c.busy != nil || hash == "" {
		return
	}
	caughtUp := !r.ready && seq >= r.head && c.since >= c.policy.Every/10
	if c.since < c.policy.Every && time.Since(c.last) < c.policy.Interval && !caughtUp {
		return
	}
	write := c.snapshot(r)
	done := make(chan struct{})
	c.busy = done
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		c.finish(r, seq, write(ctx))
	}()
}

// snapshot freezes the model and the source, quickly and under the lock,
// and returns what writes them out, which may take long and runs outside.
func (c *checkpointer) snapshot(r *Runner) func(ctx context.Context) error {
	model, feed := r.model.snapshot(), c.src.Snapshot()
	seq, subject, hash := c.lastSeq, c.lastSubject, c.lastHash
	c.since, c.last = 0, time.Now()
	log := r.log
	return func(ctx context.Context) error {
		start := time.Now()
		packages := model.packs.Len()
		mb, err := model.appendTo(make([]byte, 0, 512*packages+4096))
		if err != nil {
			return err
		}
		fb := feed(nil)
		if err := c.store.Save(ctx, seq, subject, hash, mb, fb); err != nil {
			return err
		}
		log.Info("projections: checkpoint written", "seq", seq, "packages", packages,
			"bytes", len(mb)+len(fb), "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
}

func (c *checkpointer) finish(r *Runner, seq uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.busy, c.release = nil, true
	if err != nil {
		c.status.Error = err.Error()
		r.log.Warn("projections: checkpoint not written", "err", err)
		return
	}
	now := time.Now().UTC()
	c.status.Error, c.status.SavedAt = "", &now
	c.status.SavedSeq = seq
}

// SaveCheckpoint writes a checkpoint of everything applied, once Run has
// returned: the last one, on a clean stop. It waits for one being written.
func (r *Runner) SaveCheckpoint(ctx context.Context) error {
	c := r.ck
	if c == nil {
		return nil
	}
	r.mu.Lock()
	busy := c.busy
	r.mu.Unlock()
	if busy != nil {
		select {
		case <-busy:
		case <-ctx.Done():
			return fmt.Errorf("checkpoint: %w", ctx.Err())
		}
	}
	r.mu.Lock()
	if c.release {
		r.model.release()
		c.src.Release()
		c.release = false
	}
	if c.since == 0 || c.lastHash == "" || c.lastSeq != r.applied {
		r.mu.Unlock()
		return nil // nothing new since the last, or nothing a checkpoint can name
	}
	write, seq := c.snapshot(r), c.lastSeq
	r.mu.Unlock()
	err := write(ctx)
	c.finish(r, seq, err)
	return err
}
