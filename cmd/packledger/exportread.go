package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

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
	return readExport(name, f)
}

// readExport reads the header of the export in f; the records follow.
func readExport(name string, f io.ReadCloser) (*exportReader, error) {
	x := &exportReader{name: name, c: f, r: bufio.NewReaderSize(f, 1<<20)}
	line, err := x.r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		f.Close()
		return nil, fmt.Errorf("%s: no export header: %w", name, err)
	}
	x.line = 1
	if err := decodeExact(line, x.header.fields()); err != nil || x.header.Format != 1 {
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

// fields are the keys of a record line and where each is decoded to.
func (r *exportRecord) fields() map[string]any {
	return map[string]any{"seq": &r.Seq, "subject": &r.Subject, "hash": &r.Hash, "sig": &r.Sig, "key": &r.Key,
		"body": &r.Body, "body_base64": &r.BodyBase64}
}

// fields are the keys of the header line and where each is decoded to.
func (h *exportHeader) fields() map[string]any {
	return map[string]any{"packledger_export": &h.Format, "dealer": &h.Dealer, "stream": &h.Stream,
		"public_keys": &h.PublicKeys, "from": &h.From, "to": &h.To, "partial": &h.Partial,
		"first_seq": &h.FirstSeq, "last_seq": &h.LastSeq, "events": &h.Events, "exported_at": &h.ExportedAt}
}

// decodeExact decodes one JSON object into fields by key, exactly as
// export writes it: every key known and written in its case, each once,
// nothing after the object. encoding/json would read "SEQ" as "seq" and
// keep the last of two "seq" keys, so a line could tell verify a sequence
// that jq or an auditor's script does not see.
func decodeExact(line []byte, fields map[string]any) error {
	d := json.NewDecoder(bytes.NewReader(line))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		dst, ok := fields[key]
		switch {
		case !ok:
			return fmt.Errorf("unknown key %q", key)
		case seen[key]:
			return fmt.Errorf("the key %q appears twice", key)
		}
		seen[key] = true
		if err := d.Decode(dst); err != nil {
			return err
		}
	}
	if _, err := d.Token(); err != nil { // '}'
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the object")
	}
	return nil
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
	if err := decodeExact(line, rec.fields()); err != nil || rec.Seq == 0 || rec.Subject == "" {
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
