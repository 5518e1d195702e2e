package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections"
)

const exportAbout = `packledger export — the ledger's record.

  --format jsonl  the evidence: a header line naming the dealer, the stream,
                  the public keys and the range, then every message of the
                  dealer's subjects in stream order, one a line, with its
                  stream sequence, subject, hash, signature, key and its
                  body byte for byte as stored. Foreign messages are
                  exported too: it is the whole record, and
                  "packledger verify --file" checks it offline.
  --format csv    for a spreadsheet (UTF-8 with BOM): one row per valid
                  event with its money and the package's balances after it.
                  It is not evidence: nothing in it can be verified.

--from/--to select events by the time they were recorded (from included,
to excluded; an RFC 3339 instant or a day YYYY-MM-DD in --tz). A jsonl
export of a range is marked partial: its chains may begin before it.

Exactly one source: --data DIR (a stopped server's data directory: STOP THE
SERVER FIRST) or --nats URL. With --nats, give --pubkey so that the
export's header names the key to check it with (csv needs it to tell
valid events from foreign ones).

Usage: packledger export --format jsonl|csv (--data DIR | --nats URL) [flags]

Flags:
`

// exportHeader is the first line of a jsonl export.
type exportHeader struct {
	Format     int        `json:"packledger_export"`
	Dealer     string     `json:"dealer"`
	Stream     string     `json:"stream"`
	PublicKeys []string   `json:"public_keys"`
	From       *time.Time `json:"from"`
	To         *time.Time `json:"to"`
	Partial    bool       `json:"partial"`
	FirstSeq   uint64     `json:"first_seq"`
	LastSeq    uint64     `json:"last_seq"`
	Events     int        `json:"events"`
	ExportedAt time.Time  `json:"exported_at"`
}

func export(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sf := newSourceFlags("export", exportAbout, stderr, false, false)
	format := sf.fs.String("format", "", "jsonl (the signed record: evidence) or csv (a spreadsheet: not evidence)")
	fromS := sf.fs.String("from", "", "only events recorded at or after this instant (RFC 3339) or day (YYYY-MM-DD)")
	toS := sf.fs.String("to", "", "only events recorded before this instant (RFC 3339) or day (YYYY-MM-DD)")
	out := sf.fs.String("o", "", "write to this file (replaced whole when the export is complete) instead of stdout")
	if err := sf.parse(args); err != nil {
		return helpIsNoError(err)
	}
	if *format != "jsonl" && *format != "csv" {
		return errors.New("export: --format jsonl or --format csv")
	}
	from, err := parseInstant("--from", *fromS, sf.loc)
	if err != nil {
		return err
	}
	to, err := parseInstant("--to", *toS, sf.loc)
	if err != nil {
		return err
	}
	if from != nil && to != nil && !from.Before(*to) {
		return errors.New("export: --from must be before --to")
	}
	src, err := sf.open(ctx, stderr, *format == "csv")
	if err != nil {
		return err
	}
	defer src.Close()
	if *format == "jsonl" && len(src.keys) == 0 {
		fmt.Fprintln(stderr, "export: warning: no --pubkey: the export's header names no public key; whoever verifies it must give the ledger's key with --pubkey")
	}
	w, commit, abort, err := openOutput(*out, stdout)
	if err != nil {
		return err
	}
	defer abort()
	prog := newProgress(stderr, "export")
	start := time.Now()
	var n int
	if *format == "jsonl" {
		n, err = exportJSONL(ctx, src, from, to, w, prog)
	} else {
		n, err = exportCSV(ctx, src, from, to, w, prog, sf.loc, stderr)
	}
	prog.stop()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := commit(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	took := time.Since(start)
	fmt.Fprintf(stderr, "export: %d events in %s (%.0f events/s)\n", n, took.Round(time.Millisecond), rate(n, took))
	return nil
}

// parseInstant reads an RFC 3339 instant or a day, which is its first
// instant in loc. Empty is no bound.
func parseInstant(flag, s string, loc *time.Location) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return &t, nil
	}
	if d, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return &d, nil
	}
	return nil, fmt.Errorf("%s %q: want an RFC 3339 instant or a day YYYY-MM-DD", flag, s)
}

