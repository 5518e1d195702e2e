package strictjson

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Struct is what Object needs of a struct type: its name, for errors,
// and the JSON names of its fields, read from their tags as
// encoding/json reads them.
type Struct struct {
	typ   reflect.Type
	name  string // the type's, as errors name it
	names []string
}

// StructOf describes struct type T. It supports what the ledger's types
// use — exported fields named by a json tag or by their Go name, tags
// "-" and ",omitempty", names of letters, digits, '_' and '-' — and
// panics on what it does not: embedded fields, ",string", other names, a
// name given twice.
func StructOf[T any]() *Struct {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("strictjson: %s is not a struct", t))
	}
	s := &Struct{typ: t, name: t.Name()}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			panic(fmt.Sprintf("strictjson: %s embeds %s", t, f.Type))
		}
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		for _, o := range strings.Split(opts, ",") {
			if o != "" && o != "omitempty" {
				panic(fmt.Sprintf("strictjson: %s.%s has tag option %q", t, f.Name, o))
			}
		}
		if name == "" {
			name = f.Name
		}
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
			panic(fmt.Sprintf("strictjson: %s.%s is named %q", t, f.Name, name))
		}
		if slices.Contains(s.names, name) {
			panic(fmt.Sprintf("strictjson: %s names %q twice", t, name))
		}
		s.names = append(s.names, name)
	}
	return s
}

// Names are the JSON names of the struct's fields, in their order.
func (s *Struct) Names() []string { return slices.Clone(s.names) }

// field is the index of the field that key stands for, or -1: the
// field of that exact name, else the first whose name matches it without
// regard to case. hint is where to look first: keys usually come in
// the order of the fields.
func (s *Struct) field(key []byte, hint int) int {
	if hint < len(s.names) && string(key) == s.names[hint] {
		return hint
	}
	for i, n := range s.names {
		if string(key) == n {
			return i
		}
	}
	for i, n := range s.names {
		if strings.EqualFold(string(key), n) {
			return i
		}
	}
	return -1
}

// Fields reads an object into a struct, key by key; see Object.
type Fields struct {
	r *Reader
	s *Struct
	// field is the index in s.names of the field being read, or -1. (Not
	// its name: a string kept here and put in a panic's message would
	// tell escape analysis that r may leak too.)
	field int
	at    int // where its value begins
	hint  int
	// npath is the depth of the reader's error context outside the
	// object, put back after each field.
	npath int
	open  bool // between the braces
	first bool // before the first key
}

// Object begins reading an object into a struct of type s:
//
//	for f := r.Object(s); f.Next(); {
//		switch f.Name() {
//		case "id": strictjson.String(r, &v.ID)
//		…
//
// Next moves to each key, in the object's order, that names one of the
// struct's fields, and one typed read must then read its value. Unknown
// keys are errors and skipped. null leaves the struct as it is; any
// other value is a type error.
func (r *Reader) Object(s *Struct) Fields {
	f := Fields{r: r, s: s, field: -1}
	switch r.begin('{') {
	case entered:
		f.open, f.first = true, true
		f.npath = r.npath
	case other:
		r.mismatch(r.next(), s.typ)
	}
	return f
}

// beginning is how the reading of an object or array begins.
type beginning int

const (
	entered beginning = iota // past its opening bracket
	wasNull                  // it was null, now read
	other                    // it is another kind of value, not read yet
	over                     // reading is over: see start
)

// begin begins to read an object or array, whose opening is bracket.
func (r *Reader) begin(bracket byte) beginning {
	c, ok := r.start()
	switch {
	case !ok:
		return over
	case c == bracket:
		r.off++
		if r.enter() {
			return entered
		}
		return over
	case c == 'n':
		if r.null() {
			return wasNull
		}
		return over
	}
	return other
}

// Name is the JSON name of the field Next moved to.
func (f *Fields) Name() string { return f.s.names[f.field] }

// Next moves to the next key that names a field, or past the object's
// end, and says whether it found one.
func (f *Fields) Next() bool {
	r := f.r
	if !f.open {
		return false
	}
	if f.field >= 0 {
		if r.off == f.at && !r.bad {
			panic(fmt.Sprintf("strictjson: nothing read the value of %s's field %q", f.s.typ, f.s.names[f.field]))
		}
		r.npath = f.npath
		f.field = -1
	}
	for {
		if r.bad {
			f.open = false
			return false
		}
		c := r.next()
		switch {
		case f.first:
			f.first = false
			if c == '}' {
				return f.close()
			}
		case c == ',':
			r.off++
			c = r.next()
		case c == '}':
			return f.close()
		default:
			r.invalid()
			f.open = false
			return false
		}
		if c != '"' {
			r.invalid()
			f.open = false
			return false
		}
		raw, plain, ok := r.scanString()
		if !ok {
			f.open = false
			return false
		}
		if r.next() != ':' {
			r.invalid()
			f.open = false
			return false
		}
		r.off++
		key := unquote(raw, plain)
		i := f.s.field(key, f.hint)
		switch {
		case i < 0:
			r.save(fmt.Errorf("json: unknown field %q", key))
			r.skip()
			continue
		case r.abort != nil:
			r.skip()
			continue
		}
		r.push(f.s, f.s.names[i])
		f.field, f.hint, f.at = i, i+1, r.off
		return true
	}
}

func (f *Fields) close() bool {
	f.r.off++
	f.r.leave()
	f.open = false
	return false
}

