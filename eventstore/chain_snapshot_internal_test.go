package eventstore

import (
	"errors"
	"testing"

	"github.com/google/uuid"
)

// FuzzRestoreChains: no input makes RestoreChains panic or allocate
// beyond what its bytes can hold, every refusal is ErrBadChainSnapshot,
// and what it accepts encodes to what it accepts again. The seed's state
// is set directly, without signed events, so that a worker starts at once.
func FuzzRestoreChains(f *testing.F) {
	c := NewChains(NewKeyring())
	for i := range 40 {
		id := uuid.NewSHA1(uuid.Nil, []byte{byte(i)})
		c.last.set(Subjects{Dealer: "demo"}.Package(id.String()), HashOf([]byte{byte(i)}))
		c.last.set(Subjects{Dealer: "demo"}.Receipt("R-"+id.String()[:4]), HashOf([]byte{byte(i), 1}))
		c.claimed.add(id)
	}
	c.last.set("ledger.demo.plans.OIL6", "h1")
	f.Add(c.Snapshot().AppendTo(nil))
	f.Add([]byte{1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := RestoreChains(NewKeyring(), b)
		if err != nil {
			if !errors.Is(err, ErrBadChainSnapshot) {
				t.Fatalf("error %v is not ErrBadChainSnapshot", err)
			}
			return
		}
		if _, err := RestoreChains(NewKeyring(), got.Snapshot().AppendTo(nil)); err != nil {
			t.Fatalf("a restored snapshot does not restore again: %v", err)
		}
	})
}
