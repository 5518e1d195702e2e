// Package eventstoretest starts real embedded JetStream servers for tests:
// a temp dir, a random loopback port, shut down when the test ends. Tests
// of every package that touches the log use it instead of a mock.
package eventstoretest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/eventstore"
)

// RunServer starts an embedded JetStream server on 127.0.0.1 with its store
// in a fresh temp dir and returns it with an in-process connection.
func RunServer(tb testing.TB) (*eventstore.Server, *nats.Conn) {
	tb.Helper()
	return RunServerIn(tb, tb.TempDir())
}

// RunServerIn is RunServer on a given store dir, to restart on old data.
func RunServerIn(tb testing.TB, dir string) (*eventstore.Server, *nats.Conn) {
	tb.Helper()
	return RunServerSync(tb, dir, true)
}

// RunServerSync is RunServerIn with fsync before each acknowledgement on
// (the program's default) or off (JetStream's own lazy default), for
// measuring what durability costs.
func RunServerSync(tb testing.TB, dir string, syncAlways bool) (*eventstore.Server, *nats.Conn) {
	tb.Helper()
	srv, err := eventstore.StartServer(eventstore.ServerConfig{Listen: "127.0.0.1:0", StoreDir: dir, SyncAlways: syncAlways})
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		srv.Shutdown()
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() {
		nc.Close()
		srv.Shutdown()
	})
	return srv, nc
}

// OpenStore runs a server and opens the ledger stream on it for dealer,
// with a fresh signing key.
func OpenStore(tb testing.TB, dealer string) (*eventstore.Store, *nats.Conn) {
	tb.Helper()
	return OpenStoreSync(tb, dealer, true)
}

// OpenStoreSync is OpenStore with fsync on or off (see RunServerSync).
func OpenStoreSync(tb testing.TB, dealer string, syncAlways bool) (*eventstore.Store, *nats.Conn) {
	tb.Helper()
	_, nc := RunServerSync(tb, tb.TempDir(), syncAlways)
	return Open(tb, nc, dealer, NewSigner(tb)), nc
}

// NewSigner makes a signing key in a temp dir.
func NewSigner(tb testing.TB) *eventstore.Signer {
	tb.Helper()
	sg, err := eventstore.LoadOrCreateKey(filepath.Join(tb.TempDir(), "ledger.key"))
	if err != nil {
		tb.Fatalf("key: %v", err)
	}
	return sg
}

// Open opens the ledger stream for dealer on nc, signing with sg.
func Open(tb testing.TB, nc *nats.Conn, dealer string, sg *eventstore.Signer) *eventstore.Store {
	tb.Helper()
	return OpenConfig(tb, nc, eventstore.Config{Dealer: dealer, Signer: sg})
}

// OpenConfig opens the ledger stream on nc as cfg says, with a fresh
// signing key when cfg names none.
func OpenConfig(tb testing.TB, nc *nats.Conn, cfg eventstore.Config) *eventstore.Store {
	tb.Helper()
	if cfg.Signer == nil {
		cfg.Signer = NewSigner(tb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := eventstore.Open(ctx, nc, cfg)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	return st
}

// CheckFor polls f until it returns nil or the time runs out, the way
// nats-server's own tests wait instead of sleeping.
func CheckFor(tb testing.TB, total, every time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(every)
	}
	tb.Fatalf("timed out after %v: %v", total, err)
}
