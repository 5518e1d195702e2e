package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

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
