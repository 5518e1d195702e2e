package eventstore_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/eventstore/eventstoretest"
)

// TestChains_CopyOnAnotherSubject: a real, signed event copied byte for
// byte onto another subject would begin a valid-looking chain there; it is
// foreign because an event belongs on one subject only.
func TestChains_CopyOnAnotherSubject(t *testing.T) {
	st, _ := eventstoretest.OpenStore(t, "demo")
	ctx := context.Background()
	id := uuid.New()
	subject := st.Subjects().Package(id.String())
	_, err := st.Update(ctx, subject, meta, clock, func([]domain.Envelope) (eventstore.Change, error) {
		return eventstore.Change{Events: []domain.Event{domain.PackageSold{PackageID: id, Price: domain.MustMoney("1.00")}}}, nil
	})
	require.NoError(t, err)
	hist, err := st.Load(ctx, subject)
	require.NoError(t, err)
	real := hist[0]

	for _, other := range []string{
		st.Subjects().Package(uuid.NewString()),
		"ledger.demo.evil." + id.String(),
		"ledger.other.packages." + id.String(),
	} {
		c := eventstore.NewChains(st.Keyring())
		cp := real
		cp.Subject = other
		require.ErrorContains(t, c.Check(cp), "belongs on "+subject, "copy on %s", other)
	}
	require.NoError(t, eventstore.NewChains(st.Keyring()).Check(real), "the original stays valid")
}
