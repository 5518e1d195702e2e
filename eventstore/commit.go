package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// groupCommit appends the changes of concurrent commands together. With
// fsync on, a durable append costs a disk sync, and one append at a time
// caps the ledger at the disk's syncs per second. Commands on different
// packages are decided in parallel (each under its own subject's lock);
// their messages queue here, and whatever queued while the previous
// append was on its way goes out as one JetStream atomic batch, stored
// and synced once. A command that finds nothing in flight goes out at
// once, alone: group commit never waits for company that is not coming.
//
// An atomic batch is all or nothing, so one command whose expected
// sequence no longer holds (another server wrote its package) would fail
// every command with it. A failed batch is split in halves and each half
// sent again, down to the command that fails, which alone gets the
// error; the others land. A failure to reach JetStream is not split: the
// outcome is unknown for every command of the batch, and each is told so.
//
// Nothing is acknowledged before JetStream's answer to the append that
// holds it, which the server sends after storing (and, with fsync on,
// syncing) the whole batch.
type groupCommit struct {
	s       *Store
	maxMsgs int // messages in one batch
	// small is the most messages that go as separate appends rather than
	// one batch (see send).
	small int

	mu      sync.Mutex
	queue   []*pendingAppend
	running bool          // a flush goroutine is at work
	arrived chan struct{} // a command queued (capacity 1: a doorbell)

	// What it did, for the bench and the logs.
	appends, commands, messages atomic.Int64
}

// pendingAppend is one command's messages, waiting for their sequences.
type pendingAppend struct {
	msgs []Outgoing
	seqs []uint64
	err  error
	done chan struct{}
}

// Limits of group commit. JetStream takes at most 1000 messages in one
// atomic batch and holds at most 50 batches open per stream.
const (
	defaultCommitMsgs = 256
	// An atomic batch costs JetStream far more than a plain publish (in
	// nats-server 2.15 it stages each batch in a file store of its own,
	// made and removed with syncs of their own), so a handful of
	// commands goes faster as separate publishes sent together, each
	// synced, than as one batch. Measured on the 2-core machines of
	// BENCHMARKS.md, the two cost the same at about a dozen messages.
	defaultCommitSmall = 12
	// commitTimeout bounds one append's round trip, whatever its
	// waiters' own deadlines: a waiter that gives up earlier is told the
	// outcome is unknown, and the append goes on for the others. With
	// one append in flight, a stalled one holds every writer behind it,
	// and a stream leader that steps down may never answer an append it
	// took just before: in CI a lame duck handover waited out a 5 s
	// bound. Synced batches answer in tens of milliseconds under the
	// heaviest load measured (BENCHMARKS.md), so 2 s is two orders of
	// magnitude above that; a timed-out command is retried by its key.
	commitTimeout = 2 * time.Second
	// maxLinger bounds how long a batch waits for the commands of the
	// one before it to come back (see flush).
	maxLinger = 2 * time.Millisecond
)

// GroupCommitMode says how concurrent commands are appended.
type GroupCommitMode int

const (
	// GroupCommitAuto appends a few concurrent commands as separate
	// publishes sent together, and more as one atomic batch: the
	// default, and the fastest on the machines measured.
	GroupCommitAuto GroupCommitMode = iota
	// GroupCommitAlways appends any two or more concurrent commands as
	// one atomic batch: for a store whose batches cost little, and for
	// tests, so that every concurrent write goes through batching.
	GroupCommitAlways
	// GroupCommitOff appends each command on its own.
	GroupCommitOff
)

