package eventstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

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
