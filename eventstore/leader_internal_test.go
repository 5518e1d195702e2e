package eventstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// internalStore is a store on a fresh embedded server, for tests that
// read the store's unexported reads side by side (eventstoretest cannot
// be used here: it imports this package).
func internalStore(t *testing.T) (*Store, *nats.Conn, *Signer) {
	t.Helper()
	dir := t.TempDir()
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "js"), SyncAlways: true})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	signer, err := LoadOrCreateKey(filepath.Join(dir, "ledger.key"))
	require.NoError(t, err)
	st, err := Open(context.Background(), nc, Config{Dealer: "demo", Signer: signer})
	require.NoError(t, err)
	return st, nc, signer
}

// appendAll writes each slice of events as one command on the package.
func appendAll(t *testing.T, st *Store, id uuid.UUID, cmds ...[]domain.Event) {
	t.Helper()
	meta := Meta{Store: "main", Actor: domain.Actor{ID: "a", Role: domain.RoleCashier}}
	now := func() time.Time { return time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC) }
	for i, evs := range cmds {
		_, err := st.Update(context.Background(), st.Subjects().Package(id.String()), meta, now, func([]domain.Envelope) (Change, error) {
			return st.Subjects().PackageChange(id, evs), nil
		})
		require.NoError(t, err, "command %d", i)
	}
}

// TestStore_LeaderReadsMatchDirectGets: reading a subject one message at
// a time through the stream's leader, as a claim is looked for again
// before a payment is called foreign, gives what the batched direct gets
// give: the same events, foreign ones and last sequence.
func TestStore_LeaderReadsMatchDirectGets(t *testing.T) {
	st, nc, _ := internalStore(t)
	ctx := context.Background()
	id := uuid.New()
	subject := st.Subjects().Package(id.String())
	appendAll(t, st, id,
		[]domain.Event{domain.PackageSold{PackageID: id, Price: domain.MustMoney("2.00")}},
		[]domain.Event{domain.PaymentRecorded{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: "R-1"}},
		[]domain.Event{domain.PaymentRecorded{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: "R-2"}})
	// A message that is not the ledger's own, in the middle.
	_, err := nc.Request(subject, []byte(`{"not":"an event"}`), 5*time.Second)
	require.NoError(t, err)

	direct, err := st.loadSubject(ctx, subject, st.loadFrom)
	require.NoError(t, err)
	leader, err := st.loadSubject(ctx, subject, st.leaderFrom)
	require.NoError(t, err)
	require.Len(t, direct.Events, 3)
	require.Len(t, direct.Foreign, 1)
	require.Equal(t, direct, leader)

	none, err := st.loadSubject(ctx, st.Subjects().Receipt("R-NONE"), st.leaderFrom)
	require.NoError(t, err)
	require.Empty(t, none.Events)
	require.Zero(t, none.LastSeq)
}

// TestStore_UnreadableClaimFailsTheLoad: a payment whose receipt claim
// cannot be read (NATS went away mid-load) makes the load fail. Taken for
// foreign, it would drop out of the history a write is decided on, and
// that write would chain past it: the ledger's own payment cut off.
func TestStore_UnreadableClaimFailsTheLoad(t *testing.T) {
	st, nc, signer := internalStore(t)
	ctx := context.Background()
	id := uuid.New()
	subject := st.Subjects().Package(id.String())
	appendAll(t, st, id,
		[]domain.Event{domain.PackageSold{PackageID: id, Price: domain.MustMoney("2.00")}},
		[]domain.Event{domain.PaymentRecorded{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: "R-1"}})
	st2, err := Open(ctx, nc, Config{Dealer: "demo", Signer: signer}) // no claims cached
	require.NoError(t, err)
	closeAfter := func(ctx context.Context, subject string, start uint64) ([]rawRecord, uint64, uint64, error) {
		recs, pending, last, err := st2.loadFrom(ctx, subject, start)
		nc.Close()
		return recs, pending, last, err
	}
	sub, err := st2.loadSubject(ctx, subject, closeAfter)
	var unread *ClaimReadError
	require.ErrorAs(t, err, &unread, "got %+v", sub)
}

// TestStore_StatusHeaderOnAStoredMessage: a foreign message that carries
// a "Status" header of its own is a stored message like any other. Taken
// for the server's status it would end every read of its subject early
// (404) or make the subject unreadable (408), blocking the package's
// writes for good.
func TestStore_StatusHeaderOnAStoredMessage(t *testing.T) {
	st, nc, signer := internalStore(t)
	ctx := context.Background()
	id := uuid.New()
	subject := st.Subjects().Package(id.String())
	appendAll(t, st, id,
		[]domain.Event{domain.PackageSold{PackageID: id, Price: domain.MustMoney("3.00")}},
		[]domain.Event{domain.PaymentRecorded{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: "R-1"}})
	for _, f := range []struct{ subject, status string }{
		{subject, "404"}, {st.Subjects().Receipt("R-1"), "408"}, {subject, "204"},
	} {
		m := nats.NewMsg(f.subject)
		m.Header.Set("Status", f.status)
		m.Data = []byte("{}")
		_, err := nc.RequestMsg(m, 5*time.Second)
		require.NoError(t, err)
	}
	st2, err := Open(ctx, nc, Config{Dealer: "demo", Signer: signer}) // nothing cached
	require.NoError(t, err)
	sub, err := st2.LoadSubject(ctx, subject)
	require.NoError(t, err)
	require.Len(t, sub.Events, 2, "both events read past the foreign 404")
	require.Len(t, sub.Foreign, 2)
	appendAll(t, st, id, []domain.Event{domain.PaymentRecorded{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"), Method: "cash", Receipt: "R-2"}})
	hist, err := st2.Load(ctx, subject)
	require.NoError(t, err)
	require.Len(t, hist, 3, "a write after them chains on")
}
