package projections

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
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
	// Preloaded is set when the checkpoint was read before NATS was up,
	// from the local copy.
	Preloaded bool `json:"preloaded,omitempty"`
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
	pre                   *Preload // tried first at start, if set
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
// any: the model and the source's state both, or neither. A preloaded
// checkpoint goes first.
func (r *Runner) resume(ctx context.Context) {
	c := r.ck
	if c == nil {
		return
	}
	if p := c.pre; p != nil {
		c.pre = nil // its memory goes with it if it is not used
		if r.resumePreloaded(ctx, p) {
			return
		}
	}
	start := time.Now()
	var read time.Duration // of start to when the last was read
	var size int
	use := func(seq uint64, parts [][]byte) error {
		read, size = time.Since(start), partsSize(parts)
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
		m, err := decodeCheckpointModel(r.model.tz, seq, parts[0])
		<-feedDone
		if err = errors.Join(err, ferr); err != nil {
			return err
		}
		r.install(seq, m, commit)
		return nil
	}
	name, err := c.store.Load(ctx, use, func(name string, err error) { r.rejectCheckpoint(name, err) })
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

// resumePreloaded resumes from p if its store vouches for it, restoring
// the source's state meanwhile, and says whether it did.
func (r *Runner) resumePreloaded(ctx context.Context, p *Preload) bool {
	c := r.ck
	start := time.Now()
	select {
	case <-p.read:
	case <-ctx.Done():
		return false
	}
	if errors.Is(p.readErr, fs.ErrNotExist) {
		// The first start, or the first since the copy came in: normal.
		r.log.Debug("projections: no local copy of a checkpoint to preload", "err", p.readErr)
		return false
	}
	cand := p.cand
	label := cand.Name + " (preloaded)"
	if p.readErr != nil {
		r.rejectCheckpoint("preloaded", p.readErr)
		return false
	}
	if p.tz.String() != r.model.tz.String() {
		r.rejectCheckpoint(label, fmt.Errorf("decoded for business days in %s, not %s", p.tz, r.model.tz))
		return false
	}
	// The store vouches and the source restores its state while the
	// model is still being decoded.
	var commit func()
	var ferr, verr error
	var wg sync.WaitGroup
	wg.Go(func() { verr = cand.Vouch(ctx, c.store) })
	if len(cand.Parts) == 2 {
		wg.Go(func() { commit, ferr = c.src.Restore(cand.Parts[1], cand.Seq) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false
	}
	if err := errors.Join(verr, ferr); err != nil {
		r.rejectCheckpoint(label, err)
		return false
	}
	select {
	case <-p.decoded:
	case <-ctx.Done():
		return false
	}
	if p.decodeErr != nil {
		r.rejectCheckpoint(label, p.decodeErr)
		return false
	}
	r.install(cand.Seq, p.model, commit)
	r.mu.Lock()
	c.status.Name, c.status.Preloaded = cand.Name, true
	r.mu.Unlock()
	r.log.Info("projections: resumed from preloaded checkpoint", "checkpoint", cand.Name, "seq", cand.Seq,
		"bytes", partsSize(cand.Parts), "reading", p.readTook.Round(time.Millisecond),
		"decoding", p.decodeTook.Round(time.Millisecond), "waited", time.Since(start).Round(time.Millisecond))
	return true
}

// install makes a checkpoint's model the runner's and puts the source's
// state in place with commit.
func (r *Runner) install(seq uint64, m *Model, commit func()) {
	commit()
	r.mu.Lock()
	r.model, r.applied = m, seq
	r.ck.status.Seq = seq
	r.mu.Unlock()
}

func (r *Runner) rejectCheckpoint(name string, err error) {
	r.log.Warn("projections: checkpoint ignored; reading the stream instead", "checkpoint", name, "why", err)
	r.mu.Lock()
	r.ck.status.Ignored = append(r.ck.status.Ignored, name+": "+err.Error())
	r.mu.Unlock()
}

// decodeCheckpointModel decodes the model part of a checkpoint that
// covers the stream up to seq.
func decodeCheckpointModel(tz *time.Location, seq uint64, part []byte) (*Model, error) {
	m, err := decodeModel(tz, part)
	if err != nil {
		return nil, err
	}
	if m.lastSeq != seq {
		return nil, fmt.Errorf("it covers seq %d but its read models seq %d", seq, m.lastSeq)
	}
	return m, nil
}

func partsSize(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// Candidate is a checkpoint read before its store could be asked about
// it: a copy on local disk, read while NATS starts.
type Candidate struct {
	Name  string
	Seq   uint64
	Parts [][]byte
	// Vouch says whether the checkpoint may be trusted, asking the store
	// the runner keeps its checkpoints in.
	Vouch func(ctx context.Context, store CheckpointStore) error
}

// Preload is a checkpoint being read and decoded in the background, so
// that a start spends the time its event store takes to come up on it.
// A runner resumes from it only if its store vouches for it.
type Preload struct {
	tz      *time.Location
	read    chan struct{} // closed once cand and readErr are set
	decoded chan struct{} // closed once model and decodeErr are set

	cand                 Candidate
	readErr              error
	model                *Model
	decodeErr            error
	readTook, decodeTook time.Duration
}

// StartPreload calls read and decodes the read models of the checkpoint
// it returns, in the background, with business days in tz.
func StartPreload(tz *time.Location, read func() (Candidate, error)) *Preload {
	p := &Preload{tz: tz, read: make(chan struct{}), decoded: make(chan struct{})}
	go func() {
		defer close(p.decoded)
		start := time.Now()
		p.cand, p.readErr = read()
		p.readTook = time.Since(start)
		close(p.read)
		if p.readErr != nil {
			return
		}
		if len(p.cand.Parts) != 2 {
			p.decodeErr = fmt.Errorf("it has %d parts, not 2", len(p.cand.Parts))
			return
		}
		p.model, p.decodeErr = decodeCheckpointModel(tz, p.cand.Seq, p.cand.Parts[0])
		p.decodeTook = time.Since(start) - p.readTook
	}()
	return p
}

// ResumeFirstFrom makes the runner try p before the checkpoints in its
// store. Call it after UseCheckpoints, before Run.
func (r *Runner) ResumeFirstFrom(p *Preload) error {
	if r.ck == nil {
		return errors.New("checkpoints: a preload with no checkpoint store to vouch for it")
	}
	r.ck.pre = p
	return nil
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
