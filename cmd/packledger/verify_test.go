package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections/audit"
)

// ledgerFixture is a small ledger written as serve writes it (the data
// directory's own key, the stream, the domain's decisions through Update)
// on a clock that moves one hour per command, then stopped.
type ledgerFixture struct {
	dir    string
	pub    string // the ledger's public key, "ed25519:…"
	events []fxEvent
	// after holds each package's state after each command, by the
	// instant of the command.
	after   map[string][]fxState
	natsOut string // verify --nats, run while the server was up
	natsErr error
	// an export --nats without --pubkey, run while the server was up
	natsExport       string
	natsExportErr    error
	natsExportStderr string
	// names maps a package's label (A, B, C) to its id.
	names map[string]uuid.UUID
}

type fxEvent struct {
	seq     uint64
	subject string
	pkg     string // label of the package, "" for plans and receipts
	typ     string
	at      time.Time
	hash    string
}

type fxState struct {
	at  time.Time
	pkg domain.Package
}

// fxBase is when the fixture's history starts: a Monday morning in
// Shanghai.
var fxBase = time.Date(2026, 3, 2, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))

// buildLedger writes the fixture:
//
//	A (OIL4, 1632.00): sold, paid whole (activated), three visits with one reversed
//	B (OIL6, 2448.00): sold, paid in two parts, one visit
//	C (OIL4): sold, paid, refunded
//
// interleaved, each payment with its receipt claim, as the API does.
func buildLedger(t *testing.T) *ledgerFixture {
	t.Helper()
	ctx := context.Background()
	fx := &ledgerFixture{dir: t.TempDir(), after: map[string][]fxState{}, names: map[string]uuid.UUID{}}
	signer, ring, err := loadKeys(fx.dir, "", "", true)
	require.NoError(t, err)
	fx.pub = eventstore.PublicKeyString(signer.Public())
	srv, err := eventstore.StartServer(eventstore.ServerConfig{Listen: "127.0.0.1:0", StoreDir: fx.dir, SyncAlways: true})
	require.NoError(t, err)
	nc, err := srv.Connect("fixture")
	require.NoError(t, err)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{Dealer: "demo", Signer: signer, Keyring: ring})
	require.NoError(t, err)

	now := fxBase
	clock := func() time.Time { return now }
	_, err = seedDemoPlans(ctx, store, "main", clock)
	require.NoError(t, err)
	for seq := uint64(1); seq <= 3; seq++ {
		env, err := store.Get(ctx, seq)
		require.NoError(t, err)
		fx.events = append(fx.events, fxEvent{seq: seq, subject: env.Subject, typ: env.Type, at: env.RecordedAt, hash: env.Hash})
	}
	plans, err := demoPlans()
	require.NoError(t, err)
	oil4 := domain.PlanState{Plan: plans[0], Status: domain.PlanStatusActive}
	oil6 := domain.PlanState{Plan: plans[1], Status: domain.PlanStatusActive}

	rid := map[string]uuid.UUID{}
	do := func(label string, cmd domain.Command) {
		t.Helper()
		now = now.Add(time.Hour)
		id := fx.names[label]
		subject := store.Subjects().Package(id.String())
		meta := eventstore.Meta{Store: "main", Actor: domain.Actor{ID: "u-" + label, Role: domain.RoleManager}}
		res, err := store.Update(ctx, subject, meta, clock, func(h []domain.Envelope) (eventstore.Change, error) {
			evs, err := domain.Decide(domain.Fold(h), cmd, clock())
			return store.Subjects().PackageChange(id, evs), err
		})
		require.NoError(t, err, "%s %T", label, cmd)
		require.NotEmpty(t, res.Appended, "%s %T", label, cmd)
		if _, ok := cmd.(domain.RecordPayment); ok {
			// The receipt's claim is stored just before the payment.
			claim, err := store.Get(ctx, res.Appended[0].Seq-1)
			require.NoError(t, err)
			require.Equal(t, "ReceiptClaimed", claim.Type)
			fx.events = append(fx.events, fxEvent{seq: claim.Seq, subject: claim.Subject, typ: claim.Type, at: claim.RecordedAt, hash: claim.Hash})
		}
		for _, e := range res.Appended {
			fx.events = append(fx.events, fxEvent{seq: e.Seq, subject: subject, pkg: label, typ: e.Type, at: e.RecordedAt, hash: e.Hash})
		}
		fx.after[label] = append(fx.after[label], fxState{at: now, pkg: domain.Fold(res.History)})
	}
	sell := func(label string, plan domain.PlanState) {
		fx.names[label] = uuid.New()
		do(label, domain.Sell{PackageID: fx.names[label], Plan: plan,
			Customer: domain.Customer{ID: "C-" + label, Name: "客户 " + label, Phone: "13800000000"},
			Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A" + label + "123", Model: "Lavida"}, Advisor: "u-" + label})
	}
	pay := func(label, amount, receipt string) {
		do(label, domain.RecordPayment{PaymentID: uuid.New(), Amount: domain.MustMoney(amount), Method: "cash", Receipt: receipt})
	}
	redeem := func(label, ro string) {
		rid[ro] = uuid.New()
		do(label, domain.Redeem{RedemptionID: rid[ro], Service: "oil_change", RepairOrder: ro, Mileage: 10000})
	}
	sell("A", oil4)
	sell("B", oil6)
	pay("A", "1632.00", "R-A1")
	pay("B", "1000.00", "R-B1")
	redeem("A", "RO-A1")
	sell("C", oil4)
	pay("B", "1448.00", "R-B2")
	redeem("A", "RO-A2")
	pay("C", "1632.00", "R-C1")
	redeem("B", "RO-B1")
	do("A", domain.ReverseRedemption{RedemptionID: rid["RO-A2"], Reason: "wrong car"})
	do("C", domain.RefundPackage{Method: "cash", Reason: "moved away"})
	redeem("A", "RO-A3")

	// While the server runs, verify reads it over its client port as any
	// NATS client would: the reader user, who may not write.
	var out, errOut bytes.Buffer
	fx.natsErr = run(ctx, []string{"verify", "--nats", srv.ClientURL(), "--pubkey", fx.pub}, &out, &errOut)
	fx.natsOut = out.String() + errOut.String()
	// And export reads it there too, with no key to name.
	fx.natsExport = filepath.Join(t.TempDir(), "nats.jsonl")
	errOut.Reset()
	fx.natsExportErr = run(ctx, []string{"export", "--format", "jsonl", "--nats", srv.ClientURL(), "-o", fx.natsExport}, &out, &errOut)
	fx.natsExportStderr = errOut.String()
	nc.Close()
	srv.Shutdown()
	return fx
}

// ev returns the n-th (from 1) event of a package of a type.
func (fx *ledgerFixture) ev(t *testing.T, label, typ string, n int) fxEvent {
	t.Helper()
	for _, e := range fx.events {
		if e.pkg == label && e.typ == typ {
			if n--; n == 0 {
				return e
			}
		}
	}
	t.Fatalf("no %s #%d of %s", typ, n, label)
	return fxEvent{}
}

func (fx *ledgerFixture) lastSeq() uint64 { return fx.events[len(fx.events)-1].seq }

// runArgs runs the program in process.
func runArgs(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

// exportFile exports the fixture as jsonl and returns the file's lines.
func (fx *ledgerFixture) exportFile(t *testing.T, extra ...string) (string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	_, stderr, err := runArgs(append([]string{"export", "--format", "jsonl", "--data", fx.dir, "-o", path}, extra...)...)
	require.NoError(t, err, stderr)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.HasSuffix(b, []byte("\n")))
	return path, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// verifyLines writes lines as an export file and verifies it with the
// fixture's key, returning the report.
func (fx *ledgerFixture) verifyLines(t *testing.T, lines []string) (audit.Report, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tampered.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	stdout, stderr, err := runArgs("verify", "--json", "--file", path, "--pubkey", fx.pub)
	var rep audit.Report
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), "stdout %q stderr %q", stdout, stderr)
	return rep, stderr, err
}

