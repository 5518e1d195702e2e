package test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// runPlainJetStream starts a NATS server with JetStream and no
// authentication at all on 127.0.0.1, as a dealer's own cluster might be
// run carelessly: any client may publish onto the ledger's subjects. (The
// program's embedded server, and eventstoretest.RunServer which starts it,
// let anonymous clients read only, so a forgery could not even be written
// there.)
func runPlainJetStream(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		ServerName: "plain-js",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	})
	require.NoError(t, err)
	go ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		t.Fatalf("plain JetStream server not ready within %s", readyTimeout)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	require.True(t, strings.HasPrefix(ns.ClientURL(), "nats://127.0.0.1:"), "client URL %q", ns.ClientURL())
	return ns
}

// foreignFinding is one entry of /healthz's projections.findings or of
// /v1/audit/verify's findings, reduced to what the test holds it to.
type foreignFinding struct {
	Package string
	Seq     int
	Problem string
}

func findingsOf(t *testing.T, list []any) []foreignFinding {
	t.Helper()
	out := make([]foreignFinding, 0, len(list))
	for _, f := range list {
		m, ok := f.(map[string]any)
		require.True(t, ok, "finding %v is not an object", f)
		pkg, _ := m["package"].(string)
		problem, _ := m["problem"].(string)
		out = append(out, foreignFinding{Package: pkg, Seq: num(t, m, "seq"), Problem: problem})
	}
	return out
}

// requireTwoForeign requires exactly the forged and the replayed event as
// findings, each naming the package and its stream sequence, and a problem
// that says why it is foreign.
func requireTwoForeign(t *testing.T, where string, got []foreignFinding, pkg string, forgedSeq, replaySeq uint64) {
	t.Helper()
	require.Len(t, got, 2, "%s: exactly the two foreign events: %+v", where, got)
	bySeq := map[int]foreignFinding{}
	for _, f := range got {
		bySeq[f.Seq] = f
	}
	forged, ok := bySeq[int(forgedSeq)]
	require.True(t, ok, "%s: no finding at the forgery's seq %d: %+v", where, forgedSeq, got)
	replay, ok := bySeq[int(replaySeq)]
	require.True(t, ok, "%s: no finding at the replay's seq %d: %+v", where, replaySeq, got)
	for _, f := range []foreignFinding{forged, replay} {
		require.Equal(t, pkg, f.Package, "%s: finding at seq %d names the package", where, f.Seq)
		require.NotEmpty(t, f.Problem, "%s: finding at seq %d says what is wrong", where, f.Seq)
	}
	// The forgery fails its signature; the replay carries a good signature
	// but is off the chain. Either way it must not be for want of decoding.
	require.Contains(t, strings.ToLower(forged.Problem), "sign", "%s: the forgery is caught by its signature: %q", where, forged.Problem)
	require.Contains(t, strings.ToLower(replay.Problem), "prev", "%s: the replay is caught by its chain: %q", where, replay.Problem)
}

// healthFindings reads /healthz's projections.findings.
func (p *proc) healthFindings() []foreignFinding {
	p.t.Helper()
	status, h := p.do(http.MethodGet, "/healthz", "", nil)
	require.Equal(p.t, http.StatusOK, status, "/healthz: %v", h)
	return findingsOf(p.t, arr(p.t, obj(p.t, h, "projections"), "findings"))
}

