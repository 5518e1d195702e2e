package eventstore

import (
	"encoding/hex"
	"maps"
	"strings"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/internal/cow"
)

// links is the last valid hash of every subject, as Chains keeps it for
// a feed that reads a million packages: a package's subject by its id and
// the hash as 32 bytes (48 bytes a package where a map of subject to hex
// took some two hundred), other subjects (receipts, plans) by name. The
// entries sit in chunked vectors, so that a snapshot of them for a
// checkpoint costs a copy of their chunk lists.
type links struct {
	// prefix is "ledger.<dealer>.packages." of the first package subject
	// met; a package subject under it is kept by id.
	prefix string
	pkgs   cow.Vec[pkgLink]
	pkgIdx *cow.Index[uuid.UUID]
	subs   cow.Vec[subLink] // by key: see subKey
	subIdx *cow.Index[string]
	// rprefix is "ledger.<dealer>.receipts." of the first receipt met;
	// a receipt's subject under it is kept by its token alone.
	rprefix string
	// odd holds hashes that are not 64 lower-case hex digits (a test's
	// "h1"), which a [32]byte cannot keep; it wins over an entry.
	odd       map[string]string
	oddShared bool
	// The subject follows last looked up and what it found, for the set
	// that ends the same Check.
	seen struct {
		subject string
		isPkg   bool
		id      uuid.UUID
		pos     int32
		found   bool
	}
}

type pkgLink struct {
	id   uuid.UUID
	hash [32]byte
}

type subLink struct {
	key  string // subKey of the subject
	hash [32]byte
}

// subKey is how a subject other than a package's is kept: a receipt's by
// its token (a token has no '.', a subject always has, so no two subjects
// share a key), any other by itself.
func (l *links) subKey(subject string) string {
	if l.rprefix == "" {
		if p, ok := receiptPrefix(subject); ok {
			l.rprefix = strings.Clone(p)
		}
	}
	if tok, ok := strings.CutPrefix(subject, l.rprefix); ok && l.rprefix != "" && tok != "" && !strings.Contains(tok, ".") {
		return tok
	}
	return subject
}

// subject is the subject a key stands for.
func (l *links) subject(key string) string {
	if strings.Contains(key, ".") {
		return key
	}
	return l.rprefix + key
}

// receiptPrefix is "ledger.<token>.receipts." of a receipt's subject.
func receiptPrefix(subject string) (string, bool) {
	const head, mid = "ledger.", ".receipts."
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '.')
	if i <= 0 || !strings.HasPrefix(rest[i:], mid) || strings.ContainsAny(rest[:i], "*>") {
		return "", false
	}
	return subject[:len(head)+i+len(mid)], true
}

func newLinks() *links {
	l := &links{odd: map[string]string{}}
	l.pkgIdx = cow.NewIndex(func(pos int32) uuid.UUID { return l.pkgs.At(int(pos)).id })
	l.subIdx = cow.NewIndex(func(pos int32) string { return l.subs.At(int(pos)).key })
	return l
}

// packageID is the id of a package subject under the prefix.
func (l *links) packageID(subject string) (uuid.UUID, bool) {
	if l.prefix == "" {
		i := len(subject) - 36
		if i < 0 || !isPackagePrefix(subject[:i]) {
			return uuid.UUID{}, false
		}
		id, ok := canonicalUUID(subject[i:])
		if ok {
			l.prefix = strings.Clone(subject[:i]) // not the whole message it came in
		}
		return id, ok
	}
	if len(subject) != len(l.prefix)+36 || subject[:len(l.prefix)] != l.prefix {
		return uuid.UUID{}, false
	}
	return canonicalUUID(subject[len(l.prefix):])
}

// isPackagePrefix: "ledger.<token>.packages.".
func isPackagePrefix(p string) bool {
	const head, tail = "ledger.", ".packages."
	if len(p) <= len(head)+len(tail) || p[:len(head)] != head || p[len(p)-len(tail):] != tail {
		return false
	}
	for i := len(head); i < len(p)-len(tail); i++ {
		if p[i] == '.' || p[i] == '*' || p[i] == '>' {
			return false
		}
	}
	return true
}