// lineOf finds the export line of a stream sequence.
func lineOf(t *testing.T, lines []string, seq uint64) int {
	t.Helper()
	for i, l := range lines[1:] {
		var r exportRecord
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		if r.Seq == seq {
			return i + 1
		}
	}
	t.Fatalf("no line for seq %d", seq)
	return 0
}

func record(t *testing.T, line string) exportRecord {
	t.Helper()
	var r exportRecord
	require.NoError(t, json.Unmarshal([]byte(line), &r))
	return r
}

// packageFindings are the findings about one package, in order.
func packageFindings(rep audit.Report, id uuid.UUID) []audit.Finding {
	var out []audit.Finding
	for _, f := range rep.Findings {
		if f.Package == id.String() {
			out = append(out, f)
		}
	}
	return out
}

// requireOnly checks that every finding is about package id or about the
// export as a whole (seq 0), and that the package's first finding is at
// seq with a problem containing want.
func requireFirst(t *testing.T, rep audit.Report, id uuid.UUID, seq uint64, want string) {
	t.Helper()
	require.False(t, rep.OK)
	for _, f := range rep.Findings {
		require.True(t, f.Package == id.String() || f.Seq == 0, "finding about something else: %+v", f)
	}
	fs := packageFindings(rep, id)
	require.NotEmpty(t, fs, "no finding names package %s: %+v", id, rep.Findings)
	require.Equal(t, seq, fs[0].Seq, "%+v", fs)
	require.Contains(t, fs[0].Problem, want)
}

