package projections_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
	"github.com/packledger/packledger/projections"
)

// ckptLedger is a real embedded JetStream holding a generated ledger,
// with foreign copies of some of its events mixed in.
type ckptLedger struct {
	t      *testing.T
	nc     *nats.Conn
	st     *eventstore.Store
	signer *eventstore.Signer
	recs   []eventstoretest.Record
	next   int
}

func newCkptLedger(t *testing.T, packages int) *ckptLedger {
	_, nc := eventstoretest.RunServerSync(t, t.TempDir(), false)
	sg := eventstoretest.NewSigner(t)
	st := eventstoretest.Open(t, nc, "demo", sg)
	c := eventstoretest.NewCorpus(t, eventstoretest.CorpusConfig{Packages: packages, Seed: seedFor(t), Signer: sg})
	var recs []eventstoretest.Record
	for i, r := range c.Records {
		recs = append(recs, r)
		if i%97 == 50 {
			recs = append(recs, c.Records[i-7]) // a replayed copy: foreign
		}
	}
	return &ckptLedger{t: t, nc: nc, st: st, signer: sg, recs: recs}
}

// publish appends the next n records, as they were signed.
func (l *ckptLedger) publish(n int) {
	l.t.Helper()
	ctx := context.Background()
	for ; n > 0 && l.next < len(l.recs); n-- {
		r := l.recs[l.next]
		_, err := l.st.Append(ctx, []eventstore.Outgoing{{Subject: r.Subject, Body: r.Body, Hash: r.Hash, Sig: r.Sig, KeyID: r.KeyID}})
		require.NoError(l.t, err)
		l.next++
	}
}

func (l *ckptLedger) checkpoints() *eventstore.Checkpoints {
	return l.checkpointsCopiedTo("")
}

// checkpointsCopiedTo is checkpoints that keep a local copy at path, if
// it is not "".
func (l *ckptLedger) checkpointsCopiedTo(path string) *eventstore.Checkpoints {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.st.Checkpoints(ctx, eventstore.CheckpointsConfig{Signer: l.signer, LocalCopy: path})
	require.NoError(l.t, err)
	return c
}

// logBuffer collects what a runner logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// run starts a runner over the ledger's feed, with checkpoints in ck if
// not nil, waits until it has caught up, and returns it with a stop that
// ends it (and, with checkpoints, writes the last one).
func (l *ckptLedger) run(ck *eventstore.Checkpoints, logs io.Writer) (*projections.Runner, func()) {
	return l.runEvery(ck, logs, 1<<30, nil)
}

// runEvery is run with a checkpoint every so many events, and pre tried
// first if not nil.
func (l *ckptLedger) runEvery(ck *eventstore.Checkpoints, logs io.Writer, every int, pre *projections.Preload) (*projections.Runner, func()) {
	l.t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	r := projections.NewRunner(l.st.Feed(), projections.NewModel(shanghai), slog.New(slog.NewTextHandler(logs, nil)))
	if ck != nil {
		require.NoError(l.t, r.UseCheckpoints(ck, projections.CheckpointPolicy{Every: every}))
	}
	if pre != nil {
		require.NoError(l.t, r.ResumeFirstFrom(pre))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	require.NoError(l.t, r.WaitReady(within(l.t, 60*time.Second)))
	head, err := l.st.Head(context.Background())
	require.NoError(l.t, err)
	require.NoError(l.t, r.WaitFor(within(l.t, 60*time.Second), head))
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if ck != nil {
			require.NoError(l.t, r.SaveCheckpoint(within(l.t, 60*time.Second)))
		}
	}
	l.t.Cleanup(stop)
	return r, stop
}

