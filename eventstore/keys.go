package eventstore

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	gohash "hash"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/packledger/packledger/domain"
)

// Signer signs each event's hash with the ledger's ed25519 key, so that an
// event written to the stream by anyone else — a forgery, or a replayed
// copy of a real event — can be told apart from the ledger's own.
type Signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
	// mac keys the MAC with a secret derived from the private key: see MAC.
	mac *macKey
}

// keyFilePrefix starts the private key file's one line; the rest is the
// base64 of the 32-byte seed.
const keyFilePrefix = "packledger-ed25519-seed "

// LoadOrCreateKey reads the ledger's private key from path, or makes one
// there (mode 0600, its folder 0700) if the file does not exist.
func LoadOrCreateKey(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	line := strings.TrimSpace(string(b))
	enc, ok := strings.CutPrefix(line, keyFilePrefix)
	if !ok {
		return nil, fmt.Errorf("key file %s: not a packledger key", path)
	}
	seed, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key file %s: bad seed", path)
	}
	return newSigner(ed25519.NewKeyFromSeed(seed)), nil
}

func createKey(path string) (*Signer, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	// O_EXCL: two servers starting on one data dir must not each make a key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKey(path)
		}
		return nil, fmt.Errorf("new key: %w", err)
	}
	_, werr := fmt.Fprintln(f, keyFilePrefix+base64.StdEncoding.EncodeToString(seed))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	return newSigner(ed25519.NewKeyFromSeed(seed)), nil
}

func newSigner(priv ed25519.PrivateKey) *Signer {
	pub := priv.Public().(ed25519.PublicKey)
	m := hmac.New(sha256.New, priv.Seed())
	m.Write([]byte(macLabel))
	return &Signer{priv: priv, pub: pub, id: Fingerprint(pub), mac: newMACKey(m.Sum(nil))}
}

// macLabel names what the MAC key derived from a seed is for, so that it
// is never the same secret as anything else made of that seed.
const macLabel = "packledger event MAC v1"

// MAC authenticates an event's hash and signature with a secret that only
// the holder of the private key can derive. It is the server's own quick
// way to know its events when it reads them back: checking an ed25519
// signature costs tens of microseconds, a MAC about one, and a server rebuilds
// its read models from every event of the log. It proves to the server
// exactly what the signature does (only the key's holder can make
// either), and nothing to anyone else: auditors, who hold only the
// public key, check signatures.
func (s *Signer) MAC(hash, sig string) string {
	var sum [sha256.Size]byte
	return base64.StdEncoding.EncodeToString(s.mac.sum(sum[:0], hash, sig))
}

// macKey makes MACs with one secret. Keyed HMAC states are pooled: the
// server checks one for every event it reads, on a rebuild a million in a
// row, and keying a fresh HMAC costs more than the MAC itself.
type macKey struct{ pool sync.Pool }

func newMACKey(secret []byte) *macKey {
	k := &macKey{}
	k.pool.New = func() any { return hmac.New(sha256.New, secret) }
	return k
}

func (k *macKey) sum(b []byte, hash, sig string) []byte {
	m := k.pool.Get().(gohash.Hash)
	m.Reset()
	m.Write([]byte(hash))
	m.Write([]byte{0})
	m.Write([]byte(sig))
	b = m.Sum(b)
	k.pool.Put(m)
	return b
}

// valid tells whether mac (base64) is the MAC of hash and sig.
func (k *macKey) valid(mac, hash, sig string) bool {
	var got, want [sha256.Size]byte
	if base64.StdEncoding.EncodedLen(sha256.Size) != len(mac) {
		return false
	}
	if n, err := base64.StdEncoding.Decode(got[:], []byte(mac)); err != nil || n != sha256.Size {
		return false
	}
	return hmac.Equal(got[:], k.sum(want[:0], hash, sig))
}

// Sign signs an event hash (hex).
func (s *Signer) Sign(hash string) (sig string, keyID string) {
	h, _ := hex.DecodeString(hash)
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.priv, h)), s.id
}

// Public is the public key.
func (s *Signer) Public() ed25519.PublicKey { return s.pub }

// PublicKeyString is the public key as packledger writes it:
// "ed25519:<base64>".
func PublicKeyString(pub ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a key written by PublicKeyString.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	enc, ok := strings.CutPrefix(strings.TrimSpace(s), "ed25519:")
	if !ok {
		return nil, fmt.Errorf("public key %q: want ed25519:<base64>", s)
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: bad key", s)
	}
	return ed25519.PublicKey(b), nil
}