func TestVerify(t *testing.T) {
	fx := buildLedger(t)
	require.NoError(t, fx.natsErr, fx.natsOut)
	require.Contains(t, fx.natsOut, "ok: ")
	path, lines := fx.exportFile(t)
	clean, _, err := fx.verifyLines(t, lines)
	require.NoError(t, err)
	A, B := fx.names["A"], fx.names["B"]

	t.Run("UntouchedExportVerifies", func(t *testing.T) {
		stdout, stderr, err := runArgs("verify", "--file", path, "--pubkey", fx.pub)
		require.NoError(t, err, stdout+stderr)
		require.True(t, strings.HasPrefix(stdout, "ok: "), stdout)
		require.NotContains(t, stderr, "warning")

		stdout, stderr, err = runArgs("verify", "--data", fx.dir)
		require.NoError(t, err, stdout+stderr)
		require.True(t, strings.HasPrefix(stdout, "ok: "), stdout)

		// The keys the export names: consistent, says the warning, not proven authentic.
		stdout, stderr, err = runArgs("verify", "--file", path)
		require.NoError(t, err, stdout+stderr)
		require.Contains(t, stderr, "proves only that the export is consistent")

		// Another key than the ledger's: every event is foreign.
		other := eventstore.PublicKeyString(eventstoreSigner(t).Public())
		stdout, _, err = runArgs("verify", "--file", path, "--pubkey", other)
		require.ErrorIs(t, err, errNotVerified)
		require.Contains(t, stdout, "signed by unknown key")
	})

	t.Run("JSONIsTheReport", func(t *testing.T) {
		stdout, _, err := runArgs("verify", "--json", "--data", fx.dir)
		require.NoError(t, err)
		var rep audit.Report
		dec := json.NewDecoder(strings.NewReader(stdout))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&rep))
		require.True(t, rep.OK)
		require.Empty(t, rep.Findings)
		require.Equal(t, len(fx.events), rep.Events)
		require.Equal(t, 3, rep.Packages)
		// A: 1632 − 2 × 408 recognized; B: 2448 − 408; C refunded.
		require.Equal(t, "2856.00", rep.Totals.Liability.String())
		require.Equal(t, rep, clean, "the export and the data directory verify alike")
	})

	t.Run("ByteChanged", func(t *testing.T) {
		// B's first payment: 1000.00 becomes 9000.00 in the stored body.
		target := fx.ev(t, "B", "PaymentRecorded", 1)
		i := lineOf(t, lines, target.seq)
		k := strings.Index(lines[i], `"amount":"1000.00"`)
		require.Positive(t, k)
		k += len(`"amount":"`)
		tampered := append([]string(nil), lines...)
		tampered[i] = lines[i][:k] + "9" + lines[i][k+1:]
		rep, _, err := fx.verifyLines(t, tampered)
		require.ErrorIs(t, err, errNotVerified)
		requireFirst(t, rep, B, target.seq, "does not match header")
		// B's later events chain from the changed one: foreign too.
		require.Len(t, packageFindings(rep, B), 4, "the payment, then B's second payment, activation and visit")

		// Changed and re-hashed: the signature no longer fits.
		r := record(t, tampered[i])
		body := []byte(r.Body)
		tampered[i] = strings.Replace(tampered[i], `"hash":"`+r.Hash+`"`, `"hash":"`+eventstore.HashOf(body)+`"`, 1)
		rep, _, err = fx.verifyLines(t, tampered)
		require.ErrorIs(t, err, errNotVerified)
		requireFirst(t, rep, B, target.seq, "bad signature")
	})

	t.Run("Removed", func(t *testing.T) {
		// A's first visit, in the middle of A's chain: A's next event
		// (the second visit) names a previous hash that is not there.
		gone := fx.ev(t, "A", "VisitRedeemed", 1)
		next := fx.ev(t, "A", "VisitRedeemed", 2)
		i := lineOf(t, lines, gone.seq)
		tampered := append(append([]string(nil), lines[:i]...), lines[i+1:]...)
		rep, _, err := fx.verifyLines(t, tampered)
		require.ErrorIs(t, err, errNotVerified)
		requireFirst(t, rep, A, next.seq, "previous hash")
		for _, f := range rep.Findings {
			require.NotEqual(t, gone.seq, f.Seq)
		}
		require.Contains(t, problems(rep, 0), "the header counts")
	})

	t.Run("Swapped", func(t *testing.T) {
		// A's second visit and its reversal change places: the reversal
		// comes first and is off the chain; the visit is out of order.
		visit := fx.ev(t, "A", "VisitRedeemed", 2)
		reversal := fx.ev(t, "A", "RedemptionReversed", 1)
		i, j := lineOf(t, lines, visit.seq), lineOf(t, lines, reversal.seq)
		tampered := append([]string(nil), lines...)
		tampered[i], tampered[j] = tampered[j], tampered[i]
		rep, _, err := fx.verifyLines(t, tampered)
		require.ErrorIs(t, err, errNotVerified)
		requireFirst(t, rep, A, reversal.seq, "previous hash")
		require.Contains(t, problems(rep, visit.seq), "out of stream order")
		// A's third visit chains from the reversal, which was refused.
		require.Contains(t, problems(rep, fx.ev(t, "A", "VisitRedeemed", 3).seq), "previous hash")
	})

	t.Run("Forged", func(t *testing.T) {
		// A visit of B that the ledger never wrote: well formed, chained
		// onto B's last event, signed by another key, at the stream's end.
		seq := fx.lastSeq() + 1
		line := forgedLine(t, lines, B, seq, eventstoreSigner(t), "")
		rep, _, err := fx.verifyLines(t, append(append([]string(nil), lines...), line))
		require.ErrorIs(t, err, errNotVerified)
		requireFirst(t, rep, B, seq, "signed by unknown key")
		require.Len(t, packageFindings(rep, B), 1)
		require.Equal(t, clean.Totals, rep.Totals, "never applied")

		// The same, claiming to be signed by the ledger's own key.
		_, ring, err := loadKeys(fx.dir, "", "", false)
		require.NoError(t, err)
		pub, _ := eventstore.ParsePublicKey(ring.Keys()[0])
		line = forgedLine(t, lines, B, seq, eventstoreSigner(t), eventstore.Fingerprint(pub))
		rep, _, err = fx.verifyLines(t, append(append([]string(nil), lines...), line))
		require.ErrorIs(t, err, errNotVerified)
		requireFirst(t, rep, B, seq, "bad signature")
	})

	t.Run("Replayed", func(t *testing.T) {
		// A real, validly signed visit of A, published again: its
		// previous hash is no longer A's last.
		orig := fx.ev(t, "A", "VisitRedeemed", 1)
		seq := fx.lastSeq() + 1
		line := lines[lineOf(t, lines, orig.seq)]
		line = strings.Replace(line, fmt.Sprintf(`{"seq":%d,`, orig.seq), fmt.Sprintf(`{"seq":%d,`, seq), 1)
		rep, _, err := fx.verifyLines(t, append(append([]string(nil), lines...), line))
		require.ErrorIs(t, err, errNotVerified)
		requireFirst(t, rep, A, seq, "previous hash")
		require.Len(t, packageFindings(rep, A), 1)
		require.Equal(t, clean.Totals, rep.Totals, "never applied")
	})

	t.Run("Usage", func(t *testing.T) {
		_, _, err := runArgs("verify")
		require.ErrorContains(t, err, "exactly one of")
		_, _, err = runArgs("verify", "--data", fx.dir, "--file", path)
		require.ErrorContains(t, err, "exactly one of")
		_, _, err = runArgs("verify", "--nats", "nats://127.0.0.1:1")
		require.ErrorContains(t, err, "needs --pubkey")
		_, _, err = runArgs("verify", "--file", path, "--pubkey", "ed25519:nope")
		require.ErrorIs(t, err, errUsage)
		_, _, err = runArgs("verify", "--data", t.TempDir())
		require.ErrorContains(t, err, "not a packledger data directory")
		_, _, err = runArgs("verify", "--file", path, "--dealer", "other")
		require.ErrorContains(t, err, "the export is dealer demo's")
		_, stderr, err := runArgs("verify", "-h")
		require.NoError(t, err)
		require.Contains(t, stderr, "STOP THE SERVER FIRST")
	})

	t.Run("AfterKeyRotation", func(t *testing.T) {
		// Last: it changes the data directory's key. The old events stay
		// valid under the old key, kept in the keyring.
		stdout, stderr, err := runArgs("key", "--data", fx.dir, "--rotate")
		require.NoError(t, err, stderr)
		newKey := lastLine(stdout)
		require.NotEqual(t, fx.pub, newKey)
		ring, err := os.ReadFile(filepath.Join(fx.dir, "ledger.keyring"))
		require.NoError(t, err)
		require.Regexp(t, regexp.QuoteMeta(fx.pub)+`@[1-9][0-9]*\n`, string(ring), "the old key is kept with the last sequence it signed")
		stdout, stderr, err = runArgs("verify", "--data", fx.dir)
		require.NoError(t, err, stdout+stderr)
		require.Equal(t, 2, strings.Count(stderr, "trusting key"))
		_, _, err = runArgs("verify", "--file", path, "--pubkey", newKey)
		require.ErrorIs(t, err, errNotVerified, "the new key alone does not cover the old events")
		stdout, stderr, err = runArgs("verify", "--file", path, "--pubkey", newKey+","+fx.pub)
		require.NoError(t, err, stdout+stderr)
		_, _, err = runArgs("verify", "--file", path, "--pubkey", newKey, "--pubkey", fx.pub)
		require.NoError(t, err)
	})
}

