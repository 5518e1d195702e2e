package eventstoretest

import (
	"os"
	"runtime"
	"strconv"
	"testing"
)

// LiveHeap is the bytes the heap holds once garbage is collected: what a
// benchmark of memory subtracts before from after.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchPackages is how many packages a benchmark of size generates:
// PACKLEDGER_BENCH_PACKAGES if set, else def.
func BenchPackages(tb testing.TB, def int) int {
	tb.Helper()
	s := os.Getenv("PACKLEDGER_BENCH_PACKAGES")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("PACKLEDGER_BENCH_PACKAGES=%q: want a count of packages", s)
	}
	return n
}
