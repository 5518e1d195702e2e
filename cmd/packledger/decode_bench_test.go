package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/packledger/packledger/eventstore"
)

// BenchmarkDecode is what reading one stored event back costs the
// ledger (envelope, typed event, body hash), over the bench's generated
// histories: the cost under every rebuild, start and write path read.
func BenchmarkDecode(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	log, err := newLogger(&bytes.Buffer{}, "error")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := genDataset(context.Background(), dir, 2000, log, nil); err != nil {
		b.Fatal(err)
	}
	node, _, err := benchNode(context.Background(), dir, log)
	if err != nil {
		b.Fatal(err)
	}
	defer node.shutdown()
	var msgs []eventstore.RawMessage
	if _, err := node.store.ScanRaw(context.Background(), func(m eventstore.RawMessage) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m := msgs[i%len(msgs)]
		if _, err := eventstore.Decode(m.Subject, m.Seq, m.Header, m.Data); err != nil {
			b.Fatal(err)
		}
	}
}
