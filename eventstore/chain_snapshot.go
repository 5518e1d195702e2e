package eventstore

import (
	"errors"
	"fmt"
	"sync"

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
	rprefix string
	odd     map[string]string
	claimed cow.View[uuid.UUID]
}

// Snapshot freezes the chain state. Call Release once the snapshot is
// encoded, so that the Chains stop copying what they change.
func (c *Chains) Snapshot() *ChainSnapshot {
	c.last.oddShared = true
	return &ChainSnapshot{
		prefix: c.last.prefix, pkgs: c.last.pkgs.Snapshot(), subs: c.last.subs.Snapshot(), rprefix: c.last.rprefix,
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

// AppendTo appends the snapshot's encoding to b. The other subjects are
// written as their lengths, then all their bytes, then their hashes, so
// that they read back as one string and one copy.
func (s *ChainSnapshot) AppendTo(b []byte) []byte {
	b = append(b, chainFormat)
	b = wire.AppendString(b, s.prefix)
	b = wire.AppendUvarint(b, uint64(s.pkgs.Len()))
	for i := range s.pkgs.Len() {
		e := s.pkgs.At(i)
		b = append(b, e.id[:]...)
		b = append(b, e.hash[:]...)
	}
	b = wire.AppendString(b, s.rprefix)
	n := s.subs.Len()
	b = wire.AppendUvarint(b, uint64(n))
	for i := range n {
		b = wire.AppendUvarint(b, uint64(len(s.subs.At(i).key)))
	}
	for i := range n {
		b = append(b, s.subs.At(i).key...)
	}
	for i := range n {
		b = append(b, s.subs.At(i).hash[:]...)
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
	if n > 0 && prefix == "" {
		return nil, d.Fail(errors.New("package links without a prefix"))
	}
	c.last.pkgs.Grow(n)
	for range n {
		var e pkgLink
		copy(e.id[:], d.Bytes(16))
		copy(e.hash[:], d.Bytes(32))
		c.last.pkgs.Append(e)
	}
	rprefix := d.String(maxSubject)
	if d.Err() == nil && rprefix != "" {
		if p, ok := receiptPrefix(rprefix + "x"); !ok || p != rprefix {
			return nil, d.Fail(fmt.Errorf("%q is not a receipt subject prefix", rprefix))
		}
	}
	c.last.rprefix = rprefix
	n = d.Count(33)
	lens := make([]int, n)
	total := 0
	for i := range lens {
		l := d.Uvarint()
		if l > maxSubject {
			return nil, d.Fail(fmt.Errorf("a subject of %d bytes", l))
		}
		lens[i] = int(l)
		total += int(l)
	}
	blob := string(d.Bytes(total))
	hashes := d.Bytes(32 * n)
	if d.Err() != nil {
		return nil, d.Err()
	}
	c.last.subs.Grow(n)
	for i, l := range lens {
		e := subLink{key: blob[:l]}
		blob = blob[l:]
		copy(e.hash[:], hashes[32*i:])
		// The key must be the one subKey makes of its subject.
		subject := c.last.subject(e.key)
		if _, isPkg := c.last.packageID(subject); isPkg || e.key == "" || c.last.subKey(subject) != e.key {
			return nil, d.Fail(fmt.Errorf("subject %q is not kept as it would be", subject))
		}
		c.last.subs.Append(e)
	}
	for range d.Count(2) {
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
	for range n {
		var id uuid.UUID
		copy(id[:], d.Bytes(16))
		c.claimed.ids.Append(id)
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	if err := c.index(); err != nil {
		return nil, d.Fail(err)
	}
	return c, nil
}

// index rebuilds the three indexes of restored Chains, each in a
// goroutine of its own, and fails if any key is there twice.
func (c *Chains) index() error {
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		v, x := &c.last.pkgs, c.last.pkgIdx
		x.Reserve(v.Len())
		for i := range v.Len() {
			if _, dup := x.GetOrPut(v.At(i).id, int32(i)); dup {
				errs[0] = fmt.Errorf("package %s twice", v.At(i).id)
				return
			}
		}
	})
	wg.Go(func() {
		v, x := &c.last.subs, c.last.subIdx
		x.Reserve(v.Len())
		for i := range v.Len() {
			if _, dup := x.GetOrPut(v.At(i).key, int32(i)); dup {
				errs[1] = fmt.Errorf("subject %s twice", c.last.subject(v.At(i).key))
				return
			}
		}
	})
	wg.Go(func() {
		v, x := &c.claimed.ids, c.claimed.idx
		x.Reserve(v.Len())
		for i := range v.Len() {
			if _, dup := x.GetOrPut(*v.At(i), int32(i)); dup {
				errs[2] = fmt.Errorf("claim %s twice", *v.At(i))
				return
			}
		}
	})
	wg.Wait()
	return errors.Join(errs...)
}

// Snapshot freezes the feed's chain state (see Chains.Snapshot) and
// returns what appends its encoding, which may run in any goroutine. It
// must be called between two events, from the goroutine that follows
// (inside Follow's callback, where the event just judged is the last one
// in it), or while no Follow runs.
func (f *Feed) Snapshot() (appendTo func(b []byte) []byte) { return f.chains.Snapshot().AppendTo }

// Release ends the feed's snapshots; call it as Snapshot is called.
func (f *Feed) Release() { f.chains.Release() }

// Restore reads the chain state a snapshot encoded, taken once the event
// at seq was judged, and returns what makes the feed go on from it; it
// changes nothing itself, so that a checkpoint whose other parts cannot
// be read leaves the feed as it was. Call commit before Follow.
func (f *Feed) Restore(data []byte, seq uint64) (commit func(), err error) {
	c, err := RestoreChains(f.s.ring, data)
	if err != nil {
		return nil, err
	}
	return func() { f.chains, f.seen = c, seq }, nil
}
