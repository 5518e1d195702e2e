package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections/audit"
)

func header(t *testing.T, line string) exportHeader {
	t.Helper()
	var h exportHeader
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&h))
	return h
}

func TestExport(t *testing.T) {
	fx := buildLedger(t)

	t.Run("JSONLIsTheRecordByteForByte", func(t *testing.T) {
		before := time.Now()
		path, lines := fx.exportFile(t)
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "customers' names and phones")
		h := header(t, lines[0])
		require.Equal(t, 1, h.Format)
		require.Equal(t, "demo", h.Dealer)
		require.Equal(t, "LEDGER", h.Stream)
		require.Equal(t, []string{fx.pub}, h.PublicKeys)
		require.Nil(t, h.From)
		require.Nil(t, h.To)
		require.False(t, h.Partial)
		require.Equal(t, uint64(1), h.FirstSeq)
		require.Equal(t, fx.lastSeq(), h.LastSeq)
		require.Equal(t, len(fx.events), h.Events)
		require.False(t, h.ExportedAt.Before(before.Add(-time.Second)))
		require.Len(t, lines, 1+len(fx.events))
		for i, e := range fx.events {
			r := record(t, lines[i+1])
			require.Equal(t, e.seq, r.Seq)
			require.Equal(t, e.subject, r.Subject)
			// The body as exported hashes to what the server computed
			// from the bytes it stored: they are those bytes.
			require.Equal(t, e.hash, r.Hash)
			require.Equal(t, e.hash, eventstore.HashOf(r.Body))
			require.NotEmpty(t, r.Sig)
			require.Contains(t, lines[i+1], `,"body":{`)
		}
	})

	t.Run("NATSWithoutKey", func(t *testing.T) {
		require.NoError(t, fx.natsExportErr, fx.natsExportStderr)
		require.Contains(t, fx.natsExportStderr, "names no public key")
		b, err := os.ReadFile(fx.natsExport)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		require.Empty(t, header(t, lines[0]).PublicKeys)
		require.Len(t, lines, 1+len(fx.events))
		_, _, err = runArgs("verify", "--file", fx.natsExport)
		require.ErrorContains(t, err, "names no public key")
		_, stderr, err := runArgs("verify", "--file", fx.natsExport, "--pubkey", fx.pub)
		require.NoError(t, err, stderr)
	})

	t.Run("PartialVerifies", func(t *testing.T) {
		// From C's sale to just before A's last visit: C whole; A and B
		// from the middle of their chains.
		from := fx.ev(t, "C", "PackageSold", 1).at
		to := fx.ev(t, "A", "VisitRedeemed", 3).at
		path, lines := fx.exportFile(t, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
		h := header(t, lines[0])
		require.True(t, h.Partial)
		require.True(t, h.From.Equal(from))
		require.True(t, h.To.Equal(to))
		var want []uint64
		firstOf := map[string]uint64{} // subject → its first event in the whole ledger
		whole, checkedOnly := 0, 0
		for _, e := range fx.events {
			if _, ok := firstOf[e.subject]; !ok {
				firstOf[e.subject] = e.seq
			}
		}
		anchored := map[string]bool{}
		for _, e := range fx.events {
			if e.at.Before(from) || !e.at.Before(to) {
				continue
			}
			want = append(want, e.seq)
			if _, ok := anchored[e.subject]; !ok {
				anchored[e.subject] = firstOf[e.subject] == e.seq
			}
			if anchored[e.subject] {
				whole++
			} else {
				checkedOnly++
			}
		}
		require.Len(t, lines, 1+len(want))
		for i, seq := range want {
			require.Equal(t, seq, record(t, lines[i+1]).Seq)
		}
		require.Equal(t, want[0], h.FirstSeq)
		require.Equal(t, want[len(want)-1], h.LastSeq)
		require.Positive(t, checkedOnly)

		stdout, stderr, err := runArgs("verify", "--file", path, "--pubkey", fx.pub)
		require.NoError(t, err, stdout+stderr)
		require.Contains(t, stdout, fmt.Sprintf("partial export: %d events of packages whose history begins before its range", checkedOnly))
		stdout, _, err = runArgs("verify", "--json", "--file", path, "--pubkey", fx.pub)
		require.NoError(t, err)
		var rep audit.Report
		require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
		require.True(t, rep.OK)
		require.Equal(t, whole, rep.Events)

		// A chain broken inside the range is still caught: B's
		// activation removed, B's visit names it as previous.
		act := fx.ev(t, "B", "PackageActivated", 1)
		require.True(t, !act.at.Before(from) && act.at.Before(to))
		i := lineOf(t, lines, act.seq)
		rep, _, err = fx.verifyLines(t, append(append([]string(nil), lines[:i]...), lines[i+1:]...))
		require.ErrorIs(t, err, errNotVerified)
		requireFirst(t, rep, fx.names["B"], fx.ev(t, "B", "VisitRedeemed", 1).seq, "previous hash")
	})

	t.Run("CSVForSpreadsheets", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ledger.csv")
		_, stderr, err := runArgs("export", "--format", "csv", "--data", fx.dir, "-o", path)
		require.NoError(t, err, stderr)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")), "UTF-8 BOM")
		r := csv.NewReader(bytes.NewReader(b[3:]))
		r.FieldsPerRecord = -1
		recs, err := r.ReadAll()
		require.NoError(t, err)
		require.Len(t, recs[0], 1)
		require.Contains(t, recs[0][0], "NOT EVIDENCE")
		require.Contains(t, recs[0][0], "packledger verify --file")
		require.Equal(t, csvColumns, recs[1])
		rows := recs[2:]
		require.Len(t, rows, len(fx.events), "one row per event")
		bySeq := map[uint64]map[string]string{}
		for _, row := range rows {
			require.Len(t, row, len(csvColumns))
			m := map[string]string{}
			for i, c := range csvColumns {
				m[c] = row[i]
			}
			var seq uint64
			fmt.Sscan(m["seq"], &seq)
			bySeq[seq] = m
		}
		A, C := fx.names["A"].String(), fx.names["C"].String()
		pay := bySeq[fx.ev(t, "A", "PaymentRecorded", 1).seq]
		require.Equal(t, A, pay["package"])
		require.Equal(t, "C-A", pay["customer"])
		require.Equal(t, "1632.00", pay["payment"])
		require.Equal(t, "1632.00", pay["paid_after"])
		require.Equal(t, "1632.00", pay["liability_after"])
		require.Equal(t, "4", pay["remaining_visits_after"])
		require.Equal(t, "u-A", pay["actor"])
		require.Equal(t, "manager", pay["role"])
		require.Equal(t, "PaymentRecorded", pay["type"])
		require.Equal(t, "main", pay["store"])
		visit := bySeq[fx.ev(t, "A", "VisitRedeemed", 1).seq]
		require.Equal(t, "408.00", visit["recognized"])
		require.Equal(t, "", visit["payment"])
		require.Equal(t, "1224.00", visit["liability_after"])
		require.Equal(t, "3", visit["remaining_visits_after"])
		rev := bySeq[fx.ev(t, "A", "RedemptionReversed", 1).seq]
		require.Equal(t, "408.00", rev["reversal"])
		require.Equal(t, "1224.00", rev["liability_after"])
		refund := bySeq[fx.ev(t, "C", "PackageRefunded", 1).seq]
		require.Equal(t, C, refund["package"])
		require.Equal(t, "1632.00", refund["refund"])
		require.Equal(t, "0.00", refund["liability_after"])
		require.Equal(t, "+08:00", pay["recorded_at"][len(pay["recorded_at"])-6:], "times in --tz")

		// A range keeps the rows in it, with the balances of the whole history.
		from := fx.ev(t, "A", "VisitRedeemed", 2).at
		_, stderr, err = runArgs("export", "--format", "csv", "--data", fx.dir, "-o", path, "--from", from.Format(time.RFC3339))
		require.NoError(t, err, stderr)
		b, _ = os.ReadFile(path)
		r = csv.NewReader(bytes.NewReader(b[3:]))
		r.FieldsPerRecord = -1
		recs, err = r.ReadAll()
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(fx.ev(t, "A", "VisitRedeemed", 2).seq), recs[2][0])
		require.Equal(t, "816.00", recs[2][16], "A's liability after its second visit")
	})

	t.Run("ForeignMessagesAreExportedAndNamed", func(t *testing.T) {
		// Someone with write access to NATS publishes onto the ledger's
		// subjects: a replayed copy of A's first visit, a forged visit of
		// B, and bytes that are not an event at all on C's subject.
		_, lines := fx.exportFile(t)
		clean, _, err := fx.verifyLines(t, lines)
		require.NoError(t, err)
		srv, err := eventstore.StartServer(eventstore.ServerConfig{Listen: "127.0.0.1:0", StoreDir: fx.dir, SyncAlways: true})
		require.NoError(t, err)
		nc, err := srv.Connect("intruder")
		require.NoError(t, err)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		publish := func(subject string, h nats.Header, body []byte) uint64 {
			ack, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Header: h, Data: body})
			require.NoError(t, err)
			return ack.Sequence
		}
		orig := record(t, lines[lineOf(t, lines, fx.ev(t, "A", "VisitRedeemed", 1).seq)])
		replayed := publish(orig.Subject, nats.Header{eventstore.HeaderHash: {orig.Hash}, eventstore.HeaderSig: {orig.Sig}, eventstore.HeaderKey: {orig.Key}}, orig.Body)
		forged := record(t, forgedLine(t, lines, fx.names["B"], 0, eventstoreSigner(t), ""))
		forgedSeq := publish(forged.Subject, nats.Header{eventstore.HeaderHash: {forged.Hash}, eventstore.HeaderSig: {forged.Sig}, eventstore.HeaderKey: {forged.Key}}, forged.Body)
		garbage := []byte("not an event <&>\n\tat all")
		garbageSeq := publish("ledger.demo.packages."+fx.names["C"].String(), nil, garbage)
		oddJSON := []byte(`{"note":  "<&> also not an event" }`)
		oddSeq := publish("ledger.demo.packages."+fx.names["C"].String(), nil, oddJSON)
		nc.Close()
		srv.Shutdown()

		check := func(rep audit.Report) {
			t.Helper()
			require.False(t, rep.OK)
			require.Len(t, rep.Findings, 4, "%+v", rep.Findings)
			want := []struct {
				seq     uint64
				pkg     uuid.UUID
				problem string
			}{
				{replayed, fx.names["A"], "previous hash"},
				{forgedSeq, fx.names["B"], "signed by unknown key"},
				{garbageSeq, fx.names["C"], "decode envelope"},
				{oddSeq, fx.names["C"], "unknown field"},
			}
			for i, w := range want {
				require.Equal(t, w.seq, rep.Findings[i].Seq)
				require.Equal(t, w.pkg.String(), rep.Findings[i].Package)
				require.Contains(t, rep.Findings[i].Problem, w.problem)
			}
			require.Equal(t, clean.Totals, rep.Totals, "foreign events are never money")
			require.Equal(t, clean.Events, rep.Events)
		}
		stdout, _, err := runArgs("verify", "--json", "--data", fx.dir)
		require.ErrorIs(t, err, errNotVerified)
		var rep audit.Report
		require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
		check(rep)
		stdout, _, err = runArgs("verify", "--data", fx.dir)
		require.ErrorIs(t, err, errNotVerified)
		require.Contains(t, stdout, fmt.Sprintf("seq %d package %s: ", forgedSeq, fx.names["B"]))

		// The export holds them, byte for byte, and verify names them alike.
		path, lines := fx.exportFile(t)
		require.Len(t, lines, 1+len(fx.events)+4)
		g := record(t, lines[len(lines)-2])
		require.Equal(t, garbage, g.BodyBase64, "a body that is not JSON travels as base64")
		require.Contains(t, lines[len(lines)-1], `,"body":`+string(oddJSON)+`}`, "raw JSON exactly as stored")
		stdout, _, err = runArgs("verify", "--json", "--file", path, "--pubkey", fx.pub)
		require.ErrorIs(t, err, errNotVerified)
		rep = audit.Report{}
		require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
		check(rep)

		// Replay and the csv leave them out.
		stdout, stderr, err := runArgs("replay", "--json", "--data", fx.dir, "--as-of", time.Now().Format(time.RFC3339))
		require.NoError(t, err)
		require.Contains(t, stderr, "4 findings")
		var bal replayJSON
		require.NoError(t, json.Unmarshal([]byte(stdout), &bal))
		require.Equal(t, clean.Totals, bal.Totals)
		out := filepath.Join(t.TempDir(), "x.csv")
		_, stderr, err = runArgs("export", "--format", "csv", "--data", fx.dir, "-o", out)
		require.NoError(t, err)
		require.Contains(t, stderr, "4 foreign or unreadable events are not in the csv")
	})

	t.Run("Usage", func(t *testing.T) {
		_, _, err := runArgs("export", "--data", fx.dir)
		require.ErrorContains(t, err, "--format jsonl or --format csv")
		_, _, err = runArgs("export", "--format", "jsonl", "--data", fx.dir, "--from", "2026-03-03", "--to", "2026-03-02")
		require.ErrorContains(t, err, "--from must be before --to")
		_, _, err = runArgs("export", "--format", "jsonl", "--data", fx.dir, "--from", "soon")
		require.ErrorContains(t, err, "want an RFC 3339 instant or a day")
		_, _, err = runArgs("export", "--format", "csv", "--nats", "nats://127.0.0.1:1")
		require.ErrorContains(t, err, "needs --pubkey")
		missing := filepath.Join(t.TempDir(), "no", "such", "dir", "x.jsonl")
		_, _, err = runArgs("export", "--format", "jsonl", "--data", fx.dir, "-o", missing)
		require.Error(t, err)
		_, err = os.Stat(missing)
		require.True(t, os.IsNotExist(err))
	})
}
