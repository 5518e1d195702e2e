package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/packledger/packledger/domain"
)

// Record is one message read from the stream: the decoded envelope, or the
// reason it could not be decoded (Err), which a follower must record rather
// than apply.
type Record struct {
	Seq     uint64
	Subject string
	Env     domain.Envelope
	Err     error
	// Pending is how many messages the stream held after this one when it
	// was delivered; 0 means the follower has caught up for now.
	Pending uint64
}

// Follow delivers every message of this dealer's subjects from sequence
// from on, in order, to fn, until ctx ends or fn returns an error. It uses
// an ordered consumer, which JetStream recreates on its own after a gap or
// a reconnect, so fn sees each sequence once and in order.
func (s *Store) Follow(ctx context.Context, from uint64, fn func(Record) error) error {
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
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow from %d: %w", from, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
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
		rec := Record{Seq: meta.Sequence.Stream, Subject: msg.Subject(), Pending: meta.NumPending}
		rec.Env, rec.Err = Decode(msg.Subject(), rec.Seq, msg.Headers(), msg.Data())
		if err := fn(rec); err != nil {
			return err
		}
	}
}