// MarshalText writes the mode as a flag takes it.
func (m GroupCommitMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a mode as String writes it.
func (m *GroupCommitMode) UnmarshalText(b []byte) error {
	for v := GroupCommitAuto; v <= GroupCommitOff; v++ {
		if v.String() == string(b) {
			*m = v
			return nil
		}
	}
	return fmt.Errorf("group commit %q: want auto, always or off", b)
}

func (m GroupCommitMode) String() string {
	switch m {
	case GroupCommitAuto:
		return "auto"
	case GroupCommitAlways:
		return "always"
	case GroupCommitOff:
		return "off"
	}
	return fmt.Sprintf("GroupCommitMode(%d)", int(m))
}

func newGroupCommit(s *Store, mode GroupCommitMode) *groupCommit {
	g := &groupCommit{s: s, maxMsgs: defaultCommitMsgs, small: defaultCommitSmall, arrived: make(chan struct{}, 1)}
	switch mode {
	case GroupCommitAlways:
		g.small = 0
	case GroupCommitOff:
		g.maxMsgs = 1
	}
	return g
}

// CommitStats is what group commit has done since the store opened.
type CommitStats struct {
	// Appends is how many appends went to JetStream (batches, or
	// commands alone), Commands how many commands they carried and
	// Messages how many messages; a split batch counts each send.
	Appends, Commands, Messages int64
}

// CommitStats reports group commit's work so far.
func (s *Store) CommitStats() CommitStats {
	g := s.commits
	return CommitStats{Appends: g.appends.Load(), Commands: g.commands.Load(), Messages: g.messages.Load()}
}

// append stores msgs, atomically, together with whatever other commands'
// messages are queued, and returns their stream sequences.
func (g *groupCommit) append(ctx context.Context, msgs []Outgoing) ([]uint64, error) {
	p := &pendingAppend{msgs: msgs, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	start := !g.running
	g.running = true
	g.mu.Unlock()
	if start {
		go g.flush()
	} else {
		select {
		case g.arrived <- struct{}{}:
		default:
		}
	}
	select {
	case <-p.done:
		return p.seqs, p.err
	case <-ctx.Done():
		// Queued or on its way, it may still land: an unknown outcome.
		return nil, ctx.Err()
	}
}

// flush sends batches, one at a time, until the queue is empty.
//
// One at a time, because JetStream stores a stream's appends one after
// the other anyway; a second batch in flight only splits the waiting
// commands into two smaller batches. Under steady load that splitting
// happens by itself: the commands of the batch on its way come back
// with their next command a moment after its answer, and would make up
// the batch after next. So after a batch of several commands, the next
// waits until they have queued too, behind those that queued while it
// was on its way, for at most a third of the last batch's round trip
// (and maxLinger): a little latency for a batch twice as big. After a
// command alone, nothing waits.
func (g *groupCommit) flush() {
	last, took := 0, time.Duration(0)
	for {
		if last > 1 {
			g.mu.Lock()
			want := min(last+len(g.queue), g.maxMsgs)
			g.mu.Unlock()
			g.linger(want, min(maxLinger, took/3))
		}
		g.mu.Lock()
		batch := g.take()
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		g.send(ctx, batch)
		cancel()
		last, took = len(batch), time.Since(t0)
	}
}

// linger waits until want commands are queued, for at most d.
func (g *groupCommit) linger(want int, d time.Duration) {
	if d <= 0 {
		return
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		n := len(g.queue)
		g.mu.Unlock()
		if n >= want {
			return
		}
		select {
		case <-g.arrived:
		case <-deadline.C:
			return
		}
	}
}

// take removes from the queue the commands of the next batch, up to
// maxMsgs messages (a command bigger than that goes alone).
func (g *groupCommit) take() []*pendingAppend {
	n, msgs := 0, 0
	for n < len(g.queue) && (n == 0 || msgs+len(g.queue[n].msgs) <= g.maxMsgs) {
		msgs += len(g.queue[n].msgs)
		n++
	}
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	if len(g.queue) == 0 {
		g.queue = nil // let the backing array go
	}
	return batch
}

// send appends a batch of commands and tells each its outcome. A few
// commands go as separate appends, sent together; more go as one atomic
// batch, split when JetStream refuses it for one command's sake.
func (g *groupCommit) send(ctx context.Context, batch []*pendingAppend) {
	var msgs []Outgoing
	for _, p := range batch {
		msgs = append(msgs, p.msgs...)
	}
	if len(batch) == 1 {
		// Alone: sent from here, without a goroutine of its own.
		p := batch[0]
		p.seqs, p.err = g.append1(ctx, p.msgs, 1)
		close(p.done)
		return
	}
	if len(msgs) <= g.small {
		var wg sync.WaitGroup
		for _, p := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.seqs, p.err = g.append1(ctx, p.msgs, 1)
				close(p.done)
			}()
		}
		wg.Wait()
		return
	}
	seqs, err := g.append1(ctx, msgs, len(batch))
	switch {
	case err == nil:
		for _, p := range batch {
			p.seqs, seqs = seqs[:len(p.msgs):len(p.msgs)], seqs[len(p.msgs):]
			close(p.done)
		}
	case commandsFault(err):
		half := len(batch) / 2
		g.send(ctx, batch[:half])
		g.send(ctx, batch[half:])
	default:
		for _, p := range batch {
			p.err = err
			close(p.done)
		}
	}
}

// append1 is one append to JetStream of the messages of n commands: a
// single message as a plain publish, several as an atomic batch, sent
// again when JetStream refused it without storing anything.
func (g *groupCommit) append1(ctx context.Context, msgs []Outgoing, n int) ([]uint64, error) {
	g.appends.Add(1)
	g.commands.Add(int64(n))
	g.messages.Add(int64(len(msgs)))
	seqs, err := g.s.Append(ctx, msgs)
	for try := 1; try < transientTries && isTransient(err); try++ {
		select {
		case <-time.After(time.Duration(try) * 5 * time.Millisecond):
		case <-ctx.Done():
		}
		seqs, err = g.s.Append(ctx, msgs)
	}
	return seqs, err
}

// transientTries bounds the sends of a batch JetStream refused without
// storing anything (see batchAPIError.transient).
const transientTries = 3

func isTransient(err error) bool {
	var api *batchAPIError
	return errors.As(err, &api) && api.transient()
}

// commandsFault tells a refusal caused by what some message of a batch
// says (an expected sequence that no longer holds, a message id already
// stored, any rule of the stream's) from a failure to reach JetStream.
func commandsFault(err error) bool {
	var dup *DuplicateError
	var api *batchAPIError
	return errors.Is(err, ErrConflict) || errors.As(err, &dup) || errors.As(err, &api) && !api.transient()
}