// Fingerprint names a public key briefly enough to print on a daily close:
// the first 16 bytes of its SHA-256, hex, in groups of four.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	h := hex.EncodeToString(sum[:16])
	var parts []string
	for i := 0; i < len(h); i += 4 {
		parts = append(parts, h[i:i+4])
	}
	return strings.Join(parts, ":")
}

// Keyring is the set of public keys whose signatures the ledger accepts:
// the current key, and the keys it replaced. A replaced key is trusted only
// up to the last stream sequence it signed before its rotation, so that a
// leaked old key, the usual reason to rotate, cannot sign anything new.
type Keyring struct {
	keys map[string]trustedKey
}

type trustedKey struct {
	pub   ed25519.PublicKey
	until uint64  // last sequence it may sign; 0: no bound
	mac   *macKey // for this server's own key only
}

// NewKeyring trusts the given keys without bound.
func NewKeyring(pubs ...ed25519.PublicKey) *Keyring {
	k := &Keyring{keys: map[string]trustedKey{}}
	for _, p := range pubs {
		k.Add(p)
	}
	return k
}

// Add trusts one more key without bound.
func (k *Keyring) Add(pub ed25519.PublicKey) { k.keys[Fingerprint(pub)] = trustedKey{pub: pub} }

// AddSigner trusts the signer's key without bound and knows its events by
// their MAC.
func (k *Keyring) AddSigner(s *Signer) {
	k.keys[s.id] = trustedKey{pub: s.pub, mac: s.mac}
}

// AddTrusted trusts a key written as TrustedKeyString writes it:
// "ed25519:<base64>", or "ed25519:<base64>@N" for a key retired after
// stream sequence N.
func (k *Keyring) AddTrusted(s string) error {
	keyPart, bound, hasBound := strings.Cut(strings.TrimSpace(s), "@")
	pub, err := ParsePublicKey(keyPart)
	if err != nil {
		return err
	}
	t := trustedKey{pub: pub}
	if hasBound {
		if t.until, err = strconv.ParseUint(bound, 10, 64); err != nil || t.until == 0 {
			return fmt.Errorf("public key %q: the bound after @ must be a stream sequence", s)
		}
	}
	k.keys[Fingerprint(pub)] = t
	return nil
}

// TrustedKeyString writes a key and its bound (0: none).
func TrustedKeyString(pub ed25519.PublicKey, until uint64) string {
	if until == 0 {
		return PublicKeyString(pub)
	}
	return PublicKeyString(pub) + "@" + strconv.FormatUint(until, 10)
}

// Keys lists the trusted keys as TrustedKeyString writes them, sorted.
func (k *Keyring) Keys() []string {
	out := make([]string, 0, len(k.keys))
	for _, t := range k.keys {
		out = append(out, TrustedKeyString(t.pub, t.until))
	}
	sort.Strings(out)
	return out
}

// Authentic checks that an event was made by a trusted key: by its MAC
// when it was made by this server's own key, else by its signature. A MAC
// missing or wrong is no verdict: the signature decides.
func (k *Keyring) Authentic(env domain.Envelope) error {
	if t, ok := k.keys[env.KeyID]; ok && t.mac != nil && env.Mac != "" && (t.until == 0 || env.Seq <= t.until) &&
		t.mac.valid(env.Mac, env.Hash, env.Sig) {
		return nil
	}
	return k.Verify(env.Hash, env.Sig, env.KeyID, env.Seq)
}

// Verify checks a signature over an event hash (hex) stored at stream
// sequence seq.
func (k *Keyring) Verify(hash, sig, keyID string, seq uint64) error {
	t, ok := k.keys[keyID]
	if !ok {
		if keyID == "" {
			return errors.New("not signed")
		}
		return fmt.Errorf("signed by unknown key %s", keyID)
	}
	if t.until > 0 && seq > t.until {
		return fmt.Errorf("signed by key %s, retired after seq %d", keyID, t.until)
	}
	h, err := hex.DecodeString(hash)
	if err != nil {
		return errors.New("bad hash")
	}
	s, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !ed25519.Verify(t.pub, h, s) {
		return fmt.Errorf("bad signature for key %s", keyID)
	}
	return nil
}

// LoadKeyring reads a file of trusted public keys, one a line as
// TrustedKeyString writes them; blank lines and lines starting with # are
// skipped. A missing file is an empty ring.
func LoadKeyring(path string, ring *Keyring) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	// Whoever can write the keyring can make the ledger trust a key.
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("keyring %s is writable by others (mode %v): chmod go-w it", path, fi.Mode().Perm())
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := ring.AddTrusted(line); err != nil {
			return fmt.Errorf("keyring %s line %d: %w", path, i+1, err)
		}
	}
	return nil
}
