package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// TestE2E_StreamAsPlainClient looks at what the real program stored from
// the outside, with nothing but a plain NATS client on the printed client
// URL: the stream's configuration, one subject per package, receipt-claim
// subjects, refusal of delete and purge, and every subject's hash chain.
func TestE2E_StreamAsPlainClient(t *testing.T) {
	srv := startServer(t, t.TempDir())
	srv.waitCaughtUp()

	// A sale paid in two payments (the second activates it), one with a
	// receipt number that is not a valid subject token as typed; and a
	// second sale, not yet paid.
	pkgA := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
		"plan":     "OIL4",
		"customer": map[string]any{"id": "C-77", "name": "Zhao Min", "phone": "13700137000"},
		"vehicle":  map[string]any{"vin": vin(t, "LSGPC54U", "F1234567"), "plate": "沪C11111", "model": "Excelle"},
	})
	idA := str(t, pkgA, "id")
	srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+idA+"/payments",
		map[string]any{"amount": "1000.00", "method": "cash", "receipt": "R-S1"})
	pay := srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+idA+"/payments",
		map[string]any{"amount": "632.00", "method": "card", "receipt": "2026/001.A"})
	require.Equal(t, "active", str(t, obj(t, pay, "package"), "status"))
	pkgB := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
		"plan":     "OIL6",
		"customer": map[string]any{"id": "C-78", "name": "Qian Jun", "phone": "13700137001"},
		"vehicle":  map[string]any{"vin": vin(t, "LFMAPE2C", "K0011223"), "plate": "沪D22222", "model": "Corolla"},
	})
	idB := str(t, pkgB, "id")
	// A receipt number already used elsewhere is refused, and claims nothing.
	status, body := srv.as("cashier", http.MethodPost, "/v1/packages/"+idB+"/payments",
		map[string]any{"amount": "100.00", "method": "cash", "receipt": "R-S1"})
	require.Equal(t, http.StatusConflict, status, "%v", body)

	// What the API says each package's history is, to hold the stream to.
	histLen := map[string]int{}
	for _, id := range []string{idA, idB} {
		h := srv.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/packages/"+id+"/history", nil)
		histLen[id] = len(arr(t, h, "events"))
	}
	require.Equal(t, 4, histLen[idA], "sold, paid, paid, activated")
	require.Equal(t, 1, histLen[idB], "sold")

	// A plain NATS client, nothing of packledger's code.
	// The embedded server's anonymous user may read but not write: a write
	// is a permissions violation, reported asynchronously while the request
	// itself times out.
	violations := make(chan error, 64)
	nc, err := nats.Connect(srv.NATS, nats.Name("plain-auditor"), nats.Timeout(10*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
				select {
				case violations <- err:
				default:
				}
			}
		}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	stream, err := js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	cfg := info.Config
	require.Equal(t, jetstream.FileStorage, cfg.Storage, "file storage")
	require.True(t, cfg.DenyDelete, "deny_delete")
	require.True(t, cfg.DenyPurge, "deny_purge")
	require.Equal(t, []string{"ledger.demo.>"}, cfg.Subjects)
	require.Zero(t, cfg.MaxAge, "no max age: a ledger keeps every record")
	require.LessOrEqual(t, cfg.MaxMsgs, int64(0), "no message limit")
	require.LessOrEqual(t, cfg.MaxBytes, int64(0), "no size limit")
	require.LessOrEqual(t, cfg.MaxMsgsPerSubject, int64(0), "no per-subject limit")
	total := info.State.Msgs
	require.NotZero(t, total)

	// One subject per package, holding exactly its history.
	pinfo, err := stream.Info(ctx, jetstream.WithSubjectFilter("ledger.demo.packages.>"))
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{
		"ledger.demo.packages." + idA: uint64(histLen[idA]),
		"ledger.demo.packages." + idB: uint64(histLen[idB]),
	}, pinfo.State.Subjects)

	// One claim subject per receipt number recorded, the number encoded as
	// a subject token; the refused duplicate added nothing.
	rinfo, err := stream.Info(ctx, jetstream.WithSubjectFilter("ledger.demo.receipts.>"))
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{
		"ledger.demo.receipts.R-S1":           1,
		"ledger.demo.receipts.2026%2F001%2EA": 1,
	}, rinfo.State.Subjects)

	// A plain client cannot delete a message or purge the stream: the
	// server itself refuses (an API error, not a timeout).
	first := info.State.FirstSeq
	refused(t, violations, func(ctx context.Context) error { return stream.DeleteMsg(ctx, first) }, "deleting a message")
	refused(t, violations, func(ctx context.Context) error { return stream.SecureDeleteMsg(ctx, first) }, "erasing a message")
	refused(t, violations, func(ctx context.Context) error { return stream.Purge(ctx) }, "purging the stream")
	refused(t, violations, func(ctx context.Context) error {
		return stream.Purge(ctx, jetstream.WithPurgeSubject("ledger.demo.packages."+idA))
	}, "purging a package's subject")
	refused(t, violations, func(ctx context.Context) error { return stream.Purge(ctx, jetstream.WithPurgeKeep(1)) }, "trimming the stream")
	info2, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, total, info2.State.Msgs, "nothing was removed")
	require.Equal(t, first, info2.State.FirstSeq)
	require.Zero(t, info2.State.NumDeleted)

	// Every message, in stream order: a JSON envelope whose hash header is
	// the SHA-256 of its body and whose "prev" is the hash header of the
	// previous message on its subject (empty for a subject's first).
	require.LessOrEqual(t, info2.State.LastSeq-first+1, uint64(10000), "bounded read")
	lastHash := map[string]string{}
	perSubject := map[string]int{}
	var packageSubjects []string
	for seq := first; seq <= info2.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		require.NoError(t, err, "seq %d", seq)
		hash := msg.Header.Get("Ledger-Hash")
		require.NotEmpty(t, hash, "seq %d on %s has no Ledger-Hash header", seq, msg.Subject)
		sum := sha256.Sum256(msg.Data)
		require.Equal(t, hex.EncodeToString(sum[:]), hash, "seq %d: Ledger-Hash is the SHA-256 of the body", seq)

		var env map[string]any
		d := json.NewDecoder(bytes.NewReader(msg.Data))
		d.UseNumber()
		require.NoError(t, d.Decode(&env), "seq %d body is not a JSON object: %s", seq, msg.Data)
		prev, ok := env["prev"].(string)
		require.True(t, ok, "seq %d: no string \"prev\" in %s", seq, msg.Data)
		require.Equal(t, lastHash[msg.Subject], prev,
			"seq %d on %s: prev must be the previous message's Ledger-Hash on the subject", seq, msg.Subject)
		lastHash[msg.Subject] = hash
		perSubject[msg.Subject]++

		require.Equal(t, str(t, env, "type"), msg.Header.Get("Ledger-Type"), "seq %d: Ledger-Type header", seq)
		require.Equal(t, "demo", str(t, env, "dealer"), "seq %d", seq)
		require.NotEmpty(t, str(t, env, "id"), "seq %d: event id", seq)
		require.NotEmpty(t, str(t, obj(t, env, "actor"), "role"), "seq %d: actor", seq)
		require.Contains(t, env, "data", "seq %d", seq)
		if id := str(t, env, "aggregate"); id == idA || id == idB {
			// A package's every event is on that package's one subject.
			require.Equal(t, "ledger.demo.packages."+id, msg.Subject, "seq %d: event of package %s", seq, id)
			if perSubject[msg.Subject] == 1 {
				packageSubjects = append(packageSubjects, msg.Subject)
			}
		}
	}
	require.Equal(t, int(total), countAll(perSubject), "every stored message was read")
	sort.Strings(packageSubjects)
	want := []string{"ledger.demo.packages." + idA, "ledger.demo.packages." + idB}
	sort.Strings(want)
	require.Equal(t, want, packageSubjects)
	require.Equal(t, histLen[idA], perSubject["ledger.demo.packages."+idA])
	require.Equal(t, histLen[idB], perSubject["ledger.demo.packages."+idB])
	require.Equal(t, 1, perSubject["ledger.demo.plans.OIL4"], "the demo plan's definition")

	// Last, as it may destroy the stream: nor can a plain client delete
	// the whole stream, which would take every record with it.
	t.Run("plain client cannot delete the stream", func(t *testing.T) {
		refused(t, violations, func(ctx context.Context) error { return js.DeleteStream(ctx, "LEDGER") }, "deleting stream LEDGER")
		refused(t, violations, func(ctx context.Context) error {
			_, err := js.Publish(ctx, "ledger.demo.packages."+idA, []byte(`{"type":"VisitRedeemed"}`))
			return err
		}, "publishing onto a package's subject")
		after, err := stream.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, total, after.State.Msgs)
	})

	srv.Term()
}

// refused requires the server to refuse a write by a plain client: either
// JetStream's own refusal (err_code 10057 for delete, 10110 for purge) or a
// permissions violation of the anonymous read-only user, never a success.
func refused(t *testing.T, violations <-chan error, write func(context.Context) error, what string) {
	t.Helper()
	// A refused request gets no answer, only the violation: do not wait long.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := write(ctx)
	require.Error(t, err, "%s must be refused", what)
	if strings.Contains(err.Error(), "not permitted") {
		t.Logf("%s: refused by JetStream: %v", what, err)
		return
	}
	select {
	case v := <-violations:
		t.Logf("%s: refused: %v", what, v)
	case <-time.After(3 * time.Second):
		t.Fatalf("%s: failed with %v, but neither JetStream nor the server's permissions refused it", what, err)
	}
}

// countAll sums the messages counted per subject.
func countAll(per map[string]int) int {
	n := 0
	for _, c := range per {
		n += c
	}
	return n
}