// problems joins the problems found at one sequence.
func problems(rep audit.Report, seq uint64) string {
	var out []string
	for _, f := range rep.Findings {
		if f.Seq == seq {
			out = append(out, f.Problem)
		}
	}
	return strings.Join(out, "\n")
}

func eventstoreSigner(t *testing.T) *eventstore.Signer {
	t.Helper()
	s, err := eventstore.LoadOrCreateKey(filepath.Join(t.TempDir(), "other.key"))
	require.NoError(t, err)
	return s
}

// forgedLine makes a well-formed export line of a VisitRedeemed of package
// id, chained onto the package's last line, signed by sg; keyID, when set,
// replaces the signer's fingerprint.
func forgedLine(t *testing.T, lines []string, id uuid.UUID, seq uint64, sg *eventstore.Signer, keyID string) string {
	t.Helper()
	subject := "ledger.demo.packages." + id.String()
	var last exportRecord
	for _, l := range lines[1:] {
		if r := record(t, l); r.Subject == subject {
			last = r
		}
	}
	require.NotEmpty(t, last.Hash)
	data, err := domain.EncodeEvent(domain.VisitRedeemed{RedemptionID: uuid.New(), Unit: 5, Service: "oil_change",
		Value: domain.MustMoney("408.00"), RepairOrder: "RO-FORGED", Mileage: 12000})
	require.NoError(t, err)
	at := fxBase.Add(48 * time.Hour).UTC()
	env := domain.Envelope{ID: uuid.Must(uuid.NewV7()), Type: "VisitRedeemed", Schema: domain.SchemaVersion,
		Dealer: "demo", Store: "main", Aggregate: id.String(), BusinessTime: at, RecordedAt: at,
		Actor: domain.Actor{ID: "u-B", Role: domain.RoleAdvisor}, Prev: last.Hash, Data: data}
	body, hash, err := eventstore.Encode(env)
	require.NoError(t, err)
	sig, kid := sg.Sign(hash)
	if keyID != "" {
		kid = keyID
	}
	var b bytes.Buffer
	require.NoError(t, writeRecord(&b, eventstore.RawMessage{Seq: seq, Subject: subject, Data: body,
		Header: map[string][]string{eventstore.HeaderHash: {hash}, eventstore.HeaderSig: {sig}, eventstore.HeaderKey: {kid}}}))
	return strings.TrimSuffix(b.String(), "\n")
}

