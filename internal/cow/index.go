package cow

import "hash/maphash"

// Index finds positions by key in a flat open-addressed table of int32:
// a few bytes an entry where a Go map of key to position would spend the
// key's size and more. The keys stay where they are (in a Vec, most
// often); key says which key a position holds.
//
// It is a plain table, not safe for concurrent use, and never takes a
// snapshot: it is rebuilt from the elements when a checkpoint is loaded.
type Index[K comparable] struct {
	seed  maphash.Seed
	slots []int32 // position+1; 0 is empty
	n     int
	key   func(pos int32) K
}

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
	i, found := x.find(k, maphash.Comparable(x.seed, k))
	if !found {
		x.n++
	}
	x.slots[i] = pos + 1
}

// GetOrPut returns the position of k if it has one, and otherwise makes
// it pos: one probe where Get then Put take two.
func (x *Index[K]) GetOrPut(k K, pos int32) (int32, bool) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	i, found := x.find(k, maphash.Comparable(x.seed, k))
	if found {
		return x.slots[i] - 1, true
	}
	x.n++
	x.slots[i] = pos + 1
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
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return int(i), false
		}
		if x.key(s-1) == k {
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
	x.slots = make([]int32, size)
	mask := uint64(size - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := maphash.Comparable(x.seed, x.key(s-1)) & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}
