package eventstore_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// storedSamples are bodies as the ledger writes them: one per kind of
// subject, chained where they share one.
func storedSamples(tb testing.TB) []struct {
	subject string
	body    []byte
} {
	tb.Helper()
	price := domain.MustMoney("2448.00")
	plan, err := domain.NewPlan(domain.PlanSpec{Code: "OIL6", Name: "6 oil changes (6次保养)", Price: &price, ValidityMonths: 36,
		Entitlements: []domain.Entitlement{{Service: "oil_change", Count: 6, ListPrice: domain.MustMoney("480.00")}}})
	if err != nil {
		tb.Fatal(err)
	}
	pkg, pay := uuid.MustParse("0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d"), uuid.MustParse("0193a0b4-8000-7c3a-9d2b-5e8f1a2b3c4d")
	at := time.Date(2026, 11, 1, 8, 0, 0, 123456789, time.UTC)
	s := eventstore.Subjects{Dealer: "demo"}
	var out []struct {
		subject string
		body    []byte
	}
	prev := map[string]string{}
	for _, e := range []struct {
		subject string
		ev      domain.Event
	}{
		{s.Plan("OIL6"), domain.PlanDefined{Plan: plan}},
		{s.Package(pkg.String()), domain.PackageSold{PackageID: pkg, Plan: plan, Price: price, Units: plan.Units, Advisor: "adv1",
			Customer: domain.Customer{ID: "C-1001", Name: "李伟", Phone: "13800138000"},
			Vehicle:  domain.Vehicle{VIN: "LSVAU2180N2183294", Plate: "沪A12345", Model: "Lavida"}}},
		{s.Receipt("R-0001"), domain.ReceiptClaimed{Receipt: "R-0001", PackageID: pkg, PaymentID: pay, Amount: price}},
		{s.Package(pkg.String()), domain.PaymentRecorded{PaymentID: pay, Amount: price, Method: "wechat", Receipt: "R-0001"}},
		{s.Plan("OIL6"), domain.PlanRetired{Code: "OIL6", Reason: "replaced"}},
	} {
		data, err := domain.EncodeEvent(e.ev)
		if err != nil {
			tb.Fatal(err)
		}
		agg := e.subject[len("ledger.demo."):]
		agg = agg[bytes.IndexByte([]byte(agg), '.')+1:]
		body, hash, err := eventstore.Encode(domain.Envelope{
			ID: uuid.Must(uuid.NewV7()), Type: e.ev.EventType(), Schema: domain.SchemaVersion, Dealer: "demo", Store: "s1",
			Aggregate: agg, BusinessTime: at, RecordedAt: at, Actor: domain.Actor{ID: "u1", Role: domain.RoleManager},
			Key: "key-1", Request: "0f0f", Prev: prev[e.subject], Data: data,
		})
		if err != nil {
			tb.Fatal(err)
		}
		prev[e.subject] = hash
		out = append(out, struct {
			subject string
			body    []byte
		}{e.subject, body})
	}
	return out
}