// TestAuditToolsSpeed measures verify, replay and export on a generated
// ledger of PACKLEDGER_SPEED_EVENTS events (skipped unless set; the
// figures of the closing note). PACKLEDGER_SPEED_DIR keeps the ledger
// between runs.
func TestAuditToolsSpeed(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PACKLEDGER_SPEED_EVENTS"))
	if n == 0 {
		t.Skip("set PACKLEDGER_SPEED_EVENTS=20000 to measure the auditor's tools")
	}
	dir := os.Getenv("PACKLEDGER_SPEED_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.key")); err != nil {
		start := time.Now()
		got := genSpeedLedger(t, dir, n, 5*time.Minute)
		t.Logf("generated %d events in %v", got, time.Since(start).Round(time.Millisecond))
	}
	measureAuditTools(t, dir)
}

// genSpeedLedger writes about n events into dir as serve would (its key
// file, its stream), through Update and the domain, for at most limit:
// packages of the demo plans sold, paid in one or two parts, redeemed a
// few times, a visit reversed now and then, some refunded. The clock moves
// seven minutes each time it is read, so the history spans many months of
// business days, in the past. It trades fsync for speed: the data is only measured.
func genSpeedLedger(t *testing.T, dir string, n int, limit time.Duration) int {
	t.Helper()
	srv, err := eventstore.StartServer(eventstore.ServerConfig{Listen: "127.0.0.1:0", StoreDir: dir})
	require.NoError(t, err)
	defer srv.Shutdown()
	nc, err := srv.Connect("gen")
	require.NoError(t, err)
	defer nc.Close()
	signer, ring, err := loadKeys(dir, "", "", true)
	require.NoError(t, err)
	ctx := context.Background()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{Dealer: "demo", Signer: signer, Keyring: ring})
	require.NoError(t, err)
	var tick atomic.Int64
	start := time.Now().Add(-time.Duration(3*n) * 7 * time.Minute) // two or three decisions an event
	clock := func() time.Time { return start.Add(time.Duration(tick.Add(1)) * 7 * time.Minute) }
	_, err = seedDemoPlans(ctx, store, "main", clock)
	require.NoError(t, err)
	plans, err := demoPlans()
	require.NoError(t, err)
	var written, next atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(limit)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for written.Load() < int64(n) && time.Now().Before(deadline) {
				k := next.Add(1)
				plan := domain.PlanState{Plan: plans[k%3], Status: domain.PlanStatusActive}
				id := uuid.New()
				subject := store.Subjects().Package(id.String())
				meta := eventstore.Meta{Store: "main", Actor: domain.Actor{ID: "gen", Role: domain.RoleManager}}
				price := plan.Plan.Price
				first := price
				cmds := []domain.Command{domain.Sell{PackageID: id, Plan: plan,
					Customer: domain.Customer{ID: fmt.Sprintf("C%d", k), Name: "客户", Phone: "13800000000"},
					Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: fmt.Sprintf("沪A%05d", k%100000), Model: "Lavida"}, Advisor: "gen"}}
				if k%2 == 0 {
					first = domain.MustMoney("1000.00")
				}
				cmds = append(cmds, domain.RecordPayment{PaymentID: uuid.New(), Amount: first, Method: "cash", Receipt: fmt.Sprintf("G%d-1", k)})
				if !first.Equal(price) {
					cmds = append(cmds, domain.RecordPayment{PaymentID: uuid.New(), Amount: price.Sub(first), Method: "card", Receipt: fmt.Sprintf("G%d-2", k)})
				}
				var last uuid.UUID
				for r := 0; r < int(k%5); r++ {
					last = uuid.New()
					cmds = append(cmds, domain.Redeem{RedemptionID: last, Service: "oil_change", RepairOrder: fmt.Sprintf("RO%d-%d", k, r)})
				}
				if k%5 > 0 && k%7 == 0 {
					cmds = append(cmds, domain.ReverseRedemption{RedemptionID: last, Reason: "wrong car"})
				}
				if k%11 == 0 && k%5 <= 2 {
					cmds = append(cmds, domain.RefundPackage{Method: "cash", Reason: "moved away"})
				}
				for _, cmd := range cmds {
					res, err := store.Update(ctx, subject, meta, clock, func(h []domain.Envelope) (eventstore.Change, error) {
						evs, err := domain.Decide(domain.Fold(h), cmd, clock())
						return store.Subjects().PackageChange(id, evs), err
					})
					if err != nil {
						t.Error(err)
						return
					}
					written.Add(int64(len(res.Appended)))
				}
			}
		}()
	}
	wg.Wait()
	return int(written.Load())
}

