package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

// BenchmarkUpdate_Parallel is the store's own write path, fsync on, from
// many goroutines at once, each on its own subject: what group commit is
// for. cmds/append is how many commands one append to JetStream carried.
func BenchmarkUpdate_Parallel(b *testing.B) {
	for _, c := range []struct {
		goroutines int
		mode       eventstore.GroupCommitMode
	}{
		{1, eventstore.GroupCommitAuto}, {4, eventstore.GroupCommitAuto}, {16, eventstore.GroupCommitAuto},
		{64, eventstore.GroupCommitAuto}, {16, eventstore.GroupCommitAlways}, {64, eventstore.GroupCommitAlways},
		{64, eventstore.GroupCommitOff},
	} {
		g := c.goroutines
		b.Run(fmt.Sprintf("goroutines=%d/groupcommit=%v", g, c.mode), func(b *testing.B) {
			_, nc := eventstoretest.RunServerSync(b, b.TempDir(), true)
			st, err := eventstore.Open(context.Background(), nc, eventstore.Config{Dealer: "demo",
				Signer: eventstoretest.NewSigner(b), GroupCommit: c.mode})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						// A few events a subject, as a package has.
						code := fmt.Sprintf("P%d-%d", w, i/benchEventsPerSubject)
						if _, err := st.Update(ctx, "ledger.demo.plans."+code, meta, clock, retire(code)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			st2 := st.CommitStats()
			b.ReportMetric(float64(st2.Commands)/float64(max(1, st2.Appends)), "cmds/append")
		})
	}
}

const benchEventsPerSubject = 64
