// Package strictjson reads JSON into Go values as encoding/json's Decoder
// does with DisallowUnknownFields — the same values, the same refusals,
// the same error messages — without its reflection and in one pass over
// the bytes: the caller says, field by field, where each value goes. The
// ledger reads every stored event through it, on every rebuild, start
// and write.
//
// What "the same" covers: a key matches a field exactly or else without
// regard to case (as bytes.EqualFold), after its escapes are read; a key
// given twice is read twice, into what the first left (the last scalar
// wins, objects and arrays merge, as encoding/json does); null leaves
// strings, numbers, structs and arrays of fixed size as they were and
// empties slices and pointers; Unmarshalers and TextUnmarshalers are
// called with what encoding/json would give them; an error is, in this
// order, invalid JSON (reported by encoding/json's own scanner), an
// Unmarshaler's error (which ends decoding), or the first other error.
package strictjson

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth is the nesting encoding/json's scanner allows.
const maxDepth = 10000

// maxPath bounds the nesting of struct fields a Reader names in its
// errors. The ledger's types nest three deep; a type nested deeper is a
// programming error (see push).
const maxPath = 8

// Reader reads one JSON value. Its zero value reads nothing; use
// NewReader. The typed reads (Object, String, Int, Slice…) each read the
// next value; after the last one, Err says what went wrong, if anything,
// and More whether anything follows.
type Reader struct {
	data  []byte
	off   int
	depth int
	// bad is set once the bytes are found not to be JSON: nothing more is
	// read, and Err asks encoding/json what it would say.
	bad bool
	// abort is an Unmarshaler's error, which ends encoding/json's
	// decoding: from it on values are only checked to be JSON.
	abort error
	// saved is the first error that encoding/json notes and decodes on.
	saved error
	// path and inStruct are encoding/json's error context: the JSON
	// names of the fields being read, from the top value down, and the
	// name of the struct that holds each; inStruct[npath-1] is the one
	// errors name.
	path     [maxPath]string
	inStruct [maxPath]string
	npath    int
}

// NewReader returns a reader of data.
func NewReader(data []byte) Reader { return Reader{data: data} }

// Err is the error of the value read, the one encoding/json's
// Decoder.Decode would return for it.
func (r *Reader) Err() error {
	switch {
	case r.bad:
		return syntaxError(r.data)
	case r.abort != nil:
		return r.abort
	}
	return r.saved
}

// More reports whether anything but white space follows the value read.
func (r *Reader) More() bool {
	r.skipSpace()
	return r.off < len(r.data)
}

// syntaxError is encoding/json's complaint about data that is not JSON,
// found by its own scanner so that it reads word for word the same.
func syntaxError(data []byte) error {
	var v json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&v); err != nil {
		return err
	}
	// The reader and the scanner disagree: the reader's bug, and still
	// no reason to accept what the reader could not follow.
	return errors.New("strictjson: invalid JSON")
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (r *Reader) skipSpace() {
	for r.off < len(r.data) && isSpace(r.data[r.off]) {
		r.off++
	}
}

// next is the first byte of the next value, or 0 at the end of the data
// (never a valid first byte, like a NUL in the data).
func (r *Reader) next() byte {
	r.skipSpace()
	if r.off < len(r.data) {
		return r.data[r.off]
	}
	return 0
}

// start begins a typed read: the value's first byte, or false when the
// read is over before it starts — the data is not JSON, or an Unmarshaler
// failed and the value is only checked (skipped).
func (r *Reader) start() (byte, bool) {
	if r.bad {
		return 0, false
	}
	if r.abort != nil {
		r.skip()
		return 0, false
	}
	return r.next(), true
}

func (r *Reader) invalid() { r.bad = true }

// save notes an error and reads on, as encoding/json's saveError does.
func (r *Reader) save(err error) {
	if r.saved == nil {
		r.saved = r.withContext(err)
	}
}

// fail ends decoding with an Unmarshaler's error.
func (r *Reader) fail(err error) { r.abort = r.withContext(err) }

// withContext names the field at fault in a type error, as
// encoding/json's addErrorContext does.
func (r *Reader) withContext(err error) error {
	te, ok := err.(*json.UnmarshalTypeError)
	if !ok || r.npath == 0 {
		return err
	}
	te.Struct = r.inStruct[r.npath-1]
	fields := r.path[:r.npath:r.npath]
	if te.Field != "" {
		fields = append(fields, te.Field)
	}
	te.Field = strings.Join(fields, ".")
	return err
}

// mismatch notes that the next value, which starts with c, is not of
// type t, and skips it.
func (r *Reader) mismatch(c byte, t reflect.Type) {
	off := r.off
	r.skip()
	if !r.bad {
		r.save(&json.UnmarshalTypeError{Value: kindOf(c), Type: t, Offset: int64(off)})
	}
}