// dump is everything the read models answer, as JSON.
func dump(t *testing.T, r *projections.Runner) string {
	t.Helper()
	var out []any
	r.Read(func(m *projections.Model) {
		ps := m.Find(projections.Query{})
		first, last := time.Now(), time.Time{}
		for _, p := range ps {
			if p.SoldAt.Before(first) {
				first = p.SoldAt
			}
			if p.SoldAt.After(last) {
				last = p.SoldAt
			}
		}
		ev, seq, n := m.Stats()
		out = append(out, projections.ViewPackages(ps), m.Totals(), m.Findings(), []any{ev, seq, n}, m.Plans())
		from := time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, shanghai)
		to := last.AddDate(0, 0, 2)
		rep := m.Liability().Report(from, to, true)
		out = append(out, rep)
		for _, d := range rep.Days {
			for _, store := range []string{"", "S1", "S3"} {
				out = append(out, m.DailyClose().Report(d.From.Format("2006-01-02"), store))
			}
		}
	})
	b, err := json.Marshal(out)
	require.NoError(t, err)
	return string(b)
}

// TestRunner_Checkpoint_ResumeEqualsReplay against a real JetStream: a
// runner stopped cleanly writes a checkpoint; the next start resumes from
// it, reads only the events after it, and holds exactly what a runner
// that read the whole stream holds.
func TestRunner_Checkpoint_ResumeEqualsReplay(t *testing.T) {
	l := newCkptLedger(t, 400)
	l.publish(len(l.recs) / 2)
	ck := l.checkpoints()
	r1, stop1 := l.run(ck, nil)
	firstHalf := r1.Status().AppliedSeq
	stop1()
	require.Equal(t, firstHalf, r1.Status().Checkpoint.SavedSeq, "the clean stop wrote a checkpoint of all it applied")

	l.publish(len(l.recs))
	var logs logBuffer
	resumed, _ := l.run(ck, &logs)
	st := resumed.Status()
	require.Equal(t, firstHalf, st.Checkpoint.Seq, "resumed after the checkpoint; logs:\n%s", logs.String())
	require.Empty(t, st.Checkpoint.Ignored)
	require.Contains(t, logs.String(), "resumed from checkpoint")

	full, _ := l.run(nil, nil)
	require.Equal(t, full.Status().AppliedSeq, st.AppliedSeq)
	require.NotEmpty(t, full.Status().Findings, "the stream has foreign events")
	require.Equal(t, dump(t, full), dump(t, resumed))
}

// preloadCopy starts preloading the local copy at path, as serve does
// before its NATS server is up, with business days in tz.
func preloadCopy(path string, tz *time.Location) *projections.Preload {
	return projections.StartPreload(tz, func() (projections.Candidate, error) {
		lc, err := eventstore.ReadLocalCheckpoint(path)
		if err != nil {
			return projections.Candidate{}, err
		}
		return projections.Candidate{Name: lc.Name(), Seq: lc.Seq(), Parts: lc.Parts(),
			Vouch: func(ctx context.Context, s projections.CheckpointStore) error {
				return s.(*eventstore.Checkpoints).Vouch(ctx, lc)
			}}, nil
	})
}

