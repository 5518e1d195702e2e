package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// runMainEnv makes this test binary the program itself, so that the
// bench's startup scenario, which starts os.Executable() as serve, starts
// the code under test.
const runMainEnv = "PACKLEDGER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tinyBench is every scenario at a size that proves it runs, not how fast.
var tinyBench = benchSizes{mode: "tiny",
	ceilingTime: 200 * time.Millisecond, ceilingInProcessTime: 100 * time.Millisecond, ceilingCount: 300,
	clients: 64, httpTime: time.Second, httpCount: 640,
	singleTime: 300 * time.Millisecond, singleCount: 20,
	apiWorkers: 64, apiTime: time.Second, apiCount: 640,
	rebuildEvents: 1500, startupEvents: 1500, readTimeout: time.Minute,
}

// TestBench_Report runs the whole bench at a tiny size and reads its JSON
// as a script would: every scenario there, every figure positive, and
// every ratio the quotient of two figures of the same report.
func TestBench_Report(t *testing.T) {
	t.Setenv(runMainEnv, "1")
	var out, progress bytes.Buffer
	err := benchMain(context.Background(), tinyBench, true, &out, &progress)
	require.NoError(t, err, "progress:\n%s", progress.String())

	var rep struct {
		Machine map[string]any   `json:"machine"`
		Mode    string           `json:"mode"`
		Results []map[string]any `json:"results"`
	}
	dec := json.NewDecoder(&out)
	dec.UseNumber()
	require.NoError(t, dec.Decode(&rep))
	require.Equal(t, "tiny", rep.Mode)
	for _, k := range []string{"cpu", "go", "os", "arch", "nats_server", "nats_go"} {
		require.NotEmpty(t, rep.Machine[k], "machine.%s", k)
	}
	require.Positive(t, num(t, rep.Machine, "cores"))
	_, err = time.Parse(time.RFC3339, rep.Machine["date"].(string))
	require.NoError(t, err)

	byName := map[string]map[string]any{}
	var names []string
	for _, r := range rep.Results {
		name := r["name"].(string)
		byName[name] = r
		names = append(names, name)
		for k, v := range r {
			if n, ok := v.(json.Number); ok {
				f, err := n.Float64()
				require.NoError(t, err)
				require.Positive(t, f, "%s.%s", name, k)
			}
		}
		if _, ok := r["p50_ms"]; ok {
			require.LessOrEqual(t, num(t, r, "p50_ms"), num(t, r, "p99_ms"), name)
		}
	}
	sort.Strings(names)
	require.Equal(t, []string{
		"ceiling_atomic_batch", "ceiling_fsync_single", "ceiling_read_decode",
		"durable_api", "durable_http_redeem_64", "memory_per_package", "rebuild",
		"single_client_http_redeem", "startup_checkpoint", "startup_checkpoint_fresh", "startup_no_checkpoint",
	}, names)
	for _, name := range names {
		r := byName[name]
		if name == "memory_per_package" {
			require.Positive(t, num(t, r, "bytes_per_package"))
			continue
		}
		require.Positive(t, num(t, r, "ops_per_s"), name)
	}
	for _, want := range []struct{ name, ratio, to string }{
		{"durable_http_redeem_64", "ratio", "ceiling_fsync_single"},
		{"durable_http_redeem_64", "ratio_batch", "ceiling_atomic_batch"},
		{"single_client_http_redeem", "ratio", "ceiling_fsync_single"},
		{"durable_api", "ratio", "ceiling_atomic_batch"},
		{"rebuild", "ratio", "ceiling_read_decode"},
	} {
		r := byName[want.name]
		require.Equal(t, want.to, r[want.ratio+"_to"], "%s.%s_to", want.name, want.ratio)
		q := num(t, r, "ops_per_s") / num(t, byName[want.to], "ops_per_s")
		require.InDelta(t, q, num(t, r, want.ratio), 0.0005, "%s.%s is %s's ops_per_s over %s's", want.name, want.ratio, want.name, want.to)
	}
	require.Equal(t, num(t, byName["durable_http_redeem_64"], "clients"), 64.0)
	for _, name := range []string{"rebuild", "ceiling_read_decode", "startup_no_checkpoint", "startup_checkpoint_fresh", "startup_checkpoint"} {
		require.GreaterOrEqual(t, num(t, byName[name], "events"), float64(tinyBench.rebuildEvents), name)
	}
	// The starts after the first resume from the checkpoint the first
	// one's stop wrote, at the end of the log.
	require.NotContains(t, byName["startup_no_checkpoint"], "resumed_seq")
	for _, name := range []string{"startup_checkpoint_fresh", "startup_checkpoint"} {
		require.Equal(t, num(t, byName[name], "events"), num(t, byName[name], "resumed_seq"), name)
	}
}