// kindOf names a JSON value by its first byte, as encoding/json's type
// errors do.
func kindOf(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// enter and leave keep the nesting within encoding/json's bound.
func (r *Reader) enter() bool {
	r.depth++
	if r.depth > maxDepth {
		r.invalid()
		return false
	}
	return true
}

func (r *Reader) leave() { r.depth-- }

// push names the field about to be read, in struct s.
func (r *Reader) push(s *Struct, name string) {
	if r.npath == maxPath {
		panic(fmt.Sprintf("strictjson: fields of %s nest deeper than %d", s.typ, maxPath))
	}
	r.path[r.npath] = name
	r.inStruct[r.npath] = s.name
	r.npath++
}

// skip reads past the next value, checking that it is JSON. It keeps its
// own stack of open brackets rather than recursing, so that hostile
// nesting costs memory in proportion, not goroutine stack.
func (r *Reader) skip() {
	if r.bad {
		return
	}
	var stackBuf [32]byte
	open := stackBuf[:0]
	for {
		// A value.
		switch c := r.next(); c {
		case '{', '[':
			if !r.enter() {
				return
			}
			r.off++
			open = append(open, c)
			if c == '{' {
				if r.next() == '}' {
					r.off++
					r.leave()
					open = open[:len(open)-1]
					break
				}
				if !r.objectKey() {
					return
				}
				continue
			}
			if r.next() == ']' {
				r.off++
				r.leave()
				open = open[:len(open)-1]
				break
			}
			continue
		default:
			if !r.scalar(c) {
				return
			}
		}
		// After a value: close what ends, go on to the next key or element.
		for {
			if len(open) == 0 {
				return
			}
			c := r.next()
			top := open[len(open)-1]
			if c == ',' {
				r.off++
				if top == '{' && !r.objectKey() {
					return
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				r.off++
				r.leave()
				open = open[:len(open)-1]
				continue
			}
			r.invalid()
			return
		}
	}
}

// objectKey reads a key and its colon.
func (r *Reader) objectKey() bool {
	if r.next() != '"' {
		r.invalid()
		return false
	}
	if _, _, ok := r.scanString(); !ok {
		return false
	}
	if r.next() != ':' {
		r.invalid()
		return false
	}
	r.off++
	return true
}

// scalar reads past a string, number or literal that starts with c.
func (r *Reader) scalar(c byte) bool {
	switch {
	case c == '"':
		_, _, ok := r.scanString()
		return ok
	case c == '-' || '0' <= c && c <= '9':
		_, ok := r.scanNumber()
		return ok
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	}
	r.invalid()
	return false
}

func (r *Reader) literal(lit string) bool {
	if end := r.off + len(lit); end > len(r.data) || string(r.data[r.off:end]) != lit {
		r.invalid()
		return false
	}
	r.off += len(lit)
	return true
}

// raw reads past the next value and returns its bytes.
func (r *Reader) raw() []byte {
	r.skipSpace()
	start := r.off
	r.skip()
	if r.bad {
		return nil
	}
	return r.data[start:r.off:r.off]
}

// scanString reads past the string at r.off and returns it with its
// quotes, and whether its contents are the string as they stand: no
// escapes, valid UTF-8.
func (r *Reader) scanString() (raw []byte, plain, ok bool) {
	d := r.data
	plain = true
	ascii := true
	for i := r.off + 1; i < len(d); i++ {
		// Eight bytes at a time, to the first that needs a look.
		for i+8 <= len(d) {
			if m := specials(binary.LittleEndian.Uint64(d[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i == len(d) {
			break
		}
		c := d[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			continue
		}
		switch {
		case c == '"':
			raw = d[r.off : i+1]
			r.off = i + 1
			if !ascii && plain {
				plain = utf8.Valid(raw[1 : len(raw)-1])
			}
			return raw, plain, true
		case c == '\\':
			plain = false
			i++
			if i == len(d) {
				r.invalid()
				return nil, false, false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(d) || !isHex(d[i+1]) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) {
					r.invalid()
					return nil, false, false
				}
				i += 4
			default:
				r.invalid()
				return nil, false, false
			}
		case c < 0x20:
			r.invalid()
			return nil, false, false
		default:
			ascii = false
		}
	}
	r.invalid()
	return nil, false, false
}

// specials marks, in the high bit of each of eight bytes of a string
// (the first in the lowest), those that scanString must look at: a
// quote, a backslash, a control character, or one of a multi-byte
// sequence. A mark may be false only above a true one.
func specials(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, b := x^'"'*ones, x^'\\'*ones
	return ((x - 0x20*ones) | (q-ones)&^q | (b-ones)&^b | x) & highs
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// unquote is the contents of a scanned string as encoding/json reads
// them: escapes resolved, bad UTF-8 and lone surrogates as U+FFFD.
func unquote(raw []byte, plain bool) []byte {
	if plain {
		return raw[1 : len(raw)-1]
	}
	// Rare in stored data (the encoder escapes only <, >, &, quotes,
	// controls, U+2028 and U+2029): encoding/json reads it.
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		panic(fmt.Sprintf("strictjson: a scanned string does not unquote: %v", err))
	}
	return []byte(s)
}

// scanNumber reads past the number at r.off and returns it.
func (r *Reader) scanNumber() ([]byte, bool) {
	d, i := r.data, r.off
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = digits(d, i+1)
	default:
		r.invalid()
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		j := digits(d, i+1)
		if j == i+1 {
			r.invalid()
			return nil, false
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(d, i)
		if j == i {
			r.invalid()
			return nil, false
		}
		i = j
	}
	n := d[r.off:i]
	r.off = i
	return n, true
}

func digits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// null reads past a null that the caller has seen begin.
func (r *Reader) null() bool { return r.literal("null") }

// parseInt reads a JSON number as encoding/json reads one into an int.
func parseInt(n []byte) (int, bool) {
	v, err := strconv.ParseInt(string(n), 10, 64)
	return int(v), err == nil
}
