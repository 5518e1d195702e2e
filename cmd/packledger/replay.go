package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
	"github.com/packledger/packledger/projections/audit"
)

const replayAbout = `packledger replay --as-of T — every package's balances and the totals as
they stood at instant T (RFC 3339): the ledger's own events recorded at or
before T, and nothing after; foreign events are never applied. Prints a
table and a totals line, or with --json the same document as
GET /v1/audit/balances?as_of=T.

Exactly one source: --data DIR (a stopped server's data directory: STOP THE
SERVER FIRST), --nats URL (with --pubkey), or --file EXPORT (a whole jsonl
export; a partial one cannot be replayed).

Usage: packledger replay --as-of T (--data DIR | --nats URL | --file EXPORT) [flags]

Flags:
`

// balancesView is GET /v1/audit/balances's body (handlers.balancesBody).
// balancesView and packageView are the shapes of GET /v1/audit/balances.
type (
	balancesView = audit.Balances
	packageView  = projections.PackageView
)

func replay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sf := newSourceFlags("replay", replayAbout, stderr, true, true)
	asOf := sf.fs.String("as-of", "", "the instant, RFC 3339 (2026-03-01T18:00:00+08:00)")
	if err := sf.parse(args); err != nil {
		return helpIsNoError(err)
	}
	if *asOf == "" {
		return errors.New("replay: --as-of is required: an RFC 3339 instant")
	}
	t, err := time.Parse(time.RFC3339Nano, *asOf)
	if err != nil {
		return fmt.Errorf("--as-of %q is not an RFC 3339 instant", *asOf)
	}
	src, err := sf.open(ctx, stderr, true)
	if err != nil {
		return err
	}
	defer src.Close()
	if src.exp != nil && src.exp.header.Partial {
		return errors.New("replay: a partial export cannot be replayed: the events before its range are not in it")
	}
	v := audit.New(src.dealer, sf.loc).AsOf(t)
	prog := newProgress(stderr, "replay")
	start := time.Now()
	res, err := src.scan(ctx, prog, v.Add)
	prog.stop()
	if err != nil {
		return fmt.Errorf("replay: reading the ledger: %w", err)
	}
	body, rep := v.Balances()
	took := time.Since(start)
	ps := v.Model().Find(projections.Query{})
	if sf.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(body); err != nil {
			return err
		}
	} else if err := printBalances(stdout, t, ps, rep); err != nil {
		return err
	}
	if n := len(rep.Findings); n > 0 {
		fmt.Fprintf(stderr, "replay: warning: %d findings (foreign events, never applied, or broken checks): run packledger verify for the list\n", n)
	}
	fmt.Fprintf(stderr, "replay: %d records in %s (%.0f records/s)\n", res.records, took.Round(time.Millisecond), rate(res.records, took))
	return nil
}

func printBalances(w io.Writer, t time.Time, ps []domain.Package, rep audit.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tCUSTOMER\tPLATE\tSTATUS\tPAID\tLIABILITY\tREMAINING")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, oneLine(p.Customer.ID+" "+p.Customer.Name), oneLine(p.Vehicle.Plate),
			p.Status, p.Paid, p.Liability, remainingText(p))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b := rep.Totals
	_, err := fmt.Fprintf(w, "totals as of %s: %d packages, %d events; paid %s, voided %s, recognized %s, refunded %s, breakage %s, liability %s\n",
		t.Format(time.RFC3339), len(ps), rep.Events, b.Paid, b.Voided, b.Recognized, b.Refunded, b.Breakage, b.Liability)
	return err
}

// remainingText is "oil_change 3" or, for several services, each one.
func remainingText(p domain.Package) string {
	rem := p.Remaining()
	svcs := make([]string, 0, len(rem))
	for s := range rem {
		svcs = append(svcs, s)
	}
	slices.Sort(svcs)
	parts := make([]string, len(svcs))
	for i, s := range svcs {
		parts[i] = fmt.Sprintf("%s %d", s, rem[s])
	}
	return strings.Join(parts, ", ")
}

// oneLine keeps a table cell on its line whatever a customer's name holds.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
}
