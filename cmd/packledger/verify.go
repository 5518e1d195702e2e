package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections/audit"
)

const verifyAbout = `packledger verify — check the whole ledger: every event's signature and
its place in its package's hash chain, every event re-applied through the
domain with the §4 invariant checked after each, and the liability rolled
forward day by day. Findings are printed one a line ("seq N package P:
problem"), then a summary; --json prints the report instead. Exit status 0
only if there is no finding.

Exactly one source:
  --data DIR     a server's data directory. STOP THE SERVER FIRST: verify
                 starts its own embedded NATS server on DIR, and two servers
                 must never share one directory. Trusts DIR's signing key
                 and its keyring, unless --pubkey is given.
  --nats URL     a running NATS server or cluster (the embedded server's
                 client port lets anyone read); needs --pubkey.
  --file EXPORT  an export made by "packledger export --format jsonl" ("-"
                 for stdin). Trusts --pubkey; without it, the keys the
                 export names itself, which proves only that the export is
                 consistent, not that it is authentic.

Usage: packledger verify (--data DIR | --nats URL | --file EXPORT) [flags]

Flags:
`

// keyList is a repeatable flag of public keys, "ed25519:<base64>", each
// occurrence possibly a comma-separated list.
type keyList []string

func (k *keyList) String() string { return strings.Join(*k, ",") }

func (k *keyList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if err := eventstore.NewKeyring().AddTrusted(s); err != nil {
			return err
		}
		*k = append(*k, s)
	}
	return nil
}

// sourceFlags are the flags verify, replay and export share: where the
// ledger is, which keys to trust, and how to read it.
type sourceFlags struct {
	fs                   *flag.FlagSet
	data, natsURL, file  string
	pubkeys              keyList
	keyFile, keyringFile string
	dealer, stream, tz   string
	json                 bool
	loc                  *time.Location
	dealerSet            bool
}

func newSourceFlags(name, about string, stderr io.Writer, withFile, withJSON bool) *sourceFlags {
	sf := &sourceFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs := sf.fs
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, about)
		fs.PrintDefaults()
	}
	fs.StringVar(&sf.data, "data", "", "a server's data directory; STOP THE SERVER FIRST: this starts its own embedded NATS server on it")
	fs.StringVar(&sf.natsURL, "nats", "", "a NATS server or cluster to read the ledger from (nats://host:port); needs --pubkey")
	if withFile {
		fs.StringVar(&sf.file, "file", "", `a jsonl export ("-": stdin)`)
	}
	fs.Var(&sf.pubkeys, "pubkey", `a public key to trust, "ed25519:<base64>" as "packledger key" prints it; repeat or separate with commas for the keys of earlier rotations, each "ed25519:<base64>@N" with the last sequence it signed, as the keyring lists it`)
	fs.StringVar(&sf.keyFile, "key-file", "", "with --data: the ledger's key file (default DATA/ledger.key)")
	fs.StringVar(&sf.keyringFile, "keyring", "", "with --data: the keyring of earlier public keys (default: ledger.keyring beside the key)")
	dealerHelp := "dealer id: the <dealer> of ledger.<dealer>.> subjects"
	if withFile {
		dealerHelp += " (with --file: the export's own, which this must match if given)"
	}
	fs.StringVar(&sf.dealer, "dealer", "demo", dealerHelp)
	fs.StringVar(&sf.stream, "stream", "LEDGER", "JetStream stream name")
	fs.StringVar(&sf.tz, "tz", "Asia/Shanghai", "time zone of business days")
	if withJSON {
		fs.BoolVar(&sf.json, "json", false, "print JSON instead of text")
	}
	return sf
}

// parse reads args; it returns errHelp for -h.
func (sf *sourceFlags) parse(args []string) error {
	if err := sf.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	if sf.fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", sf.fs.Name(), sf.fs.Arg(0))
	}
	sf.fs.Visit(func(f *flag.Flag) {
		if f.Name == "dealer" {
			sf.dealerSet = true
		}
	})
	n := 0
	for _, s := range []string{sf.data, sf.natsURL, sf.file} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		if sf.fs.Lookup("file") != nil {
			return fmt.Errorf("%s: give exactly one of --data DIR, --nats URL, --file EXPORT", sf.fs.Name())
		}
		return fmt.Errorf("%s: give exactly one of --data DIR, --nats URL", sf.fs.Name())
	}
	loc, err := time.LoadLocation(sf.tz)
	if err != nil {
		return fmt.Errorf("--tz: %w", err)
	}
	sf.loc = loc
	if err := eventstore.CheckDealer(sf.dealer); err != nil {
		return fmt.Errorf("--dealer: %w", err)
	}
	if (sf.keyFile != "" || sf.keyringFile != "") && sf.data == "" {
		return errors.New("--key-file and --keyring go with --data; otherwise give --pubkey")
	}
	return nil
}

