package eventstore_test

import (
	"runtime"
	"testing"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

func signedCorpus(b *testing.B, packages int, seed uint64) (eventstoretest.Corpus, []domain.Envelope, *eventstore.Keyring) {
	b.Helper()
	sg := eventstoretest.NewSigner(b)
	c := eventstoretest.NewCorpus(b, eventstoretest.CorpusConfig{Packages: packages, Seed: seed, Signer: sg})
	envs := make([]domain.Envelope, len(c.Records))
	for i, r := range c.Records {
		env, err := r.Decode(uint64(i + 1))
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = env
	}
	return c, envs, eventstore.NewKeyring(sg.Public())
}

// BenchmarkChains_Check is the feed's judgment of each event in stream
// order, the signature included; BenchmarkKeyring_Verify is the signature
// alone, so that the difference is the chain's own bookkeeping.
func BenchmarkChains_Check(b *testing.B) {
	_, envs, ring := signedCorpus(b, 2000, 3)
	b.ResetTimer()
	for b.Loop() {
		c := eventstore.NewChains(ring)
		for _, env := range envs {
			if err := c.Check(env); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(envs)), "ns/event")
}

func BenchmarkKeyring_Verify(b *testing.B) {
	_, envs, ring := signedCorpus(b, 2000, 3)
	b.ResetTimer()
	for b.Loop() {
		for _, env := range envs {
			if err := ring.Verify(env.Hash, env.Sig, env.KeyID, env.Seq); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(envs)), "ns/event")
}

// BenchmarkChains_HeapPerPackage is the chain state a feed holds per
// package after reading a realistic history: each subject's last hash
// (a package's and each receipt's) and the claimed payments.
func BenchmarkChains_HeapPerPackage(b *testing.B) {
	const packages = 5000
	sg := eventstoretest.NewSigner(b)
	c := eventstoretest.NewCorpus(b, eventstoretest.CorpusConfig{Packages: packages, Seed: 4, Signer: sg})
	ring := eventstore.NewKeyring(sg.Public())
	for b.Loop() {
		before := eventstoretest.LiveHeap()
		ch := eventstore.NewChains(ring)
		// Decoded one at a time: what the chains keep of an event counts.
		for i, r := range c.Records {
			env, err := r.Decode(uint64(i + 1))
			if err != nil {
				b.Fatal(err)
			}
			if err := ch.Check(env); err != nil {
				b.Fatal(err)
			}
		}
		after := eventstoretest.LiveHeap()
		runtime.KeepAlive(ch)
		b.ReportMetric(float64(after-before)/packages, "B/pkg")
	}
}
