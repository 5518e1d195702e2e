// Package cow holds the containers the read models and the chain state
// keep their many small records in: a chunked vector whose snapshot costs
// a copy of its list of chunks (a write then copies the one chunk it
// touches, if a snapshot still shares it), and a flat hash index of
// positions in such a vector. Together they let a checkpoint of a million
// packages be taken under a lock in microseconds and written out while
// the ledger goes on applying events.
package cow

import "slices"

const (
	chunkBits = 8
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

type chunk[T any] struct {
	epoch uint64 // the vector's epoch when this chunk became its own
	items [chunkSize]T
}

// Vec is a vector of T in fixed-size chunks. It is not safe for
// concurrent use, but its Views are: a View never sees a later write.
//
// Elements must be treated as values: a write replaces an element (Mut),
// and whatever an element points to must not be changed in place once a
// View may hold it.
type Vec[T any] struct {
	chunks []*chunk[T]
	n      int
	epoch  uint64
}

// Len is the number of elements.
func (v *Vec[T]) Len() int { return v.n }

// At returns element i for reading.
func (v *Vec[T]) At(i int) *T { return &v.chunks[i>>chunkBits].items[i&chunkMask] }

// Mut returns element i for writing, first copying its chunk if a View
// shares it.
func (v *Vec[T]) Mut(i int) *T {
	c := v.chunks[i>>chunkBits]
	if c.epoch != v.epoch {
		own := new(chunk[T])
		*own = *c
		own.epoch = v.epoch
		v.chunks[i>>chunkBits] = own
		c = own
	}
	return &c.items[i&chunkMask]
}

// Append adds x and returns its index. It may write into a chunk a View
// shares: a View never reads past its own length.
func (v *Vec[T]) Append(x T) int {
	if v.n&chunkMask == 0 {
		v.chunks = append(v.chunks, &chunk[T]{epoch: v.epoch})
	}
	v.chunks[v.n>>chunkBits].items[v.n&chunkMask] = x
	v.n++
	return v.n - 1
}

// Grow makes room for n more elements without reallocating the list of
// chunks, for a vector filled from a checkpoint.
func (v *Vec[T]) Grow(n int) {
	v.chunks = slices.Grow(v.chunks, (v.n+n+chunkMask)>>chunkBits-len(v.chunks))
}

// Snapshot returns a View of the vector as it is now. Until Release,
// each chunk is copied the first time it is written to.
func (v *Vec[T]) Snapshot() View[T] {
	w := View[T]{chunks: slices.Clone(v.chunks), n: v.n}
	v.epoch++
	return w
}

// Release tells the vector that no View taken so far is read any more,
// so that writes stop copying chunks.
func (v *Vec[T]) Release() {
	for _, c := range v.chunks {
		c.epoch = v.epoch
	}
}

// View is a vector frozen at the instant of its Snapshot.
type View[T any] struct {
	chunks []*chunk[T]
	n      int
}

// Len is the number of elements.
func (w View[T]) Len() int { return w.n }

// At returns element i.
func (w View[T]) At(i int) *T { return &w.chunks[i>>chunkBits].items[i&chunkMask] }