// TestRunner_Checkpoint_Preloaded: a runner resumes from the local copy
// of the newest checkpoint, read and decoded before it runs, to what a
// full replay holds; a copy its bucket does not vouch for (a newer one is
// there), one decoded for other business days, and one that cannot be
// read are each passed over with the reason, and the start goes on from
// the bucket; no copy at all is no reason to note.
func TestRunner_Checkpoint_Preloaded(t *testing.T) {
	l := newCkptLedger(t, 300)
	l.publish(len(l.recs) / 2)
	path := eventstore.LocalCheckpointPath(t.TempDir(), "LEDGER", "demo")
	ck := l.checkpointsCopiedTo(path)
	r1, stop1 := l.run(ck, nil)
	firstHalf := r1.Status().AppliedSeq
	stop1()
	firstCopy, err := os.ReadFile(path)
	require.NoError(t, err)
	l.publish(len(l.recs))
	full, _ := l.run(nil, nil)
	want := dump(t, full)

	var logs logBuffer
	r, stop := l.runEvery(ck, &logs, 1<<30, preloadCopy(path, shanghai))
	st := r.Status().Checkpoint
	require.True(t, st.Preloaded, "logs:\n%s", logs.String())
	require.Equal(t, firstHalf, st.Seq)
	require.Empty(t, st.Ignored)
	require.Contains(t, logs.String(), "resumed from preloaded checkpoint")
	require.Equal(t, want, dump(t, r))
	stop() // a checkpoint of the whole stream, and its copy
	newest := r.Status().AppliedSeq

	t.Run("NewerInBucket", func(t *testing.T) {
		// The copy of the first checkpoint, as a server of a cluster
		// would have once another wrote the newest.
		older := filepath.Join(t.TempDir(), "older")
		require.NoError(t, os.WriteFile(older, firstCopy, 0o600))
		var logs logBuffer
		r, _ := l.runEvery(ck, &logs, 1<<30, preloadCopy(older, shanghai))
		st := r.Status().Checkpoint
		require.False(t, st.Preloaded)
		require.Equal(t, newest, st.Seq, "resumed from the bucket's newest")
		require.Len(t, st.Ignored, 1)
		require.Contains(t, st.Ignored[0], "(preloaded): the bucket has a newer checkpoint")
		require.Equal(t, want, dump(t, r))
	})
	for _, c := range []struct {
		name string
		pre  func() *projections.Preload
		why  string
	}{
		{"OtherBusinessDays", func() *projections.Preload { return preloadCopy(path, time.UTC) }, "business days in UTC"},
		{"Unreadable", func() *projections.Preload {
			bad := filepath.Join(t.TempDir(), "bad")
			require.NoError(t, os.WriteFile(bad, []byte("not a copy"), 0o600))
			return preloadCopy(bad, shanghai)
		}, "preloaded: checkpoint copy"},
		{"None", func() *projections.Preload { return preloadCopy(filepath.Join(t.TempDir(), "none"), shanghai) }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs logBuffer
			r, _ := l.runEvery(ck, &logs, 1<<30, c.pre())
			st := r.Status().Checkpoint
			require.False(t, st.Preloaded)
			require.Equal(t, newest, st.Seq, "resumed from the bucket")
			if c.why == "" {
				require.Empty(t, st.Ignored)
			} else {
				require.Len(t, st.Ignored, 1)
				require.Contains(t, st.Ignored[0], c.why)
			}
			require.Equal(t, want, dump(t, r))
		})
	}
}

// TestRunner_Checkpoint_WhileApplying: checkpoints written every few
// hundred events while events keep arriving (the snapshot taken under the
// lock, written while the runner goes on) each hold the state at their own
// sequence: a start from the last resumes to what a full replay holds.
func TestRunner_Checkpoint_WhileApplying(t *testing.T) {
	l := newCkptLedger(t, 300)
	l.publish(len(l.recs) / 3)
	ck := l.checkpoints()
	var logs logBuffer
	r, stop := l.runEvery(ck, &logs, 150, nil)
	l.publish(len(l.recs)) // while it applies and writes
	head, err := l.st.Head(context.Background())
	require.NoError(t, err)
	require.NoError(t, r.WaitFor(within(t, 60*time.Second), head))
	eventstoretest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if s := r.Status().Checkpoint; s.SavedSeq < uint64(len(l.recs)/2) {
			return fmt.Errorf("last checkpoint at %d", s.SavedSeq)
		}
		return nil
	})
	require.Empty(t, r.Status().Checkpoint.Error, "logs:\n%s", logs.String())
	stop()
	resumed, _ := l.run(ck, nil)
	require.Equal(t, head, resumed.Status().Checkpoint.Seq)
	full, _ := l.run(nil, nil)
	require.Equal(t, dump(t, full), dump(t, resumed))

	// And one of the periodic ones, from the middle: newer ones dropped.
	objects := objectsOf(t, mustBucket(t, l))
	require.LessOrEqual(t, len(checkpointHeaders(objects)), 3, "a small history is kept")
	require.LessOrEqual(t, len(objects), 3*3, "of headers and their pieces")
}

func mustBucket(t *testing.T, l *ckptLedger) jetstream.ObjectStore {
	js, err := jetstream.New(l.nc)
	require.NoError(t, err)
	b, err := js.ObjectStore(context.Background(), "LEDGER_checkpoints")
	require.NoError(t, err)
	return b
}

