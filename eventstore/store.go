package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/packledger/packledger/domain"
)

// Config configures the ledger's stream.
type Config struct {
	Stream   string // default "LEDGER"
	Dealer   string
	Replicas int // when creating the stream; an existing stream keeps its own
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values,
	// when creating the stream.
	// Beyond it the domain's own rules (a repair order deducts once, a
	// receipt pays once) and the idempotency key in each envelope still
	// hold; the window only makes a quick retry cheap.
	DuplicateWindow time.Duration
	// Signer signs what this store appends; nil for a store that only
	// reads (the auditor's tools).
	Signer *Signer
	// Keyring holds the public keys whose events are the ledger's own; the
	// signer's own key is always in it.
	Keyring *Keyring
	// GroupCommit says how concurrent commands are appended (see
	// GroupCommitMode); the zero value is GroupCommitAuto.
	GroupCommit GroupCommitMode
	// CacheEvents bounds the events of the subjects kept as this store
	// last wrote them, so that the next command on one is decided without
	// reading it back; 0 is the default, negative keeps none.
	CacheEvents int
}

// Store is one dealer's view of the ledger stream.
type Store struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   string
	subjects Subjects
	locks    keyedMutex
	signer   *Signer
	ring     *Keyring
	// replicated: the stream has followers, whose direct gets may be
	// behind its leader. On a single replica a direct get is the leader's
	// own answer, and no read needs confirming.
	replicated bool
	// directPausedUntil (unix ns): until then reads go to the leader, a
	// direct get having gone unanswered.
	directPausedUntil atomic.Int64
	// claims caches payments whose receipt claim was found valid: a valid
	// claim is the first valid event of its subject and stays so for ever,
	// so the answer never needs reading again.
	claims  sync.Map // uuid.UUID → struct{}
	commits *groupCommit
	written *subjectCache // nil: none kept
}

// Errors the store returns as values.
var (
	// ErrConflict: the subject moved past the expected sequence.
	ErrConflict = errors.New("eventstore: wrong last subject sequence")
	// ErrNotFound: no message at the requested place.
	ErrNotFound = errors.New("eventstore: not found")
)

// DuplicateError is returned when JetStream recognised a message id within
// its duplicate window; Seq is where the first copy is stored.
type DuplicateError struct{ Seq uint64 }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("eventstore: duplicate message id, first stored at seq %d", e.Seq)
}

// Open sets up the stream (creating it, or adding the dealer's subjects to
// an existing one) and returns the store.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.Stream == "" {
		cfg.Stream = "LEDGER"
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = time.Hour
	}
	if err := CheckDealer(cfg.Dealer); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if cfg.Keyring == nil {
		cfg.Keyring = NewKeyring()
	}
	if cfg.Signer != nil {
		cfg.Keyring.AddSigner(cfg.Signer)
	}
	s := &Store{nc: nc, js: js, stream: cfg.Stream, subjects: Subjects{Dealer: cfg.Dealer},
		signer: cfg.Signer, ring: cfg.Keyring}
	s.commits = newGroupCommit(s, cfg.GroupCommit)
	switch {
	case cfg.CacheEvents == 0:
		s.written = newSubjectCache(defaultCacheEvents)
	case cfg.CacheEvents > 0:
		s.written = newSubjectCache(cfg.CacheEvents)
	}
	sc := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "packledger: every fact of every dealer's prepaid maintenance packages",
		Subjects:    []string{s.subjects.All()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		// No age, size or count limit: dealers must keep prepaid records
		// at least five years, a ledger keeps them all.
		MaxAge: 0, MaxBytes: -1, MaxMsgs: -1, MaxMsgsPerSubject: -1,
		Discard:            jetstream.DiscardNew, // never drop history to make room
		Replicas:           cfg.Replicas,
		Duplicates:         cfg.DuplicateWindow,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	}
	info, err := js.Stream(ctx, cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := js.CreateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("create stream %s: %w", cfg.Stream, err)
		}
	case err != nil:
		return nil, fmt.Errorf("stream %s: %w", cfg.Stream, err)
	default:
		// Another dealer, or another server, may share the stream: keep its
		// subjects, replicas and window (a server started without
		// --replicas must not shrink a replicated stream), and make sure of
		// what the ledger relies on.
		have := info.CachedInfo().Config
		sc.Replicas, sc.Duplicates = have.Replicas, have.Duplicates
		sc.Subjects = have.Subjects
		if !slices.Contains(have.Subjects, s.subjects.All()) {
			sc.Subjects = append(slices.Clone(have.Subjects), s.subjects.All())
		}
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("update stream %s: %w", cfg.Stream, err)
		}
	}
	s.replicated = sc.Replicas > 1
	return s, nil
}