// FuzzDecode reads hostile bytes as a message of the stream: a body and
// its headers, on a subject, at a sequence. A decoded message is the body
// it was read from: its hash is the body's, a hash header that differs
// refuses it, and its envelope re-encodes to a body that decodes to the
// same envelope again. And nothing that no trusted key signed is ever
// the ledger's own: whatever the bytes, Chains accepts only a body whose
// hash the trusted key signed.
//
// mode picks the headers: bit 0 sends hdr as the hash header (else the
// body's own hash); bits 1-2 pick the signature: none, the trusted key's,
// an untrusted key's, or hdr as a signature under the trusted key's name.
func FuzzDecode(f *testing.F) {
	dir := f.TempDir()
	trusted, err := eventstore.LoadOrCreateKey(filepath.Join(dir, "trusted"))
	if err != nil {
		f.Fatal(err)
	}
	other, err := eventstore.LoadOrCreateKey(filepath.Join(dir, "other"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range storedSamples(f) {
		for mode := range uint8(8) {
			f.Add(s.subject, uint64(7), s.body, "", mode)
		}
		f.Add(s.subject, uint64(7), bytes.Replace(s.body, []byte(`"type"`), []byte(`"Type"`), 1), "", uint8(2))
		f.Add(s.subject, uint64(7), bytes.Replace(s.body, []byte(`"dealer":"demo"`), []byte(`"dealer":"demo","dealer":"evil"`), 1), "", uint8(2))
		f.Add(s.subject, uint64(7), append(bytes.Clone(s.body), ' '), "", uint8(2))
		f.Add(s.subject, uint64(7), append(bytes.Clone(s.body), "{}"...), "", uint8(2))
		f.Add(s.subject, uint64(7), bytes.Replace(s.body, []byte(`"schema":1`), []byte(`"schema":2`), 1), "", uint8(2))
		f.Add(s.subject, uint64(7), bytes.Replace(s.body, []byte(`"data":{`), []byte(`"data":null,"x":{`), 1), "", uint8(2))
		f.Add("ledger.demo.packages.x", uint64(1), s.body, eventstore.HashOf(s.body)+"0", uint8(1))
	}
	f.Add("ledger.demo.packages.x", uint64(0), []byte(`{"junk":true}`), "x", uint8(1))
	f.Add("ledger.demo.packages.x", uint64(0), []byte(`{"type":"PaymentRecorded","schema":1,"data":null}`), "", uint8(2))
	f.Add("", uint64(1<<63), []byte(``), "", uint8(0))
	f.Fuzz(func(t *testing.T, subject string, seq uint64, body []byte, hdr string, mode uint8) {
		hash := eventstore.HashOf(body)
		h := nats.Header{}
		if mode&1 != 0 {
			if hdr != "" {
				h.Set(eventstore.HeaderHash, hdr)
			}
		} else {
			h.Set(eventstore.HeaderHash, hash)
		}
		signed := false
		switch (mode >> 1) % 4 {
		case 1:
			sig, key := trusted.Sign(hash)
			h.Set(eventstore.HeaderSig, sig)
			h.Set(eventstore.HeaderKey, key)
			signed = true
		case 2:
			sig, key := other.Sign(hash)
			h.Set(eventstore.HeaderSig, sig)
			h.Set(eventstore.HeaderKey, key)
		case 3:
			_, key := trusted.Sign(hash)
			h.Set(eventstore.HeaderSig, hdr)
			h.Set(eventstore.HeaderKey, key)
		}
		env, err := eventstore.Decode(subject, seq, h, body)
		if err != nil {
			return
		}
		if got := h.Get(eventstore.HeaderHash); got != "" && got != hash {
			t.Fatalf("decoded a body of hash %s under the header %q", hash, got)
		}
		if env.Hash != hash || env.Seq != seq || env.Subject != subject {
			t.Fatalf("decoded as hash %s seq %d subject %q, not the message's %s %d %q", env.Hash, env.Seq, env.Subject, hash, seq, subject)
		}
		if env.Event == nil || env.Event.EventType() != env.Type || env.Schema != domain.SchemaVersion {
			t.Fatalf("decoded a %s of schema %d as %T", env.Type, env.Schema, env.Event)
		}
		if !json.Valid(body) {
			t.Fatalf("decoded %q, which is not one JSON value", body)
		}
		body2, hash2, err := eventstore.Encode(env)
		if err != nil {
			t.Fatalf("decoded %q, whose envelope does not encode: %v", body, err)
		}
		env2, err := eventstore.Decode(subject, seq, nil, body2)
		if err != nil {
			t.Fatalf("decoded %q, re-encoded as %s, which does not decode: %v", body, body2, err)
		}
		if body3, hash3, err := eventstore.Encode(env2); err != nil || !bytes.Equal(body3, body2) || hash3 != hash2 {
			t.Fatalf("the re-encoding of %q is not stable:\nfirst  %s\nsecond %s", body, body2, body3)
		}
		if bytes.Equal(body2, body) && hash2 != env.Hash {
			t.Fatalf("%q re-encodes to itself but hashes %s, not %s", body, hash2, env.Hash)
		}
		if err := eventstore.NewChains(eventstore.NewKeyring(trusted.Public())).Check(env); err == nil && !signed {
			t.Fatalf("a %s on %s that the trusted key never signed passes as the ledger's own: %q", env.Type, subject, body)
		}
	})
}

// TestEncode_OwnBodiesAreFixedPoints: a body the ledger writes decodes to
// an envelope that encodes to the very same bytes, so its hash can be
// recomputed from what was read.
func TestEncode_OwnBodiesAreFixedPoints(t *testing.T) {
	for _, s := range storedSamples(t) {
		env, err := eventstore.Decode(s.subject, 1, nil, s.body)
		if err != nil {
			t.Fatalf("%s: %v", s.body, err)
		}
		body, hash, err := eventstore.Encode(env)
		if err != nil || !bytes.Equal(body, s.body) || hash != eventstore.HashOf(s.body) {
			t.Fatalf("%s re-encodes as %s: %v", s.body, body, err)
		}
	}
}

// FuzzAddTrusted reads a trusted key as a keyring file or an export's
// header names it, "ed25519:<base64>[@N]". An accepted key is one key of
// 32 bytes, with a bound that is a stream sequence or none, and its
// written form reads back as the same trust.
func FuzzAddTrusted(f *testing.F) {
	key, err := eventstore.LoadOrCreateKey(filepath.Join(f.TempDir(), "k"))
	if err != nil {
		f.Fatal(err)
	}
	pub := eventstore.PublicKeyString(key.Public())
	for _, s := range []string{pub, pub + "@1", pub + "@18446744073709551615", pub + "@0", pub + "@", pub + "@-1", pub + "@+5",
		" " + pub + " @ 7 ", "ed25519:", "ed25519:AAAA", "ED25519:" + pub[8:], pub[:len(pub)-1], pub + "=", "x@1@2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ring := eventstore.NewKeyring()
		if err := ring.AddTrusted(s); err != nil {
			if len(ring.Keys()) != 0 {
				t.Fatalf("AddTrusted(%q) failed (%v) but trusts %q", s, err, ring.Keys())
			}
			return
		}
		keys := ring.Keys()
		if len(keys) != 1 {
			t.Fatalf("AddTrusted(%q) trusts %q", s, keys)
		}
		keyPart, bound, hasBound := strings.Cut(keys[0], "@")
		if p, err := eventstore.ParsePublicKey(keyPart); err != nil || len(p) != 32 {
			t.Fatalf("AddTrusted(%q) trusts %q, which is no key: %v", s, keys[0], err)
		}
		if hasBound {
			if n, err := strconv.ParseUint(bound, 10, 64); err != nil || n == 0 || strconv.FormatUint(n, 10) != bound {
				t.Fatalf("AddTrusted(%q) trusts %q, whose bound is no stream sequence", s, keys[0])
			}
		}
		again := eventstore.NewKeyring()
		if err := again.AddTrusted(keys[0]); err != nil || !slices.Equal(again.Keys(), keys) {
			t.Fatalf("AddTrusted(%q) trusts %q, which reads back as %q: %v", s, keys[0], again.Keys(), err)
		}
	})
}
