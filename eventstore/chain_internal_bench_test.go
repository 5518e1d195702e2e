package eventstore

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
)

// BenchmarkChains_Bookkeeping is Check without the signature (which the
// store is replacing by a cheaper check of its own): the chain link, the
// event's canonical subject and the receipt claims, per event of a
// realistic stream.
func BenchmarkChains_Bookkeeping(b *testing.B) {
	envs := bookkeepingEnvs(b, 2000)
	b.ResetTimer()
	for b.Loop() {
		c := NewChains(NewKeyring())
		for _, env := range envs {
			if seen, same := c.last.follows(env.Subject, env.Prev); !same && seen {
				b.Fatal("chain broken")
			}
			if want, err := CanonicalSubject(env); err != nil || want != env.Subject {
				b.Fatalf("subject %s: %v", env.Subject, err)
			}
			switch e := env.Event.(type) {
			case domain.ReceiptClaimed:
				c.claimed.add(e.PaymentID)
			case domain.PaymentRecorded:
				if !c.claimed.has(e.PaymentID) {
					b.Fatal("no claim")
				}
			}
			c.last.set(env.Subject, env.Hash)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(envs)), "ns/event")
}

// bookkeepingEnvs is a stream of packages sold, paid with their claims
// and redeemed, chained as the store chains them.
func bookkeepingEnvs(b *testing.B, packages int) []domain.Envelope {
	s := Subjects{Dealer: "demo"}
	var envs []domain.Envelope
	last := map[string]string{}
	add := func(subject, aggregate string, ev domain.Event) {
		env := domain.Envelope{Type: ev.EventType(), Schema: domain.SchemaVersion, Dealer: "demo", Aggregate: aggregate,
			Prev: last[subject], Event: ev, Subject: subject, Seq: uint64(len(envs) + 1)}
		data, err := domain.EncodeEvent(ev)
		if err != nil {
			b.Fatal(err)
		}
		env.Data = data
		_, env.Hash, err = Encode(env)
		if err != nil {
			b.Fatal(err)
		}
		last[subject] = env.Hash
		envs = append(envs, env)
	}
	for i := range packages {
		id := uuid.New()
		pkg := s.Package(id.String())
		add(pkg, id.String(), domain.PackageSold{PackageID: id})
		pay := uuid.New()
		receipt := "R" + id.String()[:8]
		add(s.Receipt(receipt), EncodeToken(receipt), domain.ReceiptClaimed{Receipt: receipt, PackageID: id, PaymentID: pay})
		add(pkg, id.String(), domain.PaymentRecorded{PaymentID: pay, Receipt: receipt})
		add(pkg, id.String(), domain.PackageActivated{})
		for range i % 8 {
			add(pkg, id.String(), domain.VisitRedeemed{RedemptionID: uuid.New()})
		}
	}
	return envs
}

// BenchmarkRestoreChains is reading back the chain state of a large
// ledger (PACKLEDGER_BENCH_PACKAGES packages, default 200,000, each with
// a receipt and its claim), per package, and its size.
func BenchmarkRestoreChains(b *testing.B) {
	n := 200000
	if s := os.Getenv("PACKLEDGER_BENCH_PACKAGES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		n = v
	}
	c := NewChains(NewKeyring())
	s := Subjects{Dealer: "demo"}
	var h [32]byte
	for i := range n {
		id := uuid.New()
		binary.BigEndian.PutUint64(h[:], uint64(i))
		c.last.set(s.Package(id.String()), hex.EncodeToString(h[:]))
		c.last.set(s.Receipt(fmt.Sprintf("R%08d", i)), hex.EncodeToString(h[:]))
		c.claimed.add(uuid.New())
	}
	data := c.Snapshot().AppendTo(nil)
	c = nil
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		if _, err := RestoreChains(NewKeyring(), data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/pkg")
	b.ReportMetric(float64(len(data))/float64(n), "bytes/pkg")
}
