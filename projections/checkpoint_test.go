package projections_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// TestModelCheckpoint_Resume: a model read back from a checkpoint and fed
// the rest of a randomized history answers exactly as the full replay
// does — packages, look-ups, totals, expiry, the roll-forward and the
// daily close of every day, findings and counts — wherever the history is
// cut, and however long after the snapshot the checkpoint is encoded.
func TestModelCheckpoint_Resume(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedFor(t), 21))
	l, _, _, _ := genHistory10k(t, rng)
	envs := l.envs
	// A few events the feed could not apply, as findings.
	bad := map[int]bool{}
	for len(bad) < 5 {
		// Not a sale (what followed would be events before a sale) nor a
		// reversal (the unit would be redeemed twice): histories the
		// compact form passes to the domain's, which are not checkpointed.
		if i := rng.IntN(len(envs)); envs[i].Type != "PackageSold" && envs[i].Type != "PlanDefined" && envs[i].Type != "RedemptionReversed" {
			bad[i] = true
		}
	}
	feed := func(m *projections.Model, ref *reference, env domain.Envelope, i int) {
		if bad[i] {
			m.Reject(env.Seq, env.Subject, "foreign event: test")
			return
		}
		m.Apply(env)
		if ref != nil {
			ref.apply(env)
		}
	}
	full, ref := projections.NewModel(shanghai), newReference()
	for i, env := range envs {
		feed(full, ref, env, i)
	}
	for _, cut := range []int{0, 1, 3, len(envs) / 4, len(envs) / 2, len(envs) - 1, len(envs)} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			a := projections.NewModel(shanghai)
			for i, env := range envs[:cut] {
				feed(a, nil, env, i)
			}
			cp := projections.SnapshotModel(a)
			for i, env := range envs[cut:] { // the live model goes on before the checkpoint is written
				feed(a, nil, env, cut+i)
			}
			b, err := cp.Encode()
			require.NoError(t, err)
			m, err := projections.DecodeModel(shanghai, b)
			require.NoError(t, err)
			for i, env := range envs[cut:] {
				feed(m, nil, env, cut+i)
			}
			requireSameAsReference(t, ref, m)
			requireSameAsReference(t, ref, a)
			require.Equal(t, full.Findings(), m.Findings())
			e1, s1, n1 := full.Stats()
			e2, s2, n2 := m.Stats()
			require.Equal(t, []any{e1, s1, n1}, []any{e2, s2, n2}, "events, last seq, packages")
			wantPlans, _ := json.Marshal(full.Plans())
			gotPlans, _ := json.Marshal(m.Plans())
			require.Equal(t, string(wantPlans), string(gotPlans))
			phones := map[string]bool{}
			for _, p := range full.Find(projections.Query{}) {
				if p.Customer.ID != "" {
					require.Equal(t, ids(full.Find(projections.Query{Customer: p.Customer.ID})), ids(m.Find(projections.Query{Customer: p.Customer.ID})))
					phones[p.Customer.Phone] = true
				}
			}
			for ph := range phones {
				require.Equal(t, ids(full.Find(projections.Query{Phone: ph})), ids(m.Find(projections.Query{Phone: ph})), "phone %s", ph)
			}
		})
	}
}

// TestModelCheckpoint_Wide: a model holding a package in the domain's own
// form is not checkpointed, with the reason.
func TestModelCheckpoint_Wide(t *testing.T) {
	m := projections.NewModel(shanghai)
	id := uuid.New()
	m.Apply(domain.Envelope{Seq: 1, Aggregate: id.String(), Subject: "ledger.demo.packages." + id.String(),
		Type: "PaymentRecorded", Event: domain.PaymentRecorded{PaymentID: uuid.New(), Amount: domain.Cents(100)}})
	_, err := projections.SnapshotModel(m).Encode()
	require.ErrorIs(t, err, projections.ErrCannotCheckpoint)
}

func smallCheckpoint(t testing.TB) []byte {
	l := newLedger(t, nil)
	setupOil(t, l, local(2026, 11, 1, 8, 0))
	id := l.sell("OIL6", sale{customer: "C1", vin: vinA, plate: "沪A 12345"}, who{at: local(2026, 11, 1, 9, 0), store: "S1", key: "k1"})
	l.pay(id, "2448.00", "cash", "R-1", who{at: local(2026, 11, 1, 10, 0), store: "S1"})
	rid := l.redeem(id, "oil_change", "RO-1", who{at: local(2026, 11, 2, 10, 0), store: "S1"})
	l.do(id, domain.ReverseRedemption{RedemptionID: rid, Reason: "wrong car"}, who{at: local(2026, 11, 2, 11, 0), store: "S1", actor: manager})
	l.do(id, domain.RefundPackage{Method: "cash", Reason: "moved"}, who{at: local(2026, 11, 3, 11, 0), store: "S2", actor: manager})
	m := projections.NewModel(shanghai)
	for _, env := range l.envs {
		m.Apply(env)
	}
	m.Reject(99, "ledger.demo.packages.x", "foreign event: test")
	b, err := projections.SnapshotModel(m).Encode()
	require.NoError(t, err)
	return b
}

func TestDecodeModel_BadInput(t *testing.T) {
	good := smallCheckpoint(t)
	_, err := projections.DecodeModel(shanghai, good)
	require.NoError(t, err)
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":          {nil, projections.ErrBadModel},
		"other format":   {append([]byte{2}, good[1:]...), projections.ErrBadModel},
		"trailing bytes": {append(append([]byte(nil), good...), 0), projections.ErrBadModel},
		"huge count":     {[]byte{1, 13, 'A', 's', 'i', 'a', '/', 'S', 'h', 'a', 'n', 'g', 'h', 'a', 'i', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, projections.ErrBadModel},
	}
	for cut := 0; cut < len(good); cut++ {
		cases[fmt.Sprintf("cut at %d", cut)] = struct {
			b    []byte
			want error
		}{good[:cut], projections.ErrBadModel}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := projections.DecodeModel(shanghai, c.b)
			require.ErrorIs(t, err, c.want)
			require.Nil(t, m)
		})
	}
	t.Run("OtherTimeZone", func(t *testing.T) {
		_, err := projections.DecodeModel(mustLocation("Europe/Berlin"), good)
		require.ErrorIs(t, err, projections.ErrBadModel)
		require.ErrorContains(t, err, "business days in Asia/Shanghai")
	})
}

// FuzzDecodeModel: no input makes the decoder panic, and a model it
// accepts can be read, written and read again, and take events.
func FuzzDecodeModel(f *testing.F) {
	f.Add(smallCheckpoint(f))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := projections.DecodeModel(shanghai, b)
		if err != nil {
			if !errors.Is(err, projections.ErrBadModel) {
				t.Fatalf("error %v is not ErrBadModel", err)
			}
			return
		}
		for _, p := range m.Find(projections.Query{}) {
			m.Apply(domain.Envelope{Seq: p.Seq + 1, Aggregate: p.ID.String(), Event: domain.PackageExpired{ExpiredAt: p.SoldAt}})
		}
		_ = m.Totals()
		_ = m.DailyClose().Report("2026-11-01", "")
		again, err := projections.SnapshotModel(m).Encode()
		if err != nil {
			return // an event made a package wide
		}
		if _, err := projections.DecodeModel(shanghai, again); err != nil {
			t.Fatalf("a model read back does not read back again: %v", err)
		}
	})
}
