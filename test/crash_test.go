package test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// The bounds of TestCrash_KillUnderLoad.
const (
	crashMinKills = 6  // SIGKILLs at least
	crashMaxKills = 12 // kills past the minimum go on only until an answer has been lost across one
	// Packages are sold while the killer works, and this many at least.
	crashMinPackages = 24
	crashMaxPackages = 300
	// The clients' whole run, kills included; each request retries within it.
	crashLoadTimeout    = 90 * time.Second
	crashAttemptTimeout = 10 * time.Second // one HTTP attempt (the server waits up to 10 s for its read models)
	crashMaxAttempts    = 300              // one request's attempts
	crashOnWriteWait    = 300 * time.Millisecond

	crashPlan       = "CRASH6"
	crashPriceCents = 199999 // 1999.99: the units' values do not divide evenly
)

// crashCounts is the plan's visits per service.
var crashCounts = map[string]int{"oil_change": 4, "inspection": 2}

// TestCrash_KillUnderLoad sells, pays for and redeems packages with
// concurrent clients while the real server is killed with SIGKILL at
// random moments and restarted on the same data directory. A client whose
// request fails in transport or gets 503 sends the same request with the
// same Idempotency-Key again, to wherever the server now listens, until it
// gets a definite answer. Afterwards every acknowledged write is in the
// ledger exactly once with the ids its answer named, nothing refused left
// a trace, every record on the stream is explained by an acknowledged
// write, each package's figures and invariant hold, and both the live and
// the command-line verify are clean.
func TestCrash_KillUnderLoad(t *testing.T) {
	began := time.Now()
	seed := crashSeed(t)
	t.Logf("seed %d (PACKLEDGER_CRASH_SEED=%d draws the same scripts and kill delays again)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, 0))
	dataDir := filepath.Join(t.TempDir(), "data")
	users := crashUsers(t)

	load := &crashLoad{
		hc:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		payQ: make(chan *crashPkg, crashMaxPackages),
	}
	for i := range crashMaxPackages {
		load.vins = append(load.vins, vin(t, "LSVCR218", fmt.Sprintf("%08d", 10000000+i)))
	}
	var cancel context.CancelFunc
	load.ctx, cancel = context.WithTimeout(context.Background(), crashLoadTimeout)
	defer cancel()

	// Life 0: the plan, defined before the load starts.
	srv := startServer(t, dataDir, "--users", users.file)
	watch := watchStream(t, srv.NATS)
	epochs := []*crashEpoch{{n: 0, url: srv.HTTP, head: watch.head(t)}}
	load.cur.Store(epochs[0])
	manager := load.client("crash-manager", users.tokens["crash-manager"], seed)
	plan := manager.newEntry("plan", nil, "/v1/plans", map[string]any{
		"code": crashPlan, "name": "4 oil changes and 2 inspections",
		"entitlements": []map[string]any{
			{"service": "oil_change", "count": crashCounts["oil_change"], "list_price": "480.00"},
			{"service": "inspection", "count": crashCounts["inspection"], "list_price": "200.00"},
		},
		"price": crashMoney(crashPriceCents), "validity_months": 24,
		"refund_policy": "pro_rata", "cancellation_fee_rate": "0.10",
		"service_interval": map[string]any{"months": 6, "km": 5000},
	})
	plan.wantStatus = http.StatusCreated
	manager.send(load.ctx, plan)
	require.True(t, plan.asExpected(), "define the plan: %s", plan)

	// The clients: advisors sell and redeem, cashiers pay.
	var sellers, clients sync.WaitGroup
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("crash-advisor-%d", i)
		a := &crashAdvisor{crashClient: load.client(id, users.tokens[id], seed+uint64(i)), ready: make(chan *crashPkg, crashMaxPackages)}
		sellers.Add(1)
		clients.Add(1)
		go func() { defer clients.Done(); a.run(&sellers) }()
	}
	for i := 1; i <= 2; i++ {
		id := fmt.Sprintf("crash-cashier-%d", i)
		c := &crashCashier{crashClient: load.client(id, users.tokens[id], seed+uint64(10+i))}
		clients.Add(1)
		go func() { defer clients.Done(); c.run() }()
	}
	go func() { sellers.Wait(); close(load.payQ) }()
	loadDone := make(chan struct{})
	go func() { clients.Wait(); close(loadDone) }()

	// The killer, in the test's own goroutine (startServer and Kill may
	// fail the test).
	k := &crashKiller{t: t, rng: rng, dataDir: dataDir, users: users, srv: srv, watch: watch, epochs: epochs,
		used: map[string]bool{srv.HTTP: true}}
	kills := k.run(load, loadDone)
	srv, epochs = k.srv, k.epochs
	select {
	case <-loadDone:
	case <-time.After(crashLoadTimeout + 2*crashAttemptTimeout):
		t.Fatalf("the clients did not finish within %s", crashLoadTimeout+2*crashAttemptTimeout)
	}
	loadTook := time.Since(began)
	for _, line := range kills {
		t.Log(line)
	}

	// A request left without a definite answer is a failure; it is sent
	// once more to the last life so that the checks below can still judge
	// the ledger.
	entries := load.entries
	for _, e := range entries {
		if e.outcome == crashUnknown {
			t.Errorf("no definite answer within the bounds: %s", e)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			e.client.send(ctx, e)
			cancel()
		}
	}
	for _, p := range load.problems {
		t.Error(p)
	}
	for _, e := range entries {
		if !e.asExpected() {
			t.Errorf("unexpected answer: %s", e)
		}
	}

	checksBegan := time.Now()
	figures := checkCrashLedger(t, srv, load, users, epochs)

	// The stopped ledger, as an auditor checks it.
	srv.Term()
	out, err := exec.Command(binPath, "verify", "--data", dataDir, "--json").Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Errorf("packledger verify --data exited %d: %s\nstderr:\n%s", ee.ExitCode(), out, ee.Stderr)
	} else {
		require.NoError(t, err)
	}
	var rep struct {
		OK       bool              `json:"ok"`
		Events   int               `json:"events"`
		Packages int               `json:"packages"`
		Findings []json.RawMessage `json:"findings"`
	}
	require.NoError(t, json.Unmarshal(out, &rep), "verify --json: %s", out)
	require.True(t, rep.OK, "packledger verify --data: %s", out)
	require.Empty(t, rep.Findings)
	require.Equal(t, figures.records, rep.Events, "verify --data applies every record of the stream")
	require.Equal(t, figures.packages, rep.Packages)

	// What the run did, and that the kills hit requests in flight.
	var retried, acrossKill, failures int
	refusals := map[string]int{}
	acked := map[string]int{}
	for _, e := range entries {
		if e.attempts > 1 {
			retried++
			failures += e.attempts - 1
		}
		if e.answerEpoch > e.firstEpoch {
			acrossKill++
		}
		if e.outcome == crashRefused {
			refusals[e.code]++
		} else if e.outcome == crashAcked {
			acked[e.kind]++
		}
	}
	t.Logf("%d kills; %d requests (acknowledged %v, refused %v); %d retried (%d failed attempts), %d of them answered by a later life than the one first asked: %d writes whose first answer was lost after the write landed (%v; %d seen live), %d writes done by the retry",
		len(kills), len(entries), acked, refusals, retried, failures, acrossKill, figures.lost, figures.lostKind, load.lostLive.Load(), figures.resent)
	t.Logf("%d packages, %d records on the stream; start, load and kills %s, checks and verify %s, whole test %s",
		figures.packages, figures.records, loadTook.Round(time.Millisecond), time.Since(checksBegan).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	require.GreaterOrEqual(t, len(kills), crashMinKills, "the load ended before the killer was done")
	require.Positive(t, acrossKill, "no request was retried across a kill: the kills proved nothing")
	require.Positive(t, figures.lost, "in %d kills no answer was lost after its write landed: the retries' idempotency went untested", len(kills))
}

