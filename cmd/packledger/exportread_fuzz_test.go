package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections/audit"
)

// fuzzKey is the ledger key of the fuzzed exports: a fixed seed, so that
// the signatures in kept inputs stay valid from run to run.
func fuzzKey(tb testing.TB) *eventstore.Signer {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "key")
	seed := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	if err := os.WriteFile(path, []byte("packledger-ed25519-seed "+seed+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	s, err := eventstore.LoadOrCreateKey(path)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// sampleExport is a jsonl export of a small ledger as export writes it: a
// plan, a package sold, paid with its receipt claim (activating it), one
// visit redeemed; signed by key.
func sampleExport(tb testing.TB, key *eventstore.Signer) []byte {
	tb.Helper()
	s := eventstore.Subjects{Dealer: "demo"}
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	price := domain.MustMoney("1632.00")
	plan, err := domain.NewPlan(domain.PlanSpec{Code: "OIL4", Name: "4 oil changes", Price: &price, ValidityMonths: 36,
		Entitlements: []domain.Entitlement{{Service: "oil_change", Count: 4, ListPrice: domain.MustMoney("480.00")}}})
	if err != nil {
		tb.Fatal(err)
	}
	pid := uuid.MustParse("0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d")
	payID := uuid.MustParse("0193a0b4-8000-7c3a-9d2b-5e8f1a2b3c4d")
	var pkg domain.Package
	decide := func(cmd domain.Command) []domain.Event {
		evs, err := domain.Decide(pkg, cmd, at)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range evs {
			pkg = domain.Apply(pkg, domain.Envelope{Event: e, BusinessTime: at})
		}
		return evs
	}
	type msg struct {
		subject string
		ev      domain.Event
	}
	msgs := []msg{{s.Plan("OIL4"), domain.PlanDefined{Plan: plan}}}
	for _, e := range decide(domain.Sell{PackageID: pid, Plan: domain.PlanState{Plan: plan, Status: domain.PlanStatusActive}, Advisor: "adv1",
		Customer: domain.Customer{ID: "C-1001", Name: "李伟", Phone: "13800138000"},
		Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A12345", Model: "Lavida"}}) {
		msgs = append(msgs, msg{s.Package(pid.String()), e})
	}
	msgs = append(msgs, msg{s.Receipt("R-0001"), domain.ReceiptClaimed{Receipt: "R-0001", PackageID: pid, PaymentID: payID, Amount: price}})
	for _, e := range decide(domain.RecordPayment{PaymentID: payID, Amount: price, Method: "cash", Receipt: "R-0001"}) {
		msgs = append(msgs, msg{s.Package(pid.String()), e})
	}
	for _, e := range decide(domain.Redeem{RedemptionID: uuid.MustParse("0193a0b4-9000-7c3a-9d2b-5e8f1a2b3c4d"), Service: "oil_change", RepairOrder: "RO-1", Mileage: 12000}) {
		msgs = append(msgs, msg{s.Package(pid.String()), e})
	}
	var lines bytes.Buffer
	prev := map[string]string{}
	for i, m := range msgs {
		data, err := domain.EncodeEvent(m.ev)
		if err != nil {
			tb.Fatal(err)
		}
		agg := m.subject[strings.LastIndexByte(m.subject, '.')+1:]
		body, hash, err := eventstore.Encode(domain.Envelope{
			ID: uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)}), Type: m.ev.EventType(), Schema: domain.SchemaVersion,
			Dealer: "demo", Store: "s1", Aggregate: agg, BusinessTime: at, RecordedAt: at,
			Actor: domain.Actor{ID: "u1", Role: domain.RoleManager}, Prev: prev[m.subject], Data: data,
		})
		if err != nil {
			tb.Fatal(err)
		}
		prev[m.subject] = hash
		sig, keyID := key.Sign(hash)
		h := nats.Header{}
		h.Set(eventstore.HeaderHash, hash)
		h.Set(eventstore.HeaderSig, sig)
		h.Set(eventstore.HeaderKey, keyID)
		if err := writeRecord(&lines, eventstore.RawMessage{Seq: uint64(i + 1), Subject: m.subject, Header: h, Data: body}); err != nil {
			tb.Fatal(err)
		}
	}
	hdr, err := json.Marshal(exportHeader{Format: 1, Dealer: "demo", Stream: "LEDGER",
		PublicKeys: []string{eventstore.PublicKeyString(key.Public())}, FirstSeq: 1, LastSeq: uint64(len(msgs)), Events: len(msgs), ExportedAt: at})
	if err != nil {
		tb.Fatal(err)
	}
	return append(append(hdr, '\n'), lines.Bytes()...)
}