// String reads a string. null leaves *p as it is.
func String[T ~string](r *Reader, p *T) {
	c, ok := r.start()
	if !ok {
		return
	}
	switch c {
	case '"':
		if raw, plain, ok := r.scanString(); ok {
			*p = T(unquote(raw, plain))
		}
	case 'n':
		r.null()
	default:
		r.mismatch(c, reflect.TypeFor[T]())
	}
}

// Int reads a number into an int: a number that is not a whole one, or
// does not fit, is a type error. null leaves *p as it is.
func Int(r *Reader, p *int) {
	c, ok := r.start()
	if !ok {
		return
	}
	switch {
	case c == '-' || '0' <= c && c <= '9':
		at := r.off
		n, ok := r.scanNumber()
		if !ok {
			return
		}
		v, ok := parseInt(n)
		if !ok {
			r.save(&json.UnmarshalTypeError{Value: "number " + string(n), Type: reflect.TypeFor[int](), Offset: int64(at)})
			return
		}
		*p = v
	case c == 'n':
		r.null()
	default:
		r.mismatch(c, reflect.TypeFor[int]())
	}
}

// Unmarshal hands the next value, whatever it is, null included, to
// unmarshal, a value's UnmarshalJSON method (r.Unmarshal(v.UnmarshalJSON)
// keeps v off the heap, where a json.Unmarshaler would not); an error
// there ends decoding.
func (r *Reader) Unmarshal(unmarshal func([]byte) error) {
	if _, ok := r.start(); !ok {
		return
	}
	if b := r.raw(); !r.bad {
		if err := unmarshal(b); err != nil {
			r.fail(err)
		}
	}
}

// Text hands a string's contents to unmarshal, the UnmarshalText method
// of a value of type T; an error there ends decoding. null leaves the
// value as it is; any other value is a type error.
func Text[T any](r *Reader, unmarshal func([]byte) error) {
	c, ok := r.start()
	if !ok {
		return
	}
	switch c {
	case '"':
		if raw, plain, ok := r.scanString(); ok {
			if err := unmarshal(unquote(raw, plain)); err != nil {
				r.fail(err)
			}
		}
	case 'n':
		r.null()
	default:
		r.mismatch(c, reflect.TypeFor[T]())
	}
}

// Raw returns the next value's bytes as they stand, as a
// json.RawMessage's UnmarshalJSON gets them. They share the reader's
// data: nothing is copied.
func (r *Reader) Raw() []byte {
	if _, ok := r.start(); !ok {
		return nil
	}
	return r.raw()
}

// Mark is where the next value begins, for Since: a value read with
// typed reads can be had as Raw would have returned it too.
func (r *Reader) Mark() int {
	r.skipSpace()
	return r.off
}

// Since returns the bytes read since mark, shared, not copied.
func (r *Reader) Since(mark int) []byte {
	if r.bad {
		return nil
	}
	return r.data[mark:r.off:r.off]
}

// Elems reads an array into a slice, element by element; see Slice.
type Elems[E any] struct {
	r *Reader
	// p is the slice read into, worked on in place as encoding/json
	// does. (A copy kept here and written back would tell escape
	// analysis that r and the slice's owner may leak.)
	p     *[]E
	i     int // the element being read
	at    int // where it begins
	open  bool
	first bool
}

// Slice begins reading an array into a slice:
//
//	for e := strictjson.Slice(r, &v.Units); e.Next(); {
//		readUnit(r, e.Elem())
//	}
//
// reading each element, as encoding/json does, into the element already
// there while they last, then into new ones; the slice is cut to the
// array's length (an empty array makes a new, empty slice). null makes
// the slice nil; any other value is a type error.
func Slice[E any](r *Reader, p *[]E) Elems[E] {
	e := Elems[E]{r: r, p: p}
	switch r.begin('[') {
	case entered:
		e.open, e.first = true, true
	case wasNull:
		*p = nil
	case other:
		r.mismatch(r.next(), reflect.TypeFor[[]E]())
	}
	return e
}

// Elem is the element Next moved to.
func (e *Elems[E]) Elem() *E { return &(*e.p)[e.i] }

// Next moves to the next element, or past the array's end, and says
// whether there is one; one typed read must then read it.
func (e *Elems[E]) Next() bool {
	r := e.r
	if !e.open {
		return false
	}
	if e.first {
		e.first = false
		if r.next() == ']' {
			return e.close()
		}
	} else {
		if r.off == e.at && !r.bad {
			panic(fmt.Sprintf("strictjson: nothing read element %d of a %s", e.i, reflect.TypeFor[[]E]()))
		}
		e.i++
		c := r.next()
		switch {
		case r.bad:
		case c == ']':
			return e.close()
		case c == ',':
			r.off++
		default:
			r.invalid()
		}
		if r.bad {
			e.open = false
			return false
		}
	}
	if e.i == cap(*e.p) {
		*e.p = slices.Grow(*e.p, 1)
	}
	if e.i >= len(*e.p) {
		*e.p = (*e.p)[:e.i+1]
	}
	e.at = r.off
	return true
}

func (e *Elems[E]) close() bool {
	e.r.off++
	e.r.leave()
	e.open = false
	if e.i == 0 {
		*e.p = make([]E, 0)
	} else {
		*e.p = (*e.p)[:e.i]
	}
	return false
}

// Pointer begins reading a value through a pointer: null makes it nil;
// anything else is to be read, with one typed read, into what it points
// to, made new if it is nil, and Pointer says so.
func Pointer[T any](r *Reader, p **T) bool {
	c, ok := r.start()
	if !ok {
		return false
	}
	if c == 'n' {
		if r.null() {
			*p = nil
		}
		return false
	}
	if *p == nil {
		*p = new(T)
	}
	return true
}
