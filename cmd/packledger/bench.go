package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// packledger bench measures the ledger against JetStream's own ceilings,
// both in the same run on the same machine, so that the ratios between
// them mean something however busy or slow the machine is. Every
// scenario runs on a data directory and loopback ports of its own, with
// the embedded server as serve runs it (fsync on), and is bounded in
// count and in time. See BENCHMARKS.md.

// benchSizes bounds every scenario: each stops at its count or its time,
// whichever comes first.
type benchSizes struct {
	mode string
	only []string // scenario groups to run; nil runs all
	// The write ceilings: over TCP (the ceiling), then in process.
	ceilingTime, ceilingInProcessTime time.Duration
	ceilingCount                      int
	// clients of durable_http_redeem_64; httpCount redemptions at most,
	// as many packages set up for them.
	clients     int
	httpTime    time.Duration
	httpCount   int
	singleTime  time.Duration
	singleCount int
	// apiWorkers goroutines calling Store.Update.
	apiWorkers int
	apiTime    time.Duration
	apiCount   int
	// Messages (events and receipt claims) of the rebuild and startup
	// datasets.
	rebuildEvents, startupEvents int
	// Bounds on one rebuild, one read of the stream, one serve start.
	readTimeout time.Duration
}

var (
	fullBench = benchSizes{mode: "full",
		ceilingTime: 10 * time.Second, ceilingInProcessTime: 5 * time.Second, ceilingCount: 300_000,
		clients: 64, httpTime: 30 * time.Second, httpCount: 300_000,
		singleTime: 10 * time.Second, singleCount: 20_000,
		apiWorkers: 64, apiTime: 20 * time.Second, apiCount: 300_000,
		// Before the rebuild is made faster, a start on 5M events
		// replays them at about 5k/s.
		rebuildEvents: 1_000_000, startupEvents: 5_000_000, readTimeout: 30 * time.Minute,
	}
	quickBench = benchSizes{mode: "quick",
		ceilingTime: 2 * time.Second, ceilingInProcessTime: time.Second, ceilingCount: 50_000,
		clients: 64, httpTime: 3 * time.Second, httpCount: 20_000,
		singleTime: 2 * time.Second, singleCount: 2_000,
		apiWorkers: 64, apiTime: 3 * time.Second, apiCount: 20_000,
		rebuildEvents: 20_000, startupEvents: 20_000, readTimeout: 2 * time.Minute,
	}
)

// scenarioGroups name runBench's scenarios, in order, for --only.
var scenarioGroups = []string{"ceilings", "http", "api", "rebuild", "startup"}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "small sizes, for CI: the whole run in under a minute (figures too short to quote)")
	asJSON := fs.Bool("json", false, `print {"machine": {...}, "results": [...]} instead of a table`)
	only := fs.String("only", "", "run only these scenario groups, comma-separated: "+strings.Join(scenarioGroups, ", ")+
		" (a ratio whose ceiling was not measured is left out)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: packledger bench [--quick] [--json]\n\nMeasures JetStream's ceilings and the ledger against them on this machine, on temp data dirs and loopback ports. Progress goes to stderr, the result to stdout. See BENCHMARKS.md.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	sz := fullBench
	if *quick {
		sz = quickBench
	}
	if *only != "" {
		for _, g := range strings.Split(*only, ",") {
			if !slices.Contains(scenarioGroups, g) {
				return fmt.Errorf("bench: --only: no scenario group %q (there are %s)", g, strings.Join(scenarioGroups, ", "))
			}
		}
		sz.only = strings.Split(*only, ",")
	}
	return benchMain(ctx, sz, *asJSON, stdout, stderr)
}

// benchMain runs the bench at the given sizes and prints its report.
func benchMain(ctx context.Context, sz benchSizes, asJSON bool, stdout, stderr io.Writer) error {
	rep, err := runBench(ctx, sz, stderr)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printBench(stdout, rep)
}

// benchReport is what bench prints.
type benchReport struct {
	Machine benchMachine  `json:"machine"`
	Mode    string        `json:"mode"`
	Seconds float64       `json:"seconds"`
	Results []benchResult `json:"results"`
}