// errHelp: -h was asked for and the usage printed; not a failure.
var errHelp = errors.New("help")

func helpIsNoError(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// source is an opened ledger: a store on NATS, or an export file.
type source struct {
	dealer, stream string
	ring           *eventstore.Keyring
	keys           []string // the trusted keys, as PublicKeyString writes them
	store          *eventstore.Store
	exp            *exportReader
	closers        []func()
}

func (s *source) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// open opens the chosen source. natsNeedsKeys says whether --nats must
// come with --pubkey (export's jsonl does not judge, so it need not).
func (sf *sourceFlags) open(ctx context.Context, stderr io.Writer, natsNeedsKeys bool) (*source, error) {
	src := &source{dealer: sf.dealer, stream: sf.stream}
	ring := eventstore.NewKeyring()
	for _, k := range sf.pubkeys {
		_ = ring.AddTrusted(k) // checked by Set
	}
	switch {
	case sf.file != "":
		x, err := openExport(sf.file)
		if err != nil {
			return nil, err
		}
		src.closers = append(src.closers, func() { _ = x.Close() })
		src.exp = x
		if sf.dealerSet && x.header.Dealer != sf.dealer {
			src.Close()
			return nil, fmt.Errorf("--dealer %s, but the export is dealer %s's", sf.dealer, x.header.Dealer)
		}
		src.dealer, src.stream = x.header.Dealer, x.header.Stream
		if len(sf.pubkeys) == 0 {
			if len(x.header.PublicKeys) == 0 {
				src.Close()
				return nil, errors.New("the export names no public key: give the ledger's with --pubkey")
			}
			for _, k := range x.header.PublicKeys {
				if err := ring.AddTrusted(k); err != nil {
					src.Close()
					return nil, fmt.Errorf("export header: %w", err)
				}
			}
			fmt.Fprintln(stderr, "warning: no --pubkey: trusting the keys the export names itself. This proves only that the export is consistent, not that it is authentic: give the ledger's public key, as printed by `packledger key` or on the daily close, with --pubkey.")
		}
	case sf.data != "":
		dir, err := filepath.Abs(sf.data)
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		if fi, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("--data %s: not a directory", dir)
		}
		if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
			return nil, fmt.Errorf("--data %s holds no JetStream files: not a packledger data directory", dir)
		}
		if len(sf.pubkeys) == 0 {
			_, r, err := loadKeys(dir, sf.keyFile, sf.keyringFile, false)
			if err != nil {
				return nil, fmt.Errorf("%w (or give the ledger's public key with --pubkey)", err)
			}
			ring = r
		}
		srv, err := eventstore.StartServer(eventstore.ServerConfig{Listen: "127.0.0.1:0", StoreDir: dir, SyncAlways: true})
		if err != nil {
			return nil, err
		}
		src.closers = append(src.closers, srv.Shutdown)
		nc, err := srv.Connect("packledger-" + sf.fs.Name())
		if err != nil {
			src.Close()
			return nil, err
		}
		src.closers = append(src.closers, nc.Close)
		if src.store, err = openReadOnly(ctx, nc, sf, ring); err != nil {
			src.Close()
			return nil, err
		}
	default:
		if len(sf.pubkeys) == 0 && natsNeedsKeys {
			return nil, errors.New("--nats needs --pubkey: the ledger's public key, as `packledger key` prints it")
		}
		nc, err := nats.Connect(sf.natsURL, nats.Name("packledger-"+sf.fs.Name()), nats.Timeout(10*time.Second))
		if err != nil {
			return nil, fmt.Errorf("--nats %s: %w", sf.natsURL, err)
		}
		src.closers = append(src.closers, nc.Close)
		if src.store, err = openReadOnly(ctx, nc, sf, ring); err != nil {
			src.Close()
			return nil, err
		}
	}
	src.ring = ring
	src.keys = ring.Keys()
	slices.Sort(src.keys)
	what := "trusting key"
	if sf.fs.Name() == "export" {
		what = "naming key"
	}
	for _, k := range src.keys {
		keyPart, bound, _ := strings.Cut(k, "@")
		pub, _ := eventstore.ParsePublicKey(keyPart)
		if bound != "" {
			bound = " (retired after seq " + bound + ")"
		}
		fmt.Fprintf(stderr, "%s: %s %s%s\n", sf.fs.Name(), what, eventstore.Fingerprint(pub), bound)
	}
	return src, nil
}

