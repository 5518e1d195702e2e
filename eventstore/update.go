package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/packledger/packledger/domain"
)

// Meta is what every envelope of one command shares.
type Meta struct {
	Store string
	Actor domain.Actor
	// Key is the client's idempotency key; empty when the client sent none.
	Key string
	// Request is a digest of the request that carried Key.
	Request string
}

// Change is what a decision appends: events on the aggregate's own subject,
// and claims on other subjects that must still be empty (a receipt number).
type Change struct {
	Events []domain.Event
	Claims []Claim
}

// Claim is an event on a subject of its own that must not exist yet.
type Claim struct {
	Subject string
	Event   domain.Event
}

// ClaimTakenError says a claim's subject was already taken; Existing is
// what took it.
type ClaimTakenError struct {
	Subject  string
	Existing domain.Envelope
}

func (e *ClaimTakenError) Error() string {
	return fmt.Sprintf("eventstore: %s is already claimed at seq %d", e.Subject, e.Existing.Seq)
}

// KeyUsedError says the idempotency key was already used by this actor on
// another subject; Existing is the event it wrote there. A sale, which
// makes a new subject each attempt, uses it to find its first attempt.
type KeyUsedError struct {
	Key      string
	Existing domain.Envelope
}

func (e *KeyUsedError) Error() string {
	return fmt.Sprintf("eventstore: idempotency key %q already used on %s", e.Key, e.Existing.Subject)
}

// Unwrap makes it the domain's idempotency conflict for anyone who does not
// look closer.
func (e *KeyUsedError) Unwrap() error {
	return domain.Errorf(domain.CodeIdempotencyConflict, "Idempotency-Key %q was already used for another request", e.Key)
}

// Result is what Update did.
type Result struct {
	// History is the aggregate's events up to and including the ones this
	// command appended (or, for a replay, found).
	History []domain.Envelope
	// Appended are this command's events on the aggregate subject, with
	// their sequences; empty when the decision was to do nothing.
	Appended []domain.Envelope
	// Replayed is set when the idempotency key had already been carried
	// out: Appended are the events it appended then.
	Replayed bool
	// LastSeq is the highest stream sequence this command wrote or found.
	LastSeq uint64
}

// Clock tells the time; tests inject a fixed one.
type Clock func() time.Time

// maxAttempts bounds the retries after a conflict. Commands on one package
// are serialised in this process, so conflicts come only from other
// servers sharing the stream; a handful of attempts is plenty.
const maxAttempts = 12

