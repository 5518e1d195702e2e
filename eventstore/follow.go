package eventstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/packledger/packledger/domain"
)

// Feed is the stream as the projections read it: every event of the
// dealer in order, each foreign event reaching the reader with the reason
// it is foreign, and the chain state kept across reconnects so that a
// resumed follow judges the next event as an unbroken one would.
type Feed struct {
	s      *Store
	chains *Chains
	seen   uint64
}

// Feed returns a new feed over the store's keyring.
func (s *Store) Feed() *Feed { return &Feed{s: s, chains: NewChains(s.ring)} }

// Head is the store's Head.
func (f *Feed) Head(ctx context.Context) (uint64, error) { return f.s.Head(ctx) }

// Follow is the store's Follow with each event judged by its chain.
func (f *Feed) Follow(ctx context.Context, from uint64, fn func(seq uint64, subject string, env domain.Envelope, err error) error) error {
	return f.s.follow(ctx, from, func(seq uint64, subject string, env domain.Envelope, err error) error {
		if seq <= f.seen {
			return nil // delivered again after a reconnect: already judged
		}
		f.seen = seq
		if err == nil {
			err = f.chains.Check(env)
		}
		return fn(seq, subject, env, err)
	})
}

// follow delivers every message of this dealer's subjects from sequence
// from on, in order, to fn, until ctx ends or fn returns an error. A
// message that cannot be decoded reaches fn with its sequence, subject and
// the reason (err). It uses an ordered consumer, which JetStream recreates
// on its own after a gap or a reconnect, so fn sees each sequence once and
// in order. It does not judge chains: Feed and Scan do, so that no reader
// outside this package sees the stream unjudged.
func (s *Store) follow(ctx context.Context, from uint64, fn func(seq uint64, subject string, env domain.Envelope, err error) error) error {
	if from < 1 {
		from = 1
	}
	cons, err := s.js.OrderedConsumer(ctx, s.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.subjects.All()},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return fmt.Errorf("follow from %d: %w", from, err)
	}
	// A heartbeat a second (not the ordered consumer's five) notices
	// within two seconds a consumer lost with its server, such as a
	// cluster node that died, so read-your-writes stalls no longer.
	it, err := cons.Messages(jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("follow from %d: %w", from, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	// On a stream of this dealer alone every sequence is ours: a sequence
	// skipped is a stored message that could not be read, and is named.
	exclusive, prev := s.exclusive(ctx), from-1
	msgs, wait := decodeAhead(it)
	defer wait()
	for d := range msgs {
		<-d.done
		if d.readErr != nil {
			if ctx.Err() != nil || errors.Is(d.readErr, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("follow: %w", d.readErr)
		}
		if d.metaErr != nil {
			return fmt.Errorf("follow: metadata: %w", d.metaErr)
		}
		if exclusive {
			for missing := prev + 1; missing < d.seq; missing++ {
				if err := fn(missing, "", domain.Envelope{}, fmt.Errorf("stored message %d is missing or unreadable", missing)); err != nil {
					return err
				}
			}
		}
		prev = d.seq
		if err := fn(d.seq, d.subject, d.env, d.err); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// decoding is one message read from a follow, decoded by one of
// decodeAhead's workers.
type decoding struct {
	msg     jetstream.Msg
	readErr error // the read failed: the last of the follow
	metaErr error
	seq     uint64
	subject string
	env     domain.Envelope
	err     error
	done    chan struct{}
}

// decodeAheadDepth bounds the messages read ahead of the one being
// applied.
const decodeAheadDepth = 256

// decodeAhead reads it and decodes each message on every core, handing
// them out in stream order. Decoding (JSON, the body's hash) is most of
// what reading an event costs, and the reader applies events one at a
// time, in order, on one goroutine; decoding the next ones meanwhile lets
// a rebuild use the machine's other cores and a write's answer wait less.
// The channel ends after a message that carries the read's error. wait
// stops the reading and waits for the goroutines, once it is stopped (the
// caller stops it).
func decodeAhead(it jetstream.MessagesContext) (<-chan *decoding, func()) {
	out := make(chan *decoding, decodeAheadDepth)
	work := make(chan *decoding, decodeAheadDepth)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(out)
		defer close(work)
		for {
			msg, err := it.Next()
			d := &decoding{msg: msg, readErr: err, done: make(chan struct{})}
			if err != nil {
				close(d.done)
			}
			select {
			case out <- d:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
			work <- d // never blocks for long: out holds as many
		}
	}()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				if meta, err := d.msg.Metadata(); err != nil {
					d.metaErr = err
				} else {
					d.seq, d.subject = meta.Sequence.Stream, d.msg.Subject()
					d.env, d.err = Decode(d.subject, d.seq, d.msg.Headers(), d.msg.Data())
				}
				d.msg = nil
				close(d.done)
			}
		}()
	}
	return out, func() {
		close(quit)
		it.Stop()
		// Drain, so that a reader blocked on a full channel lets go.
		go func() {
			for range out {
			}
		}()
		wg.Wait()
	}
}

// errScanDone ends a scan's follow once the head is reached.
var errScanDone = errors.New("scan done")

// Scan reads the dealer's whole log as it stands when the scan starts,
// judging each event by its chain, and returns the last sequence read.
// It is how the auditor's tools read: from the first event, with chain
// state of their own, so they trust nothing the server has computed.
func (s *Store) Scan(ctx context.Context, fn func(seq uint64, subject string, env domain.Envelope, err error) error) (uint64, error) {
	head, err := s.Head(ctx)
	if err != nil || head == 0 {
		return 0, err
	}
	chains := NewChains(s.ring)
	err = s.follow(ctx, 1, func(seq uint64, subject string, env domain.Envelope, err error) error {
		if err == nil {
			err = chains.Check(env)
		}
		if ferr := fn(seq, subject, env, err); ferr != nil {
			return ferr
		}
		if seq >= head {
			return errScanDone
		}
		return nil
	})
	if errors.Is(err, errScanDone) {
		return head, nil
	}
	return head, err
}