// TestRunner_Checkpoint_Untrusted: a checkpoint that does not match the
// stream (its sequence, its hash), is not signed by the ledger's key, is
// cut short or corrupted, or does not decode, is ignored with a log line
// saying why, and the start reads the whole stream; never a part of it.
func TestRunner_Checkpoint_Untrusted(t *testing.T) {
	l := newCkptLedger(t, 150)
	l.publish(len(l.recs))
	ctx := context.Background()
	ck := l.checkpoints()
	r, stop := l.run(ck, nil)
	want := dump(t, r)
	stop()
	head := r.Status().AppliedSeq
	obj, err := jetstream.New(l.nc)
	require.NoError(t, err)
	bucket, err := obj.ObjectStore(ctx, "LEDGER_checkpoints")
	require.NoError(t, err)
	good := objectsOf(t, bucket)
	headers := checkpointHeaders(good)
	require.Len(t, headers, 1, "one checkpoint")
	require.Len(t, good, 3, "a header and a piece for each of the two parts: %v", slices.Collect(maps.Keys(good)))
	goodName := headers[0]
	var pieceName string
	pieceName = goodName + ".0000"
	require.Contains(t, good, pieceName)
	goodInfo, err := bucket.GetInfo(ctx, goodName)
	require.NoError(t, err)
	goodBody := good[pieceName]
	require.Empty(t, good[goodName], "the header object holds no body")
	// Every piece as it was, as the cases below start from.
	restorePieces := func() {
		for name, b := range good {
			if name != goodName {
				putRaw(t, bucket, name, nil, b)
			}
		}
	}
	// The header with its first piece's digest replaced, as the forger
	// of a piece would have to write it.
	withDigest := func(b []byte) map[string]string {
		var h map[string]any
		require.NoError(t, json.Unmarshal([]byte(goodInfo.Metadata["packledger-checkpoint"]), &h))
		sum := sha256.Sum256(b)
		h["pieces"].([]any)[0].(map[string]any)["digest"] = "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:])
		j, err := json.Marshal(h)
		require.NoError(t, err)
		return map[string]string{"packledger-checkpoint": string(j)}
	}
	env, err := l.st.Get(ctx, head)
	require.NoError(t, err)
	other := eventstoretest.Open(t, l.nc, "demo", eventstoretest.NewSigner(t))
	otherCk, err := other.Checkpoints(ctx, eventstore.CheckpointsConfig{Signer: eventstoretest.NewSigner(t)})
	require.NoError(t, err)
	forger, err := l.st.Checkpoints(ctx, eventstore.CheckpointsConfig{Signer: eventstoretest.NewSigner(t)}) // the ledger's keyring, another key
	require.NoError(t, err)
	parts := [][]byte{goodBody[:len(goodBody)/2], goodBody[len(goodBody)/2:]} // well signed, not a model

	cases := []struct {
		name  string
		write func()
		why   string
	}{
		{"WrongSeq", func() { require.NoError(t, ck.Save(ctx, head+5, env.Subject, env.Hash, parts...)) }, "the stream ends at"},
		{"EarlierSeq", func() { require.NoError(t, ck.Save(ctx, head-1, env.Subject, env.Hash, parts...)) }, "seq 1"},
		{"WrongHash", func() { require.NoError(t, ck.Save(ctx, head, env.Subject, strings.Repeat("ab", 32), parts...)) }, "has hash"},
		{"OtherKey", func() { require.NoError(t, forger.Save(ctx, head, env.Subject, env.Hash, parts...)) }, "signature"},
		{"OtherKeyring", func() { require.NoError(t, otherCk.Save(ctx, head, env.Subject, env.Hash, parts...)) }, "other trusted keys"},
		{"NotAModel", func() { require.NoError(t, ck.Save(ctx, head, env.Subject, env.Hash, parts...)) }, "read-model checkpoint"},
		{"Truncated", func() {
			restorePieces()
			putRaw(t, bucket, goodName, goodInfo.Metadata, nil)
			putRaw(t, bucket, pieceName, nil, goodBody[:len(goodBody)-10])
		}, "the header says"},
		{"MissingPiece", func() {
			restorePieces()
			putRaw(t, bucket, goodName, goodInfo.Metadata, nil)
			require.NoError(t, bucket.Delete(ctx, pieceName))
		}, "piece 0: reading it"},
		{"Corrupted", func() {
			b := append([]byte(nil), goodBody...)
			b[len(b)/3] ^= 0x40
			restorePieces()
			putRaw(t, bucket, goodName, goodInfo.Metadata, nil)
			putRaw(t, bucket, pieceName, nil, b)
		}, "digest"},
		{"ForgedDigest", func() {
			// The corrupted piece with its own digest in the header: the
			// header no longer matches its signature.
			b := append([]byte(nil), goodBody...)
			b[len(b)/3] ^= 0x40
			restorePieces()
			putRaw(t, bucket, goodName, withDigest(b), nil)
			putRaw(t, bucket, pieceName, nil, b)
		}, "signature"},
		{"LinkPiece", func() {
			// A link where a piece is: a link to a link to itself, or to
			// another object, would have the store follow it.
			restorePieces()
			putRaw(t, bucket, goodName, goodInfo.Metadata, nil)
			require.NoError(t, bucket.Delete(ctx, pieceName))
			// A link may not take the name of an object, even a deleted
			// one: the delete marker goes too.
			stream, err := obj.Stream(ctx, "OBJ_LEDGER_checkpoints")
			require.NoError(t, err)
			require.NoError(t, stream.Purge(ctx, jetstream.WithPurgeSubject(
				"$O.LEDGER_checkpoints.M."+base64.URLEncoding.EncodeToString([]byte(pieceName)))))
			other, err := bucket.GetInfo(ctx, goodName+".0001")
			require.NoError(t, err)
			_, err = bucket.AddLink(ctx, pieceName, other)
			require.NoError(t, err)
		}, "it is a link, not a piece"},
		{"BodyInHeader", func() {
			restorePieces()
			putRaw(t, bucket, goodName, goodInfo.Metadata, goodBody)
		}, "its header object holds"},
		{"NoHeader", func() {
			restorePieces()
			_, err := bucket.PutBytes(ctx, goodName, nil)
			require.NoError(t, err)
		}, "no checkpoint header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name := range objectsOf(t, bucket) {
				require.NoError(t, bucket.Delete(ctx, name))
			}
			c.write()
			var logs logBuffer
			r, _ := l.run(ck, &logs)
			st := r.Status()
			require.Zero(t, st.Checkpoint.Seq, "read the whole stream; logs:\n%s", logs.String())
			require.Len(t, st.Checkpoint.Ignored, 1)
			require.Contains(t, st.Checkpoint.Ignored[0], c.why)
			require.Contains(t, logs.String(), "checkpoint ignored")
			require.Equal(t, want, dump(t, r))
		})
	}
}

// checkpointHeaders names the checkpoints among objects, leaving out
// their pieces.
func checkpointHeaders(objects map[string][]byte) []string {
	var names []string
	for name := range objects {
		if strings.Count(name, ".") == 1 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func objectsOf(t *testing.T, b jetstream.ObjectStore) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	infos, err := b.List(ctx)
	if err == jetstream.ErrNoObjectsFound {
		return map[string][]byte{}
	}
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, i := range infos {
		body, err := b.GetBytes(ctx, i.Name)
		require.NoError(t, err)
		out[i.Name] = body
	}
	return out
}

// putRaw writes body under a checkpoint's own header, as anyone with
// access to the bucket could.
func putRaw(t *testing.T, b jetstream.ObjectStore, name string, meta map[string]string, body []byte) {
	t.Helper()
	_, err := b.Put(context.Background(), jetstream.ObjectMeta{Name: name, Metadata: meta}, bytes.NewReader(body))
	require.NoError(t, err)
}
