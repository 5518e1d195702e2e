package eventstore_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

// chainStream is a signed corpus with foreign events mixed in: replayed
// copies of earlier real events (valid signatures, stale previous
// hashes), unsigned copies, and events whose hash is not a hex SHA-256.
func chainStream(t testing.TB, seed uint64) ([]domain.Envelope, *eventstore.Keyring) {
	t.Helper()
	sg := eventstoretest.NewSigner(t)
	c := eventstoretest.NewCorpus(t, eventstoretest.CorpusConfig{Packages: 150, Seed: seed, Signer: sg})
	rng := rand.New(rand.NewPCG(seed, 99))
	var envs []domain.Envelope
	for i, r := range c.Records {
		env, err := r.Decode(uint64(i + 1))
		require.NoError(t, err)
		envs = append(envs, env)
		if len(envs) > 5 && rng.IntN(8) == 0 {
			cp := envs[rng.IntN(len(envs)-1)]
			switch rng.IntN(3) {
			case 1:
				cp.Sig = ""
			case 2:
				cp.Hash = "not-hex"
			}
			envs = append(envs, cp)
		}
	}
	for i := range envs {
		envs[i].Seq = uint64(i + 1)
	}
	return envs, eventstore.NewKeyring(sg.Public())
}

func judge(c *eventstore.Chains, env domain.Envelope) string {
	if err := c.Check(env); err != nil {
		return err.Error()
	}
	return "ok"
}

// TestChainSnapshot_ResumeJudgesAlike: chains restored from a snapshot
// judge every later event exactly as the chains that never stopped, even
// when the snapshot is encoded only after those went on judging.
func TestChainSnapshot_ResumeJudgesAlike(t *testing.T) {
	envs, ring := chainStream(t, 5)
	for _, cut := range []int{0, 1, 7, len(envs) / 3, len(envs) / 2, len(envs) - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			a := eventstore.NewChains(ring)
			for _, env := range envs[:cut] {
				judge(a, env)
			}
			snap := a.Snapshot()
			var want []string
			for _, env := range envs[cut:] {
				want = append(want, judge(a, env))
			}
			b, err := eventstore.RestoreChains(ring, snap.AppendTo(nil))
			require.NoError(t, err)
			a.Release()
			foreign := 0
			for i, env := range envs[cut:] {
				got := judge(b, env)
				require.Equal(t, want[i], got, "seq %d", env.Seq)
				if got != "ok" {
					foreign++
				}
			}
			if cut < len(envs)/2 {
				require.Positive(t, foreign, "the stream has foreign events after the cut")
			}
		})
	}
}

func TestRestoreChains_BadInput(t *testing.T) {
	envs, ring := chainStream(t, 6)
	c := eventstore.NewChains(ring)
	for _, env := range envs[:200] {
		judge(c, env)
	}
	good := c.Snapshot().AppendTo(nil)
	_, err := eventstore.RestoreChains(ring, good)
	require.NoError(t, err)

	dupPkg := eventstore.NewChains(ring)
	for _, env := range envs {
		if env.Type == "PackageSold" {
			require.Equal(t, "ok", judge(dupPkg, env))
			break
		}
	}
	one := dupPkg.Snapshot().AppendTo(nil)

	cases := map[string][]byte{
		"empty":          nil,
		"other format":   append([]byte{9}, good[1:]...),
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"huge count":     {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad prefix":     append([]byte{1, 5}, "a.b.c"...),
		"no prefix":      {1, 0, 1},
		"package twice":  twice(t, one),
	}
	for cut := 0; cut < len(good); cut += 1 + len(good)/97 {
		cases[fmt.Sprintf("cut at %d", cut)] = good[:cut]
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := eventstore.RestoreChains(ring, b)
			require.Error(t, err)
			require.True(t, errors.Is(err, eventstore.ErrBadChainSnapshot), "%v", err)
			require.Nil(t, got)
		})
	}
}

// twice repeats the one package link of a snapshot that holds one.
func twice(t *testing.T, one []byte) []byte {
	t.Helper()
	// format, prefix (length byte then bytes), count 1, 48 bytes of link.
	n := 2 + int(one[1])
	require.Equal(t, byte(1), one[n], "one package link")
	out := append([]byte(nil), one[:n]...)
	out = append(out, 2)
	out = append(out, one[n+1:n+49]...)
	out = append(out, one[n+1:n+49]...)
	return append(out, one[n+49:]...)
}