func num(t *testing.T, o map[string]any, k string) float64 {
	t.Helper()
	n, ok := o[k].(json.Number)
	require.True(t, ok, "%s is %T %v, not a number", k, o[k], o[k])
	f, err := n.Float64()
	require.NoError(t, err)
	return f
}

func TestBench_Usage(t *testing.T) {
	var out bytes.Buffer
	require.ErrorIs(t, run(context.Background(), []string{"bench", "--nope"}, &out, &out), errUsage)
	require.ErrorContains(t, run(context.Background(), []string{"bench", "now"}, &out, &out), `unexpected argument "now"`)
}

// TestGenDataset_TheLedgersOwn: the generated ledger is one verify
// accepts whole, with every kind of event a dealer's book holds, and its
// business time runs with the stream.
func TestGenDataset_TheLedgersOwn(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	log, err := newLogger(&bytes.Buffer{}, "error")
	require.NoError(t, err)
	ds, err := genDataset(context.Background(), dir, 3000, log, nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, ds.messages, uint64(3000))

	stdout, stderr, err := runArgs("verify", "--data", dir, "--json")
	require.NoError(t, err, stderr)
	var rep struct {
		OK       bool `json:"ok"`
		Packages int  `json:"packages"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	require.True(t, rep.OK, stdout)
	require.Equal(t, ds.packages, rep.Packages)

	node, _, err := benchNode(context.Background(), dir, log)
	require.NoError(t, err)
	defer node.shutdown()
	types := map[string]int{}
	var last time.Time
	_, err = node.store.Scan(context.Background(), func(seq uint64, _ string, env domain.Envelope, err error) error {
		require.NoError(t, err, "seq %d", seq)
		types[env.Type]++
		require.False(t, env.BusinessTime.Before(last), "seq %d: business time %v before %v", seq, env.BusinessTime, last)
		last = env.BusinessTime
		return nil
	})
	require.NoError(t, err)
	for _, typ := range []string{"PlanDefined", "PackageSold", "ReceiptClaimed", "PaymentRecorded", "PackageActivated",
		"VisitRedeemed", "RedemptionReversed", "PackageRefunded"} {
		require.Positive(t, types[typ], "%s in %v", typ, types)
	}
	require.Equal(t, ds.packages, types["PackageSold"])
	require.True(t, last.Before(time.Now().AddDate(0, 0, -20)), "the last event, %v, leaves a month before today", last)
}

func TestLatencies_Percentiles(t *testing.T) {
	for _, tc := range []struct {
		n        int
		p50, p99 float64
	}{{1, 1, 1}, {2, 1, 2}, {100, 50, 99}, {1000, 500, 990}} {
		l := make(latencies, tc.n)
		for i := range l {
			l[len(l)-1-i] = time.Duration(i+1) * time.Millisecond // unsorted
		}
		var r benchResult
		l.set(&r)
		require.Equal(t, tc.p50, *r.P50ms, "p50 of %d", tc.n)
		require.Equal(t, tc.p99, *r.P99ms, "p99 of %d", tc.n)
	}
	var r benchResult
	latencies(nil).set(&r)
	require.Nil(t, r.P50ms, "no operations, no percentiles")
}

func TestSetRatios(t *testing.T) {
	rs := []benchResult{{Name: "c", OpsPerS: 300}, {Name: "x", OpsPerS: 100, RatioTo: "c", RatioBatchTo: "x"}}
	require.NoError(t, setRatios(rs, true))
	require.Equal(t, 0.333, *rs[1].Ratio)
	require.Equal(t, 1.0, *rs[1].RatioBatch)
	require.Nil(t, rs[0].Ratio)
	require.ErrorContains(t, setRatios([]benchResult{{Name: "x", OpsPerS: 1, RatioTo: "gone"}}, true), "x is a ratio to gone, which was not measured")
	partial := []benchResult{{Name: "x", OpsPerS: 1, RatioTo: "gone"}}
	require.NoError(t, setRatios(partial, false), "--only: a ceiling left out leaves its ratios out")
	require.Nil(t, partial[0].Ratio)
}

// TestPackageImport_EveryLife: every life lifeOf gives, on every plan,
// is one the domain decides (lifeOf and the plans repeat every 1170).
func TestPackageImport_EveryLife(t *testing.T) {
	plans, err := demoPlans()
	require.NoError(t, err)
	subjects := eventstore.Subjects{Dealer: "demo"}
	for k := 0; k < 1170; k++ {
		plan := domain.PlanState{Plan: plans[k%len(plans)], Status: domain.PlanStatusActive}
		im, err := packageImport(subjects, k, plan, lifeOf(k), time.Now().AddDate(0, -1, 0), time.Minute)
		require.NoError(t, err, "life %d: %+v", k, lifeOf(k))
		require.LessOrEqual(t, importMessages(im), eventstore.MaxBulkBatch)
	}
}
