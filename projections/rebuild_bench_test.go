package projections_test

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore/eventstoretest"
	"github.com/packledger/packledger/projections"
)

// decodeCorpus decodes every record of a corpus, as the feed would.
func decodeCorpus(tb testing.TB, c eventstoretest.Corpus) []domain.Envelope {
	tb.Helper()
	envs := make([]domain.Envelope, len(c.Records))
	for i, r := range c.Records {
		env, err := r.Decode(uint64(i + 1))
		if err != nil {
			tb.Fatalf("record %d: %v", i+1, err)
		}
		envs[i] = env
	}
	return envs
}

// BenchmarkModel_Apply is the read models' share of a rebuild: folding
// decoded events into an empty Model, per event. Decoding and the chain
// check are measured elsewhere (the feed and eventstore's benchmarks).
func BenchmarkModel_Apply(b *testing.B) {
	c := eventstoretest.NewCorpus(b, eventstoretest.CorpusConfig{Packages: 5000, Seed: 1})
	envs := decodeCorpus(b, c)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		m := projections.NewModel(shanghai)
		for _, env := range envs {
			m.Apply(env)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(envs)), "ns/event")
	// CPU time (garbage collection's included) is steadier than the wall
	// clock on a machine others share.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*len(envs)), "cpu-ns/event")
}

// cpuTime is the process's user and system CPU time, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkModel_HeapPerPackage is what the read models hold per package
// after a rebuild of a realistic history: the live heap after a GC, less
// what was live before, over the packages. Each event is decoded just
// before it is applied, so that what the model keeps of a decoded event
// counts and the rest does not.
func BenchmarkModel_HeapPerPackage(b *testing.B) {
	const packages = 20000
	c := eventstoretest.NewCorpus(b, eventstoretest.CorpusConfig{Packages: packages, Seed: 2})
	for b.Loop() {
		before := eventstoretest.LiveHeap()
		m := rebuild(b, c)
		after := eventstoretest.LiveHeap()
		runtime.KeepAlive(m)
		b.ReportMetric(float64(after-before)/packages, "B/pkg")
		b.ReportMetric(float64(len(c.Records))/packages, "events/pkg")
	}
}

// BenchmarkModel_Checkpoint is writing a checkpoint of a rebuilt model,
// and reading it back as a start does (with nothing else on the heap),
// per package; and its size. PACKLEDGER_BENCH_PACKAGES sets how many
// packages (default 50,000).
func BenchmarkModel_Checkpoint(b *testing.B) {
	packages := eventstoretest.BenchPackages(b, 50000)
	data, enc := checkpointOf(b, packages)
	runtime.GC()
	var dec time.Duration
	for b.Loop() {
		t0 := time.Now()
		m, err := projections.DecodeModel(shanghai, data)
		if err != nil {
			b.Fatal(err)
		}
		dec += time.Since(t0)
		runtime.KeepAlive(m)
		m = nil
		runtime.GC()
	}
	b.ReportMetric(float64(enc.Nanoseconds())/float64(packages), "encode-ns/pkg")
	b.ReportMetric(float64(dec.Nanoseconds())/float64(b.N*packages), "decode-ns/pkg")
	b.ReportMetric(float64(len(data))/float64(packages), "bytes/pkg")
}

// rebuild folds a corpus into a new model, each event decoded just before
// it is applied.
func rebuild(b *testing.B, c eventstoretest.Corpus) *projections.Model {
	b.Helper()
	m := projections.NewModel(shanghai)
	for i, r := range c.Records {
		env, err := r.Decode(uint64(i + 1))
		if err != nil {
			b.Fatal(err)
		}
		m.Apply(env)
	}
	return m
}

// checkpointOf rebuilds a model of a corpus and encodes it, dropping all
// but the encoding.
func checkpointOf(b *testing.B, packages int) ([]byte, time.Duration) {
	b.Helper()
	m := rebuild(b, eventstoretest.NewCorpus(b, eventstoretest.CorpusConfig{Packages: packages, Seed: 2}))
	t0 := time.Now()
	data, err := projections.SnapshotModel(m).Encode()
	if err != nil {
		b.Fatal(err)
	}
	return data, time.Since(t0)
}
