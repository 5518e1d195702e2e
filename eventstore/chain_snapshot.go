package eventstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/packledger/packledger/internal/cow"
)

// ChainSnapshot is the chain state of a Chains as it was at one instant,
// for a checkpoint: a resumed feed must judge the next event exactly as
// an unbroken one would. Taking it costs a copy of some chunk lists; it
// may be encoded while the Chains go on judging events.
type ChainSnapshot struct {
	prefix  string
	pkgs    cow.View[pkgLink]
	subs    cow.View[subLink]
	odd     map[string]string
	claimed cow.View[uuid.UUID]
}

// Snapshot freezes the chain state. Call Release once the snapshot is
// encoded, so that the Chains stop copying what they change.
func (c *Chains) Snapshot() *ChainSnapshot {
	c.last.oddShared = true
	return &ChainSnapshot{
		prefix: c.last.prefix, pkgs: c.last.pkgs.Snapshot(), subs: c.last.subs.Snapshot(),
		odd: c.last.odd, claimed: c.claimed.ids.Snapshot(),
	}
}

// Release ends every snapshot taken so far.
func (c *Chains) Release() {
	c.last.pkgs.Release()
	c.last.subs.Release()
	c.claimed.ids.Release()
}

// chainFormat versions the encoding of a ChainSnapshot.
const chainFormat = 1

// AppendTo appends the snapshot's encoding to b.
func (s *ChainSnapshot) AppendTo(b []byte) []byte {
	b = append(b, chainFormat)
	b = appendString(b, s.prefix)
	b = binary.AppendUvarint(b, uint64(s.pkgs.Len()))
	for i := range s.pkgs.Len() {
		e := s.pkgs.At(i)
		b = append(b, e.id[:]...)
		b = append(b, e.hash[:]...)
	}
	b = binary.AppendUvarint(b, uint64(s.subs.Len()))
	for i := range s.subs.Len() {
		e := s.subs.At(i)
		b = appendString(b, e.subject)
		b = append(b, e.hash[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(s.odd)))
	for k, v := range s.odd {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	b = binary.AppendUvarint(b, uint64(s.claimed.Len()))
	for i := range s.claimed.Len() {
		id := s.claimed.At(i)
		b = append(b, id[:]...)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// maxSubject bounds a subject in a chain snapshot: NATS's own limit on a
// subject is far below it.
const maxSubject = 4096

// ErrBadChainSnapshot says an encoded chain snapshot cannot be read.
var ErrBadChainSnapshot = errors.New("chain snapshot")

// RestoreChains returns Chains over ring holding the chain state a
// snapshot encoded. Anything it cannot read exactly (cut short, a count
// beyond what the bytes can hold, a subject twice) is an error, and
// nothing of it is used.
func RestoreChains(ring *Keyring, data []byte) (*Chains, error) {
	d := decoder{b: data}
	c := NewChains(ring)
	if v := d.u8(); v != chainFormat {
		return nil, d.fail(fmt.Errorf("format %d, want %d", v, chainFormat))
	}
	prefix := d.string(maxSubject)
	if d.err == nil && prefix != "" && !isPackagePrefix(prefix) {
		return nil, d.fail(fmt.Errorf("%q is not a package subject prefix", prefix))
	}
	c.last.prefix = prefix
	n := d.count(48)
	c.last.pkgs.Grow(n)
	c.last.pkgIdx.Reserve(n)
	for range n {
		var e pkgLink
		copy(e.id[:], d.bytes(16))
		copy(e.hash[:], d.bytes(32))
		if d.err != nil {
			break
		}
		if prefix == "" {
			return nil, d.fail(errors.New("package links without a prefix"))
		}
		if _, dup := c.last.pkgIdx.GetOrPut(e.id, int32(c.last.pkgs.Len())); dup {
			return nil, d.fail(fmt.Errorf("package %s twice", e.id))
		}
		c.last.pkgs.Append(e)
	}
	n = d.count(33)
	c.last.subs.Grow(n)
	c.last.subIdx.Reserve(n)
	for range n {
		e := subLink{subject: d.string(maxSubject)}
		copy(e.hash[:], d.bytes(32))
		if d.err != nil {
			break
		}
		if _, isPkg := c.last.packageID(e.subject); isPkg {
			return nil, d.fail(fmt.Errorf("package subject %s among the others", e.subject))
		}
		if _, dup := c.last.subIdx.GetOrPut(e.subject, int32(c.last.subs.Len())); dup {
			return nil, d.fail(fmt.Errorf("subject %s twice", e.subject))
		}
		c.last.subs.Append(e)
	}
	n = d.count(2)
	for range n {
		k, v := d.string(maxSubject), d.string(maxSubject)
		if d.err != nil {
			break
		}
		if _, dup := c.last.odd[k]; dup {
			return nil, d.fail(fmt.Errorf("subject %s twice", k))
		}
		c.last.odd[k] = v
	}
	n = d.count(16)
	c.claimed.ids.Grow(n)
	c.claimed.idx.Reserve(n)
	for range n {
		var id uuid.UUID
		copy(id[:], d.bytes(16))
		if d.err != nil {
			break
		}
		if _, dup := c.claimed.idx.GetOrPut(id, int32(c.claimed.ids.Len())); dup {
			return nil, d.fail(fmt.Errorf("claim %s twice", id))
		}
		c.claimed.ids.Append(id)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Errorf("%d bytes after the end", len(d.b)))
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

// decoder reads what AppendTo wrote, failing once and for good at the
// first thing it cannot read.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) error {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %w", ErrBadChainSnapshot, err)
	}
	return d.err
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n > len(d.b) {
		d.fail(errors.New("cut short"))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u8() byte {
	b := d.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errors.New("bad varint"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of entries each at least min bytes long, which
// the bytes left must be able to hold: a hostile count allocates nothing.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/min) {
		d.fail(fmt.Errorf("%d entries cannot fit in %d bytes", v, len(d.b)))
		return 0
	}
	return int(v)
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if d.err == nil && n > uint64(max) {
		d.fail(fmt.Errorf("a string of %d bytes", n))
		return ""
	}
	return string(d.bytes(int(n)))
}

// Snapshot freezes the feed's chain state; see Chains.Snapshot. It must
// be called between two events, from the goroutine that follows (inside
// Follow's callback, where the event just judged is the last one in it).
func (f *Feed) Snapshot() *ChainSnapshot { return f.chains.Snapshot() }

// Release ends the feed's snapshots; call it as Snapshot is called.
func (f *Feed) Release() { f.chains.Release() }

// Restore makes the feed go on from a checkpoint: the chain state a
// snapshot encoded, taken once the event at seq was judged. Call it
// before Follow.
func (f *Feed) Restore(data []byte, seq uint64) error {
	c, err := RestoreChains(f.s.ring, data)
	if err != nil {
		return err
	}
	f.chains, f.seen = c, seq
	return nil
}