func openReadOnly(ctx context.Context, nc *nats.Conn, sf *sourceFlags, ring *eventstore.Keyring) (*eventstore.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return eventstore.OpenReadOnly(ctx, nc, eventstore.Config{Stream: sf.stream, Dealer: sf.dealer, Keyring: ring})
}

// scanResult is what reading a source found beyond the records themselves.
type scanResult struct {
	last    uint64 // last stream sequence read
	records int
	partial bool
	// checkedOnly counts the valid events of a partial export's chains
	// that began before its range: signature and chain checked, but not
	// re-applied, since the package's earlier events are not there.
	checkedOnly int
}

// scan feeds every record of the source to add in stream order, each
// judged: err is why it is not one of the ledger's own events.
func (s *source) scan(ctx context.Context, prog *progress, add func(seq uint64, subject string, env domain.Envelope, err error)) (scanResult, error) {
	add = plainProblems(add)
	if s.exp != nil {
		return s.exp.scan(ctx, s.ring, s.dealer, prog, add)
	}
	if prog != nil {
		if head, err := s.store.Head(ctx); err == nil {
			prog.setTotal(head)
		}
	}
	n := 0
	last, err := s.store.Scan(ctx, func(seq uint64, subject string, env domain.Envelope, err error) error {
		n++
		prog.step(seq, n)
		add(seq, subject, env, err)
		return nil
	})
	return scanResult{last: last, records: n}, err
}

// plainProblems drops the "seq N on SUBJECT: " that decoding errors start
// with: a finding names its sequence and package already.
func plainProblems(add func(seq uint64, subject string, env domain.Envelope, err error)) func(seq uint64, subject string, env domain.Envelope, err error) {
	return func(seq uint64, subject string, env domain.Envelope, err error) {
		if err != nil {
			if msg, ok := strings.CutPrefix(err.Error(), fmt.Sprintf("seq %d on %s: ", seq, subject)); ok {
				err = errors.New(msg)
			}
		}
		add(seq, subject, env, err)
	}
}

// exportReader reads a jsonl export: its header, then its records.
type exportReader struct {
	name   string
	c      io.Closer
	r      *bufio.Reader
	header exportHeader
	line   int
}

func openExport(name string) (*exportReader, error) {
	var f io.ReadCloser = os.Stdin
	if name != "-" {
		var err error
		if f, err = os.Open(name); err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
	}
	x := &exportReader{name: name, c: f, r: bufio.NewReaderSize(f, 1<<20)}
	line, err := x.r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		f.Close()
		return nil, fmt.Errorf("%s: no export header: %w", name, err)
	}
	x.line = 1
	if err := json.Unmarshal(line, &x.header); err != nil || x.header.Format != 1 {
		f.Close()
		return nil, fmt.Errorf("%s: not a packledger jsonl export (its first line must be the header {\"packledger_export\":1,...})", name)
	}
	if err := eventstore.CheckDealer(x.header.Dealer); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: export header: %w", name, err)
	}
	return x, nil
}

func (x *exportReader) Close() error { return x.c.Close() }

// exportRecord is one event line of a jsonl export.
type exportRecord struct {
	Seq        uint64          `json:"seq"`
	Subject    string          `json:"subject"`
	Hash       string          `json:"hash"`
	Sig        string          `json:"sig"`
	Key        string          `json:"key"`
	Body       json.RawMessage `json:"body"`
	BodyBase64 []byte          `json:"body_base64"`
}

func (r exportRecord) body() []byte {
	if len(r.Body) > 0 {
		return r.Body
	}
	return r.BodyBase64
}