// Subjects names this dealer's subjects.
func (s *Store) Subjects() Subjects { return s.subjects }

// LastSeq is the stream's last sequence, across all dealers.
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	return st.CachedInfo().State.LastSeq, nil
}

// Info returns the stream's configuration and state as JetStream reports it.
func (s *Store) Info(ctx context.Context) (*jetstream.StreamInfo, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	return st.CachedInfo(), nil
}

// Keyring is the set of keys whose events are the ledger's own.
func (s *Store) Keyring() *Keyring { return s.ring }

// loadBatch is how many messages one direct-get round trip asks for.
const loadBatch = 512

// Subject is one subject as read: the ledger's own events in order, the
// foreign ones set apart, and the subject's last sequence, which a write
// must name as expected whatever event it belongs to.
type Subject struct {
	Events  []domain.Envelope
	Foreign []Foreign
	LastSeq uint64
}

// Foreign is an event on a ledger subject that is not the ledger's own.
type Foreign struct {
	Seq     uint64
	Subject string
	Problem string
}

// Load returns the ledger's own events on one subject, in order, leaving
// out foreign ones.
func (s *Store) Load(ctx context.Context, subject string) ([]domain.Envelope, error) {
	sub, err := s.LoadSubject(ctx, subject)
	return sub.Events, err
}

// LoadSubject reads one subject whole and sorts its events into the
// ledger's own and foreign ones.
func (s *Store) LoadSubject(ctx context.Context, subject string) (Subject, error) {
	return s.load(ctx, subject, false)
}

// A direct get is answered by any replica of the stream. While a cluster
// replaces a dead stream leader, replicas may hold such requests without
// answering, and every write would wait out its whole time on its first
// read; a direct get that does not answer within directGetTimeout sends
// this store's reads to the leader for directPause.
const (
	directGetTimeout = 2 * time.Second
	directPause      = 5 * time.Second
)

// leaderGetTimeout bounds one message get through the stream's leader.
const leaderGetTimeout = time.Second

// errDirectStalled: a direct get went unanswered.
var errDirectStalled = errors.New("no replica answered the direct get in time")

// load reads a subject by direct gets or, on a replicated stream when
// leader is set or direct gets are paused, and on any stream when this one
// went unanswered, through the stream's leader.
func (s *Store) load(ctx context.Context, subject string, leader bool) (Subject, error) {
	if !s.replicated || !leader && time.Now().UnixNano() >= s.directPausedUntil.Load() {
		sub, err := s.loadSubject(ctx, subject, s.loadFrom)
		if !errors.Is(err, errDirectStalled) && !errors.Is(err, nats.ErrNoResponders) {
			return sub, err
		}
	}
	return s.loadSubject(ctx, subject, s.leaderFrom)
}

