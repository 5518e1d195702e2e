package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// JetStream's ceilings: what the server itself does with the ledger's
// messages when no ledger code runs, on the ledger's own stream
// configuration. They are raw NATS on purpose, so that a change to the
// ledger's write path never moves the figure it is measured against.

// writeCeilings measures durable publishes one at a time and durable
// atomic batches of 100, over TCP (the ceilings) and over the in-process
// connection serve writes on.
func (b *benchRun) writeCeilings(ctx context.Context) ([]benchResult, error) {
	node, c, done, err := b.freshNode(ctx, "ceilings")
	if err != nil {
		return nil, err
	}
	defer done()
	tmpl, err := redemptionTemplate(ctx, node, c.stream)
	if err != nil {
		return nil, fmt.Errorf("ceilings: %w", err)
	}
	tcp, err := node.embedded.ConnectTCP("packledger bench")
	if err != nil {
		return nil, err
	}
	defer tcp.Close()
	sz := b.sz
	single := benchResult{Name: "ceiling_fsync_single", Note: "one durable publish at a time over TCP, each expecting its subject's last sequence"}
	batch := benchResult{Name: "ceiling_atomic_batch", Note: "durable atomic batches of 100 over TCP, one at a time, each message expecting its own subject's last sequence; ops are messages, latency a batch's"}
	for _, m := range []struct {
		nc        *nats.Conn
		d         time.Duration
		r         *benchResult
		batchSize int
		ceiling   bool
	}{
		{tcp, sz.ceilingTime, &single, 1, true},
		{node.nc, sz.ceilingInProcessTime, &single, 1, false},
		{tcp, sz.ceilingTime, &batch, 100, true},
		{node.nc, sz.ceilingInProcessTime, &batch, 100, false},
	} {
		run, err := publishLoad(ctx, m.nc, tmpl, node.store.Subjects(), m.batchSize, m.d, sz.ceilingCount)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.r.Name, err)
		}
		if !m.ceiling {
			m.r.InProcessOpsPerS = opsRate(run.ops, run.elapsed)
			continue
		}
		m.r.OpsPerS, m.r.Ops, m.r.Seconds = opsRate(run.ops, run.elapsed), run.ops, round(run.elapsed.Seconds(), 2)
		run.lat.set(m.r)
	}
	return []benchResult{single, batch}, nil
}

// msgTemplate is a VisitRedeemed as the ledger stores it: its body and the
// ledger's own headers. Every ceiling message copies it, so that
// JetStream stores as many bytes as for a real redemption.
type msgTemplate struct {
	header nats.Header
	body   []byte
	msgID  int // length of the Nats-Msg-Id the ledger gave it
}

// redemptionTemplate redeems a visit on a fresh package through Update, as
// the API does with an Idempotency-Key, and reads the message back.
func redemptionTemplate(ctx context.Context, node *ledgerNode, stream string) (msgTemplate, error) {
	ids, _, err := activePackages(ctx, node.store, 1)
	if err != nil {
		return msgTemplate{}, err
	}
	res, err := node.store.Update(ctx, node.store.Subjects().Package(ids[0]), redeemMeta("RO-TEMPLATE"), time.Now, redeemVisit("RO-TEMPLATE"))
	if err != nil {
		return msgTemplate{}, err
	}
	js, err := jetstream.New(node.nc)
	if err != nil {
		return msgTemplate{}, err
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return msgTemplate{}, err
	}
	raw, err := st.GetMsg(ctx, res.LastSeq)
	if err != nil {
		return msgTemplate{}, err
	}
	t := msgTemplate{header: nats.Header{}, body: raw.Data, msgID: len(raw.Header.Get(jetstream.MsgIDHeader))}
	for k, v := range raw.Header {
		if strings.HasPrefix(k, "Ledger-") {
			t.header[k] = v
		}
	}
	if t.msgID == 0 || len(t.header) == 0 {
		return msgTemplate{}, fmt.Errorf("the stored redemption lacks the ledger's headers: %v", raw.Header)
	}
	return t, nil
}

// redeemMeta is an advisor's redemption with its idempotency key, as the
// API writes one.
func redeemMeta(repairOrder string) eventstore.Meta {
	return eventstore.Meta{Store: "main", Actor: domain.Actor{ID: "demo-advisor", Role: domain.RoleAdvisor},
		Key: uuid.NewString(), Request: eventstore.HashOf([]byte(repairOrder))}
}

