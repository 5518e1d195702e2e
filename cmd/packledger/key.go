package main

import (
	"context"
	"time"

	"errors"
	"flag"
	"fmt"
	"github.com/nats-io/nats.go"
	"io"
	"os"
	"path/filepath"

	"github.com/packledger/packledger/eventstore"
)

// keyFlags declares the signing-key flags that serve and key share.
func keyFlags(fs *flag.FlagSet, keyFile, keyringFile *string) {
	fs.StringVar(keyFile, "key-file", "", "the ledger's ed25519 signing key (default DATA/ledger.key, made at first start, mode 0600); required with --nats")
	fs.StringVar(keyringFile, "keyring", "", "file of earlier public keys whose events stay valid after a rotation (default: ledger.keyring beside the key)")
}

// keyPaths resolves the key and keyring files.
func keyPaths(data, keyFile, keyringFile string) (string, string) {
	if keyFile == "" {
		keyFile = filepath.Join(data, "ledger.key")
	}
	if keyringFile == "" {
		keyringFile = filepath.Join(filepath.Dir(keyFile), "ledger.keyring")
	}
	return keyFile, keyringFile
}

// loadKeys reads (or, if create, makes) the signing key and the keyring of
// keys it replaced.
func loadKeys(data, keyFile, keyringFile string, create bool) (*eventstore.Signer, *eventstore.Keyring, error) {
	keyFile, keyringFile = keyPaths(data, keyFile, keyringFile)
	if !create {
		if _, err := os.Stat(keyFile); err != nil {
			return nil, nil, fmt.Errorf("signing key: %w", err)
		}
	}
	signer, err := eventstore.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, nil, err
	}
	ring := eventstore.NewKeyring(signer.Public())
	if err := eventstore.LoadKeyring(keyringFile, ring); err != nil {
		return nil, nil, err
	}
	return signer, ring, nil
}

// key prints the ledger's public key, or rotates the key.
func key(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./data", "the server's data directory")
	var keyFile, keyringFile string
	keyFlags(fs, &keyFile, &keyringFile)
	rotate := fs.Bool("rotate", false, "stop using the current key: keep its public key in the keyring and make a new one (stop the server first)")
	initKey := fs.Bool("init", false, "make the key if it does not exist yet (for --nats servers, which need an existing --key-file)")
	natsURL := fs.String("nats", "", "with --rotate: the cluster whose ledger the key signs (default: the embedded store in --data)")
	dealer := fs.String("dealer", "demo", "with --rotate: the dealer id")
	stream := fs.String("stream", "LEDGER", "with --rotate: the stream name")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	keyFile, keyringFile = keyPaths(*data, keyFile, keyringFile)
	signer, _, err := loadKeys(*data, keyFile, keyringFile, *initKey)
	if err != nil {
		return err
	}
	if *rotate {
		// The old key stays trusted only for what it has signed so far:
		// the ledger's last sequence now, with every server stopped.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		head, err := ledgerHead(ctx, *data, *natsURL, *dealer, *stream)
		if err != nil {
			return fmt.Errorf("rotate: reading the ledger's last sequence: %w", err)
		}
		old := eventstore.TrustedKeyString(signer.Public(), head)
		f, err := os.OpenFile(keyringFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("keyring: %w", err)
		}
		var werr error
		if head > 0 { // a key that signed nothing need not be trusted at all
			_, werr = fmt.Fprintf(f, "# %s retired after seq %d\n%s\n", eventstore.Fingerprint(signer.Public()), head, old)
		}
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return fmt.Errorf("keyring: %w", err)
		}
		if err := os.Remove(keyFile); err != nil {
			return fmt.Errorf("retire old key: %w", err)
		}
		if signer, err = eventstore.LoadOrCreateKey(keyFile); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "rotated: %s kept in %s; new key in %s\n", old, keyringFile, keyFile)
	}
	fmt.Fprintf(stdout, "fingerprint %s\n", eventstore.Fingerprint(signer.Public()))
	fmt.Fprintln(stdout, eventstore.PublicKeyString(signer.Public()))
	return nil
}

// ledgerHead is the last sequence of the dealer's ledger, read from the
// embedded store in data (which must not be served meanwhile: it is locked)
// or from a NATS cluster.
func ledgerHead(ctx context.Context, data, natsURL, dealer, stream string) (uint64, error) {
	var nc *nats.Conn
	if natsURL != "" {
		c, err := nats.Connect(natsURL, nats.Name("packledger key"))
		if err != nil {
			return 0, err
		}
		nc = c
	} else {
		dir, err := filepath.Abs(data)
		if err != nil {
			return 0, err
		}
		if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
			return 0, nil // no ledger was ever stored here
		}
		srv, err := eventstore.StartServer(eventstore.ServerConfig{Listen: "127.0.0.1:0", StoreDir: dir})
		if err != nil {
			return 0, err
		}
		defer srv.Shutdown()
		if nc, err = srv.Connect("packledger key"); err != nil {
			return 0, err
		}
	}
	defer nc.Close()
	st, err := eventstore.OpenReadOnly(ctx, nc, eventstore.Config{Dealer: dealer, Stream: stream})
	if err != nil {
		return 0, err
	}
	return st.Head(ctx)
}
