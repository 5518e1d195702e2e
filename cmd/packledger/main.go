// Command packledger is the ledger of prepaid maintenance packages: the
// HTTP API over an embedded (or external) NATS JetStream, and the tools
// around it. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // business days in Asia/Shanghai must work on a bare machine
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "packledger:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `packledger — the ledger of prepaid maintenance packages

Usage:
  packledger serve [flags]      run the HTTP API on its embedded NATS (see serve -h)
  packledger new-user [flags]   make a users-file entry and its token (see new-user -h)
  packledger key [flags]        print the ledger's public key, or rotate it (see key -h)
  packledger verify [flags]     check every chain, signature and balance (see verify -h)
  packledger replay [flags]     every package's balances as of an instant (see replay -h)
  packledger export [flags]     the signed record as jsonl, or a csv for spreadsheets (see export -h)
  packledger bench [--quick] [--json]  the ledger against JetStream's ceilings on this machine (see BENCHMARKS.md)

`

// run is the whole program but for signals and the exit code, so tests can
// start it in process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "new-user":
		return newUser(args[1:], stdout, stderr)
	case "key":
		return key(args[1:], stdout, stderr)
	case "verify":
		return verify(ctx, args[1:], stdout, stderr)
	case "replay":
		return replay(ctx, args[1:], stdout, stderr)
	case "export":
		return export(ctx, args[1:], stdout, stderr)
	case "bench":
		return bench(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