// crashKiller kills the server and starts it again on the same data.
type crashKiller struct {
	t       *testing.T
	rng     *mrand.Rand
	dataDir string
	users   crashUserSet
	srv     *proc
	watch   *crashWatch
	epochs  []*crashEpoch
	used    map[string]bool // every life's HTTP address
}

// run kills the server crashMinKills times, and more, up to
// crashMaxKills, until an answer has been seen lost after its write
// landed; each time after 150-900 ms of load, every other time just after
// a write was stored. It stops early if the load ends, and returns a line
// per kill.
func (k *crashKiller) run(load *crashLoad, loadDone <-chan struct{}) []string {
	t := k.t
	defer func() {
		load.killerDone.Store(true)
		k.watch.close()
	}()
	var kills []string
	for len(kills) < crashMaxKills {
		if len(kills) >= crashMinKills && load.lostLive.Load() > 0 {
			break
		}
		delay := time.Duration(150+k.rng.IntN(750)) * time.Millisecond
		select {
		case <-time.After(delay): // load shaping, not synchronisation
		case <-loadDone:
			return kills
		case <-load.ctx.Done():
			return kills
		}
		how := "at a random moment"
		if len(kills)%2 == 1 {
			// Following a stored write as closely as it can, so that some
			// answers are lost after their write landed.
			if k.watch.nextWrite(crashOnWriteWait) {
				how = "just after a write was stored"
			} else {
				how = fmt.Sprintf("with no write stored in %s", crashOnWriteWait)
			}
		}
		k.srv.Kill()
		k.watch.close()
		downAt := time.Now()
		k.start()
		ep := &crashEpoch{n: len(kills) + 1, url: k.srv.HTTP, head: k.watch.head(t)}
		k.epochs = append(k.epochs, ep)
		kills = append(kills, fmt.Sprintf("kill %d after %s of load, %s; back in %s at seq %d",
			ep.n, delay, how, time.Since(downAt).Round(time.Millisecond), ep.head))
		load.cur.Store(ep) // only now can anyone write again: the head is exact
	}
	return kills
}

