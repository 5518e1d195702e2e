package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// OpenReadOnly opens an existing ledger stream for reading only: it neither
// creates the stream nor changes its configuration, so that it works for a
// NATS user who may only read (the embedded server's reader, an auditor's
// account on a cluster) and never touches the record it is asked to check.
// cfg.Signer must be nil: such a store cannot write.
func OpenReadOnly(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.Signer != nil {
		return nil, errors.New("eventstore: a read-only store takes no signer")
	}
	if cfg.Stream == "" {
		cfg.Stream = "LEDGER"
	}
	if err := CheckDealer(cfg.Dealer); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := js.Stream(ctx, cfg.Stream); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("no stream %s: not a packledger ledger (or another --stream)", cfg.Stream)
		}
		return nil, fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}
	if cfg.Keyring == nil {
		cfg.Keyring = NewKeyring()
	}
	return &Store{nc: nc, js: js, stream: cfg.Stream, subjects: Subjects{Dealer: cfg.Dealer}, ring: cfg.Keyring}, nil
}

// RawMessage is one message of the log exactly as JetStream stores it:
// nothing decoded, nothing judged.
type RawMessage struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
}

// ScanRaw reads every message on the dealer's subjects, in stream order, as
// the log stands when the scan starts, and returns the last sequence it
// read up to (0 for an empty ledger). It is how an export reads: the whole
// record, foreign messages included, byte for byte.
func (s *Store) ScanRaw(ctx context.Context, fn func(RawMessage) error) (uint64, error) {
	head, err := s.Head(ctx)
	if err != nil || head == 0 {
		return 0, err
	}
	cons, err := s.js.OrderedConsumer(ctx, s.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.subjects.All()},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("scan: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, fmt.Errorf("scan: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("scan: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return 0, fmt.Errorf("scan: metadata: %w", err)
		}
		seq := meta.Sequence.Stream
		if err := fn(RawMessage{Seq: seq, Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}); err != nil {
			return 0, err
		}
		if seq >= head {
			return head, nil
		}
	}
}