// Update carries out one command on one aggregate: it loads the subject,
// lets decide choose the change against that history, appends it with the
// subject's sequence as the expected one, and decides again on fresh state
// after a conflict.
//
// A retried request is recognised by its idempotency key in the envelopes
// already on the subject (JetStream checks the expected sequence before its
// duplicate window, so a retry of a write that landed sees a conflict, not
// a duplicate): Update then returns what the first attempt appended.
func (s *Store) Update(ctx context.Context, subject string, meta Meta, now Clock,
	decide func(history []domain.Envelope) (Change, error)) (Result, error) {
	unlock := s.locks.lock(subject)
	defer unlock()
	if !s.nc.IsConnected() {
		// Fail at once: a till waiting out a reconnect buffer or a
		// request timeout learns nothing more than this.
		return Result{}, unreachable(fmt.Errorf("nats connection is %v", s.nc.Status()))
	}
	backoff := time.Millisecond
	dupKey := false // JetStream knew the key, without saying where
	for attempt := 1; ; attempt++ {
		// The first attempt decides on the subject as this store last
		// wrote it, when it has it: the append's expected sequence
		// catches any write since. A retry reads it afresh, through the
		// stream's leader: a conflict or a duplicate may come of a
		// follower, behind, that answered the last read, and would answer
		// the next one the same.
		sub, cached := Subject{}, false
		if attempt == 1 {
			sub, cached = s.written.get(subject)
		}
		if !cached {
			var err error
			if sub, err = s.load(ctx, subject, attempt > 1); err != nil {
				return Result{}, unavailable(err)
			}
		}
		hist := sub.Events
		if r, ok, err := findReplay(hist, meta); ok || err != nil {
			return r, err
		}
		if dupKey {
			// Not on this subject, so on another: an atomic batch's
			// duplicate answer carries no sequence to look it up by.
			return Result{}, domain.Errorf(domain.CodeIdempotencyConflict,
				"Idempotency-Key %q was already used for another request", meta.Key)
		}
		ch, err := decide(hist)
		if err != nil {
			// A refusal writes nothing, so no expected sequence checks
			// the state it was decided on. That state may be behind: the
			// cache misses what other servers wrote, and a follower (a
			// cluster node catching up) can make a package look unpaid,
			// or not there at all. Decide again on a fresh read, the
			// leader's, before saying no.
			if attempt == 1 && (cached || s.replicated) && refusal(err) {
				s.written.drop(subject)
				continue
			}
			return Result{}, err
		}
		if len(ch.Events) == 0 {
			return Result{History: hist, LastSeq: lastSubjectSeq(hist)}, nil
		}
		if s.signer == nil {
			return Result{}, errors.New("eventstore: this store has no signing key and cannot write")
		}
		claimSeqs, err := s.claimSeqs(ctx, ch.Claims, attempt)
		if err != nil {
			return Result{}, err
		}
		msgs, appended, err := s.build(subject, sub, meta, now(), ch, claimSeqs)
		if err != nil {
			return Result{}, err
		}
		seqs, err := s.commits.append(ctx, msgs)
		var dup *DuplicateError
		switch {
		case err == nil:
			for i := range appended {
				appended[i].Seq = seqs[len(ch.Claims)+i]
			}
			after := append(hist[:len(hist):len(hist)], appended...)
			s.written.put(subject, Subject{Events: after, LastSeq: appended[len(appended)-1].Seq})
			return Result{History: after, Appended: appended, LastSeq: seqs[len(seqs)-1]}, nil
		case errors.As(err, &dup):
			// JetStream has the key from an earlier attempt. On this
			// subject, the next load finds it; elsewhere, the key was used
			// for another request.
			if dup.Seq != 0 {
				first, gerr := s.Get(ctx, dup.Seq)
				if gerr == nil && first.Subject != subject {
					if first.Actor != meta.Actor || first.Key != meta.Key || s.ring.Authentic(first) != nil {
						// Someone else's message took the id: not this
						// user's earlier request.
						return Result{}, domain.Errorf(domain.CodeIdempotencyConflict,
							"Idempotency-Key %q collides with a message that is not the ledger's; send the request with a new key", meta.Key)
					}
					return Result{}, &KeyUsedError{Key: meta.Key, Existing: first}
				}
			} else {
				dupKey = true
			}
		case errors.Is(err, ErrConflict):
			// Decided again on fresh state, claims included.
		default:
			// The write may yet land: what this store knows of the
			// subject is no longer its last state.
			s.written.drop(subject)
			return Result{}, unavailable(err)
		}
		s.written.drop(subject)
		if attempt == maxAttempts {
			return Result{}, domain.Errorf(domain.CodeConcurrentUpdate,
				"the package kept changing under this request; try again")
		}
		// Jitter keeps racing servers from retrying in lockstep.
		d := backoff + rand.N(backoff)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return Result{}, unavailable(ctx.Err())
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// claimSeqs gives the sequence each claim's subject must still be at. A
// claim's subject must hold none of the ledger's own events; a foreign
// message there must not block the claim for ever, so the claim expects
// whatever sequence the subject is at. The first attempt expects the
// subject empty without reading it, as it nearly always is: if it is
// not, JetStream refuses the write and the retry reads it.
func (s *Store) claimSeqs(ctx context.Context, claims []Claim, attempt int) ([]uint64, error) {
	seqs := make([]uint64, len(claims))
	if attempt == 1 {
		return seqs, nil
	}
	for i, c := range claims {
		cs, err := s.load(ctx, c.Subject, true)
		if err != nil {
			return nil, unavailable(err)
		}
		if len(cs.Events) > 0 {
			return nil, &ClaimTakenError{Subject: c.Subject, Existing: cs.Events[0]}
		}
		seqs[i] = cs.LastSeq
	}
	return seqs, nil
}

// findReplay looks for this actor's idempotency key on the subject. The
// key found with a different request is a conflict, never a replay: a
// till that reuses keys must not have its second payment silently dropped.
func findReplay(hist []domain.Envelope, meta Meta) (Result, bool, error) {
	if meta.Key == "" {
		return Result{}, false, nil
	}
	for i, e := range hist {
		if e.Key != meta.Key || e.Actor.ID != meta.Actor.ID {
			continue
		}
		if e.Request != meta.Request {
			return Result{}, false, domain.Errorf(domain.CodeIdempotencyConflict,
				"Idempotency-Key %q was already used for a different request", meta.Key)
		}
		j := i + 1
		for j < len(hist) && hist[j].Key == meta.Key && hist[j].Actor.ID == meta.Actor.ID {
			j++
		}
		return Result{History: hist[:j], Appended: hist[i:j], Replayed: true, LastSeq: hist[j-1].Seq}, true, nil
	}
	return Result{}, false, nil
}

// build turns a change into envelopes chained onto the subject's history,
// and the messages that carry them.
// The first event names the subject's last sequence as expected, whatever
// wrote it, but chains from its last valid event: a foreign event neither
// blocks the ledger's writes nor becomes part of its chain.
func (s *Store) build(subject string, sub Subject, meta Meta, now time.Time, ch Change, claimSeqs []uint64) ([]Outgoing, []domain.Envelope, error) {
	aggregate := aggregateOf(subject)
	prev := ""
	if n := len(sub.Events); n > 0 {
		prev = sub.Events[n-1].Hash
	}
	expect := sub.LastSeq
	var msgs []Outgoing
	var appended []domain.Envelope
	// Claims first: a reader meets a receipt's claim before the payment
	// that needs it (Chains holds a payment foreign without its claim).
	for i, c := range ch.Claims {
		_, o, err := s.envelope(c.Subject, aggregateOf(c.Subject), "", meta, now, c.Event)
		if err != nil {
			return nil, nil, err
		}
		o.Expect = &claimSeqs[i]
		msgs = append(msgs, o)
	}
	for i, ev := range ch.Events {
		env, o, err := s.envelope(subject, aggregate, prev, meta, now, ev)
		if err != nil {
			return nil, nil, err
		}
		if i == 0 {
			o.Expect = &expect
			if meta.Key != "" {
				o.MsgID = s.subjects.Dealer + ":" + meta.Actor.ID + ":" + meta.Key
			}
		}
		prev = env.Hash
		msgs = append(msgs, o)
		appended = append(appended, env)
	}
	return msgs, appended, nil
}

func (s *Store) envelope(subject, aggregate, prev string, meta Meta, now time.Time, ev domain.Event) (domain.Envelope, Outgoing, error) {
	data, err := domain.EncodeEvent(ev)
	if err != nil {
		return domain.Envelope{}, Outgoing{}, fmt.Errorf("encode %s: %w", ev.EventType(), err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return domain.Envelope{}, Outgoing{}, fmt.Errorf("event id: %w", err)
	}
	env := domain.Envelope{
		ID: id, Type: ev.EventType(), Schema: domain.SchemaVersion,
		Dealer: s.subjects.Dealer, Store: meta.Store, Aggregate: aggregate,
		BusinessTime: now.UTC(), RecordedAt: now.UTC(),
		Actor: meta.Actor, Key: meta.Key, Request: meta.Request, Prev: prev, Data: data,
	}
	body, hash, err := Encode(env)
	if err != nil {
		return domain.Envelope{}, Outgoing{}, err
	}
	env.Event, env.Subject, env.Hash = ev, subject, hash
	env.Sig, env.KeyID = s.signer.Sign(hash)
	env.Mac = s.signer.MAC(hash, env.Sig)
	return env, Outgoing{Subject: subject, Body: body, Hash: hash, Type: env.Type, Sig: env.Sig, KeyID: env.KeyID, Mac: env.Mac}, nil
}

// aggregateOf is the last token of a subject: a package id, a plan code, an
// encoded receipt number.
func aggregateOf(subject string) string {
	for i := len(subject) - 1; i >= 0; i-- {
		if subject[i] == '.' {
			return subject[i+1:]
		}
	}
	return subject
}

func lastSubjectSeq(hist []domain.Envelope) uint64 {
	if len(hist) == 0 {
		return 0
	}
	return hist[len(hist)-1].Seq
}

// unavailable marks a failure to reach JetStream. The outcome of a write
// that timed out is unknown, so the message asks for a retry with the same
// key, which Update recognises.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if notSent(err) {
		return unreachable(err)
	}
	return fmt.Errorf("%w: %w", domain.Errorf(domain.CodeUnavailable,
		"the ledger could not be reached or did not confirm the write; retry with the same Idempotency-Key"), err)
}

// refusal tells a decision's "no" (a rule, a conflict with the package's
// state) from a failure to decide at all.
func refusal(err error) bool {
	switch domain.ErrorCode(err) {
	case domain.CodeUnavailable, domain.CodeUnreachable, domain.CodeInternal:
		return false
	}
	return true
}

// unreachable marks an attempt that wrote nothing: NATS is not connected,
// or no JetStream server took the request (a stream without a leader has
// no responders). An earlier attempt with the same key may have landed,
// so the message promises nothing of those.
func unreachable(err error) error {
	return fmt.Errorf("%w: %w", domain.Errorf(domain.CodeUnreachable,
		"the ledger (NATS JetStream) cannot be reached: this attempt wrote nothing; retry with the same Idempotency-Key"), err)
}

// notSent tells the errors after which no JetStream server can have
// stored the message.
func notSent(err error) bool {
	// Not nats.ErrConnectionClosed: a request waiting for its answer
	// gets it too when the connection closes, after its message went out.
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrReconnectBufExceeded)
}

// keyedMutex serialises work per key, so that commands on one package in
// this process queue instead of racing to conflicts.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// PackageChange is the change that carries a package's decided events: a
// payment goes with the claim of its receipt number, in one atomic batch.
func (s Subjects) PackageChange(id uuid.UUID, evs []domain.Event) Change {
	ch := Change{Events: evs}
	if len(evs) > 0 {
		if rec, ok := evs[0].(domain.PaymentRecorded); ok {
			ch.Claims = []Claim{{Subject: s.Receipt(rec.Receipt),
				Event: domain.ReceiptClaimed{Receipt: rec.Receipt, PackageID: id, PaymentID: rec.PaymentID, Amount: rec.Amount}}}
		}
	}
	return ch
}