// verifyExport reads an export as verify --file does, trusting key.
func verifyExport(file []byte, key *eventstore.Signer, add func(seq uint64, subject string, env domain.Envelope, err error)) (*exportReader, scanResult, audit.Report, error) {
	x, err := readExport("fuzz", io.NopCloser(bytes.NewReader(file)))
	if err != nil {
		return nil, scanResult{}, audit.Report{}, err
	}
	defer x.Close()
	v := audit.New(x.header.Dealer, time.UTC)
	res, err := x.scan(context.Background(), eventstore.NewKeyring(key.Public()), x.header.Dealer, nil,
		func(seq uint64, subject string, env domain.Envelope, err error) {
			add(seq, subject, env, err)
			v.Add(seq, subject, env, err)
		})
	return x, res, v.Finish(), err
}

// FuzzExportFile: an auditor may be handed a hostile export. Whatever the
// file, verify judges it without failing: every line after the header is
// counted as a record or found not to be one; what verify reads of a
// record is what a plain reader of its line sees; an event judged the
// ledger's own is signed by the trusted key over the hash of its body, on
// one of the dealer's subjects, and after every earlier own event of its
// subject or found out of order; and the recomputation finishes. The sample export verifies
// with no finding.
func FuzzExportFile(f *testing.F) {
	key := fuzzKey(f)
	good := sampleExport(f, key)
	f.Add(good)
	lines := bytes.SplitAfter(good, []byte("\n"))
	hdr, recs := lines[0], lines[1:len(lines)-1]
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	f.Add(join(hdr))
	f.Add(join(append([][]byte{hdr}, recs[1:]...)...))                                        // a record removed
	f.Add(join(hdr, recs[0], recs[2], recs[1], recs[3]))                                      // two swapped
	f.Add(join(append([][]byte{hdr}, append(recs, recs[len(recs)-1])...)...))                 // one twice
	f.Add(bytes.Replace(good, []byte(`"amount":"1632.00"`), []byte(`"amount":"9632.00"`), 1)) // a body changed
	f.Add(bytes.Replace(good, []byte(`"packledger_export":1`), []byte(`"packledger_export":2`), 1))
	f.Add(bytes.Replace(good, []byte(`"dealer":"demo"`), []byte(`"dealer":"Demo"`), 1))
	f.Add(bytes.Replace(good, []byte(`"partial":false`), []byte(`"partial":true`), 1))
	f.Add(bytes.Replace(good, []byte(`"seq":2,`), []byte(`"seq":0,`), 1))
	f.Add(bytes.Replace(good, []byte(`"seq":2,`), []byte(`"SEQ":9,"seq":2,`), 1))
	f.Add(bytes.Replace(good, []byte(`"subject":"ledger.demo.`), []byte(`"subject":"ledger.other.`), 1))
	f.Add(join(hdr, []byte("\n  \n"), []byte("not json\n"), recs[0]))
	f.Add(join(hdr, []byte(`{"seq":1,"subject":"ledger.demo.plans.X","body_base64":"!!!"}`+"\n")))
	f.Add(join(hdr, []byte(`{"seq":1,"subject":"ledger.demo.plans.X","body":{}}`+"\n")))
	f.Add([]byte(``))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		type judged struct {
			seq     uint64
			subject string
			env     domain.Envelope
			err     error
		}
		var all []judged
		x, res, rep, err := verifyExport(file, key, func(seq uint64, subject string, env domain.Envelope, err error) {
			all = append(all, judged{seq, subject, env, err})
		})
		if x == nil {
			if err == nil {
				t.Fatalf("no reader and no error for %q", file)
			}
			return
		}
		if err != nil {
			t.Fatalf("verify of %q stopped: %v", file, err)
		}
		if x.header.Format != 1 || eventstore.CheckDealer(x.header.Dealer) != nil {
			t.Fatalf("accepted the header %+v", x.header)
		}
		notRecords, lineCount := 0, 0
		for _, j := range all {
			if j.err != nil && strings.HasSuffix(j.err.Error(), "not an event record") {
				notRecords++
			}
		}
		for i, l := range bytes.Split(file, []byte("\n")) {
			if i > 0 && len(bytes.TrimSpace(l)) > 0 {
				lineCount++
			}
		}
		if res.records+notRecords != lineCount {
			t.Fatalf("%d lines after the header, but %d records and %d lines that are none", lineCount, res.records, notRecords)
		}
		// What verify read of each record is what a plain, case-sensitive
		// reader of its line sees.
		plain := map[[2]any]bool{}
		for _, l := range bytes.Split(file, []byte("\n"))[1:] {
			var m map[string]any
			if json.Unmarshal(l, &m) == nil {
				if seq, ok := m["seq"].(float64); ok {
					plain[[2]any{uint64(seq), m["subject"]}] = true
				}
			}
		}
		for _, j := range all {
			if j.seq != 0 && !plain[[2]any{j.seq, any(j.subject)}] {
				t.Fatalf("verify read a record of seq %d on %q, which no line says plainly", j.seq, j.subject)
			}
		}
		ring := eventstore.NewKeyring(key.Public())
		last := map[string]uint64{}
		disorder := map[[2]any]bool{} // the records found out of order on their subject
		for _, j := range all {
			if j.err != nil {
				if strings.HasPrefix(j.err.Error(), "out of stream order") {
					disorder[[2]any{j.seq, j.subject}] = true
				}
				continue
			}
			e := j.env
			if err := ring.Verify(e.Hash, e.Sig, e.KeyID, e.Seq); err != nil {
				t.Fatalf("seq %d on %s judged the ledger's own, but: %v", j.seq, j.subject, err)
			}
			if !strings.HasPrefix(j.subject, "ledger."+x.header.Dealer+".") || e.Subject != j.subject || e.Seq != j.seq {
				t.Fatalf("seq %d on %s judged the ledger's own as %d on %s", j.seq, j.subject, e.Seq, e.Subject)
			}
			if j.seq <= last[j.subject] && !disorder[[2]any{j.seq, j.subject}] {
				t.Fatalf("seq %d on %s judged the ledger's own after seq %d of it, and not found out of order", j.seq, j.subject, last[j.subject])
			}
			last[j.subject] = max(last[j.subject], j.seq)
		}
		if rep.OK != (len(rep.Findings) == 0) {
			t.Fatalf("report ok %v with %d findings", rep.OK, len(rep.Findings))
		}
		if bytes.Equal(file, good) && !rep.OK {
			t.Fatalf("the sample export does not verify: %+v", rep.Findings)
		}
	})
}