// claimValid tells whether the payment stored at seq has the valid claim
// of its receipt number. Direct gets may be answered by any replica of a
// clustered stream, and a follower may lack a claim its leader stored a
// moment ago though the replica that answered for the payment's own
// subject had it. No expected sequence guards this read, and a payment
// wrongly called foreign drops out of the history its package's next
// write is decided on, which then chains past it. So an absence is never
// trusted on its own: the claim is looked for again on the leader, and
// if it is still not found, the message just before the payment, where
// the write that stored it puts its claim in the same atomic batch, must
// show that it is not there.
func (s *Store) claimValid(ctx context.Context, receipt string, payment uuid.UUID, seq uint64) (bool, error) {
	if _, ok := s.claims.Load(payment); ok {
		return true, nil
	}
	subject := s.subjects.Receipt(receipt)
	var rs Subject
	reads := []bool{false}
	if s.replicated {
		reads = append(reads, true)
	}
	for _, leader := range reads {
		var err error
		if rs, err = s.load(ctx, subject, leader); err != nil {
			return false, err
		}
		for _, e := range rs.Events {
			if c, ok := e.Event.(domain.ReceiptClaimed); ok && c.PaymentID == payment {
				s.claims.Store(payment, struct{}{})
				return true, nil
			}
		}
	}
	if seq < 2 || rs.LastSeq >= seq-1 {
		// The leader's read reached past where the claim would be: it
		// is not there, or not valid (a captured batch republished over
		// a receipt already used).
		return false, nil
	}
	before, found, err := s.leaderGet(ctx, directGetRequest{Seq: seq - 1})
	if err != nil {
		return false, err
	}
	if !found {
		// The stream denies delete: a replica without it is behind.
		return false, fmt.Errorf("seq %d, before payment %s, is not there yet", seq-1, payment)
	}
	if c, ok := before.env.Event.(domain.ReceiptClaimed); ok && before.err == nil && before.subject == subject && c.PaymentID == payment {
		return false, fmt.Errorf("the claim of receipt %s at seq %d is stored but not yet readable on its subject", receipt, seq-1)
	}
	return false, nil
}

// fetchFunc reads a subject's messages from start on: some records, how
// many are still pending after them, and the last sequence read.
type fetchFunc func(ctx context.Context, subject string, start uint64) (recs []rawRecord, pending, last uint64, err error)

func (s *Store) loadSubject(ctx context.Context, subject string, fetch fetchFunc) (Subject, error) {
	var out Subject
	chains := NewChains(s.ring)
	chains.LookupClaims(func(receipt string, payment uuid.UUID, seq uint64) (bool, error) {
		return s.claimValid(ctx, receipt, payment, seq)
	})
	start := uint64(1)
	for {
		recs, pending, last, err := fetch(ctx, subject, start)
		if err != nil {
			return Subject{}, err
		}
		for _, r := range recs {
			out.LastSeq = r.seq
			if r.err == nil {
				r.err = chains.Check(r.env)
			}
			// A claim that could not be read says nothing of the payment:
			// taken for foreign, it would leave the chain and the next
			// write would fork it (seen when a cluster node left).
			var unread *ClaimReadError
			if errors.As(r.err, &unread) {
				return Subject{}, fmt.Errorf("load %s: %w", subject, unread)
			}
			if r.err != nil {
				out.Foreign = append(out.Foreign, Foreign{Seq: r.seq, Subject: subject, Problem: r.err.Error()})
				continue
			}
			out.Events = append(out.Events, r.env)
		}
		if pending == 0 || last == 0 {
			return out, nil
		}
		start = last + 1
	}
}

// apiError is the error JetStream's API answers carry.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// msgGetResponse is JetStream's answer to a stream message get.
type msgGetResponse struct {
	Error   *apiError `json:"error,omitempty"`
	Message *struct {
		Subject string `json:"subject"`
		Seq     uint64 `json:"seq"`
		Header  []byte `json:"hdrs,omitempty"`
		Data    []byte `json:"data,omitempty"`
	} `json:"message,omitempty"`
}

// errCodeNoMessage is JetStream's "message not found".
const errCodeNoMessage = 10037

