package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
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
	return hex.EncodeToString(h[:])
}

// Decode reads a stored message into an envelope, checking that its hash
// header, when present, matches its body, and that it belongs to the
// subject it was stored on.
func Decode(subject string, seq uint64, header nats.Header, body []byte) (domain.Envelope, error) {
	var env domain.Envelope
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&env); err != nil {
		return env, fmt.Errorf("seq %d on %s: decode envelope: %w", seq, subject, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return env, fmt.Errorf("seq %d on %s: trailing data after envelope", seq, subject)
	}
	env.Seq, env.Subject, env.Hash = seq, subject, HashOf(body)
	env.Sig, env.KeyID, env.Mac = header.Get(HeaderSig), header.Get(HeaderKey), header.Get(HeaderMac)
	if h := header.Get(HeaderHash); h != "" && h != env.Hash {
		return env, fmt.Errorf("seq %d on %s: body hash %s does not match header %s", seq, subject, env.Hash, h)
	}
	ev, err := domain.DecodeEvent(env.Type, env.Schema, env.Data)
	if err != nil {
		return env, fmt.Errorf("seq %d on %s: %w", seq, subject, err)
	}
	env.Event = ev
	return env, nil
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