// TestExportFile_SampleVerifies: the fuzzer's starting point is a real
// export: every record is the ledger's own and the recomputation agrees.
func TestExportFile_SampleVerifies(t *testing.T) {
	key := fuzzKey(t)
	own := 0
	_, res, rep, err := verifyExport(sampleExport(t, key), key, func(_ uint64, _ string, _ domain.Envelope, err error) {
		if err != nil {
			t.Errorf("finding: %v", err)
		} else {
			own++
		}
	})
	if err != nil || !rep.OK || res.records != 6 || own != 6 || rep.Packages != 1 || rep.Totals.Paid.String() != "1632.00" {
		t.Fatalf("records %d, own %d, report %+v, %v", res.records, own, rep, err)
	}
}

// TestExportFile_ExactKeys: the header and the records are read by their
// keys exactly as export writes them.
func TestExportFile_ExactKeys(t *testing.T) {
	key := fuzzKey(t)
	good := sampleExport(t, key)
	for _, hdr := range []string{
		`{"packledger_export":1,"Dealer":"demo"}`, `{"packledger_export":1,"dealer":"demo","dealer":"other"}`,
		`{"packledger_export":1,"dealer":"demo"} {}`, `{"packledger_export":1,"dealer":"demo","comment":"x"}`,
	} {
		if _, err := readExport("t", io.NopCloser(strings.NewReader(hdr+"\n"))); err == nil {
			t.Errorf("header %s accepted", hdr)
		}
	}
	for _, edit := range [][2]string{{`"seq":2,`, `"Seq":2,`}, {`"seq":2,`, `"seq":2,"seq":9,`}, {`"seq":2,`, `"seq":2,"note":"x",`}} {
		file := bytes.Replace(good, []byte(edit[0]), []byte(edit[1]), 1)
		var problems []string
		if _, _, _, err := verifyExport(file, key, func(_ uint64, _ string, _ domain.Envelope, err error) {
			if err != nil {
				problems = append(problems, err.Error())
			}
		}); err != nil {
			t.Fatal(err)
		}
		if len(problems) == 0 || !strings.HasSuffix(problems[0], "line 3: not an event record") {
			t.Errorf("%s: findings %q", edit[1], problems)
		}
	}
}
