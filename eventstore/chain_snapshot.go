package eventstore

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/packledger/packledger/internal/cow"
	"github.com/packledger/packledger/internal/wire"
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
	b = wire.AppendString(b, s.prefix)
	b = wire.AppendUvarint(b, uint64(s.pkgs.Len()))
	for i := range s.pkgs.Len() {
		e := s.pkgs.At(i)
		b = append(b, e.id[:]...)
		b = append(b, e.hash[:]...)
	}
	b = wire.AppendUvarint(b, uint64(s.subs.Len()))
	for i := range s.subs.Len() {
		e := s.subs.At(i)
		b = wire.AppendString(b, e.subject)
		b = append(b, e.hash[:]...)
	}
	b = wire.AppendUvarint(b, uint64(len(s.odd)))
	for k, v := range s.odd {
		b = wire.AppendString(b, k)
		b = wire.AppendString(b, v)
	}
	b = wire.AppendUvarint(b, uint64(s.claimed.Len()))
	for i := range s.claimed.Len() {
		id := s.claimed.At(i)
		b = append(b, id[:]...)
	}
	return b
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
	d := wire.NewReader(data, ErrBadChainSnapshot)
	c := NewChains(ring)
	if v := d.Byte(); v != chainFormat {
		return nil, d.Fail(fmt.Errorf("format %d, want %d", v, chainFormat))
	}
	prefix := d.String(maxSubject)
	if d.Err() == nil && prefix != "" && !isPackagePrefix(prefix) {
		return nil, d.Fail(fmt.Errorf("%q is not a package subject prefix", prefix))
	}
	c.last.prefix = prefix
	n := d.Count(48)
	c.last.pkgs.Grow(n)
	c.last.pkgIdx.Reserve(n)
	for range n {
		var e pkgLink
		copy(e.id[:], d.Bytes(16))
		copy(e.hash[:], d.Bytes(32))
		if d.Err() != nil {
			break
		}
		if prefix == "" {
			return nil, d.Fail(errors.New("package links without a prefix"))
		}
		if _, dup := c.last.pkgIdx.GetOrPut(e.id, int32(c.last.pkgs.Len())); dup {
			return nil, d.Fail(fmt.Errorf("package %s twice", e.id))
		}
		c.last.pkgs.Append(e)
	}
	n = d.Count(33)
	c.last.subs.Grow(n)
	c.last.subIdx.Reserve(n)
	for range n {
		e := subLink{subject: d.String(maxSubject)}
		copy(e.hash[:], d.Bytes(32))
		if d.Err() != nil {
			break
		}
		if _, isPkg := c.last.packageID(e.subject); isPkg {
			return nil, d.Fail(fmt.Errorf("package subject %s among the others", e.subject))
		}
		if _, dup := c.last.subIdx.GetOrPut(e.subject, int32(c.last.subs.Len())); dup {
			return nil, d.Fail(fmt.Errorf("subject %s twice", e.subject))
		}
		c.last.subs.Append(e)
	}
	n = d.Count(2)
	for range n {
		k, v := d.String(maxSubject), d.String(maxSubject)
		if d.Err() != nil {
			break
		}
		if _, dup := c.last.odd[k]; dup {
			return nil, d.Fail(fmt.Errorf("subject %s twice", k))
		}
		c.last.odd[k] = v
	}
	n = d.Count(16)
	c.claimed.ids.Grow(n)
	c.claimed.idx.Reserve(n)
	for range n {
		var id uuid.UUID
		copy(id[:], d.Bytes(16))
		if d.Err() != nil {
			break
		}
		if _, dup := c.claimed.idx.GetOrPut(id, int32(c.claimed.ids.Len())); dup {
			return nil, d.Fail(fmt.Errorf("claim %s twice", id))
		}
		c.claimed.ids.Append(id)
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	return c, nil
}

// Snapshot freezes the feed's chain state (see Chains.Snapshot) and
// returns what appends its encoding, which may run in any goroutine. It
// must be called between two events, from the goroutine that follows
// (inside Follow's callback, where the event just judged is the last one
// in it), or while no Follow runs.
func (f *Feed) Snapshot() (appendTo func(b []byte) []byte) { return f.chains.Snapshot().AppendTo }

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