// benchResult is one figure. Only what a scenario measures is set.
type benchResult struct {
	Name    string   `json:"name"`
	OpsPerS float64  `json:"ops_per_s,omitempty"`
	P50ms   *float64 `json:"p50_ms,omitempty"`
	P99ms   *float64 `json:"p99_ms,omitempty"`
	// Ratio is OpsPerS over the OpsPerS of the result RatioTo names;
	// RatioBatch likewise over RatioBatchTo.
	Ratio        *float64 `json:"ratio,omitempty"`
	RatioTo      string   `json:"ratio_to,omitempty"`
	RatioBatch   *float64 `json:"ratio_batch,omitempty"`
	RatioBatchTo string   `json:"ratio_batch_to,omitempty"`

	Ops      int     `json:"ops,omitempty"`
	Events   uint64  `json:"events,omitempty"`
	Packages int     `json:"packages,omitempty"`
	Clients  int     `json:"clients,omitempty"`
	Seconds  float64 `json:"seconds"`
	// InProcessOpsPerS is a write ceiling over the in-process
	// connection, the one serve itself writes on.
	InProcessOpsPerS float64 `json:"in_process_ops_per_s,omitempty"`
	StopSeconds      float64 `json:"stop_seconds,omitempty"`
	// ResumedSeq is where a start resumed from a checkpoint.
	ResumedSeq      uint64  `json:"resumed_seq,omitempty"`
	HeapBytes       uint64  `json:"heap_bytes,omitempty"`
	BytesPerPackage float64 `json:"bytes_per_package,omitempty"`
	Note            string  `json:"note,omitempty"`
}

// benchRun is one run's settings and where its scenarios keep their data.
type benchRun struct {
	sz     benchSizes
	root   string
	exe    string
	log    *slog.Logger
	stderr io.Writer
}