// leaderGet reads one message through the stream's leader: by sequence,
// the next on a subject from a sequence, or the last on a subject.
// JetStream answers a message get only from the leader, so what it returns
// is what the stream holds, where a direct get may be answered by a
// follower that has not yet applied the latest writes. found is false
// when there is no such message.
func (s *Store) leaderGet(ctx context.Context, req directGetRequest) (rec rawRecord, found bool, err error) {
	// A leader answers in milliseconds. A request that none answers (a
	// stream between leaders, where the old one's requests go unanswered
	// for seconds) fails fast, so that a write's retry, not the write's
	// whole time, waits for the new leader.
	ctx, cancel := context.WithTimeout(ctx, leaderGetTimeout)
	defer cancel()
	body, _ := json.Marshal(req)
	reply, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+s.stream, body)
	if err != nil {
		return rawRecord{}, false, err
	}
	var r msgGetResponse
	if err := json.Unmarshal(reply.Data, &r); err != nil {
		return rawRecord{}, false, err
	}
	switch {
	case r.Error != nil && r.Error.ErrCode == errCodeNoMessage:
		return rawRecord{}, false, nil
	case r.Error != nil:
		return rawRecord{}, false, errors.New(r.Error.Description)
	case r.Message == nil:
		return rawRecord{}, false, errors.New("empty answer")
	}
	h := nats.Header{}
	if len(r.Message.Header) > 0 {
		if h, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return rawRecord{}, false, fmt.Errorf("headers: %w", err)
		}
	}
	env, derr := Decode(r.Message.Subject, r.Message.Seq, h, r.Message.Data)
	return rawRecord{seq: r.Message.Seq, subject: r.Message.Subject, env: env, err: derr}, true, nil
}

// leaderFrom is loadFrom read through the stream's leader, one message a
// request.
func (s *Store) leaderFrom(ctx context.Context, subject string, start uint64) ([]rawRecord, uint64, uint64, error) {
	rec, found, err := s.leaderGet(ctx, directGetRequest{Seq: start, NextFor: subject})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("load %s from the leader: %w", subject, err)
	}
	if !found {
		return nil, 0, 0, nil
	}
	// Whether more follow is known only by asking: say one may.
	return []rawRecord{rec}, 1, rec.seq, nil
}

// rawRecord is one message read and decoded, or why it could not be.
type rawRecord struct {
	seq     uint64
	subject string
	env     domain.Envelope
	err     error
}

type directGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

