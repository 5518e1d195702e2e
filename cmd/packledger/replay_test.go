package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// replayJSON is replay --json's document, each package kept as raw JSON
// to compare whole.
type replayJSON struct {
	AsOf     time.Time         `json:"as_of"`
	Packages []json.RawMessage `json:"packages"`
	Totals   domain.Balances   `json:"totals"`
	Events   int               `json:"events"`
}

// stateAt is what the API held for a package at instant t: its state after
// the last command at or before t, as Update returned it.
func (fx *ledgerFixture) stateAt(label string, t time.Time) (domain.Package, bool) {
	var p domain.Package
	ok := false
	for _, s := range fx.after[label] {
		if !s.at.After(t) {
			p, ok = s.pkg, true
		}
	}
	return p, ok
}

func TestReplay(t *testing.T) {
	fx := buildLedger(t)
	exp, _ := fx.exportFile(t)

	t.Run("BetweenTwoEvents", func(t *testing.T) {
		// Half an hour after A's first visit, before its second: A has
		// 1632.00 paid, 408.00 recognized, three visits left; B has paid
		// its first 1000.00; C is not sold yet.
		at := fx.ev(t, "A", "VisitRedeemed", 1).at.Add(30 * time.Minute)
		require.True(t, at.Before(fx.ev(t, "C", "PackageSold", 1).at))
		stdout, stderr, err := runArgs("replay", "--json", "--data", fx.dir, "--as-of", at.Format(time.RFC3339))
		require.NoError(t, err, stderr)
		var got replayJSON
		require.NoError(t, json.Unmarshal([]byte(stdout), &got))
		require.True(t, got.AsOf.Equal(at))
		require.Len(t, got.Packages, 2)
		byID := map[string]packageView{}
		for _, raw := range got.Packages {
			var p packageView
			require.NoError(t, json.Unmarshal(raw, &p))
			byID[p.ID.String()] = p
		}
		a := byID[fx.names["A"].String()]
		require.Equal(t, domain.StatusActive, a.Status)
		require.Equal(t, "1632.00", a.Paid.String())
		require.Equal(t, "408.00", a.Recognized.String())
		require.Equal(t, "1224.00", a.Liability.String())
		require.Equal(t, map[string]int{"oil_change": 3}, a.Remaining)
		b := byID[fx.names["B"].String()]
		require.Equal(t, domain.StatusAwaitingPayment, b.Status)
		require.Equal(t, "1000.00", b.Liability.String())
		require.Equal(t, map[string]int{"oil_change": 6}, b.Remaining)
		require.Equal(t, "2224.00", got.Totals.Liability.String())
		n := 0
		for _, e := range fx.events {
			if !e.at.After(at) {
				n++
			}
		}
		require.Equal(t, n, got.Events)

		stdout, _, err = runArgs("replay", "--data", fx.dir, "--as-of", at.Format(time.RFC3339))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		require.Len(t, lines, 4, stdout)
		require.Contains(t, lines[0], "PACKAGE")
		require.Contains(t, stdout, fx.names["A"].String())
		require.Contains(t, stdout, "oil_change 3")
		require.True(t, strings.HasPrefix(lines[3], "totals as of "), lines[3])
		require.Contains(t, lines[3], "2 packages")
		require.Contains(t, lines[3], "liability 2224.00")
	})

	t.Run("EveryInstant", func(t *testing.T) {
		// Half an hour after each command, every package as replay gives
		// it is, field for field, the state Update returned at that time.
		for k := 0; k <= 13; k++ {
			at := fxBase.Add(time.Duration(k)*time.Hour + 30*time.Minute)
			for _, args := range [][]string{{"--data", fx.dir}, {"--file", exp, "--pubkey", fx.pub}} {
				stdout, stderr, err := runArgs(append([]string{"replay", "--json", "--as-of", at.Format(time.RFC3339Nano)}, args...)...)
				require.NoError(t, err, stderr)
				var got replayJSON
				require.NoError(t, json.Unmarshal([]byte(stdout), &got))
				want := 0
				for _, label := range []string{"A", "B", "C"} {
					p, ok := fx.stateAt(label, at)
					if !ok {
						continue
					}
					want++
					w, err := json.Marshal(projections.ViewPackage(p))
					require.NoError(t, err)
					found := false
					for _, raw := range got.Packages {
						var r struct{ ID string }
						require.NoError(t, json.Unmarshal(raw, &r))
						if r.ID == p.ID.String() {
							require.JSONEq(t, string(w), string(raw), "%s at %s", label, at)
							found = true
						}
					}
					require.True(t, found, "%s at %s", label, at)
				}
				require.Len(t, got.Packages, want, "at %s", at)
			}
		}
	})

	t.Run("Usage", func(t *testing.T) {
		_, _, err := runArgs("replay", "--data", fx.dir)
		require.ErrorContains(t, err, "--as-of is required")
		_, _, err = runArgs("replay", "--data", fx.dir, "--as-of", "yesterday")
		require.ErrorContains(t, err, "not an RFC 3339 instant")
		part, _ := fx.exportFile(t, "--from", fxBase.Add(2*time.Hour).Format(time.RFC3339))
		_, _, err = runArgs("replay", "--file", part, "--pubkey", fx.pub, "--as-of", time.Now().Format(time.RFC3339))
		require.ErrorContains(t, err, "partial export cannot be replayed")
	})
}