// runBench runs every scenario in turn, each on a data dir of its own
// under one temp dir that is removed at the end.
func runBench(ctx context.Context, sz benchSizes, stderr io.Writer) (benchReport, error) {
	start := time.Now()
	exe, err := os.Executable()
	if err != nil {
		return benchReport{}, fmt.Errorf("bench: the program's own path, to start it as serve: %w", err)
	}
	root, err := os.MkdirTemp("", "packledger-bench-")
	if err != nil {
		return benchReport{}, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(root)
	log, err := newLogger(stderr, "warn")
	if err != nil {
		return benchReport{}, err
	}
	b := &benchRun{sz: sz, root: root, exe: exe, log: log, stderr: stderr}
	b.progress("%s run on %d cores, data under %s", sz.mode, runtime.NumCPU(), root)
	var results []benchResult
	for i, scenario := range []func(context.Context) ([]benchResult, error){
		b.writeCeilings, b.httpRedeem, b.durableAPI, b.rebuild, b.startup,
	} {
		if sz.only != nil && !slices.Contains(sz.only, scenarioGroups[i]) {
			continue
		}
		rs, err := scenario(ctx)
		if err != nil {
			return benchReport{}, fmt.Errorf("bench: %w", err)
		}
		for _, r := range rs {
			b.progress("%s", resultLine(r))
		}
		results = append(results, rs...)
	}
	if err := setRatios(results, sz.only == nil); err != nil {
		return benchReport{}, err
	}
	return benchReport{Machine: machineInfo(start), Mode: sz.mode, Seconds: round(time.Since(start).Seconds(), 1), Results: results}, nil
}

func (b *benchRun) progress(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

// dir makes a scenario's data dir; the scenario removes it when done.
func (b *benchRun) dir(name string) (string, func(), error) {
	d := filepath.Join(b.root, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", nil, fmt.Errorf("%s: %w", name, err)
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

// freshNode opens a ledger as serve would on a new data dir of the
// scenario's own; done stops it and removes the dir.
func (b *benchRun) freshNode(ctx context.Context, name string) (*ledgerNode, *serveConfig, func(), error) {
	dir, cleanup, err := b.dir(name)
	if err != nil {
		return nil, nil, nil, err
	}
	node, c, err := benchNode(ctx, dir, b.log)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return node, c, func() { node.shutdown(); cleanup() }, nil
}

// benchNode opens a ledger on dir exactly as serve would with its defaults
// (fsync on), on free loopback ports; extra are more serve flags.
func benchNode(ctx context.Context, dir string, log *slog.Logger, extra ...string) (*ledgerNode, *serveConfig, error) {
	fs, c := serveFlags(io.Discard)
	args := append([]string{"--data", dir, "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, extra...)
	if err := fs.Parse(args); err != nil {
		return nil, nil, fmt.Errorf("serve flags %v: %w", args, err)
	}
	node, err := openNode(ctx, c, log)
	if err != nil {
		return nil, nil, err
	}
	return node, c, nil
}

// setRatios fills each ratio from the figures it is the quotient of.
func setRatios(results []benchResult, all bool) error {
	byName := map[string]float64{}
	for _, r := range results {
		byName[r.Name] = r.OpsPerS
	}
	quotient := func(r benchResult, of string) (*float64, error) {
		c, ok := byName[of]
		if !ok && !all {
			return nil, nil
		}
		if !ok || c <= 0 {
			return nil, fmt.Errorf("bench: %s is a ratio to %s, which was not measured", r.Name, of)
		}
		q := round(r.OpsPerS/c, 3)
		return &q, nil
	}
	var err error
	for i, r := range results {
		if r.RatioTo != "" {
			if results[i].Ratio, err = quotient(r, r.RatioTo); err != nil {
				return err
			}
		}
		if r.RatioBatchTo != "" {
			if results[i].RatioBatch, err = quotient(r, r.RatioBatchTo); err != nil {
				return err
			}
		}
	}
	return nil
}

// latencies are the durations of single operations.
type latencies []time.Duration

// set puts the median and 99th percentile, in ms, into r.
func (l latencies) set(r *benchResult) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	at := func(p float64) *float64 {
		i := int(math.Ceil(p*float64(len(l)))) - 1 // nearest rank
		v := round(float64(l[max(i, 0)])/float64(time.Millisecond), 3)
		return &v
	}
	r.P50ms, r.P99ms = at(0.50), at(0.99)
}

// rate is n per second over d, to a tenth.
func opsRate(n int, d time.Duration) float64 { return round(rate(n, d), 1) }

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// benchMachine says what the figures were measured on.
type benchMachine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	Go          string `json:"go"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Kernel      string `json:"kernel,omitempty"`
	NATSServer  string `json:"nats_server"`
	NATSGo      string `json:"nats_go"`
	Date        string `json:"date"`
	Fsync       bool   `json:"fsync"`
}

// machineInfo describes this machine; date is when the run began.
func machineInfo(date time.Time) benchMachine {
	m := benchMachine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, NATSServer: server.VERSION, NATSGo: nats.Version,
		Date: date.UTC().Format(time.RFC3339), Fsync: true, CPU: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb uint64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryBytes = kb * 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// printBench writes the report as a table.
func printBench(w io.Writer, rep benchReport) error {
	m := rep.Machine
	fmt.Fprintf(w, "packledger bench (%s, %.0f s), %s\n%s, %d cores, %s %s/%s, nats-server %s, nats.go %s, fsync on\n\n",
		rep.Mode, rep.Seconds, m.Date, m.CPU, m.Cores, m.Go, m.OS, m.Arch, m.NATSServer, m.NATSGo)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tops/s\tp50 ms\tp99 ms\tratio\tratio_batch\t")
	opt := func(v *float64, f string) string {
		if v == nil {
			return ""
		}
		return fmt.Sprintf(f, *v)
	}
	for _, r := range rep.Results {
		ops := ""
		if r.OpsPerS > 0 {
			ops = fmt.Sprintf("%.1f", r.OpsPerS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, ops, opt(r.P50ms, "%.3f"), opt(r.P99ms, "%.3f"),
			opt(r.Ratio, "%.3f"), opt(r.RatioBatch, "%.3f"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%s: %s\n", r.Name, details(r))
	}
	return nil
}

// resultLine is one result in a line, for progress.
func resultLine(r benchResult) string {
	s := r.Name + ": "
	if r.OpsPerS > 0 {
		s += fmt.Sprintf("%.1f/s; ", r.OpsPerS)
	}
	if r.P50ms != nil {
		s += fmt.Sprintf("p50 %.3f ms, p99 %.3f ms; ", *r.P50ms, *r.P99ms)
	}
	return s + details(r)
}

// details says what a figure counted.
func details(r benchResult) string {
	var parts []string
	add := func(cond bool, f string, args ...any) {
		if cond {
			parts = append(parts, fmt.Sprintf(f, args...))
		}
	}
	add(r.Ops > 0, "%d ops", r.Ops)
	add(r.Events > 0, "%d events", r.Events)
	add(r.Packages > 0, "%d packages", r.Packages)
	add(r.Clients > 0, "%d clients", r.Clients)
	add(true, "%.2f s", r.Seconds)
	add(r.InProcessOpsPerS > 0, "in process %.1f/s", r.InProcessOpsPerS)
	add(r.StopSeconds > 0, "stopped in %.2f s", r.StopSeconds)
	add(r.BytesPerPackage > 0, "%.0f bytes/package (%d bytes)", r.BytesPerPackage, r.HeapBytes)
	add(r.Note != "", "%s", r.Note)
	return strings.Join(parts, ", ")
}