func (s *Store) loadFrom(ctx context.Context, subject string, start uint64) (recs []rawRecord, pending, last uint64, err error) {
	inbox := s.nc.NewRespInbox()
	// A channel sized for one batch and its end marker: SubscribeSync would
	// allocate a 64k-slot channel per load, which dominates the cost of a
	// command.
	ch := make(chan *nats.Msg, loadBatch+2)
	sub, err := s.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("load %s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(directGetRequest{Seq: start, NextFor: subject, Batch: loadBatch})
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+s.stream, inbox, req); err != nil {
		return nil, 0, 0, fmt.Errorf("load %s: %w", subject, err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	stalled := time.NewTimer(directGetTimeout)
	defer stalled.Stop()
	for {
		var msg *nats.Msg
		select {
		case msg = <-ch:
			stalled.Reset(directGetTimeout) // a slow answer, not none
		case <-stalled.C:
			s.directPausedUntil.Store(time.Now().Add(directPause).UnixNano())
			return nil, 0, 0, fmt.Errorf("load %s: %w", subject, errDirectStalled)
		case <-ctx.Done():
			return nil, 0, 0, fmt.Errorf("load %s: %w", subject, ctx.Err())
		}
		// A stored message comes with the server's Nats-Sequence, added
		// after whatever headers its publisher wrote; only a reply without
		// one is the server's own status. Otherwise a foreign message
		// carrying "Status: 404" would end every read of its subject.
		status := ""
		if len(msg.Header.Values("Nats-Sequence")) == 0 {
			status = msg.Header.Get("Status")
		}
		switch status {
		case "":
		case "404":
			return recs, 0, 0, nil // nothing (more) on the subject
		case "204": // end of batch
			pending, err = seqHeader(msg.Header, "Nats-Num-Pending")
			if err != nil {
				return nil, 0, 0, fmt.Errorf("load %s: %w", subject, err)
			}
			last, _ = seqHeader(msg.Header, "Nats-Last-Sequence")
			return recs, pending, last, nil
		case "503":
			return nil, 0, 0, fmt.Errorf("load %s: %w", subject, nats.ErrNoResponders)
		default:
			return nil, 0, 0, fmt.Errorf("load %s: status %s %s", subject, msg.Header.Get("Status"), msg.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(lastHeader(msg.Header, "Nats-Sequence"), 10, 64)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("load %s: Nats-Sequence: %w", subject, err)
		}
		stored := lastHeader(msg.Header, "Nats-Subject")
		env, derr := Decode(stored, seq, msg.Header, msg.Data)
		recs = append(recs, rawRecord{seq: seq, subject: stored, env: env, err: derr})
	}
}

// lastHeader is a header's last value: the server's, where a publisher
// may have written the same name before it.
func lastHeader(h nats.Header, key string) string {
	vs := h.Values(key)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// Get returns the event stored at a stream sequence, as the stream's
// leader has it.
func (s *Store) Get(ctx context.Context, seq uint64) (domain.Envelope, error) {
	rec, found, err := s.leaderGet(ctx, directGetRequest{Seq: seq})
	switch {
	case err != nil:
		return domain.Envelope{}, fmt.Errorf("get seq %d: %w", seq, err)
	case !found:
		return domain.Envelope{}, ErrNotFound
	}
	return rec.env, rec.err
}

// Outgoing is one message to append.
type Outgoing struct {
	Subject string
	Body    []byte
	Hash    string
	Type    string
	Sig     string
	KeyID   string
	Mac     string
	// Expect, when set, is the subject's required last sequence (0: the
	// subject must be empty).
	Expect *uint64
	// MsgID, when set, lets JetStream drop a retried copy within its
	// duplicate window.
	MsgID string
}

func (o Outgoing) header() nats.Header {
	h := nats.Header{}
	h.Set(HeaderHash, o.Hash)
	h.Set(HeaderType, o.Type)
	if o.Sig != "" {
		h.Set(HeaderSig, o.Sig)
		h.Set(HeaderKey, o.KeyID)
	}
	if o.Mac != "" {
		h.Set(HeaderMac, o.Mac)
	}
	if o.Expect != nil {
		h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(*o.Expect, 10))
	}
	if o.MsgID != "" {
		h.Set(jetstream.MsgIDHeader, o.MsgID)
	}
	return h
}

// Append stores msgs atomically: all or none. One message is a plain
// publish; several are one JetStream atomic batch, so a command's events
// (a payment and the activation it causes, a payment and its receipt
// claim) never land halfway. It returns the stream sequence of each.
func (s *Store) Append(ctx context.Context, msgs []Outgoing) ([]uint64, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	switch len(msgs) {
	case 0:
		return nil, nil
	case 1:
		m := &nats.Msg{Subject: msgs[0].Subject, Header: msgs[0].header(), Data: msgs[0].Body}
		ack, err := s.js.PublishMsg(ctx, m)
		if err != nil {
			return nil, classifyPublishErr(err)
		}
		if ack.Duplicate {
			return nil, &DuplicateError{Seq: ack.Sequence}
		}
		return []uint64{ack.Sequence}, nil
	}
	return s.appendBatch(ctx, msgs)
}

type pubAckResponse struct {
	Error     *apiError `json:"error,omitempty"`
	Stream    string    `json:"stream"`
	Seq       uint64    `json:"seq"`
	Duplicate bool      `json:"duplicate,omitempty"`
	BatchID   string    `json:"batch,omitempty"`
	Count     int       `json:"count,omitempty"`
}

// JetStream's error codes that mean "the subject moved": the plain and
// the batch forms.
const (
	errCodeWrongLastSeq        = 10071
	errCodeWrongLastSeqConst   = 10164
	errCodeBatchDuplicateMsgID = 10201
)

func (s *Store) appendBatch(ctx context.Context, msgs []Outgoing) ([]uint64, error) {
	id := nats.NewInbox()[len(nats.InboxPrefix):] // unique, short enough (≤ 64)
	for i, o := range msgs {
		m := &nats.Msg{Subject: o.Subject, Header: o.header(), Data: o.Body}
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			// Only the commit is answered; an earlier failure is reported
			// in the commit's answer.
			if err := s.nc.PublishMsg(m); err != nil {
				return nil, classifyPublishErr(err)
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		reply, err := s.nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return nil, classifyPublishErr(err)
		}
		var r pubAckResponse
		if err := json.Unmarshal(reply.Data, &r); err != nil {
			return nil, fmt.Errorf("atomic batch: bad answer %q: %w", reply.Data, err)
		}
		if r.Error != nil {
			switch r.Error.ErrCode {
			case errCodeWrongLastSeq, errCodeWrongLastSeqConst:
				return nil, ErrConflict
			case errCodeBatchDuplicateMsgID:
				return nil, &DuplicateError{}
			}
			return nil, &batchAPIError{Code: r.Error.ErrCode, Description: r.Error.Description}
		}
		if r.Duplicate {
			return nil, &DuplicateError{Seq: r.Seq}
		}
		if r.Count != len(msgs) {
			return nil, fmt.Errorf("atomic batch: committed %d of %d messages", r.Count, len(msgs))
		}
		seqs := make([]uint64, len(msgs))
		for k := range seqs {
			seqs[k] = r.Seq - uint64(len(msgs)-1-k)
		}
		return seqs, nil
	}
	return nil, nil
}

// batchAPIError is JetStream's refusal of an atomic batch for a reason
// other than a conflict or a duplicate.
type batchAPIError struct {
	Code        int
	Description string
}

func (e *batchAPIError) Error() string {
	return fmt.Sprintf("atomic batch: %s (%d)", e.Description, e.Code)
}

// JetStream's refusals of a batch that stored nothing and say nothing of
// its messages: one of them was lost on the way (a core publish is not
// acknowledged), or the stream holds too many batches open. The same
// batch may be sent again.
const (
	errCodeBatchIncomplete  = 10176
	errCodeBatchTooInflight = 10210
)

// transient tells a refusal that the same batch, sent again, may pass.
func (e *batchAPIError) transient() bool {
	return e.Code == errCodeBatchIncomplete || e.Code == errCodeBatchTooInflight
}

func classifyPublishErr(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeWrongLastSeq, errCodeWrongLastSeqConst:
			return ErrConflict
		}
	}
	return fmt.Errorf("publish: %w", err)
}

// defaultTimeout bounds a store call whose context has no deadline.
const defaultTimeout = 10 * time.Second

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

// Head is the sequence of the last message on this dealer's subjects, 0 if
// there is none: what a follower must reach to be caught up.
//
// It fails closed: if the stream holds messages of this dealer but the last
// one cannot be read, that is an error, never an empty ledger.
//
// On a stream of this dealer alone, every message is the dealer's, and the
// head is the stream's last sequence, which the stream's info (answered by
// its leader) tells at once. On a shared stream the head is the last
// message of the dealer's subjects, which nats-server finds by looking
// through all of them: 70–100 ms on a stream of 590k packages, and the
// runner asks every second.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return 0, fmt.Errorf("stream: %w", err)
	}
	if info := st.CachedInfo(); s.exclusiveStream(info) {
		return info.State.LastSeq, nil
	}
	seq, err := s.lastRaw(ctx, s.subjects.All())
	if !errors.Is(err, ErrNotFound) {
		return seq, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.subjects.All()))
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	if n > 0 {
		// Another server sharing the stream may have written the ledger's
		// first event between the two looks: then it reads now.
		seq, err := s.lastRaw(ctx, s.subjects.All())
		if err == nil {
			return seq, nil
		}
		return 0, fmt.Errorf("the stream holds %d messages of dealer %s but its last one cannot be read: %w", n, s.subjects.Dealer, err)
	}
	return 0, nil
}

// exclusive reports whether the stream holds this dealer's subjects only,
// so that every stream sequence is one of its messages and a gap between
// two is a message missing or unreadable.
func (s *Store) exclusive(ctx context.Context) bool {
	info, err := s.Info(ctx)
	return err == nil && s.exclusiveStream(info)
}

func (s *Store) exclusiveStream(info *jetstream.StreamInfo) bool {
	return len(info.Config.Subjects) == 1 && info.Config.Subjects[0] == s.subjects.All()
}

// lastRaw is the sequence of the last message on subject, as the stream's
// leader has it: a follower answering a direct get may be behind, and a
// head read low would call the read models current while they miss
// events.
func (s *Store) lastRaw(ctx context.Context, subject string) (uint64, error) {
	rec, found, err := s.leaderGet(ctx, directGetRequest{LastFor: subject})
	switch {
	case err != nil:
		return 0, fmt.Errorf("last on %s: %w", subject, err)
	case !found:
		return 0, ErrNotFound
	}
	return rec.seq, nil
}
