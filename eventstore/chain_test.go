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

// TestUpdate_ForeignOnClaimSubject: junk on a receipt's subject does not
// take the receipt: the next real claim lands after it, and then holds.
func TestUpdate_ForeignOnClaimSubject(t *testing.T) {
	st, _ := eventstoretest.OpenStore(t, "demo")
	ctx := context.Background()
	receipt := st.Subjects().Receipt("R-9")
	_, err := st.Append(ctx, []eventstore.Outgoing{{Subject: receipt, Body: []byte(`{"junk":true}`), Hash: "x", Type: "ReceiptClaimed"}})
	require.NoError(t, err)
	claim := func(code string) error {
		_, err := st.Update(ctx, "ledger.demo.plans."+code, meta, clock, func([]domain.Envelope) (eventstore.Change, error) {
			return eventstore.Change{
				Events: []domain.Event{domain.PlanRetired{Code: code, Reason: "x"}},
				Claims: []eventstore.Claim{{Subject: receipt, Event: domain.ReceiptClaimed{Receipt: "R-9"}}},
			}, nil
		})
		return err
	}
	require.NoError(t, claim("A"), "a foreign message does not block the claim")
	var taken *eventstore.ClaimTakenError
	require.ErrorAs(t, claim("B"), &taken, "the real claim holds")
	sub, err := st.LoadSubject(ctx, receipt)
	require.NoError(t, err)
	require.Len(t, sub.Events, 1)
	require.Len(t, sub.Foreign, 1)
}

// TestChains_PaymentNeedsItsClaim: a payment signed by the ledger but
// stored without its receipt claim — what a batch JetStream refused would
// leave if captured in flight and republished alone — is foreign, read on
// its own subject or in stream order.
func TestChains_PaymentNeedsItsClaim(t *testing.T) {
	_, nc := eventstoretest.RunServer(t)
	sg := eventstoretest.NewSigner(t)
	st := eventstoretest.Open(t, nc, "demo", sg)
	ctx := context.Background()
	id := uuid.New()
	subject := st.Subjects().Package(id.String())
	res, err := st.Update(ctx, subject, meta, clock, func([]domain.Envelope) (eventstore.Change, error) {
		return eventstore.Change{Events: []domain.Event{domain.PackageSold{PackageID: id, Price: domain.MustMoney("9.00")}}}, nil
	})
	require.NoError(t, err)
	sold := res.Appended[0]

	// What the refused batch held for the package: signed, chained, alone.
	pay := domain.PaymentRecorded{PaymentID: uuid.New(), Amount: domain.MustMoney("9.00"), Method: "cash", Receipt: "R-TAKEN"}
	data, err := domain.EncodeEvent(pay)
	require.NoError(t, err)
	body, hash, err := eventstore.Encode(domain.Envelope{ID: uuid.New(), Type: pay.EventType(), Schema: domain.SchemaVersion,
		Dealer: "demo", Store: "s1", Aggregate: id.String(), Actor: meta.Actor, Prev: sold.Hash, Data: data})
	require.NoError(t, err)
	sig, key := sg.Sign(hash)
	_, err = st.Append(ctx, []eventstore.Outgoing{{Subject: subject, Body: body, Hash: hash, Type: pay.EventType(), Sig: sig, KeyID: key}})
	require.NoError(t, err)

	sub, err := st.LoadSubject(ctx, subject)
	require.NoError(t, err)
	require.Len(t, sub.Events, 1, "only the sale is the ledger's")
	require.Len(t, sub.Foreign, 1)
	require.Contains(t, sub.Foreign[0].Problem, "no valid claim of receipt R-TAKEN")

	var problems []string
	_, err = st.Scan(ctx, func(seq uint64, subject string, env domain.Envelope, err error) error {
		if err != nil {
			problems = append(problems, err.Error())
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, problems, 1)
	require.Contains(t, problems[0], "no valid claim")
}