// scan judges every record of the export as a scan of the stream would,
// and checks the export against its own header: records in strictly
// increasing stream order, all on the dealer's subjects, as many as the
// header counts. A partial export's chains may begin before its range
// (Chains.TrustAnchors); those packages' events are checked for signature
// and chain but not re-applied.
func (x *exportReader) scan(ctx context.Context, ring *eventstore.Keyring, dealer string, prog *progress,
	add func(seq uint64, subject string, env domain.Envelope, err error)) (scanResult, error) {
	res := scanResult{partial: x.header.Partial}
	prog.setTotal(uint64(x.header.Events))
	chains := eventstore.NewChains(ring)
	if x.header.Partial {
		chains.TrustAnchors()
	}
	st := &exportScan{
		whole:  map[string]bool{},
		last:   map[string]uint64{},
		prefix: "ledger." + dealer + ".",
		chains: chains,
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		line, rerr := x.r.ReadBytes('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return res, fmt.Errorf("%s: %w", x.name, rerr)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			x.line++
			x.record(line, &res, st, prog, add)
		}
		if rerr != nil {
			break
		}
	}
	if st.disorder > 0 {
		add(0, "", domain.Envelope{}, fmt.Errorf("export: %d lines are out of stream order, the first at line %d (seq %d after seq %d)",
			st.disorder, st.firstDisorderLine, st.firstDisorder[1], st.firstDisorder[0]))
	}
	h := x.header
	first := st.first
	if res.records != h.Events {
		add(0, "", domain.Envelope{}, fmt.Errorf("export: the header counts %d events, the file holds %d", h.Events, res.records))
	}
	if first != h.FirstSeq || res.last != h.LastSeq {
		add(0, "", domain.Envelope{}, fmt.Errorf("export: the header says seq %d to %d, the file holds seq %d to %d", h.FirstSeq, h.LastSeq, first, res.last))
	}
	return res, nil
}

// exportScan is what judging an export keeps from line to line.
type exportScan struct {
	chains *eventstore.Chains
	whole  map[string]bool   // subject → its chain starts inside the export
	last   map[string]uint64 // subject → the highest sequence seen on it
	prefix string            // of the dealer's subjects
	first  uint64
	prev   uint64 // the previous line's sequence
	// disorder counts lines whose sequence is not above the previous
	// line's; the first one is kept to be named.
	disorder          int
	firstDisorderLine int
	firstDisorder     [2]uint64
}

func (x *exportReader) record(line []byte, res *scanResult, st *exportScan, prog *progress,
	add func(seq uint64, subject string, env domain.Envelope, err error)) {
	var rec exportRecord
	if err := json.Unmarshal(line, &rec); err != nil || rec.Seq == 0 || rec.Subject == "" {
		add(0, "", domain.Envelope{}, fmt.Errorf("export line %d: not an event record", x.line))
		return
	}
	res.records++
	prog.step(uint64(res.records), res.records)
	if st.first == 0 {
		st.first = rec.Seq
	}
	// The stream order of the whole file is checked as a whole: which of
	// two lines out of order is the misplaced one, the sequences alone
	// cannot say. On one subject they can, and the chain depends on it.
	if rec.Seq <= st.prev {
		if st.disorder == 0 {
			st.firstDisorderLine, st.firstDisorder = x.line, [2]uint64{st.prev, rec.Seq}
		}
		st.disorder++
	}
	st.prev = rec.Seq
	res.last = max(res.last, rec.Seq)
	if l := st.last[rec.Subject]; rec.Seq <= l {
		add(rec.Seq, rec.Subject, domain.Envelope{}, fmt.Errorf("out of stream order: line %d comes after seq %d of the same subject", x.line, l))
	} else {
		st.last[rec.Subject] = rec.Seq
	}
	if !strings.HasPrefix(rec.Subject, st.prefix) {
		add(rec.Seq, rec.Subject, domain.Envelope{}, fmt.Errorf("subject %q is not one of dealer %s's", rec.Subject, strings.TrimSuffix(strings.TrimPrefix(st.prefix, "ledger."), ".")))
		return
	}
	body := rec.body()
	if len(body) == 0 {
		add(rec.Seq, rec.Subject, domain.Envelope{}, errors.New("record without a body"))
		return
	}
	h := nats.Header{}
	for k, v := range map[string]string{eventstore.HeaderHash: rec.Hash, eventstore.HeaderSig: rec.Sig, eventstore.HeaderKey: rec.Key} {
		if v != "" {
			h.Set(k, v)
		}
	}
	env, err := eventstore.Decode(rec.Subject, rec.Seq, h, body)
	if err == nil {
		err = st.chains.Check(env)
	}
	if err != nil {
		add(rec.Seq, rec.Subject, env, err)
		return
	}
	w, seen := st.whole[rec.Subject]
	if !seen {
		w = env.Prev == ""
		st.whole[rec.Subject] = w
	}
	if !w {
		res.checkedOnly++
		return
	}
	add(rec.Seq, rec.Subject, env, nil)
}

