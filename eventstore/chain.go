package eventstore

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
)

// Chains tells the ledger's own events from foreign ones, subject by
// subject. An event is the ledger's own when its hash is signed by a
// trusted key and it names, as its previous hash, the hash of the last
// event of its subject that was itself the ledger's own. A forgery fails
// the signature; a replayed copy of a real event carries a valid signature
// but names a previous hash that is no longer the last, so it fails the
// chain. Either way it is foreign: never applied, and the subject's next
// write chains from its last valid event.
type Chains struct {
	ring    *Keyring
	last    *links // subject → hash of its last valid event
	anchors bool
	// claimed holds the payments whose receipt claim is valid, as met in
	// stream order; lookup answers for claims not met (a single subject
	// read on its own).
	claimed *claims
	lookup  func(receipt string, payment uuid.UUID, seq uint64) (bool, error)
}

// ClaimReadError says a payment's receipt claim could not be read: the
// payment is neither the ledger's own nor foreign yet, and the read that
// met it must fail rather than judge it.
type ClaimReadError struct {
	Payment uuid.UUID
	Err     error
}

func (e *ClaimReadError) Error() string {
	return fmt.Sprintf("payment %s: reading its receipt claim: %v", e.Payment, e.Err)
}

func (e *ClaimReadError) Unwrap() error { return e.Err }

// LookupClaims lets a chain read on its own subject find a payment's
// receipt claim elsewhere; seq is the payment's stream sequence.
func (c *Chains) LookupClaims(f func(receipt string, payment uuid.UUID, seq uint64) (bool, error)) {
	c.lookup = f
}

// TrustAnchors makes the first event seen on each subject start its chain
// whatever previous hash it names: for an export of a time range, whose
// chains begin before it. Signatures are checked as ever.
func (c *Chains) TrustAnchors() { c.anchors = true }

// NewChains checks chains against the trusted keys of ring.
func NewChains(ring *Keyring) *Chains {
	return &Chains{ring: ring, last: newLinks(), claimed: newClaims()}
}

// Check decides whether env, the next event read on its subject in stream
// order, is valid, and if so makes it the subject's last. The error says
// why an event is foreign.
func (c *Chains) Check(env domain.Envelope) error {
	if err := c.ring.Authentic(env); err != nil {
		return fmt.Errorf("foreign event: %w", err)
	}
	seen, same := c.last.follows(env.Subject, env.Prev)
	if c.anchors && !seen {
		same = true
	}
	if !same {
		want, _ := c.last.get(env.Subject)
		return fmt.Errorf("foreign event: its previous hash %s is not the subject's last valid event %s",
			short(env.Prev), short(want))
	}
	if want, err := CanonicalSubject(env); err != nil || want != env.Subject {
		return fmt.Errorf("foreign event: a %s of %q belongs on %s, not here", env.Type, env.Aggregate, want)
	}
	switch e := env.Event.(type) {
	case domain.ReceiptClaimed:
		c.claimed.add(e.PaymentID)
	case domain.PaymentRecorded:
		// A payment is the ledger's only with its receipt's claim, written
		// in the same atomic batch. A batch JetStream refused (the receipt
		// was taken) could otherwise be captured in flight and its payment
		// republished alone.
		ok := c.claimed.has(e.PaymentID)
		if !ok && c.lookup != nil {
			var err error
			if ok, err = c.lookup(e.Receipt, e.PaymentID, env.Seq); err != nil {
				return &ClaimReadError{Payment: e.PaymentID, Err: err}
			}
		}
		if !ok {
			return fmt.Errorf("foreign event: payment %s has no valid claim of receipt %s", e.PaymentID, e.Receipt)
		}
	}
	c.last.set(env.Subject, env.Hash)
	return nil
}

// CanonicalSubject is the one subject an event may be stored on, given its
// type and content. Chains are kept per subject, but the read models file
// events by their aggregate: a signed event copied onto any other subject
// would start a fresh, valid-looking chain there and be counted twice.
func CanonicalSubject(env domain.Envelope) (string, error) {
	if s, ok := canonicalFast(env); ok {
		return s, nil
	}
	if err := CheckDealer(env.Dealer); err != nil {
		return "", err
	}
	s := Subjects{Dealer: env.Dealer}
	switch e := env.Event.(type) {
	case domain.PlanDefined:
		return s.Plan(e.Plan.Code), nil
	case domain.PlanRetired:
		return s.Plan(e.Code), nil
	case domain.ReceiptClaimed:
		return s.Receipt(e.Receipt), nil
	case domain.PackageSold:
		if e.PackageID.String() != env.Aggregate {
			return "", fmt.Errorf("sale of %s in an envelope of %s", e.PackageID, env.Aggregate)
		}
	}
	id, err := uuid.Parse(env.Aggregate)
	if err != nil || id.String() != env.Aggregate {
		return "", fmt.Errorf("aggregate %q is not a package id", env.Aggregate)
	}
	return s.Package(env.Aggregate), nil
}

func short(h string) string {
	if h == "" {
		return "(none)"
	}
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
