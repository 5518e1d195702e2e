package eventstore

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Signer signs each event's hash with the ledger's ed25519 key, so that an
// event written to the stream by anyone else — a forgery, or a replayed
// copy of a real event — can be told apart from the ledger's own.
type Signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
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
	return &Signer{priv: priv, pub: pub, id: Fingerprint(pub)}
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
// the current key, and the keys it replaced, so that events signed before
// a rotation stay valid.
type Keyring struct {
	keys map[string]ed25519.PublicKey
}

// NewKeyring trusts the given keys.
func NewKeyring(pubs ...ed25519.PublicKey) *Keyring {
	k := &Keyring{keys: map[string]ed25519.PublicKey{}}
	for _, p := range pubs {
		k.keys[Fingerprint(p)] = p
	}
	return k
}

// Add trusts one more key.
func (k *Keyring) Add(pub ed25519.PublicKey) { k.keys[Fingerprint(pub)] = pub }

// Keys lists the trusted keys as PublicKeyString writes them.
func (k *Keyring) Keys() []string {
	var out []string
	for _, p := range k.keys {
		out = append(out, PublicKeyString(p))
	}
	return out
}

// Verify checks a signature over an event hash (hex).
func (k *Keyring) Verify(hash, sig, keyID string) error {
	pub, ok := k.keys[keyID]
	if !ok {
		if keyID == "" {
			return errors.New("not signed")
		}
		return fmt.Errorf("signed by unknown key %s", keyID)
	}
	h, err := hex.DecodeString(hash)
	if err != nil {
		return errors.New("bad hash")
	}
	s, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !ed25519.Verify(pub, h, s) {
		return fmt.Errorf("bad signature for key %s", keyID)
	}
	return nil
}

// LoadKeyring reads a file of trusted public keys, one a line; blank lines
// and lines starting with # are skipped. A missing file is an empty ring.
func LoadKeyring(path string, ring *Keyring) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pub, err := ParsePublicKey(line)
		if err != nil {
			return fmt.Errorf("keyring %s line %d: %w", path, i+1, err)
		}
		ring.Add(pub)
	}
	return nil
}