// findingLine prints a finding as "seq N package P: problem".
func findingLine(f audit.Finding) string {
	if f.Package != "" || f.Subject != "" {
		return f.String()
	}
	if f.Seq != 0 {
		return fmt.Sprintf("seq %d: %s", f.Seq, f.Problem)
	}
	return "ledger: " + f.Problem
}

// errNotVerified is returned when verify found anything: the exit status
// must say so.
var errNotVerified = errors.New("the ledger did not verify")

func verify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sf := newSourceFlags("verify", verifyAbout, stderr, true, true)
	server := sf.fs.String("server", "", "with --nats: also compare each package with what this live server's API answers (http://127.0.0.1:8080)")
	token := sf.fs.String("token", "", "with --server: a bearer token (an auditor's); default $PACKLEDGER_TOKEN")
	if err := sf.parse(args); err != nil {
		return helpIsNoError(err)
	}
	src, err := sf.open(ctx, stderr, true)
	if err != nil {
		return err
	}
	defer src.Close()
	v := audit.New(src.dealer, sf.loc)
	prog := newProgress(stderr, "verify")
	start := time.Now()
	res, err := src.scan(ctx, prog, v.Add)
	prog.stop()
	if err != nil {
		return fmt.Errorf("verify: reading the ledger: %w", err)
	}
	rep := v.Finish()
	if *server != "" {
		if err := compareLive(ctx, *server, *token, v, res.last); err != nil {
			return fmt.Errorf("verify: comparing with %s: %w", *server, err)
		}
		rep.Findings, rep.OK = v.Findings(), len(v.Findings()) == 0
	}
	took := time.Since(start)
	if sf.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, f := range rep.Findings {
			fmt.Fprintln(stdout, findingLine(f))
		}
		verdict := "ok"
		if !rep.OK {
			verdict = fmt.Sprintf("NOT OK: %d findings", len(rep.Findings))
		}
		fmt.Fprintf(stdout, "%s: %d records read up to seq %d, %d events applied, %d packages; paid %s, voided %s, recognized %s, refunded %s, breakage %s, liability %s\n",
			verdict, res.records, res.last, rep.Events, rep.Packages,
			rep.Totals.Paid, rep.Totals.Voided, rep.Totals.Recognized, rep.Totals.Refunded, rep.Totals.Breakage, rep.Totals.Liability)
		if res.partial {
			fmt.Fprintf(stdout, "partial export: %d events of packages whose history begins before its range were checked for signature and chain only, not re-applied\n", res.checkedOnly)
		}
	}
	fmt.Fprintf(stderr, "verify: %d records in %s (%.0f records/s)\n", res.records, took.Round(time.Millisecond), rate(res.records, took))
	if !rep.OK {
		return fmt.Errorf("%w: %d findings", errNotVerified, len(rep.Findings))
	}
	return nil
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// progress prints, once a second, how far a long read has got: on stderr,
// and only when stderr is a terminal. A nil *progress does nothing.
type progress struct {
	w     io.Writer
	label string
	start time.Time
	pos   atomic.Uint64 // where the read is, in the units of total
	n     atomic.Int64  // records read
	total atomic.Uint64
	done  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(stderr io.Writer, label string) *progress {
	if !isTerminal(stderr) {
		return nil
	}
	p := &progress{w: stderr, label: label, start: time.Now(), done: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) setTotal(n uint64) {
	if p != nil {
		p.total.Store(n)
	}
}

func (p *progress) step(pos uint64, n int) {
	if p != nil {
		p.pos.Store(pos)
		p.n.Store(int64(n))
	}
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			fmt.Fprint(p.w, "\r\033[K")
			return
		case <-t.C:
		}
		el := time.Since(p.start).Seconds()
		pos, total, n := p.pos.Load(), p.total.Load(), p.n.Load()
		line := fmt.Sprintf("%s: %d events, %.0f events/s", p.label, n, float64(n)/el)
		if total > 0 && pos > 0 && pos <= total {
			eta := time.Duration(float64(total-pos) / (float64(pos) / el) * float64(time.Second))
			line += fmt.Sprintf(", %d%%, ETA %s", pos*100/total, eta.Round(time.Second))
		}
		fmt.Fprint(p.w, "\r\033[K"+line)
	}
}

func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
}
