package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/handlers"
	"github.com/packledger/packledger/projections"
)

// serveConfig is everything serve's flags say.
type serveConfig struct {
	listen, data, natsListen, natsURL string
	replicas                          int
	dealer, stream, store, usersFile  string
	demo, fsync, debugNATS            bool
	tz                                string
	breakageAfter                     int
	sweepEvery, dedupe                time.Duration
	logLevel                          string
	keyFile, keyringFile              string
	groupCommit                       eventstore.GroupCommitMode
	checkpoints                       bool
	checkpointEvery                   int
	checkpointInterval                time.Duration
	secureCookies                     bool
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveConfig) {
	c := &serveConfig{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "HTTP address (port 0: any free port)")
	fs.StringVar(&c.data, "data", "./data", "directory of the embedded NATS server's JetStream files")
	fs.StringVar(&c.natsListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server, for any NATS client to read the log")
	fs.StringVar(&c.natsURL, "nats", "", "use this NATS cluster (nats://host:port,...) instead of the embedded server")
	fs.IntVar(&c.replicas, "replicas", 1, "stream replicas when creating the stream on --nats (3 for a three-node cluster)")
	fs.StringVar(&c.dealer, "dealer", "demo", "dealer id: the <dealer> of ledger.<dealer>.> subjects")
	fs.StringVar(&c.stream, "stream", "LEDGER", "JetStream stream name")
	fs.StringVar(&c.store, "store", "main", "store (branch) recorded for users whose entry names none")
	fs.StringVar(&c.usersFile, "users", "", "users file: JSON array of {id, name, role, store, token_sha256}; re-read on SIGHUP")
	fs.BoolVar(&c.demo, "demo", false, "make demo users (tokens printed once) and, on an empty ledger, the demo plans")
	fs.BoolVar(&c.fsync, "fsync", true, "embedded server: fsync every write before acknowledging it; false syncs lazily and can lose acknowledged writes on power loss")
	fs.TextVar(&c.groupCommit, "group-commit", eventstore.GroupCommitAuto, "how concurrent writes are appended: auto (a few as separate publishes, more as one atomic batch), always (any two as one batch) or off (one at a time)")
	fs.StringVar(&c.tz, "tz", "Asia/Shanghai", "time zone of business days (daily close, roll-forward by day)")
	fs.IntVar(&c.breakageAfter, "breakage-after", 0, "recognize an expired package's liability as breakage this many months after expiry (0: never by policy)")
	fs.DurationVar(&c.sweepEvery, "sweep-every", time.Minute, "how often to sweep for expiry and breakage")
	fs.DurationVar(&c.dedupe, "dedupe-window", time.Hour, "JetStream duplicate window for Nats-Msg-Id (idempotency keys hold beyond it too)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.debugNATS, "debug-nats", false, "log the embedded NATS server's own messages")
	fs.BoolVar(&c.checkpoints, "checkpoints", true, "keep checkpoints of the read models in the NATS object store (and, on the embedded server, a copy of the newest in --data), so that a start reads only the events after the last one (written periodically and on a clean stop)")
	fs.IntVar(&c.checkpointEvery, "checkpoint-every", projections.DefaultCheckpointEvery, "write a checkpoint after this many events")
	fs.DurationVar(&c.checkpointInterval, "checkpoint-interval", projections.DefaultCheckpointInterval, "or this long after the last one, if events came")
	fs.BoolVar(&c.secureCookies, "secure-cookies", false, "mark the web desk's cookies Secure: set it when a proxy serves the desk over TLS (over TLS served directly they are anyway)")
	keyFlags(fs, &c.keyFile, &c.keyringFile)
	return fs, c
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Catch SIGHUP before anything else: Go's default for it is to exit,
	// and a reload asked for while the server starts (or the moment it
	// prints its ready line) must not kill it. One pending SIGHUP is kept
	// and re-reads the users file once the server runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	fs, c := serveFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if c.sweepEvery <= 0 {
		return fmt.Errorf("--sweep-every must be positive, got %v", c.sweepEvery)
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	tz, err := time.LoadLocation(c.tz)
	if err != nil {
		return fmt.Errorf("--tz: %w", err)
	}
	if err := eventstore.CheckDealer(c.dealer); err != nil {
		return fmt.Errorf("--dealer: %w", err)
	}
	if err := domain.CheckID("store", c.store); err != nil {
		return fmt.Errorf("--store: %w", err)
	}
	users, demo, tokens, err := loadUsers(c)
	if err != nil {
		return err
	}
	if c.natsURL != "" && c.keyFile == "" {
		// Servers sharing a cluster must sign with one key, or each would
		// take the others' events for forgeries.
		return errors.New("--nats needs --key-file: every server on one ledger signs with the same key")
	}
	var ck *checkpointing
	if c.checkpoints {
		ck = &checkpointing{policy: projections.CheckpointPolicy{Every: c.checkpointEvery, Interval: c.checkpointInterval}}
		if c.natsURL == "" {
			// Read while the embedded server recovers the stream.
			ck.localCopy = eventstore.LocalCheckpointPath(c.data, c.stream, c.dealer)
			ck.preload = preloadLocalCheckpoint(ck.localCopy, tz)
		}
	}
	node, err := openNode(ctx, c, log)
	if err != nil {
		return err
	}
	defer node.shutdown()
	store := node.store
	runner, stopRunner, err := node.startProjections(ctx, tz, log, ck)
	if err != nil {
		return err
	}
	defer stopRunner()
	api := node.api(c, tz, log, runner, users)

	if c.demo {
		seq, err := seedDemoPlans(ctx, store, c.store, time.Now)
		if err != nil {
			return fmt.Errorf("demo plans: %w", err)
		}
		// Serve only once the plans show: a first GET /v1/plans must list
		// all three.
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = runner.WaitFor(waitCtx, seq)
		cancel()
		if err != nil {
			return fmt.Errorf("demo plans: %w", err)
		}
	}

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	httpURL := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "packledger: dealer %s, HTTP on %s, NATS on %s\n", c.dealer, httpURL, node.natsAddr)
	fmt.Fprintf(stdout, "signing key %s\n", eventstore.Fingerprint(node.signer.Public()))
	if c.demo {
		printDemoTokens(stdout, httpURL, tokens)
	}
	fmt.Fprintf(stdout, "ready http=%s nats=%s\n", httpURL, node.natsAddr)

	srv := newHTTPServer(api.Handler(), log)
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve(ln) }()

	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	dealerNow := func() time.Time { return time.Now().In(tz) }
	sw := &sweeper{store: store, reads: runner, clock: dealerNow, storeID: c.store, breakageAfter: c.breakageAfter, log: log}
	go func() {
		defer close(sweepDone)
		sw.run(sweepCtx, c.sweepEvery)
	}()

	for {
		select {
		case err := <-httpErr:
			stopSweep()
			<-sweepDone
			return fmt.Errorf("http: %w", err)
		case <-hup:
			if c.usersFile == "" {
				continue
			}
			u, err := handlers.LoadUsers(c.usersFile)
			if err == nil && c.demo {
				// The demo users of this start stay: their tokens were printed.
				u = append(u, demo...)
				err = handlers.CheckUsers(u)
			}
			if err != nil {
				log.Error("users file not reloaded; keeping the old users", "err", err)
				continue
			}
			api.SetUsers(u)
			log.Info("users file reloaded", "users", len(u))
		case <-ctx.Done():
			log.Info("stopping")
			stopSweep()
			<-sweepDone
			shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := srv.Shutdown(shutCtx)
			cancel()
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http shutdown: %w", err)
			}
			// The last checkpoint, so that the next start reads nothing twice.
			stopRunner() // waits for the runner
			ckCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			if err := runner.SaveCheckpoint(ckCtx); err != nil {
				log.Warn("last checkpoint not written; the next start reads more of the stream", "err", err)
			}
			cancel()
			return nil
		}
	}
}