// canonicalUUID parses an id written as uuid.UUID.String writes it, and
// nothing else, so that one id is one subject.
func canonicalUUID(s string) (uuid.UUID, bool) {
	var id uuid.UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if s[i] == '-' {
			i--
			continue
		}
		hi, ok1 := lowerHex(s[i])
		lo, ok2 := lowerHex(s[i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[j] = hi<<4 | lo
		j++
	}
	return id, true
}

// hexValue is each byte's value as a lower-case hex digit, 0xff if it is
// none: every event's hash is read, and a table beats a comparison.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

func lowerHex(c byte) (byte, bool) {
	v := hexValue[c]
	return v, v != 0xff
}

// hashBytes reads a hash written as HashOf writes it.
func hashBytes(h string) ([32]byte, bool) {
	var b [32]byte
	if len(h) != 64 {
		return b, false
	}
	bad := byte(0)
	for i := range 32 {
		hi, lo := hexValue[h[2*i]], hexValue[h[2*i+1]]
		bad |= hi | lo
		b[i] = hi<<4 | lo&0x0f
	}
	return b, bad&0xf0 == 0
}

func (l *links) find(subject string) (*[32]byte, bool) {
	c := &l.seen
	if c.subject != subject || subject == "" {
		c.subject = subject
		c.id, c.isPkg = l.packageID(subject)
		if c.isPkg {
			c.pos, c.found = l.pkgIdx.Get(c.id)
		} else {
			c.pos, c.found = l.subIdx.Get(l.subKey(subject))
		}
	}
	switch {
	case !c.found:
		return nil, false
	case c.isPkg:
		return &l.pkgs.At(int(c.pos)).hash, true
	}
	return &l.subs.At(int(c.pos)).hash, true
}

// get is the subject's last valid hash, as hex, and whether it has one.
func (l *links) get(subject string) (string, bool) {
	if len(l.odd) > 0 {
		if h, ok := l.odd[subject]; ok {
			return h, true
		}
	}
	h, ok := l.find(subject)
	if !ok {
		return "", false
	}
	return hex.EncodeToString(h[:]), true
}

// follows reports whether the subject has a last valid hash, and whether
// prev is it: get's answer compared, without writing the hash out.
func (l *links) follows(subject, prev string) (seen, same bool) {
	if len(l.odd) > 0 {
		if h, ok := l.odd[subject]; ok {
			return true, h == prev
		}
	}
	h, ok := l.find(subject)
	if !ok {
		return false, prev == ""
	}
	p, ok := hashBytes(prev)
	return true, ok && p == *h
}

// set makes hash the subject's last valid hash.
func (l *links) set(subject, hash string) {
	b, canonical := hashBytes(hash)
	_, wasOdd := l.odd[subject]
	if !canonical || wasOdd {
		if l.oddShared {
			l.odd, l.oddShared = maps.Clone(l.odd), false
		}
		if !canonical {
			l.odd[subject] = hash
			return
		}
		delete(l.odd, subject)
	}
	if _, ok := l.find(subject); ok {
		if l.seen.isPkg {
			l.pkgs.Mut(int(l.seen.pos)).hash = b
		} else {
			l.subs.Mut(int(l.seen.pos)).hash = b
		}
		return
	}
	c := &l.seen
	c.found = true
	if c.isPkg {
		c.pos = int32(l.pkgs.Len())
		l.pkgIdx.Put(c.id, c.pos)
		l.pkgs.Append(pkgLink{id: c.id, hash: b})
		return
	}
	c.pos = int32(l.subs.Len())
	key := l.subKey(subject)
	if key != subject {
		key = strings.Clone(key) // not the whole subject it was cut from
	}
	l.subIdx.Put(key, c.pos)
	l.subs.Append(subLink{key: key, hash: b})
}

// claims is the set of payments whose receipt claim was met valid.
type claims struct {
	ids cow.Vec[uuid.UUID]
	idx *cow.Index[uuid.UUID]
}

func newClaims() *claims {
	c := &claims{}
	c.idx = cow.NewIndex(func(pos int32) uuid.UUID { return *c.ids.At(int(pos)) })
	return c
}

func (c *claims) add(id uuid.UUID) {
	if _, found := c.idx.GetOrPut(id, int32(c.ids.Len())); !found {
		c.ids.Append(id)
	}
}

func (c *claims) has(id uuid.UUID) bool {
	_, ok := c.idx.Get(id)
	return ok
}

// canonicalFast answers CanonicalSubject without allocating for an event
// stored where it belongs, which is every event but a forgery's: ok only
// when CanonicalSubject would return env.Subject (which it then returns).
func canonicalFast(env domain.Envelope) (string, bool) {
	if !validDealer(env.Dealer) {
		return "", false
	}
	rest, ok := strings.CutPrefix(env.Subject, "ledger.")
	if !ok {
		return "", false
	}
	if rest, ok = strings.CutPrefix(rest, env.Dealer); !ok {
		return "", false
	}
	switch e := env.Event.(type) {
	case domain.PlanDefined, domain.PlanRetired:
		return "", false
	case domain.ReceiptClaimed:
		tok, ok := strings.CutPrefix(rest, ".receipts.")
		if ok && isToken(tok, e.Receipt) {
			return env.Subject, true
		}
		return "", false
	case domain.PackageSold:
		if id, ok := canonicalUUID(env.Aggregate); !ok || id != e.PackageID {
			return "", false
		}
	}
	if _, ok := canonicalUUID(env.Aggregate); !ok {
		return "", false
	}
	if tok, ok := strings.CutPrefix(rest, ".packages."); ok && tok == env.Aggregate {
		return env.Subject, true
	}
	return "", false
}

// validDealer is CheckDealer's pattern, ^[a-z0-9][a-z0-9_-]{0,31}$, by hand.
func validDealer(d string) bool {
	if len(d) < 1 || len(d) > 32 {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// isToken reports whether tok is EncodeToken(s).
func isToken(tok, s string) bool {
	const upper = "0123456789ABCDEF"
	j := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			if j >= len(tok) || tok[j] != c {
				return false
			}
			j++
			continue
		}
		if j+3 > len(tok) || tok[j] != '%' || tok[j+1] != upper[c>>4] || tok[j+2] != upper[c&15] {
			return false
		}
		j += 3
	}
	return j == len(tok)
}