// redeemVisit decides one oil change for a repair order, as the API's
// redemption does.
func redeemVisit(repairOrder string) func([]domain.Envelope) (eventstore.Change, error) {
	id := uuid.New()
	return func(hist []domain.Envelope) (eventstore.Change, error) {
		evs, err := domain.Decide(domain.Fold(hist), domain.Redeem{RedemptionID: id, Service: "oil_change",
			RepairOrder: repairOrder, Mileage: 12000}, time.Now())
		return eventstore.Change{Events: evs}, err
	}
}

// message is the template on subject, expecting the subject at seq, with
// an id of its own as long as the ledger's.
func (t msgTemplate) message(subject string, seq uint64) *nats.Msg {
	h := make(nats.Header, len(t.header)+4)
	for k, v := range t.header {
		h[k] = v
	}
	h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
	id := "demo:bench:" + uuid.NewString()
	h.Set(jetstream.MsgIDHeader, id+strings.Repeat("x", max(0, t.msgID-len(id))))
	return &nats.Msg{Subject: subject, Header: h, Data: t.body}
}

// loadRun is what a bounded load did.
type loadRun struct {
	ops     int
	elapsed time.Duration
	lat     latencies
}

// publishLoad publishes durable messages one batch at a time (batchSize 1:
// a plain publish waiting for its ack) until d has passed or max messages
// are stored. Each message of a batch goes to a subject of its own and
// expects that subject's last sequence; a subject takes ten messages, as
// a package takes ten visits, then a new one is used.
func publishLoad(ctx context.Context, nc *nats.Conn, t msgTemplate, subjects eventstore.Subjects, batchSize int, d time.Duration, limit int) (loadRun, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return loadRun{}, err
	}
	subs := make([]string, batchSize)
	seqs := make([]uint64, batchSize)
	msgs := make([]*nats.Msg, batchSize)
	var run loadRun
	start := time.Now()
	for round := 0; run.ops+batchSize <= limit && time.Since(start) < d; round++ {
		for i := range msgs {
			if round%10 == 0 {
				subs[i], seqs[i] = subjects.Package(uuid.NewString()), 0
			}
			msgs[i] = t.message(subs[i], seqs[i])
		}
		t0 := time.Now()
		var last uint64
		if batchSize == 1 {
			ack, perr := js.PublishMsg(ctx, msgs[0])
			if perr != nil {
				return loadRun{}, perr
			}
			last = ack.Sequence
		} else if last, err = publishAtomic(ctx, nc, msgs); err != nil {
			return loadRun{}, err
		}
		run.lat = append(run.lat, time.Since(t0))
		for i := range seqs {
			seqs[i] = last - uint64(batchSize-1-i)
		}
		run.ops += batchSize
	}
	run.elapsed = time.Since(start)
	return run, nil
}

// publishAtomic sends msgs as one JetStream atomic batch and returns the
// stream sequence of the last. Only the commit is answered.
func publishAtomic(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg) (uint64, error) {
	id := uuid.NewString()
	for i, m := range msgs {
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return 0, err
			}
		}
	}
	commit := msgs[len(msgs)-1]
	commit.Header.Set("Nats-Batch-Commit", "1")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(ctx, commit)
	if err != nil {
		return 0, err
	}
	var ack struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
		Seq   uint64 `json:"seq"`
		Count int    `json:"count"`
	}
	switch err := json.Unmarshal(reply.Data, &ack); {
	case err != nil:
		return 0, fmt.Errorf("batch ack %q: %w", reply.Data, err)
	case ack.Error != nil:
		return 0, errors.New(ack.Error.Description)
	case ack.Count != len(msgs):
		return 0, fmt.Errorf("batch committed %d of %d", ack.Count, len(msgs))
	}
	return ack.Seq, nil
}

// readDecode reads the dealer's stream from its start to head with an
// ordered consumer, as the projections' feed does, and decodes each message
// into its envelope and event as the ledger does, without judging chains
// or signatures and without applying anything: the read path's ceiling.
func readDecode(ctx context.Context, nc *nats.Conn, stream, filter string, head uint64, timeout time.Duration) (loadRun, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return loadRun{}, err
	}
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 1,
	})
	if err != nil {
		return loadRun{}, err
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return loadRun{}, err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var run loadRun
	for {
		msg, err := it.Next()
		if err != nil {
			return loadRun{}, fmt.Errorf("read %d of %d: %w", run.ops, head, errors.Join(err, ctx.Err()))
		}
		meta, err := msg.Metadata()
		if err != nil {
			return loadRun{}, err
		}
		if _, err := eventstore.Decode(msg.Subject(), meta.Sequence.Stream, msg.Headers(), msg.Data()); err != nil {
			return loadRun{}, err
		}
		run.ops++
		if meta.Sequence.Stream >= head {
			run.elapsed = time.Since(start)
			return run, nil
		}
	}
}