// measureAuditTools times the auditor's tools on the ledger in dir: verify
// and replay on the data directory, export, and verify and replay of the
// export.
func measureAuditTools(t *testing.T, dir string) {
	t.Helper()
	timed := func(name string, args ...string) string {
		t.Helper()
		start := time.Now()
		stdout, stderr, err := runArgs(args...)
		require.NoError(t, err, "%s: %s", name, stderr)
		t.Logf("%-14s %s (wall %v)", name, strings.TrimSpace(lastLine(stderr)), time.Since(start).Round(time.Millisecond))
		return stdout
	}
	t.Logf("verify --data: %s", lastLine(timed("verify --data", "verify", "--data", dir)))
	asOf := time.Now().AddDate(10, 0, 0).Format(time.RFC3339) // after everything
	t.Logf("replay --data: %s", lastLine(timed("replay --data", "replay", "--data", dir, "--as-of", asOf)))
	path := filepath.Join(t.TempDir(), "big.jsonl")
	timed("export jsonl", "export", "--format", "jsonl", "--data", dir, "-o", path)
	timed("export csv", "export", "--format", "csv", "--data", dir, "-o", path+".csv")
	pub := publicKeyOf(t, dir)
	timed("verify --file", "verify", "--file", path, "--pubkey", pub)
	timed("replay --file", "replay", "--file", path, "--pubkey", pub, "--as-of", asOf)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:]
}

func publicKeyOf(t *testing.T, dir string) string {
	t.Helper()
	signer, _, err := loadKeys(dir, "", "", false)
	require.NoError(t, err)
	return eventstore.PublicKeyString(signer.Public())
}
