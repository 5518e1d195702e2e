package eventstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/internal/strictjson"
)

// Headers carried by every ledger message besides the body.
const (
	// HeaderHash is the hex SHA-256 of the body. The body names the
	// previous event's hash, so the hashes of one subject form a chain.
	HeaderHash = "Ledger-Hash"
	// HeaderType repeats the event type so a plain NATS client can filter
	// without decoding.
	HeaderType = "Ledger-Type"
	// HeaderSig is the base64 ed25519 signature of the hash, and HeaderKey
	// the fingerprint of the key that made it.
	HeaderSig = "Ledger-Sig"
	HeaderKey = "Ledger-Key"
	// HeaderMac is the server's MAC of the hash and signature (see
	// Signer.MAC).
	HeaderMac = "Ledger-Mac"
)

// Encode returns the stored body of an envelope and its hash. Data must
// already hold the event's encoded data.
func Encode(env domain.Envelope) (body []byte, hash string, err error) {
	body, err = json.Marshal(env)
	if err != nil {
		return nil, "", fmt.Errorf("encode envelope: %w", err)
	}
	return body, HashOf(body), nil
}

// HashOf is the chain hash of a stored body.
func HashOf(body []byte) string {
	h := sha256.Sum256(body)
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], h[:])
	return string(hx[:])
}

// Decode reads a stored message into an envelope, checking that its hash
// header, when present, matches its body, and that it belongs to the
// subject it was stored on. The envelope's Data shares body's bytes.
//
// It reads as encoding/json's strict Decoder read an envelope and then
// its event (see internal/strictjson): the same envelopes, the same
// refusals, the same errors.
func Decode(subject string, seq uint64, header nats.Header, body []byte) (domain.Envelope, error) {
	// One pass reads the envelope and, where it meets the data, the
	// event. What that pass cannot vouch for (anything wrong, or the
	// event's type or schema read after its data) is read again in two,
	// envelope then event, which tell what is wrong as it was always told.
	var env domain.Envelope
	r := strictjson.NewReader(body)
	readEnvelope(&r, &env, true)
	fused := r.Err() == nil && !r.More() && env.Event != nil
	if !fused {
		env = domain.Envelope{}
		r = strictjson.NewReader(body)
		readEnvelope(&r, &env, false)
		if err := r.Err(); err != nil {
			return env, fmt.Errorf("seq %d on %s: decode envelope: %w", seq, subject, err)
		}
		if r.More() {
			return env, fmt.Errorf("seq %d on %s: trailing data after envelope", seq, subject)
		}
	}
	env.Seq, env.Subject, env.Hash = seq, subject, HashOf(body)
	env.Sig, env.KeyID, env.Mac = header.Get(HeaderSig), header.Get(HeaderKey), header.Get(HeaderMac)
	if h := header.Get(HeaderHash); h != "" && h != env.Hash {
		env.Event = nil
		return env, fmt.Errorf("seq %d on %s: body hash %s does not match header %s", seq, subject, env.Hash, h)
	}
	if !fused {
		ev, err := domain.DecodeEvent(env.Type, env.Schema, env.Data)
		if err != nil {
			return env, fmt.Errorf("seq %d on %s: %w", seq, subject, err)
		}
		env.Event = ev
	}
	return env, nil
}

var (
	envelopeFields = strictjson.StructOf[domain.Envelope]()
	actorFields    = strictjson.StructOf[domain.Actor]()
)

// readEnvelope reads a stored body's fields. With fuse, it reads the
// data's event too, into env.Event, when the type and schema it has read
// so far name one; env.Event is left nil where the event read might not
// be the one the whole envelope names: no type or schema known at the
// data, or either read again after it.
func readEnvelope(r *strictjson.Reader, env *domain.Envelope, fuse bool) {
	for f := r.Object(envelopeFields); f.Next(); {
		switch f.Name() {
		case "id":
			strictjson.Text[uuid.UUID](r, env.ID.UnmarshalText)
		case "type":
			strictjson.String(r, &env.Type)
			env.Event = nil
		case "schema":
			strictjson.Int(r, &env.Schema)
			env.Event = nil
		case "dealer":
			strictjson.String(r, &env.Dealer)
		case "store":
			strictjson.String(r, &env.Store)
		case "aggregate":
			strictjson.String(r, &env.Aggregate)
		case "business_time":
			r.Unmarshal(env.BusinessTime.UnmarshalJSON)
		case "recorded_at":
			r.Unmarshal(env.RecordedAt.UnmarshalJSON)
		case "actor":
			for a := r.Object(actorFields); a.Next(); {
				switch a.Name() {
				case "id":
					strictjson.String(r, &env.Actor.ID)
				case "role":
					strictjson.String(r, &env.Actor.Role)
				}
			}
		case "idempotency_key":
			strictjson.String(r, &env.Key)
		case "request":
			strictjson.String(r, &env.Request)
		case "prev":
			strictjson.String(r, &env.Prev)
		case "data":
			env.Event = nil
			if fuse && env.Schema == domain.SchemaVersion {
				at := r.Mark()
				if ev, ok := domain.ReadEvent(r, env.Type); ok {
					env.Data, env.Event = r.Since(at), ev
					break
				}
			}
			env.Data = r.Raw()
		}
	}
}

// seqHeader reads a numeric header.
func seqHeader(h nats.Header, key string) (uint64, error) {
	v := h.Get(key)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("header %s=%q: %w", key, v, err)
	}
	return n, nil
}