// ledgerNode is what a serve runs on: the signing key, the NATS
// connection (to the embedded server or to --nats) and the store on it.
// serve and bench open it the same way, so that what bench measures is
// what serve runs.
type ledgerNode struct {
	natsLink
	signer *eventstore.Signer
	store  *eventstore.Store
}

// natsLink is serve's connection to NATS.
type natsLink struct {
	nc       *nats.Conn
	natsAddr string
	// embedded is the server started in process; nil with --nats.
	embedded *eventstore.Server
	// shutdown drains the connection and stops the embedded server.
	shutdown func()
}

// openNode loads the keys, connects to NATS and opens the ledger stream.
func openNode(ctx context.Context, c *serveConfig, log *slog.Logger) (*ledgerNode, error) {
	// With --nats the key must exist: a typo would make a new key, and the
	// servers would take each other's events for forgeries.
	signer, ring, err := loadKeys(c.data, c.keyFile, c.keyringFile, c.natsURL == "")
	if err != nil {
		return nil, err
	}
	link, err := connectNATS(c, log)
	if err != nil {
		return nil, err
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	store, err := eventstore.Open(openCtx, link.nc, eventstore.Config{
		Stream: c.stream, Dealer: c.dealer, Replicas: c.replicas, DuplicateWindow: c.dedupe,
		Signer: signer, Keyring: ring, GroupCommit: c.groupCommit,
	})
	cancel()
	if err != nil {
		link.shutdown()
		return nil, err
	}
	return &ledgerNode{natsLink: link, signer: signer, store: store}, nil
}

// checkpointing is how the projections keep checkpoints; nil keeps none.
type checkpointing struct {
	policy projections.CheckpointPolicy
	// localCopy is the file of the local copy of the newest checkpoint,
	// "" for none; preload is that copy being read, if set.
	localCopy string
	preload   *projections.Preload
}

// preloadLocalCheckpoint starts reading and decoding the local copy of
// the newest checkpoint at path, for the runner to resume from once the
// bucket vouches for it.
func preloadLocalCheckpoint(path string, tz *time.Location) *projections.Preload {
	return projections.StartPreload(tz, func() (projections.Candidate, error) {
		l, err := eventstore.ReadLocalCheckpoint(path)
		if err != nil {
			return projections.Candidate{}, err
		}
		return projections.Candidate{Name: l.Name(), Seq: l.Seq(), Parts: l.Parts(),
			Vouch: func(ctx context.Context, s projections.CheckpointStore) error {
				ck, ok := s.(*eventstore.Checkpoints)
				if !ok {
					return errors.New("its checkpoint store cannot vouch for a local copy")
				}
				return ck.Vouch(ctx, l)
			}}, nil
	})
}

// startProjections starts the read models' runner on the store's feed:
// from an empty model, it reads the whole log and then follows it. stop
// ends it and waits for it.

func (n *ledgerNode) startProjections(ctx context.Context, tz *time.Location, log *slog.Logger, ck *checkpointing) (runner *projections.Runner, stop func(), err error) {
	model := projections.NewModel(tz)
	runner = projections.NewRunner(n.store.Feed(), model, log)
	if ck != nil {
		ckCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		store, err := n.store.Checkpoints(ckCtx, eventstore.CheckpointsConfig{Signer: n.signer, LocalCopy: ck.localCopy, Log: log})
		cancel()
		if err != nil {
			return nil, nil, err
		}
		if err := runner.UseCheckpoints(store, ck.policy); err != nil {
			return nil, nil, err
		}
		if ck.preload != nil {
			if err := runner.ResumeFirstFrom(ck.preload); err != nil {
				return nil, nil, err
			}
		}
	}
	runCtx, stopRunner := context.WithCancel(context.Background())
	runnerDone := make(chan struct{})
	go func() {
		defer close(runnerDone)
		_ = runner.Run(runCtx)
	}()
	return runner, func() { stopRunner(); <-runnerDone }, nil
}

// api is the HTTP API over the node's store and the runner's read models.
func (n *ledgerNode) api(c *serveConfig, tz *time.Location, log *slog.Logger, runner *projections.Runner, users []handlers.User) *handlers.Server {
	return handlers.New(handlers.Config{
		Dealer: c.dealer, DefaultStore: c.store, TZ: tz, Clock: time.Now, Log: log,
		NATSConnected: n.nc.IsConnected, KeyFingerprint: eventstore.Fingerprint(n.signer.Public()),
		SecureCookies: c.secureCookies,
	}, n.store, runner, users)
}

// newHTTPServer bounds every phase of a request, so that a slow or silent
// client cannot hold a connection for ever.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// loadUsers reads the users file and adds demo users when asked; it
// returns all users, the demo ones, and the demo tokens.
func loadUsers(c *serveConfig) (users, demo []handlers.User, tokens map[domain.Role]string, err error) {
	if c.usersFile != "" {
		if users, err = handlers.LoadUsers(c.usersFile); err != nil {
			return nil, nil, nil, err
		}
	}
	if c.demo {
		demo, tokens = demoUsers(c.store)
		users = append(users, demo...)
		if err := handlers.CheckUsers(users); err != nil {
			return nil, nil, nil, fmt.Errorf("users file and demo users: %w", err)
		}
	}
	if len(users) == 0 {
		return nil, nil, nil, errors.New("no users: give --users FILE (see `packledger new-user`) or --demo")
	}
	return users, demo, tokens, nil
}

// connectNATS starts the embedded server, or connects to --nats.
func connectNATS(c *serveConfig, log *slog.Logger) (natsLink, error) {
	if c.natsURL != "" {
		nc, err := nats.Connect(c.natsURL,
			nats.Name("packledger"),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(500*time.Millisecond),
			// While disconnected, a write fails at once (503
			// ledger_unreachable) instead of waiting in a buffer that
			// would send it after its client has given up.
			nats.ReconnectBufSize(-1),
			// A server that hangs without closing the connection is
			// noticed within seconds, not the default four minutes.
			nats.PingInterval(2*time.Second),
			nats.MaxPingsOutstanding(3),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
			nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
		)
		if err != nil {
			return natsLink{}, fmt.Errorf("--nats %s: %w", c.natsURL, err)
		}
		return natsLink{nc: nc, natsAddr: c.natsURL, shutdown: func() { _ = nc.Drain() }}, nil
	}
	dir, err := filepath.Abs(c.data)
	if err != nil {
		return natsLink{}, fmt.Errorf("--data: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return natsLink{}, fmt.Errorf("--data: %w", err)
	}
	srv, err := eventstore.StartServer(eventstore.ServerConfig{
		Listen: c.natsListen, StoreDir: dir, SyncAlways: c.fsync, Debug: c.debugNATS,
	})
	if err != nil {
		return natsLink{}, err
	}
	nc, err := srv.Connect("packledger")
	if err != nil {
		srv.Shutdown()
		return natsLink{}, err
	}
	if !c.fsync {
		log.Warn("--fsync=false: writes are acknowledged before they reach the disk; a power cut can lose acknowledged payments")
	}
	return natsLink{nc: nc, natsAddr: srv.ClientURL(), embedded: srv, shutdown: func() {
		_ = nc.Drain()
		// Drain returns at once; a server stopped under it leaves the
		// client to report a closed pipe.
		for wait := time.Now().Add(5 * time.Second); !nc.IsClosed() && time.Now().Before(wait); {
			time.Sleep(5 * time.Millisecond)
		}
		srv.Shutdown()
	}}, nil
}

func printDemoTokens(w io.Writer, httpURL string, tokens map[domain.Role]string) {
	fmt.Fprintln(w, "demo users (tokens change at every start; paste these lines into your shell):")
	fmt.Fprintf(w, "  export PL=%s\n", httpURL)
	for _, r := range []domain.Role{domain.RoleManager, domain.RoleAdvisor, domain.RoleCashier, domain.RoleAuditor} {
		fmt.Fprintf(w, "  export %s=%s\n", strings.ToUpper(string(r)), tokens[r])
	}
}