// openOutput is stdout, or a temporary file beside path that commit
// renames onto it, so that a failed export never leaves half a file. The
// file is made mode 0600: an export holds customers' names and phones.
func openOutput(path string, stdout io.Writer) (w io.Writer, commit func() error, abort func(), err error) {
	if path == "" {
		bw := bufio.NewWriterSize(stdout, 1<<16)
		return bw, bw.Flush, func() {}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-o: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	done := false
	commit = func() error {
		if err := errors.Join(bw.Flush(), f.Sync(), f.Close()); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), path); err != nil {
			return err
		}
		done = true
		return nil
	}
	abort = func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}
	return bw, commit, abort, nil
}

// inRange says whether an instant lies in [from, to).
func inRange(t time.Time, from, to *time.Time) bool {
	return (from == nil || !t.Before(*from)) && (to == nil || t.Before(*to))
}

// recordedAt reads the time a stored body says it was recorded, without
// judging anything else about it.
func recordedAt(body []byte) (time.Time, bool) {
	var b struct {
		RecordedAt *time.Time `json:"recorded_at"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.RecordedAt == nil {
		return time.Time{}, false
	}
	return *b.RecordedAt, true
}

// exportJSONL writes the header and every message of the dealer's
// subjects. The header counts what follows, so the records are spooled to
// a temporary file first.
func exportJSONL(ctx context.Context, src *source, from, to *time.Time, w io.Writer, prog *progress) (int, error) {
	spool, err := os.CreateTemp("", "packledger-export-*.jsonl")
	if err != nil {
		return 0, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	sw := bufio.NewWriterSize(spool, 1<<20)
	if head, err := src.store.Head(ctx); err == nil {
		prog.setTotal(head)
	}
	hdr := exportHeader{Format: 1, Dealer: src.dealer, Stream: src.stream, PublicKeys: src.keys,
		From: from, To: to, Partial: from != nil || to != nil}
	if hdr.PublicKeys == nil {
		hdr.PublicKeys = []string{}
	}
	var line bytes.Buffer
	seen := 0
	_, err = src.store.ScanRaw(ctx, func(m eventstore.RawMessage) error {
		seen++
		prog.step(m.Seq, seen)
		if hdr.Partial {
			// A message whose time cannot be read is in every range: it
			// must never fall out of the record unseen.
			if t, ok := recordedAt(m.Data); ok && !inRange(t, from, to) {
				return nil
			}
		}
		line.Reset()
		if err := writeRecord(&line, m); err != nil {
			return err
		}
		if _, err := sw.Write(line.Bytes()); err != nil {
			return err
		}
		if hdr.FirstSeq == 0 {
			hdr.FirstSeq = m.Seq
		}
		hdr.LastSeq = m.Seq
		hdr.Events++
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := sw.Flush(); err != nil {
		return 0, err
	}
	hdr.ExportedAt = time.Now().UTC()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(hdr); err != nil {
		return 0, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, spool); err != nil {
		return 0, err
	}
	return hdr.Events, nil
}

// writeRecord writes one message as a jsonl line: its place and headers,
// then its body as raw JSON exactly as stored. A body that is not JSON, or
// that would break the line, is written as body_base64 instead, so that
// even a foreign message's bytes reach the auditor unchanged.
func writeRecord(b *bytes.Buffer, m eventstore.RawMessage) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		Seq     uint64 `json:"seq"`
		Subject string `json:"subject"`
		Hash    string `json:"hash"`
		Sig     string `json:"sig"`
		Key     string `json:"key"`
	}{m.Seq, m.Subject, m.Header.Get(eventstore.HeaderHash), m.Header.Get(eventstore.HeaderSig), m.Header.Get(eventstore.HeaderKey)}); err != nil {
		return err
	}
	b.Truncate(b.Len() - 2) // "}\n"
	if json.Valid(m.Data) && !bytes.ContainsAny(m.Data, "\r\n") {
		b.WriteString(`,"body":`)
		b.Write(m.Data)
	} else {
		b.WriteString(`,"body_base64":"`)
		b.WriteString(base64.StdEncoding.EncodeToString(m.Data))
		b.WriteByte('"')
	}
	b.WriteString("}\n")
	return nil
}

