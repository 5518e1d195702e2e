package projections_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
	"github.com/packledger/packledger/projections"
)

// BenchmarkRunner_Start is a start on a real embedded JetStream holding a
// generated ledger: reading the whole stream into the read models, then
// writing a checkpoint, then a start that resumes from it. Each figure is
// one start, in milliseconds. PACKLEDGER_BENCH_PACKAGES sets the size
// (default 5,000 packages, some 47,000 events). The stream is written
// without fsync, to fill it quickly; reading does not depend on it.
func BenchmarkRunner_Start(b *testing.B) {
	packages := eventstoretest.BenchPackages(b, 5000)
	_, nc := eventstoretest.RunServerSync(b, b.TempDir(), false)
	sg := eventstoretest.NewSigner(b)
	st := eventstoretest.Open(b, nc, "demo", sg)
	c := eventstoretest.NewCorpus(b, eventstoretest.CorpusConfig{Packages: packages, Seed: 9, Signer: sg})
	eventstoretest.Publish(b, nc, c.Records)
	events := len(c.Records)
	c = eventstoretest.Corpus{}
	ctx := context.Background()
	head, err := st.Head(ctx)
	if err != nil || head != uint64(events) {
		b.Fatalf("head %d, want %d: %v", head, events, err)
	}
	ck, err := st.Checkpoints(ctx, eventstore.CheckpointsConfig{Signer: sg})
	if err != nil {
		b.Fatal(err)
	}
	start := func(ck *eventstore.Checkpoints) (*projections.Runner, time.Duration, func()) {
		t0 := time.Now()
		r := projections.NewRunner(st.Feed(), projections.NewModel(shanghai), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if ck != nil {
			if err := r.UseCheckpoints(ck, projections.CheckpointPolicy{Every: 1 << 40}); err != nil {
				b.Fatal(err)
			}
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = r.Run(rctx) }()
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Minute)
		defer wcancel()
		if err := r.WaitReady(wctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		return r, took, func() { cancel(); <-done }
	}
	for b.Loop() {
		r, replay, stop := start(ck)
		stop()
		t0 := time.Now()
		if err := r.SaveCheckpoint(ctx); err != nil {
			b.Fatal(err)
		}
		save := time.Since(t0)
		r = nil
		r2, resume, stop2 := start(ck)
		if s := r2.Status().Checkpoint; s == nil || s.Seq != head {
			b.Fatalf("did not resume: %+v", s)
		}
		stop2()
		b.ReportMetric(float64(replay.Milliseconds()), "replay-ms")
		b.ReportMetric(float64(save.Milliseconds()), "save-ms")
		b.ReportMetric(float64(resume.Milliseconds()), "resume-ms")
		b.ReportMetric(float64(events)/replay.Seconds(), "replay-events/s")
	}
}