// start starts the next life. Clients still retrying at an earlier life's
// address must not reach it before its head is read: a life that got such
// an address is killed before anyone is told of it, and so counts, like
// whatever reached it, as part of the life before.
func (k *crashKiller) start() {
	for {
		k.srv = startServer(k.t, k.dataDir, "--users", k.users.file)
		if !k.used[k.srv.HTTP] {
			break
		}
		k.t.Logf("a new life took the earlier address %s: killed unannounced", k.srv.HTTP)
		k.srv.Kill()
	}
	k.used[k.srv.HTTP] = true
	k.watch = watchStream(k.t, k.srv.NATS)
}

// crashSeed is PACKLEDGER_CRASH_SEED, or a fresh seed.
func crashSeed(t *testing.T) uint64 {
	if s := os.Getenv("PACKLEDGER_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "PACKLEDGER_CRASH_SEED")
		return n
	}
	return uint64(time.Now().UnixNano())
}

// crashUserSet is a users file with fixed tokens, so that clients keep
// their identity (and so their idempotency keys) across restarts.
type crashUserSet struct {
	file   string
	tokens map[string]string // by user id
}

func crashUsers(t *testing.T) crashUserSet {
	t.Helper()
	set := crashUserSet{file: filepath.Join(t.TempDir(), "users.json"), tokens: map[string]string{}}
	type user struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Role        string `json:"role"`
		Store       string `json:"store"`
		TokenSHA256 string `json:"token_sha256"`
	}
	var list []user
	for _, u := range [][2]string{
		{"crash-manager", "manager"}, {"crash-auditor", "auditor"},
		{"crash-cashier-1", "cashier"}, {"crash-cashier-2", "cashier"},
		{"crash-advisor-1", "advisor"}, {"crash-advisor-2", "advisor"}, {"crash-advisor-3", "advisor"},
	} {
		// The demo users are demo-<role>: no clash.
		b := make([]byte, 24)
		_, err := rand.Read(b)
		require.NoError(t, err)
		token := hex.EncodeToString(b)
		sum := sha256.Sum256([]byte(token))
		set.tokens[u[0]] = token
		list = append(list, user{ID: u[0], Name: u[0], Role: u[1], Store: "main", TokenSHA256: hex.EncodeToString(sum[:])})
	}
	b, err := json.Marshal(list)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(set.file, b, 0o600))
	return set
}

// crashEpoch is one life of the server: its number (0 before the first
// kill), its HTTP address, and the stream's last sequence when it began to
// answer. Every record up to head was written by an earlier life.
type crashEpoch struct {
	n    int
	url  string
	head uint64
}

// crashWatch is a plain NATS client on one life's embedded server.
type crashWatch struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func watchStream(t *testing.T, url string) *crashWatch {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("crash-test"), nats.NoReconnect(), nats.Timeout(10*time.Second))
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return &crashWatch{nc: nc, js: js}
}

func (w *crashWatch) head(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	return info.State.LastSeq
}

// nextWrite waits up to d for a record to be stored after now.
func (w *crashWatch) nextWrite(d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, "LEDGER")
	if err != nil {
		return false
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return false
	}
	_, err = c.Next(jetstream.FetchMaxWait(d))
	return err == nil
}

func (w *crashWatch) close() { w.nc.Close() }
