package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

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
		storeDir := dir
		// A cluster node's directory: read its own copy of the stream.
		replica, err := eventstore.ReplicaCopy(dir, sf.stream, "")
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", dir, err)
		}
		if replica != "" {
			fmt.Fprintf(stderr, "%s: %s holds a cluster node's replica of %s; reading a copy of it (what the node had applied when it stopped)\n", sf.fs.Name(), dir, sf.stream)
			src.closers = append(src.closers, func() { _ = os.RemoveAll(replica) })
			storeDir = replica
		}
		srv, err := eventstore.StartServer(eventstore.ServerConfig{Listen: "127.0.0.1:0", StoreDir: storeDir, SyncAlways: true})
		if err != nil {
			src.Close()
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
