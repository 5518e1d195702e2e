package strictjson

import (
	"encoding"
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
	s := &Struct{typ: t}
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

// field is the name of the field that key stands for, or "": the field
// of that exact name, else the first whose name matches it without
// regard to case. hint is where to look first: keys usually come in
// the order of the fields.
func (s *Struct) field(key []byte, hint int) (string, int) {
	if hint < len(s.names) && string(key) == s.names[hint] {
		return s.names[hint], hint + 1
	}
	for i, n := range s.names {
		if string(key) == n {
			return n, i + 1
		}
	}
	for i, n := range s.names {
		if strings.EqualFold(string(key), n) {
			return n, i + 1
		}
	}
	return "", hint
}

// Object reads an object into a struct of type s: for each key that
// names one of its fields, in the object's order, it calls field with
// that field's JSON name, and field reads the key's value with one typed
// read. null leaves the struct as it is; any other value is a type
// error.
func (r *Reader) Object(s *Struct, field func(name string)) {
	c, ok := r.start()
	if !ok {
		return
	}
	switch c {
	case '{':
	case 'n':
		r.null()
		return
	default:
		r.mismatch(c, s.typ)
		return
	}
	r.off++
	if !r.enter() {
		return
	}
	if r.next() == '}' {
		r.off++
		r.leave()
		return
	}
	inStruct, npath := r.inStruct, r.npath
	hint := 0
	for {
		if r.next() != '"' {
			r.invalid()
			return
		}
		raw, plain, ok := r.scanString()
		if !ok {
			return
		}
		if r.next() != ':' {
			r.invalid()
			return
		}
		r.off++
		key := unquote(raw, plain)
		var name string
		name, hint = s.field(key, hint)
		switch {
		case name == "":
			r.save(fmt.Errorf("json: unknown field %q", key))
			r.skip()
		case r.abort != nil:
			r.skip()
		default:
			r.push(s, name)
			at := r.off
			field(name)
			if r.off == at && !r.bad {
				panic(fmt.Sprintf("strictjson: nothing read the value of %s's field %q", s.typ, name))
			}
			r.inStruct, r.npath = inStruct, npath
		}
		if r.bad {
			return
		}
		switch r.next() {
		case ',':
			r.off++
		case '}':
			r.off++
			r.leave()
			return
		default:
			r.invalid()
			return
		}
	}
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
// *p's UnmarshalJSON; an error there ends decoding.
func Unmarshal[T any, PT interface {
	*T
	json.Unmarshaler
}](r *Reader, p *T) {
	if _, ok := r.start(); !ok {
		return
	}
	if b := r.raw(); !r.bad {
		if err := PT(p).UnmarshalJSON(b); err != nil {
			r.fail(err)
		}
	}
}

// Text hands a string's contents to *p's UnmarshalText; an error there
// ends decoding. null leaves *p as it is; any other value is a type
// error.
func Text[T any, PT interface {
	*T
	encoding.TextUnmarshaler
}](r *Reader, p *T) {
	c, ok := r.start()
	if !ok {
		return
	}
	switch c {
	case '"':
		if raw, plain, ok := r.scanString(); ok {
			if err := PT(p).UnmarshalText(unquote(raw, plain)); err != nil {
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

// Slice reads an array into a slice, each element with elem, as
// encoding/json does: into the elements already there while they last,
// then into new ones, the slice cut to the array's length (an empty
// array makes a new, empty slice). null makes the slice nil; any other
// value is a type error.
func Slice[E any](r *Reader, p *[]E, elem func(*Reader, *E)) {
	c, ok := r.start()
	if !ok {
		return
	}
	switch c {
	case '[':
	case 'n':
		if r.null() {
			*p = nil
		}
		return
	default:
		r.mismatch(c, reflect.TypeFor[[]E]())
		return
	}
	r.off++
	if !r.enter() {
		return
	}
	s := *p
	i := 0
	if r.next() == ']' {
		r.off++
	} else {
		for {
			if i == cap(s) {
				s = slices.Grow(s, 1)
			}
			if i >= len(s) {
				s = s[:i+1]
			}
			at := r.off
			elem(r, &s[i])
			if r.off == at && !r.bad {
				panic(fmt.Sprintf("strictjson: nothing read element %d of a %T", i, s))
			}
			i++
			if r.bad {
				return
			}
			c := r.next()
			if c == ']' {
				r.off++
				break
			}
			if c != ',' {
				r.invalid()
				return
			}
			r.off++
		}
	}
	r.leave()
	if i == 0 {
		s = make([]E, 0)
	}
	*p = s[:i]
}

// Pointer reads a value through a pointer, with read: null makes the
// pointer nil; anything else is read into what it points to, made new
// if it is nil.
func Pointer[T any](r *Reader, p **T, read func(*Reader, *T)) {
	c, ok := r.start()
	if !ok {
		return
	}
	if c == 'n' {
		if r.null() {
			*p = nil
		}
		return
	}
	if *p == nil {
		*p = new(T)
	}
	read(r, *p)
}
