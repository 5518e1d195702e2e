// Package wire reads and writes the compact binary form of checkpoints:
// varints, fixed bytes and length-prefixed strings. A Reader fails once
// and for good at the first thing it cannot read, and never allocates
// more than the bytes it is given could hold, so that a hostile input can
// neither crash nor exhaust the reader.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// AppendUvarint, AppendVarint and AppendString write what Reader reads.
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func AppendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendBool writes a bool as a byte.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// Reader reads an encoding; Err says what went wrong first, wrapped in
// the error the Reader was made with.
type Reader struct {
	b    []byte
	kind error
	err  error
}

// NewReader reads b; its errors wrap kind.
func NewReader(b []byte, kind error) *Reader { return &Reader{b: b, kind: kind} }

// Err is the first failure, nil if none.
func (r *Reader) Err() error { return r.err }

// Len is how many bytes are left.
func (r *Reader) Len() int { return len(r.b) }

// Fail records err as the failure, unless one was recorded already, and
// returns the failure.
func (r *Reader) Fail(err error) error {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %w", r.kind, err)
	}
	return r.err
}

// Bytes reads n bytes; they alias the input.
func (r *Reader) Bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.Fail(errors.New("cut short"))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	b := r.Bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// Bool reads a byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	switch r.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.Fail(errors.New("a bool that is neither 0 nor 1"))
	return false
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if len(r.b) > 0 && r.b[0] < 0x80 && r.err == nil { // one byte: most are
		v := r.b[0]
		r.b = r.b[1:]
		return uint64(v)
	}
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.Fail(errors.New("bad varint"))
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	if len(r.b) > 0 && r.b[0] < 0x80 && r.err == nil {
		v := int64(r.b[0])
		r.b = r.b[1:]
		return v>>1 ^ -(v & 1)
	}
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.Fail(errors.New("bad varint"))
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Below reads an unsigned varint that must be below n: an index into a
// table of n.
func (r *Reader) Below(n int) int {
	v := r.Uvarint()
	if r.err == nil && v >= uint64(n) {
		r.Fail(fmt.Errorf("index %d of a table of %d", v, n))
		return 0
	}
	return int(v)
}

// Count reads a number of entries each at least min bytes long, which the
// bytes left must be able to hold.
func (r *Reader) Count(min int) int {
	v := r.Uvarint()
	if r.err == nil && v > uint64(len(r.b)/min) {
		r.Fail(fmt.Errorf("%d entries cannot fit in %d bytes", v, len(r.b)))
		return 0
	}
	return int(v)
}

// String reads a string of at most max bytes, as a copy.
func (r *Reader) String(max int) string {
	n := r.Uvarint()
	if r.err == nil && n > uint64(max) {
		r.Fail(fmt.Errorf("a string of %d bytes, more than %d", n, max))
		return ""
	}
	return string(r.Bytes(int(n)))
}

// End fails unless every byte was read.
func (r *Reader) End() error {
	if r.err == nil && len(r.b) != 0 {
		r.Fail(fmt.Errorf("%d bytes after the end", len(r.b)))
	}
	return r.err
}
