package main

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// rebuild measures the projections built from empty over a generated
// ledger, as serve builds them at start, against the read path's ceiling
// on the same data, and then the heap the built models hold.
func (b *benchRun) rebuild(ctx context.Context) ([]benchResult, error) {
	dir, cleanup, err := b.dir("rebuild")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	ds, err := b.dataset(ctx, "rebuild", dir, b.sz.rebuildEvents)
	if err != nil {
		return nil, err
	}
	base := liveHeap()
	node, c, err := benchNode(ctx, dir, b.log)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			node.shutdown()
		}
	}()

	b.progress("ceiling_read_decode: %d events", ds.messages)
	read, err := readDecode(ctx, node.nc, c.stream, node.store.Subjects().All(), ds.messages, b.sz.readTimeout)
	if err != nil {
		return nil, fmt.Errorf("ceiling_read_decode: %w", err)
	}
	ceiling := benchResult{Name: "ceiling_read_decode", OpsPerS: opsRate(read.ops, read.elapsed), Events: uint64(read.ops),
		Seconds: round(read.elapsed.Seconds(), 2), Note: "ordered consumer over the dataset, each message decoded into its envelope and event; no chain or signature check, nothing applied"}

	b.progress("rebuild: %d events", ds.messages)
	tz, err := time.LoadLocation(c.tz)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// From an empty model, as a first start: no checkpoint.
	runner, stopRunner, err := node.startProjections(ctx, tz, b.log, nil)
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, b.sz.readTimeout)
	err = runner.WaitReady(waitCtx)
	cancel()
	elapsed := time.Since(start)
	stopRunner()
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	st := runner.Status()
	if st.AppliedSeq < ds.messages || len(st.Findings) > 0 || st.Packages != ds.packages {
		return nil, fmt.Errorf("rebuild: applied %d of %d events, %d of %d packages, %d refused (%v): the dataset should be the ledger's own",
			st.AppliedSeq, ds.messages, st.Packages, ds.packages, len(st.Findings), st.Findings[:min(len(st.Findings), 3)])
	}
	rebuilt := benchResult{Name: "rebuild", OpsPerS: opsRate(int(st.AppliedSeq), elapsed), Events: st.AppliedSeq, Packages: st.Packages,
		Seconds: round(elapsed.Seconds(), 2), RatioTo: "ceiling_read_decode",
		Note: "every projection from empty, the runner over the store's feed as serve starts it, to caught up"}

	// What stays is the read models and the feed's chain state: with the
	// server stopped and the connection closed, the rest is garbage.
	node.shutdown()
	closed = true
	after := liveHeap()
	held := after - min(base, after)
	runtime.KeepAlive(runner)
	mem := benchResult{Name: "memory_per_package", Packages: st.Packages, Events: st.AppliedSeq, HeapBytes: held,
		BytesPerPackage: round(float64(held)/float64(max(st.Packages, 1)), 1), Seconds: rebuilt.Seconds,
		Note: "live heap after the rebuild (runtime.ReadMemStats after GC, less the heap before the ledger opened), with NATS stopped: the read models and the feed's chain state"}
	return []benchResult{ceiling, rebuilt, mem}, nil
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // the first leaves what finalizers kept alive for one more cycle
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// dataset generates a scenario's ledger, reporting progress.
func (b *benchRun) dataset(ctx context.Context, name, dir string, events int) (dataset, error) {
	b.progress("%s: generating %d events (lazy fsync: the data is only measured)", name, events)
	quiet, err := newLogger(b.stderr, "error") // not the warning of --fsync=false
	if err != nil {
		return dataset{}, err
	}
	start := time.Now()
	next := events / 10
	ds, err := genDataset(ctx, dir, events, quiet, func(done int) {
		if done >= next {
			b.progress("%s: %d events written", name, done)
			next += events / 10
		}
	})
	if err != nil {
		return dataset{}, fmt.Errorf("%s: %w", name, err)
	}
	b.progress("%s: %d events of %d packages generated in %.1f s", name, ds.messages, ds.packages, time.Since(start).Seconds())
	return ds, nil
}
