package eventstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

// TestKeyring_RetiredKey: a rotated-out key is trusted for what it signed
// before its rotation and for nothing after, so a leaked old key cannot
// write into the ledger.
func TestKeyring_RetiredKey(t *testing.T) {
	sg := eventstoretest.NewSigner(t)
	hash := eventstore.HashOf([]byte(`{"x":1}`))
	sig, id := sg.Sign(hash)

	ring := eventstore.NewKeyring()
	require.NoError(t, ring.AddTrusted(eventstore.TrustedKeyString(sg.Public(), 5)))
	require.Equal(t, []string{eventstore.PublicKeyString(sg.Public()) + "@5"}, ring.Keys())
	require.NoError(t, ring.Verify(hash, sig, id, 5))
	require.ErrorContains(t, ring.Verify(hash, sig, id, 6), "retired after seq 5")

	unbounded := eventstore.NewKeyring(sg.Public())
	require.NoError(t, unbounded.Verify(hash, sig, id, 1_000_000))
	require.ErrorContains(t, unbounded.Verify(hash, sig+"x", id, 1), "bad signature")

	for _, bad := range []string{"ed25519:abc", eventstore.PublicKeyString(sg.Public()) + "@0", eventstore.PublicKeyString(sg.Public()) + "@x"} {
		require.Error(t, eventstore.NewKeyring().AddTrusted(bad), bad)
	}
}

// TestKeyring_MAC: the server knows its own events by a MAC that only the
// key's holder can make, and nothing else passes for one: a wrong or
// missing MAC leaves the verdict to the signature, and a MAC does not
// vouch for any other hash or signature than the ones it was made for.
func TestKeyring_MAC(t *testing.T) {
	sg, other := eventstoretest.NewSigner(t), eventstoretest.NewSigner(t)
	hash := eventstore.HashOf([]byte(`{"x":1}`))
	sig, id := sg.Sign(hash)
	own := eventstore.NewKeyring()
	own.AddSigner(sg)
	public := eventstore.NewKeyring(sg.Public()) // an auditor's: no MAC secret

	ev := func(hash, sig, mac string) domain.Envelope {
		return domain.Envelope{Hash: hash, Sig: sig, KeyID: id, Mac: mac, Seq: 7}
	}
	otherHash := eventstore.HashOf([]byte(`{"x":2}`))
	otherSig, _ := sg.Sign(otherHash)
	for _, c := range []struct {
		name        string
		env         domain.Envelope
		own, public bool // accepted by each ring
	}{
		{"signed, with its MAC", ev(hash, sig, sg.MAC(hash, sig)), true, true},
		{"signed, no MAC", ev(hash, sig, ""), true, true},
		{"signed, wrong MAC", ev(hash, sig, sg.MAC(otherHash, otherSig)), true, true},
		{"MAC of the right secret, signature changed", ev(hash, otherSig, sg.MAC(hash, sig)), false, false},
		{"MAC moved to another hash", ev(otherHash, sig, sg.MAC(hash, sig)), false, false},
		{"MAC made with another key's secret", ev(hash, "forged", other.MAC(hash, "forged")), false, false},
		{"MAC of the right secret over a forged signature", ev(hash, "forged", sg.MAC(hash, "forged")), true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.own, own.Authentic(c.env) == nil, "own ring")
			require.Equal(t, c.public, public.Authentic(c.env) == nil, "public ring")
		})
	}
}

// BenchmarkKeyring_Authentic is what knowing one event costs the server:
// by its MAC, and by its signature as an auditor's tool checks it.
func BenchmarkKeyring_Authentic(b *testing.B) {
	sg := eventstoretest.NewSigner(b)
	hash := eventstore.HashOf([]byte(`{"x":1}`))
	sig, id := sg.Sign(hash)
	own := eventstore.NewKeyring()
	own.AddSigner(sg)
	for _, c := range []struct {
		name string
		env  domain.Envelope
	}{
		{"mac", domain.Envelope{Hash: hash, Sig: sig, KeyID: id, Mac: sg.MAC(hash, sig)}},
		{"signature", domain.Envelope{Hash: hash, Sig: sig, KeyID: id}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := own.Authentic(c.env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