// csvNotice is the csv's first line.
const csvNotice = "packledger export for spreadsheets: NOT EVIDENCE. Nothing in this file can be verified; the evidence is the jsonl export (packledger export --format jsonl), checked with packledger verify --file."

var csvColumns = []string{
	"seq", "recorded_at", "business_time", "store", "package", "customer", "type", "actor", "role",
	"payment", "void", "recognized", "reversal", "refund", "breakage",
	"paid_after", "liability_after", "remaining_visits_after",
}

// exportCSV writes one row per valid event in range. Every event is
// re-applied whatever the range, so that the balances after each are the
// package's real ones.
func exportCSV(ctx context.Context, src *source, from, to *time.Time, w io.Writer, prog *progress, loc *time.Location, stderr io.Writer) (int, error) {
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return 0, err
	}
	cw := csv.NewWriter(w)
	notice := csvNotice + fmt.Sprintf(" Dealer %s, stream %s", src.dealer, src.stream)
	if from != nil {
		notice += ", from " + from.In(loc).Format(time.RFC3339)
	}
	if to != nil {
		notice += ", to " + to.In(loc).Format(time.RFC3339) + " (excluded)"
	}
	notice += ", exported " + time.Now().In(loc).Format(time.RFC3339) + "."
	if err := cw.Write([]string{notice}); err != nil {
		return 0, err
	}
	if err := cw.Write(csvColumns); err != nil {
		return 0, err
	}
	if head, err := src.store.Head(ctx); err == nil {
		prog.setTotal(head)
	}
	model := projections.NewModel(loc)
	rows, foreign, seen := 0, 0, 0
	_, err := src.store.Scan(ctx, func(seq uint64, subject string, env domain.Envelope, err error) error {
		seen++
		prog.step(seq, seen)
		if err != nil {
			foreign++
			return nil
		}
		pid, perr := uuid.Parse(env.Aggregate)
		isPackage := perr == nil && strings.Contains(subject, ".packages.")
		var before domain.Package
		if isPackage {
			before, _ = model.Package(pid)
		}
		model.Apply(env)
		if !inRange(env.RecordedAt, from, to) {
			return nil
		}
		row := make([]string, len(csvColumns))
		row[0] = strconv.FormatUint(seq, 10)
		row[1] = env.RecordedAt.In(loc).Format(time.RFC3339Nano)
		row[2] = env.BusinessTime.In(loc).Format(time.RFC3339Nano)
		row[3] = cell(env.Store)
		row[6] = env.Type
		row[7] = cell(env.Actor.ID)
		row[8] = string(env.Actor.Role)
		if isPackage {
			after, _ := model.Package(pid)
			row[4] = pid.String()
			row[5] = cell(after.Customer.ID)
			if mv, ok := projections.MovementsOf(env, before); ok {
				for i, m := range []domain.Money{mv.Payments, mv.Voids, mv.Recognized, mv.Reversals, mv.Refunds, mv.Breakage} {
					if !m.IsZero() {
						row[9+i] = m.String()
					}
				}
			}
			row[15] = after.Paid.String()
			row[16] = after.Liability.String()
			left := 0
			for _, n := range after.Remaining() {
				left += n
			}
			row[17] = strconv.Itoa(left)
		}
		rows++
		return cw.Write(row)
	})
	if err != nil {
		return 0, err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return 0, err
	}
	if foreign > 0 {
		fmt.Fprintf(stderr, "export: warning: %d foreign or unreadable events are not in the csv: run packledger verify for the list\n", foreign)
	}
	return rows, nil
}

// cell keeps text a spreadsheet would take for a formula from being one.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
