package eventstore

import (
	"context"
	"errors"
	"fmt"
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
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("follow: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow: metadata: %w", err)
		}
		seq := meta.Sequence.Stream
		if exclusive {
			for missing := prev + 1; missing < seq; missing++ {
				if err := fn(missing, "", domain.Envelope{}, fmt.Errorf("stored message %d is missing or unreadable", missing)); err != nil {
					return err
				}
			}
		}
		prev = seq
		env, derr := Decode(msg.Subject(), seq, msg.Headers(), msg.Data())
		if err := fn(seq, msg.Subject(), env, derr); err != nil {
			return err
		}
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
