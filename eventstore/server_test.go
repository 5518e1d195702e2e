package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

// TestServer_AnonymousIsReadOnly: a client that signs in with nothing may
// read the log but may not write to it, touch the stream, or reach the
// replies the server itself waits for.
func TestServer_AnonymousIsReadOnly(t *testing.T) {
	srv, owner := eventstoretest.RunServer(t)
	st := eventstoretest.Open(t, owner, "demo", eventstoretest.NewSigner(t))
	ctx := context.Background()
	_, err := st.Update(ctx, "ledger.demo.plans.X", meta, clock, retire("X"))
	require.NoError(t, err)

	violations := make(chan error, 16)
	anon, err := nats.Connect(srv.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			violations <- err
		}
	}))
	require.NoError(t, err)
	defer anon.Close()
	js, err := jetstream.New(anon)
	require.NoError(t, err)

	// Reading works.
	s, err := js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	m, err := s.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "ledger.demo.plans.X", m.Subject)

	expectViolation := func(what string) {
		t.Helper()
		select {
		case v := <-violations:
			t.Logf("%s: %v", what, v)
		case <-time.After(3 * time.Second):
			t.Fatalf("%s was not refused", what)
		}
	}
	require.NoError(t, anon.Publish("ledger.demo.plans.X", []byte(`{}`)))
	expectViolation("publishing onto a ledger subject")
	_, err = anon.Subscribe("_PL_OWNER.>", func(*nats.Msg) {})
	require.NoError(t, err)
	expectViolation("listening to the server's replies")
	require.NoError(t, anon.Publish("_PL_OWNER.forged", []byte(`{"stream":"LEDGER","seq":99}`)))
	expectViolation("answering in the server's place")
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	require.Error(t, js.DeleteStream(short, "LEDGER"))
	expectViolation("deleting the stream")
}

// TestServer_DirLocked: a second server on a data dir in use is refused,
// and the dir is free again once the first stops.
func TestServer_DirLocked(t *testing.T) {
	dir := t.TempDir()
	cfg := eventstore.ServerConfig{Listen: "127.0.0.1:0", StoreDir: dir}
	first, err := eventstore.StartServer(cfg)
	require.NoError(t, err)
	_, err = eventstore.StartServer(cfg)
	require.ErrorContains(t, err, "in use by another packledger process")
	first.Shutdown()
	again, err := eventstore.StartServer(cfg)
	require.NoError(t, err)
	again.Shutdown()
}

// TestServer_ConnectTCP: the program's own user, over the client port,
// writes to the ledger through TCP as the in-process connection does.
func TestServer_ConnectTCP(t *testing.T) {
	srv, _ := eventstoretest.RunServer(t)
	nc, err := srv.ConnectTCP("test")
	require.NoError(t, err)
	defer nc.Close()
	require.Contains(t, nc.ConnectedAddr(), "127.0.0.1:", "a loopback socket, not a pipe")
	st := eventstoretest.Open(t, nc, "demo", eventstoretest.NewSigner(t))
	res, err := st.Update(context.Background(), "ledger.demo.plans.X", meta, clock, retire("X"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), res.LastSeq)
}