// waitHealthFindings polls /healthz until it names n findings.
func (p *proc) waitHealthFindings(n int) []foreignFinding {
	p.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var got []foreignFinding
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		if got = p.healthFindings(); len(got) >= n {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("/healthz never named %d findings within %s: %+v\nstderr:\n%s", n, readyTimeout, got, p.stderr)
	return nil
}

// TestE2E_ForeignEventsNeverMoney runs the real binary on an external,
// unauthenticated JetStream server and has a plain nats.go client publish
// onto a package's subject a forged VisitRedeemed (a well-formed envelope
// on the chain's head, signed with a key that is not the ledger's) and a
// replayed byte-for-byte copy of the package's real VisitRedeemed with its
// real signature. Neither may move money or visits, now or after a
// SIGKILL and restart; /healthz and /v1/audit/verify name both; the
// package's next real redemption still works and chains from its last
// valid event.
func TestE2E_ForeignEventsNeverMoney(t *testing.T) {
	ns := runPlainJetStream(t)
	natsURL := ns.ClientURL()
	dataDir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "ledger.key")
	// A server on --nats needs its key made first, to share with the others.
	initOut, err := exec.Command(binPath, "key", "--init", "--key-file", keyFile).CombinedOutput()
	require.NoError(t, err, "%s", initOut)
	flags := []string{"--nats", natsURL, "--key-file", keyFile}

	srv := startServer(t, dataDir, flags...)
	srv.waitCaughtUp()
	require.Equal(t, natsURL, srv.NATS, "the server says it uses the given NATS")

	// A real sale of OIL4 (4 × 480.00 at 85% = 1632.00, 408.00 a visit),
	// paid in full, one visit redeemed.
	pkg := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
		"plan":     "OIL4",
		"customer": map[string]any{"id": "C-4040", "name": "Sun Li", "phone": "13900139000"},
		"vehicle":  map[string]any{"vin": vin(t, "LSVAU218", "N4040404"), "plate": "沪B40404", "model": "Passat"},
	})
	id := str(t, pkg, "id")
	require.Equal(t, "1632.00", str(t, pkg, "price"))
	pay := srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+id+"/payments",
		map[string]any{"amount": "1632.00", "method": "card", "receipt": "R-FORGE-1"})
	require.Equal(t, "active", str(t, obj(t, pay, "package"), "status"))
	red := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+id+"/redemptions",
		map[string]any{"service": "oil_change", "repair_order": "RO-4040-1", "mileage": 5100})
	require.Equal(t, "408.00", str(t, obj(t, red, "redemption"), "value"))
	require.Equal(t, 0, num(t, obj(t, red, "redemption"), "unit"))
	before := srv.mustAs(http.StatusOK, "manager", http.MethodGet, "/v1/packages/"+id, nil)
	requirePackageFigures(t, "before", before, "1224.00", "408.00", 3)
	realPkgSeq := num(t, before, "seq")

	// A plain NATS client with no credentials at all.
	nc, err := nats.Connect(natsURL, nats.Name("plain-forger"), nats.Timeout(10*time.Second))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	subject := "ledger.demo.packages." + id

	// The package's real last event: the redemption.
	realMsg, err := stream.GetLastMsgForSubject(ctx, subject)
	require.NoError(t, err)
	require.Equal(t, "VisitRedeemed", realMsg.Header.Get("Ledger-Type"))
	require.Equal(t, realPkgSeq, int(realMsg.Sequence), "the package's seq is its last event's")
	realHash := realMsg.Header.Get("Ledger-Hash")
	sum := sha256.Sum256(realMsg.Data)
	require.Equal(t, hex.EncodeToString(sum[:]), realHash, "Ledger-Hash is the SHA-256 of the body")
	require.NotEmpty(t, realMsg.Header.Get("Ledger-Sig"))
	realKeyID := realMsg.Header.Get("Ledger-Key")
	require.NotEmpty(t, realKeyID)
	var realEnv map[string]any
	decodeJSON(t, realMsg.Data, &realEnv)
	realPrev, _ := realEnv["prev"].(string)
	require.NotEmpty(t, realPrev, "the redemption chains from the activation")

	// (a) A forged VisitRedeemed: the real envelope's shape, a new event and
	// redemption id, the next unused unit, chained on the real head, and
	// signed with the forger's own ed25519 key while claiming the ledger's
	// key id.
	forged := cloneJSON(t, realEnv)
	forged["id"] = uuid.Must(uuid.NewV7()).String()
	forged["prev"] = realHash
	now := time.Now().UTC().Format(time.RFC3339Nano)
	forged["business_time"], forged["recorded_at"] = now, now
	delete(forged, "idempotency_key")
	delete(forged, "request")
	data, ok := forged["data"].(map[string]any)
	require.True(t, ok, "the envelope's data is an object: %v", forged["data"])
	data["redemption_id"] = uuid.Must(uuid.NewV7()).String()
	data["unit"] = 1
	data["repair_order"] = "RO-FORGED-1"
	forgedBody, err := json.Marshal(forged)
	require.NoError(t, err)
	fsum := sha256.Sum256(forgedBody)
	_, forgerKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	fh := nats.Header{}
	fh.Set("Ledger-Hash", hex.EncodeToString(fsum[:]))
	fh.Set("Ledger-Type", "VisitRedeemed")
	fh.Set("Ledger-Sig", base64.StdEncoding.EncodeToString(ed25519.Sign(forgerKey, fsum[:])))
	fh.Set("Ledger-Key", realKeyID)
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: fh, Data: forgedBody})
	require.NoError(t, err, "an unauthenticated client can write onto the ledger's subject of this server")
	forgedSeq := ack.Sequence

	// (b) A replayed copy of the real redemption: same body, same ledger
	// headers (its real signature), no Nats-Msg-Id.
	rh := nats.Header{}
	for _, k := range []string{"Ledger-Hash", "Ledger-Sig", "Ledger-Key", "Ledger-Type"} {
		rh.Set(k, realMsg.Header.Get(k))
	}
	ack, err = js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: rh, Data: bytes.Clone(realMsg.Data)})
	require.NoError(t, err)
	require.False(t, ack.Duplicate)
	replaySeq := ack.Sequence
	require.Greater(t, replaySeq, forgedSeq)
	t.Logf("package %s: real redemption at seq %d, forgery at seq %d, replay at seq %d", id, realMsg.Sequence, forgedSeq, replaySeq)

	// The running server names both and moves nothing.
	requireTwoForeign(t, "/healthz", srv.waitHealthFindings(2), id, forgedSeq, replaySeq)
	srv.waitCaughtUp()
	requireUnchanged := func(where string, p *proc) {
		t.Helper()
		got := p.mustAs(http.StatusOK, "manager", http.MethodGet, "/v1/packages/"+id, nil)
		requirePackageFigures(t, where, got, "1224.00", "408.00", 3)
		require.Equal(t, realPkgSeq, num(t, got, "seq"), "%s: the package's seq is still its last valid event's", where)
		require.Len(t, arr(t, got, "redemptions"), 1, "%s: one redemption", where)
		require.Len(t, arr(t, got, "units"), 4)
		for i, u := range arr(t, got, "units") {
			used := u.(map[string]any)["redemption_id"] != nil
			require.Equal(t, i == 0, used, "%s: only unit 0 is used, unit %d", where, i)
		}
		h := p.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/packages/"+id+"/history", nil)
		evs := arr(t, h, "events")
		require.Len(t, evs, 4, "%s: sold, paid, activated, redeemed; nothing foreign", where)
		for _, e := range evs {
			s := num(t, e.(map[string]any), "seq")
			require.NotContains(t, []int{int(forgedSeq), int(replaySeq)}, s, "%s: history shows a foreign event", where)
		}
	}
	requireUnchanged("live", srv)

	// SIGKILL, restart on the same flags: rebuilt from the log alone.
	srv.Kill()
	srv = startServer(t, dataDir, flags...)
	srv.waitCaughtUp()
	requireUnchanged("after restart", srv)
	requireTwoForeign(t, "/healthz after restart", srv.waitHealthFindings(2), id, forgedSeq, replaySeq)

	// The auditor's verify names exactly the two.
	verify := func(where string) map[string]any {
		t.Helper()
		v := srv.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/audit/verify", nil)
		require.Equal(t, false, v["ok"], "%s: verify is not ok with foreign events on the stream: %v", where, v)
		list := arr(t, v, "findings")
		for _, f := range list {
			require.Equal(t, "demo", f.(map[string]any)["dealer"], "%s: finding names the dealer", where)
		}
		requireTwoForeign(t, where, findingsOf(t, list), id, forgedSeq, replaySeq)
		return v
	}
	v := verify("/v1/audit/verify")
	require.Equal(t, "1224.00", str(t, obj(t, v, "totals"), "liability"))

	// A later real redemption works, takes unit 1 (the forgery took
	// nothing) and 408.00 off the liability.
	red2 := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+id+"/redemptions",
		map[string]any{"service": "oil_change", "repair_order": "RO-4040-2", "mileage": 10200})
	require.Equal(t, "408.00", str(t, obj(t, red2, "redemption"), "value"))
	require.Equal(t, 1, num(t, obj(t, red2, "redemption"), "unit"))
	requirePackageFigures(t, "second redemption's answer", obj(t, red2, "package"), "816.00", "816.00", 2)
	after := srv.mustAs(http.StatusOK, "manager", http.MethodGet, "/v1/packages/"+id, nil)
	requirePackageFigures(t, "after the second redemption", after, "816.00", "816.00", 2)

	// Its event chains from the last valid event: the real first redemption.
	newest, err := stream.GetLastMsgForSubject(ctx, subject)
	require.NoError(t, err)
	require.Greater(t, newest.Sequence, replaySeq)
	require.Equal(t, "VisitRedeemed", newest.Header.Get("Ledger-Type"))
	require.Equal(t, realKeyID, newest.Header.Get("Ledger-Key"), "signed with the ledger's key")
	var newestEnv map[string]any
	decodeJSON(t, newest.Data, &newestEnv)
	require.Equal(t, realHash, newestEnv["prev"], "the next write chains from the real redemption, not from a foreign event")
	require.Equal(t, int(newest.Sequence), num(t, after, "seq"))

	v = verify("/v1/audit/verify after the second redemption")
	require.Equal(t, "816.00", str(t, obj(t, v, "totals"), "liability"))
	requireTwoForeign(t, "/healthz at the end", srv.healthFindings(), id, forgedSeq, replaySeq)

	// The command-line verify, as an auditor would run it: from the NATS
	// with the public key, comparing with the live server's answers. It
	// names both foreign events, finds nothing else, and exits non-zero.
	keyOut, err := exec.Command(binPath, "key", "--key-file", keyFile).Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(keyOut)), "\n")
	pub := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(pub, "ed25519:"), "key prints the public key last: %s", keyOut)
	cli := exec.Command(binPath, "verify", "--nats", natsURL, "--pubkey", pub, "--json",
		"--server", srv.HTTP, "--token", srv.Tokens["AUDITOR"])
	out, err := cli.Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "verify must fail on foreign events: %s", out)
	var rep struct {
		OK       bool
		Findings []struct {
			Package string
			Seq     uint64
		}
	}
	decodeJSON(t, out, &rep)
	require.False(t, rep.OK)
	var got [][2]any
	for _, f := range rep.Findings {
		got = append(got, [2]any{f.Package, f.Seq})
	}
	require.Equal(t, [][2]any{{id, uint64(forgedSeq)}, {id, uint64(replaySeq)}}, got, "packledger verify --nats names exactly the two foreign events")
}

// requirePackageFigures checks a package's liability, recognized amount
// and remaining oil changes.
func requirePackageFigures(t *testing.T, where string, p map[string]any, liability, recognized string, remaining int) {
	t.Helper()
	require.Equal(t, "active", str(t, p, "status"), where)
	require.Equal(t, "1632.00", str(t, p, "paid"), where)
	require.Equal(t, liability, str(t, p, "liability"), "%s: liability", where)
	require.Equal(t, recognized, str(t, p, "recognized"), "%s: recognized", where)
	require.Equal(t, remaining, num(t, obj(t, p, "remaining"), "oil_change"), "%s: remaining visits", where)
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	require.NoError(t, d.Decode(v), "%s", b)
}

// cloneJSON deep-copies a decoded JSON object.
func cloneJSON(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var out map[string]any
	decodeJSON(t, b, &out)
	return out
}
