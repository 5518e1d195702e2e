package cow

import "hash/maphash"

// Index finds positions by key in a flat open-addressed table of int32
// and a tag byte: a few bytes an entry where a Go map of key to position
// would spend the key's size and more. The keys stay where they are (in a Vec, most
// often); key says which key a position holds.
//
// It is a plain table, not safe for concurrent use, and never takes a
// snapshot: it is rebuilt from the elements when a checkpoint is loaded.
type Index[K comparable] struct {
	seed  maphash.Seed
	slots []int32 // position+1; 0 is empty
	// tags holds 8 bits of each slot's hash: a probe reads a key back
	// only when they match, one time in 256 for a key not there.
	tags []uint8
	n    int
	key  func(pos int32) K
}

func tagOf(h uint64) uint8 { return uint8(h >> 56) }

// NewIndex returns an empty index over positions whose keys key gives.
func NewIndex[K comparable](key func(pos int32) K) *Index[K] {
	return &Index[K]{seed: maphash.MakeSeed(), key: key}
}

// Len is the number of positions held.
func (x *Index[K]) Len() int { return x.n }

// Get returns the position of k.
func (x *Index[K]) Get(k K) (int32, bool) {
	if x.n == 0 {
		return 0, false
	}
	i, found := x.find(k, maphash.Comparable(x.seed, k))
	if !found {
		return 0, false
	}
	return x.slots[i] - 1, true
}

// Put makes pos the position of k, replacing the one it had.
func (x *Index[K]) Put(k K, pos int32) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	h := maphash.Comparable(x.seed, k)
	i, found := x.find(k, h)
	if !found {
		x.n++
	}
	x.slots[i], x.tags[i] = pos+1, tagOf(h)
}

// GetOrPut returns the position of k if it has one, and otherwise makes
// it pos: one probe where Get then Put take two.
func (x *Index[K]) GetOrPut(k K, pos int32) (int32, bool) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	h := maphash.Comparable(x.seed, k)
	i, found := x.find(k, h)
	if found {
		return x.slots[i] - 1, true
	}
	x.n++
	x.slots[i], x.tags[i] = pos+1, tagOf(h)
	return pos, false
}

// Reserve makes room for n positions in all, for an index rebuilt from a
// checkpoint.
func (x *Index[K]) Reserve(n int) {
	for n*4 > len(x.slots)*3 {
		x.grow()
	}
}

// find returns the slot holding k, or the empty slot where it belongs.
func (x *Index[K]) find(k K, h uint64) (int, bool) {
	mask, tag := uint64(len(x.slots)-1), tagOf(h)
	for i := h & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return int(i), false
		}
		if x.tags[i] == tag && x.key(s-1) == k {
			return int(i), true
		}
	}
}

func (x *Index[K]) grow() {
	size := 2 * len(x.slots)
	if size < 16 {
		size = 16
	}
	old := x.slots
	x.slots, x.tags = make([]int32, size), make([]uint8, size)
	mask := uint64(size - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		h := maphash.Comparable(x.seed, x.key(s-1))
		i := h & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i], x.tags[i] = s, tagOf(h)
	}
}
